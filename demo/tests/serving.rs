//! The HTTP layer over real sockets: slow and oversized bodies, a stalled
//! request head, and parallel keep-alive connections, while everyone else
//! is answered promptly.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{http, Stack};
use serde_json::json;

/// The body timeout the slow-body tests use (the default is 10 s).
const BODY_TIMEOUT: Duration = Duration::from_millis(1500);
/// The head timeout the stalled-head test uses (the default is 10 s).
const HEAD_TIMEOUT: Duration = Duration::from_millis(1500);
/// What "promptly" means for requests that have nothing to wait for.
const QUICK: Duration = Duration::from_millis(1000);

fn stack() -> Stack {
    Stack::start_with(|settings| {
        settings.body_timeout = BODY_TIMEOUT;
        settings.head_timeout = HEAD_TIMEOUT;
    })
}

/// A connection that sent `head` (and maybe part of a body) and waits.
fn open(addr: SocketAddr, head: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream
}

/// Reads one response: its status, head and body (by `Content-Length`).
fn read_response(stream: &mut TcpStream) -> (u16, String, Vec<u8>) {
    let mut data = Vec::new();
    let mut byte = [0u8; 1];
    while !data.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).expect("read a response head");
        assert_eq!(n, 1, "closed before a whole response head: {data:?}");
        data.push(byte[0]);
    }
    let head = String::from_utf8(data).unwrap().to_ascii_lowercase();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map_or(0, |n| n.trim().parse().unwrap());
    let mut body = vec![0; length];
    stream.read_exact(&mut body).unwrap();
    (status, head, body)
}

/// Whether the server closes `stream` (EOF or reset) within `timeout`.
fn closed_within(stream: &mut TcpStream, timeout: Duration) -> bool {
    stream.set_read_timeout(Some(timeout)).unwrap();
    let mut rest = [0u8; 64];
    match stream.read(&mut rest) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

#[test]
fn slow_bodies_get_408_while_everyone_else_is_served() {
    let stack = stack();
    let addr = stack.demo.local_addr();
    let started = Instant::now();
    let mut slow: Vec<TcpStream> = (0..6)
        .map(|_| {
            open(
                addr,
                &format!(
                    "POST /prev-connect HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 10000\r\n\r\n{{\"id\":"
                ),
            )
        })
        .collect();

    for _ in 0..3 {
        let asked = Instant::now();
        let (status, answer) = stack.post("/prev-connect", r#"{"name":"Eve"}"#);
        assert_eq!(status, 200, "{answer}");
        assert!(
            asked.elapsed() < QUICK,
            "prev-connect took {:?}",
            asked.elapsed()
        );
        let asked = Instant::now();
        assert_eq!(stack.get("/health"), (200, json!({"status": "ok"})));
        assert!(asked.elapsed() < QUICK, "health took {:?}", asked.elapsed());
    }

    for stream in &mut slow {
        let (status, head, body) = read_response(stream);
        let waited = started.elapsed();
        assert_eq!(status, 408, "{}", String::from_utf8_lossy(&body));
        assert!(head.contains("connection: close"), "{head}");
        let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(error["error"].as_str().unwrap().contains("did not arrive"));
        assert!(
            waited >= BODY_TIMEOUT - Duration::from_millis(100)
                && waited < BODY_TIMEOUT + Duration::from_secs(2),
            "408 after {waited:?}"
        );
        assert!(closed_within(stream, QUICK), "the connection is closed");
    }
    assert_eq!(stack.get("/health").0, 200);
}

#[test]
fn oversized_bodies_get_413() {
    let stack = stack();
    let addr = stack.demo.local_addr();
    let limit = freeim_demo::api::MAX_BODY_BYTES;

    // Declared too large: refused at once, without waiting for the body.
    let mut declared = open(
        addr,
        &format!(
            "POST /broadcast HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
            limit + 1
        ),
    );
    let asked = Instant::now();
    let (status, head, body) = read_response(&mut declared);
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    assert!(asked.elapsed() < QUICK);
    assert!(head.contains("connection: close"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("body larger than 16384 bytes"));
    assert!(closed_within(&mut declared, QUICK));

    // Chunked, no length announced: refused once past the limit.
    let mut chunked = open(
        addr,
        &format!("POST /broadcast HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n"),
    );
    let chunk = vec![b'x'; 4096];
    for _ in 0..5 {
        chunked
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .unwrap();
        chunked.write_all(&chunk).unwrap();
        chunked.write_all(b"\r\n").unwrap();
    }
    let (status, _, _) = read_response(&mut chunked);
    assert_eq!(status, 413);

    // Exactly at the limit is fine.
    let mut body = String::from(r#"{"text":"padded"}"#);
    body.push_str(&" ".repeat(limit - body.len()));
    let (status, answer) = http(addr, "POST", "/broadcast", &body);
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn a_stalled_request_head_is_closed() {
    let stack = stack();
    let mut stalled = open(stack.demo.local_addr(), "GET /health HTTP/1.1\r\nHost: x");
    let started = Instant::now();
    assert!(closed_within(
        &mut stalled,
        HEAD_TIMEOUT + Duration::from_secs(2)
    ));
    assert!(
        started.elapsed() >= HEAD_TIMEOUT - Duration::from_millis(100),
        "closed after {:?}",
        started.elapsed()
    );
}

#[test]
fn parallel_keep_alive_connections_are_all_served() {
    let stack = stack();
    let addr = stack.demo.local_addr();
    let threads: Vec<_> = (0..12)
        .map(|i| {
            std::thread::spawn(move || {
                let mut stream = open(addr, "");
                for round in 0..5 {
                    let (method, path, body) = match (i + round) % 3 {
                        0 => ("GET", "/health", String::new()),
                        1 => ("GET", "/channels", String::new()),
                        _ => ("POST", "/prev-connect", format!(r#"{{"id":{}}}"#, 1000 + i)),
                    };
                    let request = format!(
                        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    stream.write_all(request.as_bytes()).unwrap();
                    let (status, head, _) = read_response(&mut stream);
                    assert_eq!(status, 200, "{method} {path}: {head}");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("every keep-alive client is served");
    }
}
