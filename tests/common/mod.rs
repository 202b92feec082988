//! End-to-end harness: real `freeim-server` processes, real `redis-server`
//! (from `testkit`) and real WebSocket clients (tungstenite over TCP).

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub use testkit::{free_port, wait_until, RedisServer};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

/// How long a test waits for something that should happen promptly.
pub const PROMPTLY: Duration = Duration::from_secs(5);

/// A `freeim-server` child process, killed on drop.
pub struct Node {
    pub server: String,
    pub port: u16,
    child: Option<Child>,
    args: Vec<String>,
}

impl Node {
    /// Starts a one-node cluster on a free port.
    pub fn start(redis: &RedisServer) -> Node {
        let port = free_port();
        let server = format!("127.0.0.1:{port}");
        Node::start_in(redis, &server, std::slice::from_ref(&server), &[])
    }

    /// Starts node `server` of the cluster `servers` with extra arguments.
    pub fn start_in(redis: &RedisServer, server: &str, servers: &[String], extra: &[&str]) -> Node {
        let port: u16 = server.rsplit(':').next().unwrap().parse().unwrap();
        let mut args = vec![
            "--listen".to_string(),
            server.to_string(),
            "--redis".into(),
            redis.url(),
            "--server".into(),
            server.to_string(),
            "--servers".into(),
            servers.join(";"),
            "--threads".into(),
            "2".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut node = Node {
            server: server.to_string(),
            port,
            child: None,
            args,
        };
        node.restart();
        node
    }

    /// (Re)starts the process with the same arguments and waits until it accepts.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(env!("CARGO_BIN_EXE_freeim-server"))
            .args(&self.args)
            .env("FREEIM_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start freeim-server");
        self.child = Some(child);
        let port = self.port;
        assert!(
            wait_until(PROMPTLY, || TcpStream::connect(("127.0.0.1", port)).is_ok()),
            "node on port {port} did not start"
        );
    }

    /// Sends SIGTERM and waits (up to `timeout`) for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process with SIGKILL (no drain, no cleanup).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a raw HTTP request and returns the response head's status code.
    pub fn raw_status(&self, request: &[u8]) -> u16 {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(PROMPTLY)).unwrap();
        stream.write_all(request).unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let text = String::from_utf8_lossy(&response);
        text.split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A WebSocket client connected to a node.
pub struct Client {
    pub ws: WebSocket<TcpStream>,
}

impl Client {
    /// Connects to a `ws://host:port/path?token=…` URL.
    pub fn connect(url: &str) -> Result<Client, Box<tungstenite::Error>> {
        let authority = url.trim_start_matches("ws://").split('/').next().unwrap();
        let stream = TcpStream::connect(authority).expect("tcp connect");
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let (ws, _) = tungstenite::client(url, stream).map_err(|e| match e {
            tungstenite::HandshakeError::Failure(e) => Box::new(e),
            tungstenite::HandshakeError::Interrupted(_) => {
                Box::new(tungstenite::Error::ConnectionClosed)
            }
        })?;
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
                Ok(Message::Text(text)) => return Some(text),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
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
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return None,
            }
        }
        None
    }
}

/// Stores a token the way FreeIM's ImHelper does and returns the URL to connect to.
pub fn raw_token(redis: &RedisServer, node: &Node, client_id: i64, meta: &str) -> String {
    let token = format!("t{client_id}x{}", rand::random::<u64>());
    let value = format!(r#"{{"Item1":{client_id},"Item2":"{meta}"}}"#);
    let reply = redis.raw_command(&["SET", &format!("im_v2_wsToken{token}"), &value, "EX", "10"]);
    assert_eq!(reply, "+OK");
    format!("ws://{}/ws?token={token}", node.server)
}
