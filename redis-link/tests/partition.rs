//! A silent partition (a forwarder that stops passing bytes but keeps the
//! sockets open) between a client and a real `redis-server`: requests on
//! the stalled connection fail after the timeout instead of hanging, and the
//! next connect works.

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use redis_link::RedisUrl;
use testkit::{Forwarder, RedisServer};

const TIMEOUT: Duration = Duration::from_secs(1);

#[test]
fn a_frozen_connection_times_out_and_a_new_one_works() {
    let redis = RedisServer::start();
    let forwarder = Forwarder::start(redis.port());
    let url: RedisUrl = forwarder.url().parse().unwrap();

    let mut connection = url.connect(TIMEOUT).expect("connect through the forwarder");
    redis::cmd("PING").exec(&mut connection).unwrap();
    let mut stream = url
        .connect_stream(TIMEOUT)
        .expect("stream through the forwarder");
    stream.write_all(b"PING\r\n").unwrap();
    let mut pong = [0u8; 7];
    stream.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"+PONG\r\n");

    forwarder.freeze();

    let started = Instant::now();
    let error = redis::cmd("PING").exec(&mut connection).unwrap_err();
    let took = started.elapsed();
    assert!(error.is_timeout(), "not a timeout: {error}");
    assert!(
        took >= TIMEOUT / 2 && took < TIMEOUT * 3,
        "PING failed after {took:?}"
    );

    stream.write_all(b"PING\r\n").unwrap();
    let started = Instant::now();
    let error = stream.read(&mut pong).unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{error}"
    );
    assert!(started.elapsed() < TIMEOUT * 3);

    let mut fresh = url.connect(TIMEOUT).expect("a new connection is forwarded");
    redis::cmd("SET")
        .arg("k")
        .arg("v")
        .exec(&mut fresh)
        .unwrap();
    assert_eq!(redis.raw_command(&["EXISTS", "k"]), ":1");
    assert_eq!(forwarder.accepted(), 3);
}
