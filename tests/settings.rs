//! Settings are read once, at start-up, normalised and checked: lists
//! trimmed, origins compared as origins, host names resolved, and a value
//! that cannot be used refused with one line naming its setting (never
//! silently raised or lowered). Errors about Redis read as sentences.
//! Real node processes, real sockets, a real `redis-server`.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;

use common::*;

/// Sends an upgrade with a fresh token and `extra` header lines; the
/// response's status code.
fn upgrade_status(redis: &TestRedis, node: &Node, extra: &[&str]) -> u16 {
    let id = 1 + i64::from(rand::random::<u16>());
    let url = raw_token(redis, node, id, "settings");
    let target = &url[url.find("/ws").unwrap()..];
    let lines: String = extra.iter().map(|line| format!("{line}\r\n")).collect();
    let request =
        upgrade_request(&node.server, target).replacen("\r\n\r\n", &format!("\r\n{lines}\r\n"), 1);
    let mut raw = RawWs::connect(&node.server);
    raw.send(request.as_bytes());
    let head = raw.read_head(PROMPTLY).unwrap_or_default();
    head.get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

fn origin_status(redis: &TestRedis, node: &Node, origin: &str) -> u16 {
    upgrade_status(redis, node, &[&format!("Origin: {origin}")])
}

fn listen_arg() -> String {
    format!("127.0.0.1:{}", free_port())
}

// ----- origins ----------------------------------------------------------------

#[test]
fn allowed_origins_are_trimmed() {
    let redis = TestRedis::start();
    let node = Node::start_with(
        &redis,
        &["--allowed-origins", "https://a.test, https://b.test"],
    );
    assert_eq!(origin_status(&redis, &node, "https://b.test"), 101);
    assert_eq!(origin_status(&redis, &node, "https://a.test"), 101);
    assert_eq!(origin_status(&redis, &node, "https://c.test"), 403);
    assert_still_serves(&redis, &node);
}

#[test]
fn origins_are_compared_as_origins() {
    let redis = TestRedis::start();
    let node = Node::start_with(
        &redis,
        &[
            "--allowed-origins",
            "https://A.test:443,http://b.test,http://c.test:8080",
        ],
    );
    for (origin, status) in [
        ("https://a.test", 101),
        ("HTTPS://A.TEST", 101),
        ("https://a.test:443", 101),
        ("http://b.test:80", 101),
        ("http://B.test", 101),
        ("http://c.test:8080", 101),
        ("http://a.test", 403),
        ("https://a.test:8443", 403),
        ("https://b.test", 403),
        ("http://c.test", 403),
        ("https://a.test.evil.test", 403),
        ("null", 403),
        ("https://a.test/", 403),
    ] {
        assert_eq!(
            origin_status(&redis, &node, origin),
            status,
            "Origin: {origin}"
        );
    }
    assert_still_serves(&redis, &node);
}

#[test]
fn a_request_without_origin_is_accepted_unless_require_origin() {
    let redis = TestRedis::start();
    // Native apps and server-side clients send no Origin.
    let listed = Node::start_with(&redis, &["--allowed-origins", "https://a.test"]);
    assert_eq!(
        upgrade_status(&redis, &listed, &[]),
        101,
        "no Origin, allow-list"
    );
    assert_eq!(origin_status(&redis, &listed, "https://x.test"), 403);

    let strict = Node::start_with(
        &redis,
        &["--allowed-origins", "https://a.test", "--require-origin"],
    );
    assert_eq!(
        upgrade_status(&redis, &strict, &[]),
        403,
        "no Origin, required"
    );
    assert_eq!(origin_status(&redis, &strict, "https://a.test"), 101);
    assert_eq!(origin_status(&redis, &strict, "https://x.test"), 403);

    // Required, but any origin: browsers only.
    let browsers = Node::start_with(&redis, &["--require-origin"]);
    assert_eq!(
        upgrade_status(&redis, &browsers, &[]),
        403,
        "no Origin, required"
    );
    assert_eq!(origin_status(&redis, &browsers, "https://x.test"), 101);
    assert_still_serves(&redis, &listed); // (its probe sends no Origin)
}

#[test]
fn an_invalid_allowed_origin_refuses_to_start_with_one_line() {
    let redis = TestRedis::start();
    let url = redis.url();
    let listen = listen_arg();
    for (origins, needle) in [
        (
            "a.test",
            "--allowed-origins: \"a.test\" is not an origin: it has no scheme",
        ),
        (
            "https://a.test, https://b.test/app",
            "\"https://b.test/app\" is not an origin",
        ),
        ("https://a.test/", "no path, not even a trailing /"),
        ("null", "opaque origin"),
        ("https://*.a.test", "no wildcards"),
        ("https://a.test:99999", "port"),
    ] {
        assert_refuses_to_start(
            &[
                "--listen",
                &listen,
                "--redis",
                &url,
                "--allowed-origins",
                origins,
            ],
            needle,
        );
    }
}

// ----- addresses ----------------------------------------------------------------

#[test]
fn listen_takes_a_host_name() {
    let redis = TestRedis::start();
    let port = free_port();
    let server = format!("127.0.0.1:{port}");
    // `localhost` resolves at start-up to 127.0.0.1, where the harness and
    // the clients reach the node.
    let node = Node::start_proxied(
        &redis,
        &server,
        std::slice::from_ref(&server),
        &format!("localhost:{port}"),
    );
    assert_still_serves(&redis, &node);
}

#[test]
fn an_unresolvable_listen_host_refuses_to_start_with_one_line() {
    let redis = TestRedis::start();
    let url = redis.url();
    assert_refuses_to_start(
        &["--listen", "no-such-host.invalid:6001", "--redis", &url],
        "--listen no-such-host.invalid:6001: cannot resolve \"no-such-host.invalid\"",
    );
    assert_refuses_to_start(
        &["--listen", "localhost", "--redis", &url],
        "--listen \"localhost\" is not host:port",
    );
}

// ----- no silent clamping ---------------------------------------------------------

#[test]
fn values_out_of_range_refuse_to_start_naming_the_setting() {
    let redis = TestRedis::start();
    let url = redis.url();
    let listen = listen_arg();
    for (extra, needle) in [
        // Was raised to 1 without a word.
        (
            &["--max-pending-upgrades", "0"][..],
            "--max-pending-upgrades must be at least 1",
        ),
        // Was lowered to 4294967295 (the frame reader's u32) without a word.
        (
            &["--max-message-bytes", "4294967296"],
            "--max-message-bytes must be at most 4294967295",
        ),
        // Durations: a year at most (longer ones overflowed deadlines).
        (&["--drain-timeout", "1y 1s"], "--drain-timeout"),
        (
            &["--heartbeat-interval", "999999999999999999m"],
            "longer than a year",
        ),
        (
            &["--heartbeat-timeout", "0s"],
            "--heartbeat-timeout must be above zero",
        ),
    ] {
        let base = ["--listen", listen.as_str(), "--redis", url.as_str()];
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        assert_refuses_to_start(&args, needle);
    }
}

#[test]
fn values_at_their_limits_are_kept() {
    let redis = TestRedis::start();
    let admin = free_port();
    let admin_arg = format!("127.0.0.1:{admin}");
    let node = Node::start_with(
        &redis,
        &[
            "--max-pending-upgrades",
            "1",
            "--max-message-bytes",
            "4294967295",
            "--drain-timeout",
            "1y",
            "--heartbeat-interval",
            "31557600",
            "--admin",
            &admin_arg,
        ],
    );
    // With one pending upgrade allowed, wait for the harness's start-up
    // probe to be gone before upgrading: no connection open for a while (a
    // busy machine may accept the probe, waiting in the backlog, late).
    let open = || admin_metric(&admin_get(admin, "/metrics").1, "freeim_connections_open");
    let mut quiet_since = None;
    let settled = wait_until(PROMPTLY, || {
        let since = match open() {
            0 => *quiet_since.get_or_insert_with(std::time::Instant::now),
            _ => {
                quiet_since = None;
                return false;
            }
        };
        since.elapsed() >= QUIET
    });
    assert!(settled, "{} open", open());
    assert_still_serves(&redis, &node);
}

// ----- Redis errors people read ------------------------------------------------------

/// A TCP server that answers every connection the way an HTTP server
/// answers a request it cannot parse.
fn http_server() -> TcpListener {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let accepting = listener.try_clone().unwrap();
    std::thread::spawn(move || {
        for stream in accepting.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(PROMPTLY));
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request);
                let _ = stream.write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\n\
                      Content-Length: 11\r\nConnection: close\r\n\r\nBad Request",
                );
            });
        }
    });
    listener
}

