//! End-to-end harness: real `freeim-server` processes, real `redis-server`
//! (from `testkit`) and real WebSocket clients (tungstenite over TCP).

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub use testkit::{wait_until, RedisServer};

/// A loopback port for a node that was free a moment ago.
///
/// Picked at random *below* the kernel's ephemeral range (32768–60999 by
/// default) and never handed out twice in one test process: a port from the
/// ephemeral range can be taken, between the pick and the node's `bind`, by
/// any outgoing connection (the tests open many) or by another test's pick,
/// and then the node fails to start while the harness, seeing something
/// accept on the port, talks to the wrong process.
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    for _ in 0..1000 {
        let port = 20_000 + rand::random::<u16>() % 12_000;
        if given.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    testkit::free_port()
}
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
        Node::launch(&redis.url(), server, server, servers, extra)
    }

    /// Starts node `server` of `servers` on the Redis at `redis_url` (any
    /// form `--redis` takes: a forwarder, Sentinel, TLS).
    pub fn start_on(redis_url: &str, server: &str, servers: &[String], extra: &[&str]) -> Node {
        Node::launch(redis_url, server, server, servers, extra)
    }

    /// Starts node `server` of `servers` behind a proxy: clients reach it as
    /// `server`, it listens on `listen`.
    pub fn start_proxied(
        redis: &RedisServer,
        server: &str,
        servers: &[String],
        listen: &str,
    ) -> Node {
        Node::launch(&redis.url(), server, listen, servers, &[])
    }

    /// Starts node `server` of `servers` listening on `listen`, with two
    /// loops unless `extra` says otherwise.
    fn launch(
        redis_url: &str,
        server: &str,
        listen: &str,
        servers: &[String],
        extra: &[&str],
    ) -> Node {
        let port: u16 = listen.rsplit(':').next().unwrap().parse().unwrap();
        let mut args = vec![
            "--listen".to_string(),
            listen.to_string(),
            "--redis".into(),
            redis_url.to_string(),
            "--server".into(),
            server.to_string(),
            "--servers".into(),
            servers.join(";"),
        ];
        if !extra.contains(&"--threads") {
            args.extend(["--threads".to_string(), "2".to_string()]);
        }
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
        let mut exited = None;
        let up = wait_until(PROMPTLY, || {
            exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            exited.is_some() || TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(exited.is_none(), "node on port {port} exited: {exited:?}");
        assert!(up, "node on port {port} did not start");
    }

    /// Starts another process under `server`'s name, listening on `listen`.
    pub fn start_named(redis: &RedisServer, server: &str, listen: &str, extra: &[&str]) -> Node {
        Node::launch(&redis.url(), server, listen, &[server.to_string()], extra)
    }

    /// Waits (up to `timeout`) for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let mut status = None;
        wait_until(timeout, || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        status
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
                Ok(Message::Text(text)) => return Some(text),
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

/// Stores a token the way FreeIM's ImHelper does and returns the URL to connect to.
pub fn raw_token(redis: &RedisServer, node: &Node, client_id: i64, meta: &str) -> String {
    let token = format!("t{client_id}x{}", rand::random::<u64>());
    let value = format!(r#"{{"Item1":{client_id},"Item2":"{meta}"}}"#);
    let reply = redis.raw_command(&["SET", &format!("im_v2_wsToken{token}"), &value, "EX", "10"]);
    assert_eq!(reply, "+OK");
    format!("ws://{}/ws?token={token}", node.server)
}

// ---------------------------------------------------------------------------
// Extensions for the end-to-end suites (messaging, presence, cluster,
// bad_input): ImHelper wiring, Redis reads, a pub/sub spy, a hand-made
// WebSocket client for bad frames, and process runs that must fail.
// ---------------------------------------------------------------------------

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use imhelper::{ClientEvent, EventStream, ImHelper, ImHelperOptions, PresenceEvent};

/// A short wait for things that must *not* happen, when no marker can prove it.
pub const QUIET: Duration = Duration::from_millis(300);

impl Node {
    /// Starts a one-node cluster on a free port with extra arguments.
    pub fn start_with(redis: &RedisServer, extra: &[&str]) -> Node {
        let server = format!("127.0.0.1:{}", free_port());
        Node::start_in(redis, &server, std::slice::from_ref(&server), extra)
    }

    /// The `{prefix}Server{server}` command channel of this node.
    pub fn channel(&self) -> String {
        format!("im_v2_wsServer{}", self.server)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

/// Starts an `n`-node cluster, every node on a free port, `servers` in order.
pub fn start_cluster(redis: &RedisServer, n: usize, extra: &[&str]) -> Vec<Node> {
    let servers: Vec<String> = (0..n)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    servers
        .iter()
        .map(|server| Node::start_in(redis, server, &servers, extra))
        .collect()
}

/// An `ImHelper` for the cluster made of `nodes` (in their order).
pub fn helper(redis: &RedisServer, nodes: &[&Node]) -> ImHelper {
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

// ----- Redis reads ----------------------------------------------------------

/// A fresh `redis` crate connection (for replies `raw_command` cannot show whole).
pub fn redis_conn(redis: &RedisServer) -> redis::Connection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_connection_with_timeout(PROMPTLY)
        .expect("connect to redis")
}

/// `HGET key field`.
pub fn hget(redis: &RedisServer, key: &str, field: &str) -> Option<String> {
    redis::cmd("HGET")
        .arg(key)
        .arg(field)
        .query(&mut redis_conn(redis))
        .expect("HGET")
}

/// `HGETALL key`.
pub fn hgetall(redis: &RedisServer, key: &str) -> HashMap<String, String> {
    redis::cmd("HGETALL")
        .arg(key)
        .query(&mut redis_conn(redis))
        .expect("HGETALL")
}

/// The `im_v2_wsOnline` count of `id` (`None`: no field).
pub fn online_count(redis: &RedisServer, id: i64) -> Option<String> {
    hget(redis, "im_v2_wsOnline", &id.to_string())
}

/// Waits until `id`'s Online count is `expected` (`None`: field absent).
pub fn wait_online(redis: &RedisServer, id: i64, expected: Option<u32>) {
    let expected = expected.map(|n| n.to_string());
    let ok = wait_until(PROMPTLY, || online_count(redis, id) == expected);
    assert!(
        ok,
        "Online count of {id}: expected {expected:?}, found {:?}",
        online_count(redis, id)
    );
}

/// Publishes `payload` on `channel`; returns how many subscribers heard it.
pub fn publish(redis: &RedisServer, channel: &str, payload: &str) -> i64 {
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg(payload)
        .query(&mut redis_conn(redis))
        .expect("PUBLISH")
}

// ----- pub/sub spy ----------------------------------------------------------

/// Records every payload published on some channels (a thread of its own).
pub struct Spy {
    payloads: mpsc::Receiver<(String, String)>,
    stop: Arc<AtomicBool>,
}

impl Spy {
    /// Subscribes to `channels`; returns once the subscription is live.
    pub fn start(redis: &RedisServer, channels: &[String]) -> Spy {
        let mut conn = redis_conn(redis);
        let (sender, payloads) = mpsc::channel();
        let (ready_tx, ready) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let channels = channels.to_vec();
        std::thread::spawn(move || {
            let mut pubsub = conn.as_pubsub();
            for channel in &channels {
                pubsub.subscribe(channel).expect("SUBSCRIBE");
            }
            pubsub
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let _ = ready_tx.send(());
            while !stopped.load(Ordering::Relaxed) {
                match pubsub.get_message() {
                    Ok(message) => {
                        let payload: String = message.get_payload().unwrap_or_default();
                        let channel = message.get_channel_name().to_string();
                        if sender.send((channel, payload)).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.is_timeout() => {}
                    Err(_) => return,
                }
            }
        });
        ready.recv_timeout(PROMPTLY).expect("spy subscribed");
        Spy { payloads, stop }
    }

    /// The next `(channel, payload)` within `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<(String, String)> {
        self.payloads.recv_timeout(timeout).ok()
    }

    /// Everything published within `wait`.
    pub fn collect(&self, wait: Duration) -> Vec<(String, String)> {
        let deadline = Instant::now() + wait;
        let mut seen = Vec::new();
        while let Some(item) = self.next(deadline.saturating_duration_since(Instant::now())) {
            seen.push(item);
        }
        seen
    }
}

impl Drop for Spy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

// ----- presence events -----------------------------------------------------

/// An online event.
pub fn online(id: i64, meta: &str) -> PresenceEvent {
    PresenceEvent::Online(ClientEvent {
        client_id: id,
        client_meta: meta.to_string(),
    })
}

/// An offline event.
pub fn offline(id: i64, meta: &str) -> PresenceEvent {
    PresenceEvent::Offline(ClientEvent {
        client_id: id,
        client_meta: meta.to_string(),
    })
}

/// The next `n` events, each within `PROMPTLY` (panics if they do not come).
pub fn next_events(events: &mut EventStream, n: usize) -> Vec<PresenceEvent> {
    (0..n)
        .map(|i| {
            events
                .recv_timeout(PROMPTLY)
                .unwrap_or_else(|| panic!("event {} of {n} did not come", i + 1))
        })
        .collect()
}

/// Sorts events by kind then id then meta, for order-insensitive comparison.
pub fn sorted(mut events: Vec<PresenceEvent>) -> Vec<PresenceEvent> {
    let key = |e: &PresenceEvent| match e {
        PresenceEvent::Online(c) => (0, c.client_id, c.client_meta.clone()),
        PresenceEvent::Offline(c) => (1, c.client_id, c.client_meta.clone()),
    };
    events.sort_by_key(key);
    events
}

// ----- the node still serves -------------------------------------------------

/// Asserts that `node` admits a new client and delivers a message to it.
pub fn assert_still_serves(redis: &RedisServer, node: &Node) {
    let id = 900_000 + i64::from(rand::random::<u16>());
    let url = raw_token(redis, node, id, "probe");
    let mut client = Client::connect(&url).expect("the node still upgrades a good client");
    let command = format!(r#"{{"Item1":0,"Item2":[{id}],"Item3":"\"still here\"","Item4":false}}"#);
    assert_eq!(publish(redis, &node.channel(), &command), 1);
    assert_eq!(
        client.recv_text(PROMPTLY).as_deref(),
        Some("\"still here\""),
        "the node still delivers to a good client"
    );
    client.close();
}

// ----- hand-made WebSocket client ---------------------------------------------

/// The sample key of RFC 6455 §1.3 and its accept value.
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A well-formed upgrade request for `target` (path and query) on `host`.
pub fn upgrade_request(host: &str, target: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// One frame: FIN flag, RSV bits (0–7), opcode, payload, optional mask key.
pub fn frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | ((rsv & 7) << 4) | (opcode & 0x0f)];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A masked, final client frame.
pub fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(true, 0, opcode, payload, Some([0x37, 0xfa, 0x21, 0x3d]))
}

/// A frame received by [`RawWs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// What reading from a [`RawWs`] came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Got {
    Frame(RawFrame),
    /// Nothing within the timeout.
    Timeout,
    /// EOF or reset.
    Closed,
}

/// A WebSocket client written by hand over a blocking `TcpStream`, for frames
/// tungstenite refuses to send.
pub struct RawWs {
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// A pause after every read of up to 16 KiB (a reader on a slow link).
    pub pace: Duration,
}

impl RawWs {
    /// Opens `ws://host:port/path?query` with a hand-written handshake;
    /// panics unless the answer is `101` with the right accept value.
    pub fn open(url: &str) -> RawWs {
        let authority = url.trim_start_matches("ws://").split('/').next().unwrap();
        let mut raw = RawWs::connect(authority);
        raw.handshake(url);
        raw
    }

    /// Opens `url` (as [`open`](Self::open)) on a socket whose kernel
    /// receive buffer is `bytes` (set before connecting, so the window stays
    /// small): what it does not read waits in the node's queue.
    pub fn open_with_recv_buffer(url: &str, bytes: usize) -> RawWs {
        let authority = url.trim_start_matches("ws://").split('/').next().unwrap();
        let addr: std::net::SocketAddr = authority.parse().expect("ip:port");
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(bytes).unwrap();
        socket.connect(&addr.into()).expect("tcp connect");
        let mut raw = RawWs::from_stream(socket.into());
        raw.handshake(url);
        raw
    }

    /// A TCP connection to `host:port`.
    pub fn connect(authority: &str) -> RawWs {
        RawWs::from_stream(TcpStream::connect(authority).expect("tcp connect"))
    }

    /// Wraps a connected stream.
    pub fn from_stream(stream: TcpStream) -> RawWs {
        stream.set_nodelay(true).unwrap();
        RawWs {
            stream,
            buf: Vec::new(),
            pace: Duration::ZERO,
        }
    }

    /// Sends the upgrade request for `url` and checks the `101` answer.
    pub fn handshake(&mut self, url: &str) {
        let rest = url.trim_start_matches("ws://");
        let (host, target) = rest.split_at(rest.find('/').unwrap());
        self.send(upgrade_request(host, target).as_bytes());
        let head = self.read_head(PROMPTLY).expect("a response head");
        assert!(
            head.starts_with("HTTP/1.1 101 "),
            "upgrade refused: {head:?}"
        );
        assert!(
            head.contains(&format!("Sec-WebSocket-Accept: {SAMPLE_ACCEPT}\r\n")),
            "wrong accept value: {head:?}"
        );
    }

    /// Writes `bytes` (errors ignored: the peer may have closed already).
    pub fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// Reads until `\r\n\r\n` and returns the head (body bytes stay buffered).
    pub fn read_head(&mut self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                return Some(String::from_utf8_lossy(&head).into_owned());
            }
            if !self.fill(deadline)? {
                return None;
            }
        }
    }

    /// Reads more bytes into the buffer: `Some(true)` got some, `Some(false)`
    /// EOF or error, `None` timeout.
    fn fill(&mut self, deadline: Instant) -> Option<bool> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        self.stream.set_read_timeout(Some(left)).unwrap();
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Some(false),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                std::thread::sleep(self.pace);
                Some(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(_) => Some(false),
        }
    }

    /// The next server frame (which must be unmasked) within `timeout`.
    pub fn read_frame(&mut self, timeout: Duration) -> Got {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(frame) = self.parse_frame() {
                return Got::Frame(frame);
            }
            match self.fill(deadline) {
                Some(true) => {}
                Some(false) => return Got::Closed,
                None => return Got::Timeout,
            }
        }
    }

    fn parse_frame(&mut self) -> Option<RawFrame> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        assert_eq!(b[1] & 0x80, 0, "server frames must not be masked");
        let (len, header) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (usize::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() >= 10 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => return None,
            n => (usize::from(n), 2),
        };
        if b.len() < header + len {
            return None;
        }
        let frame = RawFrame {
            fin: b[0] & 0x80 != 0,
            opcode: b[0] & 0x0f,
            payload: b[header..header + len].to_vec(),
        };
        self.buf.drain(..header + len);
        Some(frame)
    }

    /// Skips data and ping frames until a close frame; returns its code
    /// (`Some(1005)` for an empty close payload), `None` if none came.
    pub fn read_close(&mut self, timeout: Duration) -> Option<u16> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_frame(deadline.saturating_duration_since(Instant::now())) {
                Got::Frame(f) if f.opcode == 0x8 => {
                    return Some(match f.payload.as_slice() {
                        [hi, lo, ..] => u16::from_be_bytes([*hi, *lo]),
                        _ => 1005,
                    })
                }
                Got::Frame(_) => {}
                Got::Timeout | Got::Closed => return None,
            }
        }
    }

    /// Whether the server closes the TCP connection within `timeout`
    /// (frames before the EOF are skipped).
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.buf.clear();
            match self.fill(deadline) {
                Some(true) => {}
                Some(false) => return true,
                None => return false,
            }
        }
    }
}

