//! No hidden limits: every limit on a client's input is a documented setting
//! or follows from one, and each is tested at the limit and one past it,
//! against a real node over raw sockets.
//!
//! | input | limit |
//! |---|---|
//! | request head | `--max-header-bytes` (431 beyond); nothing inside it has a cap of its own |
//! | header fields | as many as fit in the head (a field line takes at least 3 bytes) |
//! | path, query, token, header values | as long as fits in the head |
//! | client frame or message | `--max-message-bytes` (close 1009 beyond) |
//! | connections still upgrading | `--max-pending-upgrades` (503 beyond) |

mod common;

use std::time::Duration;

use common::*;

fn one_node(extra: &[&str]) -> (TestRedis, Node) {
    let redis = TestRedis::start();
    let node = Node::start_with(&redis, extra);
    (redis, node)
}

/// A fresh valid token's `/ws?token=…` target.
fn token_target(redis: &TestRedis, node: &Node) -> String {
    let id = 1 + i64::from(rand::random::<u16>());
    let url = raw_token(redis, node, id, "limits");
    url[url.find("/ws").unwrap()..].to_string()
}

/// Sends `request` on a new connection; the response's status code (0 when
/// none came).
fn status_of(node: &Node, request: &[u8]) -> u16 {
    let mut raw = RawWs::connect(&node.server);
    raw.send(request);
    let head = raw.read_head(PROMPTLY).unwrap_or_default();
    head.get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// An upgrade request for `target` with `fields` after the five it needs.
fn with_fields(node: &Node, target: &str, fields: &[String]) -> String {
    let extra: String = fields.iter().map(|f| format!("{f}\r\n")).collect();
    upgrade_request(&node.server, target).replacen("\r\n\r\n", &format!("\r\n{extra}\r\n"), 1)
}

/// An upgrade request for `target` of exactly `size` bytes: after the five
/// fields it needs, as many shortest field lines (`a:` CRLF) as fit, and a
/// last field that takes up the rest. Also returns its number of fields.
/// A head of exactly `limit` bytes, packed with header fields, is upgraded
/// (101) and one byte more is refused (431); returns the fields that fit.
fn assert_head_limit(redis: &TestRedis, node: &Node, limit: usize) -> usize {
    let target = token_target(redis, node);
    let (at_limit, fields) = packed_request(node, &target, limit);
    assert_eq!(
        status_of(node, at_limit.as_bytes()),
        101,
        "{fields} fields in {limit} bytes"
    );
    let target = token_target(redis, node);
    let (past, _) = packed_request(node, &target, limit + 1);
    assert_eq!(status_of(node, past.as_bytes()), 431, "{} bytes", limit + 1);
    fields
}

fn packed_request(node: &Node, target: &str, size: usize) -> (String, usize) {
    let mut head = upgrade_request(&node.server, target);
    head.truncate(head.len() - 2); // the blank line goes back at the end
    let shortest = (size - head.len() - "p:x\r\n\r\n".len()) / "a:\r\n".len();
    head.push_str(&"a:\r\n".repeat(shortest));
    let pad = size - head.len() - "p:\r\n\r\n".len();
    head.push_str(&format!("p:{}\r\n\r\n", "x".repeat(pad)));
    assert_eq!(head.len(), size);
    (head, 5 + shortest + 1)
}

#[test]
fn an_upgrade_with_33_header_fields_in_490_bytes_is_accepted() {
    let (redis, node) = one_node(&[]);
    // The issue's request: 33 fields, about 490 bytes (431 while 32 fields
    // was a cap nobody could see or change).
    let target = token_target(&redis, &node);
    let fields: Vec<String> = (0..28).map(|i| format!("X-F{i}: {i}")).collect();
    let request = with_fields(&node, &target, &fields);
    assert!(request.len() < 500, "{} bytes", request.len());
    assert_eq!(status_of(&node, request.as_bytes()), 101, "33 fields");

    // A browser behind a CDN and nginx: around 40 fields.
    let target = token_target(&redis, &node);
    let proxied = [
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
        "Origin: https://app.example.com",
        "Pragma: no-cache",
        "Cache-Control: no-cache",
        "Accept-Encoding: gzip, deflate, br, zstd",
        "Accept-Language: en-US,en;q=0.9",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
        "Cookie: session=abc123; theme=dark",
        "X-Forwarded-For: 203.0.113.7, 198.51.100.2",
        "X-Forwarded-Proto: https",
        "X-Forwarded-Host: push.example.com",
        "X-Forwarded-Port: 443",
        "X-Real-IP: 203.0.113.7",
        "X-Request-ID: 5f0c1b2a9d8e7f6a",
        "Forwarded: for=203.0.113.7;proto=https",
        "Via: 1.1 cdn-edge, 1.1 nginx",
        "CDN-Loop: cloudflare",
        "CF-Connecting-IP: 203.0.113.7",
        "CF-IPCountry: NL",
        "CF-Ray: 8a1b2c3d4e5f6a7b-AMS",
        "CF-Visitor: {\"scheme\":\"https\"}",
        "True-Client-IP: 203.0.113.7",
        "X-Amzn-Trace-Id: Root=1-67891233-abcdef012345678912345678",
        "Sec-Fetch-Dest: websocket",
        "Sec-Fetch-Mode: websocket",
        "Sec-Fetch-Site: same-site",
        "Sec-CH-UA: \"Chromium\";v=\"126\"",
        "Sec-CH-UA-Mobile: ?0",
        "Sec-CH-UA-Platform: \"Linux\"",
        "DNT: 1",
        "X-Client-Version: 4.2.0",
        "X-Tenant: acme",
        "X-Region: eu-west-1",
        "X-Edge-Id: ams-12",
        "Traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    ];
    let fields: Vec<String> = proxied.iter().map(|f| f.to_string()).collect();
    let request = with_fields(&node, &target, &fields);
    assert_eq!(status_of(&node, request.as_bytes()), 101, "40 fields");
    assert_still_serves(&redis, &node);
}

#[test]
fn header_fields_are_limited_only_by_max_header_bytes() {
    let (redis, node) = one_node(&[]);
    // A head of exactly the default 8192 bytes holding as many fields as
    // fit: accepted. One byte more: 431.
    let fields = assert_head_limit(&redis, &node, 8192);
    assert!(fields > 1900, "{fields} fields");
    assert_still_serves(&redis, &node);

    // A lower --max-header-bytes moves both.
    let small = Node::start_with(&redis, &["--max-header-bytes", "1024"]);
    assert_head_limit(&redis, &small, 1024);
    assert_still_serves(&redis, &small);
}

#[test]
fn the_smallest_max_header_bytes_is_256_and_holds_a_request() {
    let (redis, node) = one_node(&["--max-header-bytes", "256"]);
    assert_head_limit(&redis, &node, 256);

    let url = redis.url();
    let listen = format!("127.0.0.1:{}", free_port());
    assert_refuses_to_start(
        &[
            "--listen",
            &listen,
            "--redis",
            &url,
            "--max-header-bytes",
            "255",
        ],
        "--max-header-bytes must be at least 256",
    );
}

#[test]
fn a_token_as_long_as_the_head_allows_is_accepted() {
    let (redis, node) = one_node(&[]);
    // No cap on the token (nor the query) but the head's: a token that
    // fills an 8192-byte head is claimed; one byte more is 431.
    let request_for = |token: &str| upgrade_request(&node.server, &format!("/ws?token={token}"));
    let overhead = request_for("").len();
    let token: String = (0..8192 - overhead)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let value = r#"{"Item1":77,"Item2":"long token"}"#;
    let key = node.keys.token(&token);
    assert_eq!(redis.raw_command(&["SET", &key, value, "EX", "10"]), "+OK");
    let at_limit = request_for(&token);
    assert_eq!(at_limit.len(), 8192);
    let mut raw = RawWs::connect(&node.server);
    raw.send(at_limit.as_bytes());
    let head = raw.read_head(PROMPTLY).unwrap_or_default();
    assert!(
        head.starts_with("HTTP/1.1 101 "),
        "a {}-byte token: {head:?}",
        token.len()
    );
    wait_online(&redis, 77, Some(1));
    drop(raw);

    let longer = format!("{token}z");
    assert_eq!(
        status_of(&node, request_for(&longer).as_bytes()),
        431,
        "8193 bytes"
    );
    assert_still_serves(&redis, &node);
}

#[test]
fn the_smallest_max_message_bytes_is_125_a_control_frames_payload() {
    let (redis, node) = one_node(&["--max-message-bytes", "125"]);
    let id = 500 + i64::from(rand::random::<u8>());
    let mut raw = RawWs::open(&raw_token(&redis, &node, id, "small"));
    wait_online(&redis, id, Some(1));
    raw.send(&masked(0x1, &[b'a'; 125]));
    raw.send(&masked(0x9, &[b'p'; 125]));
    assert!(
        matches!(raw.read_frame(PROMPTLY), Got::Frame(f) if f.opcode == 0xA && f.payload.len() == 125),
        "a 125-byte message and a 125-byte ping pass"
    );
    raw.send(&masked(0x1, &[b'a'; 126]));
    assert_eq!(raw.read_close(PROMPTLY), Some(1009), "126 bytes");
    wait_online(&redis, id, None);
    assert_still_serves(&redis, &node);

    let url = redis.url();
    let listen = format!("127.0.0.1:{}", free_port());
    assert_refuses_to_start(
        &[
            "--listen",
            &listen,
            "--redis",
            &url,
            "--max-message-bytes",
            "124",
        ],
        "--max-message-bytes must be at least 125",
    );
}

#[test]
fn max_pending_upgrades_is_the_number_of_connections_still_upgrading() {
    let admin = free_port();
    let admin_arg = format!("127.0.0.1:{admin}");
    // One loop, so its share is the whole setting.
    let (redis, node) = one_node(&[
        "--threads",
        "1",
        "--max-pending-upgrades",
        "2",
        "--admin",
        &admin_arg,
    ]);
    let open = || admin_metric(&admin_get(admin, "/metrics").1, "freeim_connections_open");
    let open_is = |n: u64| {
        assert!(
            wait_until(PROMPTLY, || open() == n),
            "{} open, not {n}",
            open()
        )
    };
    open_is(0); // the harness's probe is gone
                // Two connections that send nothing: at the limit, both held.
    let mut silent = Vec::new();
    for held in 1..=2 {
        silent.push(RawWs::connect(&node.server));
        open_is(held);
    }
    // One more: 503.
    let target = token_target(&redis, &node);
    let request = upgrade_request(&node.server, &target);
    assert_eq!(status_of(&node, request.as_bytes()), 503, "a third upgrade");
    for raw in &mut silent {
        assert_eq!(
            raw.read_frame(Duration::from_millis(100)),
            Got::Timeout,
            "still held"
        );
    }
    // One fewer: room again.
    silent.pop();
    open_is(1);
    assert_eq!(status_of(&node, request.as_bytes()), 101, "room again");
    drop(silent);
    assert_still_serves(&redis, &node);
}
