//! The forwarder against a real `redis-server`: data flows both ways; after
//! `freeze` a connection open before it passes nothing either way, yet stays
//! open at both ends, while new connections are forwarded; drop closes all.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use testkit::{raw_command, wait_until, Forwarder, RedisServer};

/// Connects to the forwarder with `timeout` as read timeout.
fn client(forwarder: &Forwarder, timeout: Duration) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", forwarder.port())).expect("connect forwarder");
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream
}

/// Reads exactly `expected.len()` bytes and compares.
fn expect(stream: &mut TcpStream, expected: &[u8]) {
    let mut reply = vec![0; expected.len()];
    stream
        .read_exact(&mut reply)
        .expect("read through the forwarder");
    assert_eq!(
        String::from_utf8_lossy(&reply),
        String::from_utf8_lossy(expected)
    );
}

/// Asserts nothing arrives for `quiet` and the stream is not closed.
fn expect_silence(stream: &mut TcpStream, quiet: Duration) {
    stream.set_read_timeout(Some(quiet)).unwrap();
    let started = Instant::now();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!(
            "a frozen connection answered {other:?} after {:?}",
            started.elapsed()
        ),
    }
}

#[test]
fn forwards_then_freezes_silently_and_closes_on_drop() {
    let redis = RedisServer::start();
    let forwarder = Forwarder::start(redis.port());
    assert_eq!(
        forwarder.url(),
        format!("redis://127.0.0.1:{}/", forwarder.port())
    );
    let timeout = Duration::from_secs(5);

    // Data flows both ways, a large value too (many reads and partial writes).
    let mut plain = client(&forwarder, timeout);
    plain.write_all(b"PING\r\n").unwrap();
    expect(&mut plain, b"+PONG\r\n");
    let value = "x".repeat(1 << 20);
    plain
        .write_all(
            format!(
                "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${}\r\n{value}\r\n",
                value.len()
            )
            .as_bytes(),
        )
        .unwrap();
    expect(&mut plain, b"+OK\r\n");
    assert_eq!(
        raw_command(redis.port(), &["STRLEN", "big"]),
        format!(":{}", value.len())
    );
    plain.write_all(b"GET big\r\n").unwrap();
    expect(
        &mut plain,
        format!("${}\r\n{value}\r\n", value.len()).as_bytes(),
    );

    let mut subscriber = client(&forwarder, timeout);
    subscriber.write_all(b"SUBSCRIBE news\r\n").unwrap();
    expect(
        &mut subscriber,
        b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n",
    );
    assert_eq!(forwarder.accepted(), 2);

    let frozen_at = Instant::now();
    forwarder.freeze();
    assert!(
        frozen_at.elapsed() < Duration::from_millis(500),
        "freeze took {:?}",
        frozen_at.elapsed()
    );

    // Client → server: a write through a frozen connection never lands.
    plain.write_all(b"SET frozen 1\r\nPING\r\n").unwrap();
    expect_silence(&mut plain, Duration::from_millis(500));
    assert_eq!(raw_command(redis.port(), &["EXISTS", "frozen"]), ":0");
    // Server → client: the server still has the subscriber (its socket is
    // open), but what it publishes never arrives.
    assert_eq!(
        raw_command(redis.port(), &["PUBLISH", "news", "hello"]),
        ":1"
    );
    expect_silence(&mut subscriber, Duration::from_millis(500));

    // New connections are forwarded as usual.
    let mut fresh = client(&forwarder, timeout);
    fresh.write_all(b"PING\r\n").unwrap();
    expect(&mut fresh, b"+PONG\r\n");
    assert_eq!(forwarder.accepted(), 3);

    // Still frozen, still open, a while later.
    expect_silence(&mut plain, Duration::from_millis(200));

    // Drop closes every socket, frozen ones included, promptly.
    let dropped_at = Instant::now();
    drop(forwarder);
    assert!(
        dropped_at.elapsed() < Duration::from_secs(1),
        "drop took {:?}",
        dropped_at.elapsed()
    );
    for stream in [&mut plain, &mut subscriber] {
        stream.set_read_timeout(Some(timeout)).unwrap();
        let mut rest = Vec::new();
        // Bytes the server sent before the freeze may remain; then EOF.
        match stream.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Err(e) => panic!("expected the forwarder's close, got {e}"),
        }
    }
    // And the server sees its side closed.
    assert!(wait_until(Duration::from_secs(5), || numsub(
        redis.port(),
        "news"
    ) == 0));
}

/// `PUBSUB NUMSUB channel` through a raw connection: the count.
fn numsub(port: u16, channel: &str) -> usize {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(format!("PUBSUB NUMSUB {channel}\r\n").as_bytes())
        .unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 256];
    while !reply.ends_with(b"\r\n") || reply.iter().filter(|&&b| b == b'\n').count() < 4 {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "redis closed");
        reply.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&reply);
    text.lines()
        .last()
        .unwrap()
        .trim_start_matches(':')
        .parse()
        .unwrap()
}