// ----- processes that must fail ------------------------------------------------

/// Runs `freeim-server` with `args`, expecting it to exit within `timeout`.
/// Returns the exit code (`None` if it was still running and had to be killed,
/// or died by a signal) and its stderr.
pub fn run_node_to_exit(args: &[&str], timeout: Duration) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_freeim-server"))
        .args(args)
        .env("FREEIM_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start freeim-server");
    let deadline = Instant::now() + timeout;
    let code = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.code(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    (code, stderr)
}

/// Asserts a failed start: non-zero exit and exactly one line on stderr
/// containing `needle`.
pub fn assert_refuses_to_start(args: &[&str], needle: &str) {
    let (code, stderr) = run_node_to_exit(args, Duration::from_secs(10));
    assert!(
        matches!(code, Some(c) if c != 0),
        "{args:?}: expected a non-zero exit, got {code:?} (stderr {stderr:?})"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: expected a one-line message, got {stderr:?}"
    );
    assert!(
        lines[0].contains(needle),
        "{args:?}: {:?} does not mention {needle:?}",
        lines[0]
    );
}

/// `GET path` on a node's admin endpoint: (status, body).
pub fn admin_get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(PROMPTLY)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// The value of metric `name` (with its labels, e.g. `x{role="worker"}`) in
/// a `/metrics` body.
pub fn admin_metric(body: &str, name: &str) -> u64 {
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{body}"))
        .parse()
        .unwrap()
}

/// A process's resident set size, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
