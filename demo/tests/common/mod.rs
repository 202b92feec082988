//! Harness for the demo's integration tests: a real `redis-server` and a
//! real `freeim-server` node process (`testkit`), the demo service
//! in-process on a free port, a tiny HTTP client and WebSocket clients.

#![allow(dead_code, unused_imports)] // each test binary uses a different part of the harness

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use freeim_demo::{Demo, Settings};
use serde_json::Value;
pub use testkit::{free_port, wait_until, Node, RedisServer};
use tungstenite::{Message, WebSocket};

/// How long a test waits for something that should happen promptly.
pub const PROMPTLY: Duration = Duration::from_secs(5);

/// Redis, one node and the demo, all on free loopback ports.
pub struct Stack {
    /// The demo service (in-process).
    pub demo: Demo,
    /// The node.
    pub node: Node,
    /// Redis.
    pub redis: RedisServer,
}

impl Stack {
    /// A one-node cluster with the demo in front of it.
    pub fn start() -> Stack {
        Stack::start_with(|_| {})
    }

    /// The same, with the demo's settings changed by `adjust` first.
    pub fn start_with(adjust: impl FnOnce(&mut Settings)) -> Stack {
        let redis = RedisServer::start();
        let server = format!("127.0.0.1:{}", free_port());
        let node = Node::start(&redis, &server, std::slice::from_ref(&server), &server);
        let mut settings = Settings::new("127.0.0.1:0".parse().unwrap(), &redis.url(), &server);
        adjust(&mut settings);
        let demo = Demo::start(settings).expect("start the demo");
        Stack { demo, node, redis }
    }

    /// `POST path` with a JSON body; returns the status and the JSON answer.
    pub fn post(&self, path: &str, body: &str) -> (u16, Value) {
        http(self.demo.local_addr(), "POST", path, body)
    }

    /// `GET path`; returns the status and the JSON answer.
    pub fn get(&self, path: &str) -> (u16, Value) {
        http(self.demo.local_addr(), "GET", path, "")
    }

    /// `POST /prev-connect` and open the socket; returns the client.
    pub fn connect(&self, body: &str) -> Client {
        let (status, answer) = self.post("/prev-connect", body);
        assert_eq!(status, 200, "{answer}");
        let mut client = Client::connect(answer["url"].as_str().unwrap()).expect("ws connect");
        client.id = answer["id"].as_i64().unwrap();
        client.name = answer["name"].as_str().unwrap().to_string();
        client
    }
}

/// A one-shot HTTP/1.1 request with `Connection: close`; returns the status
/// and the body parsed as JSON (`Value::Null` when it is not JSON).
pub fn http(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (status, _, body) = http_raw(addr, method, path, body.as_bytes());
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// A one-shot request; returns the status, the head and the body bytes.
pub fn http_raw(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("connect to the demo");
    stream.set_read_timeout(Some(PROMPTLY * 2)).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read the answer");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, head, response[split + 4..].to_vec())
}

/// A WebSocket client of the node, as a page would be.
pub struct Client {
    /// The socket.
    pub ws: WebSocket<TcpStream>,
    /// The id the demo gave this client.
    pub id: i64,
    /// The name the demo gave this client.
    pub name: String,
}

impl Client {
    /// Connects to a `ws://host:port/path?token=…` URL.
    pub fn connect(url: &str) -> Result<Client, Box<tungstenite::Error>> {
        let ws = testkit::ws_connect(url)?;
        Ok(Client {
            ws,
            id: 0,
            name: String::new(),
        })
    }

    /// The next pushed message (as JSON) within `timeout`; `None` when none
    /// came or the socket closed.
    pub fn recv(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.ws.read() {
                Ok(Message::Text(text)) => {
                    return Some(serde_json::from_str(&text).expect("pushed text is JSON"))
                }
                Ok(_) => {}
                Err(e) if testkit::is_read_timeout(&e) => {}
                Err(_) => return None,
            }
        }
        None
    }

    /// The first pushed message matching `wanted` within [`PROMPTLY`],
    /// skipping others (presence broadcasts, notices).
    ///
    /// # Panics
    /// When none comes: the panic lists what came instead.
    pub fn expect(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PROMPTLY;
        let mut skipped = Vec::new();
        while Instant::now() < deadline {
            if let Some(message) = self.recv(deadline - Instant::now()) {
                if wanted(&message) {
                    return message;
                }
                skipped.push(message);
            }
        }
        panic!("client {} never got {what}; got {skipped:?}", self.id);
    }

    /// Whether no message matching `unwanted` arrives within `wait`.
    pub fn never_gets(&mut self, wait: Duration, unwanted: impl Fn(&Value) -> bool) -> bool {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Some(message) = self.recv(deadline - Instant::now()) {
                if unwanted(&message) {
                    return false;
                }
            }
        }
        true
    }

    /// Whether the server closes the socket within `timeout`.
    pub fn is_closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.ws.read() {
                Ok(Message::Close(_)) => return true,
                Ok(_) => {}
                Err(e) if testkit::is_read_timeout(&e) => {}
                Err(_) => return true,
            }
        }
        false
    }

    /// Closes the socket politely.
    pub fn close(mut self) {
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            match self.ws.read() {
                Err(e) if testkit::is_read_timeout(&e) => {}
                Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}