#[test]
fn a_redis_url_that_is_not_redis_refuses_to_start_with_one_line_saying_so() {
    let http = http_server();
    let port = http.local_addr().unwrap().port();
    let listen = listen_arg();
    let expected =
        format!("127.0.0.1:{port} is not a Redis server: it answered \"HTTP/1.1 400 Bad Request\"");
    // Without and with a password (then the first reply is AUTH's).
    for redis in [
        format!("redis://127.0.0.1:{port}/"),
        format!("redis://:secret@127.0.0.1:{port}/"),
    ] {
        assert_refuses_to_start(&["--listen", &listen, "--redis", &redis], &expected);
        let (_, stderr) = run_node_to_exit(&["--listen", &listen, "--redis", &redis], PROMPTLY);
        assert!(!stderr.contains("secret"), "{stderr}");
    }
}

#[test]
fn a_wrong_redis_password_refuses_to_start_with_a_sentence() {
    let redis = testkit::RedisServer::start();
    assert_eq!(
        redis.raw_command(&["CONFIG", "SET", "requirepass", "right-pw"]),
        "+OK"
    );
    let listen = listen_arg();
    let wrong = format!("redis://:wrong-pw@127.0.0.1:{}/", redis.port());
    assert_refuses_to_start(
        &["--listen", &listen, "--redis", &wrong],
        "Redis refused the user name or password in the URL",
    );
    let (_, stderr) = run_node_to_exit(&["--listen", &listen, "--redis", &wrong], PROMPTLY);
    assert!(
        stderr.contains(&format!("127.0.0.1:{}", redis.port())),
        "{stderr}"
    );
    assert!(
        !stderr.contains("wrong-pw") && !stderr.contains("right-pw"),
        "{stderr}"
    );

    // None at all.
    let none = format!("redis://127.0.0.1:{}/", redis.port());
    assert_refuses_to_start(
        &["--listen", &listen, "--redis", &none],
        "Redis requires a password and --redis gives none",
    );

    // The right one starts.
    let right = format!("redis://:right-pw@127.0.0.1:{}/", redis.port());
    let server = listen_arg();
    let node = Node::start_on(&right, &server, std::slice::from_ref(&server), &[]);
    drop(node);
}
