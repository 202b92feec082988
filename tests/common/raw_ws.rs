//! A hand-made WebSocket client ([`RawWs`]) for frames tungstenite refuses
//! to send, and the raw frames and upgrade requests it sends.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::PROMPTLY;

/// The sample key of RFC 6455 §1.3 and its accept value.
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A well-formed upgrade request for `target` (path and query) on `host`.
pub fn upgrade_request(host: &str, target: &str) -> String {
    upgrade_request_with(host, target, "")
}

/// [`upgrade_request`] with `extra` header lines (each ending in CRLF).
pub fn upgrade_request_with(host: &str, target: &str, extra: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
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
    /// RSV1: a permessage-deflate message's first frame, compressed.
    pub compressed: bool,
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

    /// Opens `url` (as [`open`](Self::open)) with `extra` header lines in
    /// the request; returns the client and the `101`'s head.
    pub fn open_with(url: &str, extra: &str) -> (RawWs, String) {
        let authority = url.trim_start_matches("ws://").split('/').next().unwrap();
        let mut raw = RawWs::connect(authority);
        let head = raw.handshake_with(url, extra);
        (raw, head)
    }

    /// Sends the upgrade request for `url` and checks the `101` answer.
    pub fn handshake(&mut self, url: &str) {
        self.handshake_with(url, "");
    }

    /// [`handshake`](Self::handshake) with `extra` header lines; the head.
    pub fn handshake_with(&mut self, url: &str, extra: &str) -> String {
        let rest = url.trim_start_matches("ws://");
        let (host, target) = rest.split_at(rest.find('/').unwrap());
        self.send(upgrade_request_with(host, target, extra).as_bytes());
        let head = self.read_head(PROMPTLY).expect("a response head");
        assert!(
            head.starts_with("HTTP/1.1 101 "),
            "upgrade refused: {head:?}"
        );
        assert!(
            head.contains(&format!("Sec-WebSocket-Accept: {SAMPLE_ACCEPT}\r\n")),
            "wrong accept value: {head:?}"
        );
        head
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
            compressed: b[0] & 0x40 != 0,
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
