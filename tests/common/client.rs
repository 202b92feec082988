//! WebSocket clients (tungstenite) connected to a node, and the ways in:
//! a raw token stored in Redis, or an `ImHelper` for the cluster.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use imhelper::{ImHelper, ImHelperOptions};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

use super::{Node, TestRedis, PROMPTLY};

/// A WebSocket client connected to a node.
pub struct Client {
    pub ws: WebSocket<TcpStream>,
}

impl Client {
    /// Connects to a `ws://host:port/path?token=…` URL.
    pub fn connect(url: &str) -> Result<Client, Box<tungstenite::Error>> {
        let ws = testkit::ws_connect(url)?;
        Ok(Client { ws })
    }

    /// The HTTP status a refused upgrade was answered with (0 when it was not an HTTP refusal).
    pub fn refusal_status(url: &str) -> u16 {
        match Client::connect(url).map(|_| ()).map_err(|e| *e) {
            Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
            _ => 0,
        }
    }

    /// The next text message within `timeout`, skipping control frames.
    pub fn recv_text(&mut self, timeout: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            match self.ws.read() {
                Ok(Message::Text(text)) => return Some(text.to_string()),
                Ok(_) => {}
                Err(e) if testkit::is_read_timeout(&e) => {}
                Err(_) => return None,
            }
        }
        None
    }

    /// Whether no text message arrives within `wait`.
    pub fn receives_nothing(&mut self, wait: Duration) -> bool {
        self.recv_text(wait).is_none()
    }

    /// Waits for the server to close; returns its close code.
    pub fn closed_with(&mut self, timeout: Duration) -> Option<CloseCode> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            match self.ws.read() {
                Ok(Message::Close(frame)) => return frame.map(|f| f.code),
                Ok(_) => {}
                Err(e) if testkit::is_read_timeout(&e) => {}
                Err(_) => return None,
            }
        }
        None
    }
}

impl Client {
    /// Closes from the client side (code 1000) and waits for the server's close.
    pub fn close(mut self) {
        let _ = self.ws.close(None);
        let deadline = Instant::now() + PROMPTLY;
        while Instant::now() < deadline {
            match self.ws.read() {
                Ok(_) => {}
                Err(e) if testkit::is_read_timeout(&e) => {}
                Err(_) => return,
            }
        }
        panic!("the server did not complete the closing handshake");
    }
}

/// Stores a token the way FreeIM's ImHelper does and returns the URL to connect to.
pub fn raw_token(redis: &TestRedis, node: &Node, client_id: i64, meta: &str) -> String {
    let token = format!("t{client_id}x{}", rand::random::<u64>());
    let value = format!(r#"{{"Item1":{client_id},"Item2":"{meta}"}}"#);
    let reply = redis.raw_command(&["SET", &node.keys.token(&token), &value, "EX", "10"]);
    assert_eq!(reply, "+OK");
    format!("ws://{}/ws?token={token}", node.server)
}

/// An `ImHelper` for the cluster made of `nodes` (in their order).
pub fn helper(redis: &TestRedis, nodes: &[&Node]) -> ImHelper {
    let servers = nodes.iter().map(|n| n.server.clone()).collect();
    ImHelper::new(ImHelperOptions::new(redis.url(), servers)).expect("helper options")
}

/// Connects client `id` through `prev_connect_server`, panicking on refusal.
pub fn connect_as(im: &ImHelper, id: i64, meta: &str) -> Client {
    let url = im
        .prev_connect_server(id, meta)
        .expect("prev_connect_server");
    Client::connect(&url).unwrap_or_else(|e| panic!("client {id} refused: {e}"))
}
