//! Bad input, one test each: refused upgrades (400, 401, 404, 405, 426, 431,
//! 503), bad frames (close 1002, 1007, 1009), timeouts (handshake,
//! heartbeat), slow readers (1008), and the control frames a client may send
//! (ping, close). After each, the node must still serve a new good client.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tungstenite::Message;

fn one_node(extra: &[&str]) -> (TestRedis, Node) {
    let redis = TestRedis::start();
    let node = Node::start_with(&redis, extra);
    (redis, node)
}

fn request(node: &Node, target: &str) -> String {
    upgrade_request(&node.server, target)
}

/// A valid token's `/ws?token=…` target (the token is not consumed).
fn token_target(redis: &TestRedis, node: &Node, id: i64) -> String {
    let url = raw_token(redis, node, id, "raw");
    url[url.find("/ws").unwrap()..].to_string()
}

/// Opens a hand-made WebSocket for client `id` and waits until it is counted.
fn open_raw(redis: &TestRedis, node: &Node, id: i64) -> RawWs {
    let raw = RawWs::open(&raw_token(redis, node, id, "raw"));
    wait_online(redis, id, Some(1));
    raw
}

/// Opens a socket, sends `bytes`, and asserts the node closes it with
/// `code`, then the TCP connection, uncounts the client, and still serves.
fn assert_closes_with(redis: &TestRedis, node: &Node, bytes: &[u8], code: u16, what: &str) {
    let id = 1000 + i64::from(rand::random::<u16>());
    let mut raw = open_raw(redis, node, id);
    raw.send(bytes);
    assert_eq!(raw.read_close(PROMPTLY), Some(code), "{what}");
    assert!(
        raw.closed_within(PROMPTLY),
        "{what}: TCP closed after the close frame"
    );
    wait_online(redis, id, None);
    assert_still_serves(redis, node);
}

// ----- refused upgrades -------------------------------------------------------

#[test]
fn a_malformed_request_gets_400() {
    let (redis, node) = one_node(&[]);
    let target = token_target(&redis, &node, 1);
    for bad in [
        format!("GET {target} HTTP/1.1\r\nHost localhost\r\n\r\n").into_bytes(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
        format!("GET {target} HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n").into_bytes(),
        format!("GET {target} HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n").into_bytes(),
        format!("GET {target} HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n").into_bytes(),
    ] {
        let shown = String::from_utf8_lossy(&bad);
        assert_eq!(node.raw_status(&bad), 400, "{shown:?}");
    }
    assert_still_serves(&redis, &node);
}

#[test]
fn a_wrong_path_gets_404() {
    let (redis, node) = one_node(&[]);
    let target = token_target(&redis, &node, 1);
    for path in ["/chat", "/", "/ws/", "/WS"] {
        let wrong = target.replacen("/ws", path, 1);
        assert_eq!(
            node.raw_status(request(&node, &wrong).as_bytes()),
            404,
            "{wrong}"
        );
    }
    assert_still_serves(&redis, &node);
}

#[test]
fn a_missing_token_gets_401() {
    let (redis, node) = one_node(&[]);
    for target in ["/ws", "/ws?token=", "/ws?tok=abc", "/ws?"] {
        assert_eq!(
            node.raw_status(request(&node, target).as_bytes()),
            401,
            "{target}"
        );
    }
    assert_still_serves(&redis, &node);
}

#[test]
fn an_unknown_token_gets_401() {
    let (redis, node) = one_node(&[]);
    let target = "/ws?token=0123456789abcdef";
    assert_eq!(node.raw_status(request(&node, target).as_bytes()), 401);
    let url = format!("ws://{}{target}", node.server);
    assert_eq!(Client::refusal_status(&url), 401);
    // A key that exists but holds no FreeIM ticket admits nobody either.
    redis.raw_command(&["SET", &node.keys.token("junk"), "not json", "EX", "10"]);
    let junk = format!("ws://{}/ws?token=junk", node.server);
    assert_eq!(Client::refusal_status(&junk), 401);
    assert_still_serves(&redis, &node);
}

#[test]
fn a_reused_token_gets_401() {
    let (redis, node) = one_node(&[]);
    let url = raw_token(&redis, &node, 7, "once");
    let _first = Client::connect(&url).expect("first use");
    assert_eq!(Client::refusal_status(&url), 401);
    assert_still_serves(&redis, &node);
}

#[test]
fn a_method_other_than_get_gets_405() {
    let (redis, node) = one_node(&[]);
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let target = token_target(&redis, &node, 1);
        let bad = request(&node, &target).replacen("GET", method, 1);
        assert_eq!(node.raw_status(bad.as_bytes()), 405, "{method}");
    }
    assert_still_serves(&redis, &node);
}

#[test]
fn a_request_that_is_not_a_websocket_upgrade_gets_426_or_400() {
    let (redis, node) = one_node(&[]);
    let target = token_target(&redis, &node, 1);
    let good = request(&node, &target);
    let cases = [
        (
            "plain GET",
            format!("GET {target} HTTP/1.1\r\nHost: {}\r\n\r\n", node.server),
        ),
        (
            "no Upgrade header",
            good.replace("Upgrade: websocket\r\n", ""),
        ),
        (
            "version 8",
            good.replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"),
        ),
        (
            "Upgrade: h2c",
            good.replace("Upgrade: websocket", "Upgrade: h2c"),
        ),
        (
            "Connection: keep-alive",
            good.replace("Connection: Upgrade", "Connection: keep-alive"),
        ),
    ];
    for (what, bad) in cases {
        let status = node.raw_status(bad.as_bytes());
        assert!(matches!(status, 426 | 400), "{what}: {status}");
    }
    assert_still_serves(&redis, &node);
}

#[test]
fn a_request_head_over_the_header_limit_gets_431() {
    let (redis, node) = one_node(&[]);
    let target = token_target(&redis, &node, 1);
    let with_filler = |n: usize| {
        request(&node, &target).replacen(
            "\r\n\r\n",
            &format!("\r\nX-Filler: {}\r\n\r\n", "x".repeat(n)),
            1,
        )
    };
    assert_eq!(node.raw_status(with_filler(9000).as_bytes()), 431);

    // A head of exactly the limit (8192 bytes) is fine; one byte more is not.
    let overhead = with_filler(0).len();
    let exact = with_filler(8192 - overhead);
    assert_eq!(exact.len(), 8192);
    let over = with_filler(8193 - overhead); // refused before its token is read
    assert_eq!(over.len(), 8193);
    assert_eq!(node.raw_status(over.as_bytes()), 431, "8193 bytes");
    let mut raw = RawWs::connect(&node.server);
    raw.send(exact.as_bytes());
    let head = raw.read_head(PROMPTLY).unwrap();
    assert!(head.starts_with("HTTP/1.1 101 "), "8192 bytes: {head}");

    // --max-header-bytes lowers the limit.
    let small = Node::start_with(&redis, &["--max-header-bytes", "1024"]);
    let target = token_target(&redis, &small, 2);
    let big = request(&small, &target).replacen(
        "\r\n\r\n",
        &format!("\r\nX-Filler: {}\r\n\r\n", "x".repeat(1500)),
        1,
    );
    assert_eq!(small.raw_status(big.as_bytes()), 431);
    assert_still_serves(&redis, &node);
    assert_still_serves(&redis, &small);
}

#[test]
fn upgrades_beyond_max_connections_get_503() {
    let (redis, node) = one_node(&["--max-connections", "2"]);
    // The start-up probe may still be counted for a moment: retry on 503
    // (a 503 comes before the token is read, so the token stays valid).
    let connect = |url: &str| {
        let mut client = None;
        assert!(
            wait_until(PROMPTLY, || {
                client = Client::connect(url).ok();
                client.is_some()
            }),
            "{url} not admitted"
        );
        client.unwrap()
    };
    let first = connect(&raw_token(&redis, &node, 1, "a"));
    let second = connect(&raw_token(&redis, &node, 2, "b"));
    let third_url = raw_token(&redis, &node, 3, "c");
    assert_eq!(Client::refusal_status(&third_url), 503);
    assert_eq!(
        node.raw_status(request(&node, "/ws?token=x").as_bytes()),
        503
    );
    assert_eq!(online_count(&redis, 3), None);

    first.close();
    let third = connect(&third_url);
    assert_eq!(
        Client::refusal_status(&raw_token(&redis, &node, 4, "d")),
        503,
        "still at the cap"
    );
    drop(third);
    second.close();
    drop(connect(&raw_token(&redis, &node, 5, "e")));
    assert_still_serves(&redis, &node);
}

// ----- bad frames ---------------------------------------------------------------

#[test]
fn a_frame_over_the_message_limit_closes_1009() {
    let (redis, node) = one_node(&[]);
    // Exactly the limit (65536) is fine.
    let mut raw = open_raw(&redis, &node, 1);
    raw.send(&masked(0x2, &vec![7u8; 65536]));
    raw.send(&masked(0x9, b"alive?"));
    assert_eq!(
        raw.read_frame(PROMPTLY),
        Got::Frame(RawFrame {
            compressed: false,
            fin: true,
            opcode: 0xA,
            payload: b"alive?".to_vec()
        })
    );
    // One byte more: the header alone is enough to refuse it.
    let header = &masked(0x1, &vec![b'a'; 65537])[..14];
    assert_closes_with(&redis, &node, header, 1009, "a 65537-byte frame");
    // A fragmented message whose parts add up to more than the limit.
    let mut parts = frame(false, 0, 0x2, &vec![1u8; 40000], Some([1, 2, 3, 4]));
    parts.extend(frame(true, 0, 0x0, &vec![1u8; 40000], Some([1, 2, 3, 4])));
    assert_closes_with(
        &redis,
        &node,
        &parts,
        1009,
        "an 80000-byte fragmented message",
    );
}

#[test]
fn max_message_bytes_lowers_the_frame_limit() {
    let (redis, node) = one_node(&["--max-message-bytes", "1000"]);
    let mut raw = open_raw(&redis, &node, 1);
    raw.send(&masked(0x1, &[b'a'; 1000]));
    raw.send(&masked(0x9, b"ok"));
    assert!(matches!(raw.read_frame(PROMPTLY), Got::Frame(f) if f.opcode == 0xA));
    assert_closes_with(
        &redis,
        &node,
        &masked(0x1, &[b'a'; 1001]),
        1009,
        "1001 bytes",
    );
}

#[test]
fn an_unmasked_client_frame_closes_1002() {
    let (redis, node) = one_node(&[]);
    let unmasked = frame(true, 0, 0x1, b"hello", None);
    assert_closes_with(&redis, &node, &unmasked, 1002, "unmasked frame");
}

#[test]
fn reserved_bits_close_1002() {
    let (redis, node) = one_node(&[]);
    for rsv in [1u8, 2, 4] {
        let bad = frame(true, rsv, 0x1, b"hello", Some([9, 8, 7, 6]));
        assert_closes_with(&redis, &node, &bad, 1002, &format!("rsv {rsv}"));
    }
}

#[test]
fn a_reserved_opcode_closes_1002() {
    let (redis, node) = one_node(&[]);
    for opcode in [0x3u8, 0x7, 0xB, 0xF] {
        let bad = frame(true, 0, opcode, b"x", Some([9, 8, 7, 6]));
        assert_closes_with(&redis, &node, &bad, 1002, &format!("opcode {opcode:#x}"));
    }
}

#[test]
fn other_protocol_violations_close_1002() {
    let (redis, node) = one_node(&[]);
    let mask = Some([5, 6, 7, 8]);
    let mut interleaved = frame(false, 0, 0x1, b"part", mask);
    interleaved.extend(frame(true, 0, 0x1, b"new message", mask));
    let cases: [(&str, Vec<u8>); 6] = [
        ("fragmented ping", frame(false, 0, 0x9, b"p", mask)),
        ("ping over 125 bytes", masked(0x9, &[0u8; 126])),
        ("continuation with nothing to continue", masked(0x0, b"x")),
        ("new data frame inside a fragmented message", interleaved),
        (
            "close code 1005 on the wire",
            masked(0x8, &1005u16.to_be_bytes()),
        ),
        ("one-byte close payload", masked(0x8, &[3])),
    ];
    for (what, bytes) in cases {
        assert_closes_with(&redis, &node, &bytes, 1002, what);
    }
}

#[test]
fn invalid_utf8_text_closes_1007() {
    let (redis, node) = one_node(&[]);
    assert_closes_with(
        &redis,
        &node,
        &masked(0x1, b"ok \xff\xfe"),
        1007,
        "bad text",
    );
    // Invalid in the second fragment of a message that started well.
    let mut split = frame(false, 0, 0x1, "caf\u{e9} ".as_bytes(), Some([1, 1, 1, 1]));
    split.extend(frame(true, 0, 0x0, b"\xc3\x28", Some([1, 1, 1, 1])));
    assert_closes_with(&redis, &node, &split, 1007, "bad second fragment");
    let mut reason = 1000u16.to_be_bytes().to_vec();
    reason.extend_from_slice(b"\xff");
    assert_closes_with(
        &redis,
        &node,
        &masked(0x8, &reason),
        1007,
        "bad close reason",
    );
}

#[test]
fn valid_text_split_across_fragments_is_accepted() {
    let (redis, node) = one_node(&[]);
    let mut raw = open_raw(&redis, &node, 1);
    let text = "caf\u{e9} 😀".as_bytes();
    // Split inside a multi-byte character, with a ping between the parts.
    raw.send(&frame(false, 0, 0x1, &text[..4], Some([1, 2, 3, 4])));
    raw.send(&masked(0x9, b"between"));
    raw.send(&frame(true, 0, 0x0, &text[4..], Some([1, 2, 3, 4])));
    raw.send(&masked(0x9, b"after"));
    for payload in [&b"between"[..], b"after"] {
        assert_eq!(
            raw.read_frame(PROMPTLY),
            Got::Frame(RawFrame {
                compressed: false,
                fin: true,
                opcode: 0xA,
                payload: payload.to_vec()
            })
        );
    }
    assert_eq!(online_count(&redis, 1).as_deref(), Some("1"));
}

// ----- timeouts -----------------------------------------------------------------

#[test]
fn a_handshake_that_never_completes_is_closed_after_the_handshake_timeout() {
    let (redis, node) = one_node(&["--handshake-timeout", "1s"]);
    let start = Instant::now();
    let mut half = RawWs::connect(&node.server);
    half.send(format!("GET /ws?token=x HTTP/1.1\r\nHost: {}\r\n", node.server).as_bytes());
    let mut silent = RawWs::connect(&node.server);
    // A slowloris: one byte every 200 ms keeps it busy but never finishes.
    let mut trickle = RawWs::connect(&node.server);
    let request = request(&node, "/ws?token=x");
    let bytes = request.as_bytes();
    let mut sent = 0;
    let trickle_closed_at = loop {
        if sent < bytes.len() - 4 {
            trickle.send(&bytes[sent..=sent]);
            sent += 1;
        }
        if trickle.closed_within(Duration::from_millis(200)) {
            break start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "a trickling handshake is kept open past its deadline"
        );
    };
    assert!(
        trickle_closed_at >= Duration::from_millis(900),
        "trickle closed after {trickle_closed_at:?}, before the 1 s deadline"
    );
    for (what, raw) in [("half a head", &mut half), ("nothing", &mut silent)] {
        assert!(raw.closed_within(Duration::from_secs(3)), "{what}");
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2500),
            "{what}: closed after {elapsed:?}, expected about 1s"
        );
    }
    assert_still_serves(&redis, &node);
}

#[test]
fn a_client_that_never_answers_pings_is_closed_and_reported_offline() {
    let (redis, node) = one_node(&["--heartbeat-interval", "1s", "--heartbeat-timeout", "1s"]);
    let im = helper(&redis, &[&node]);
    let mut events = im.events().unwrap();
    let mut deaf = open_raw(&redis, &node, 1);
    assert_eq!(next_events(&mut events, 1), [online(1, "raw")]);
    match deaf.read_frame(Duration::from_secs(3)) {
        Got::Frame(f) => assert_eq!(f.opcode, 0x9, "the node pings an idle client"),
        other => panic!("expected a ping, got {other:?}"),
    }
    let start = Instant::now();
    assert!(deaf.closed_within(Duration::from_secs(3)), "closed as dead");
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(700) && elapsed < Duration::from_millis(2500),
        "closed {elapsed:?} after the ping, expected about 1s"
    );
    assert_eq!(next_events(&mut events, 1), [offline(1, "raw")]);
    wait_online(&redis, 1, None);
    assert_still_serves(&redis, &node);
}

/// Reads for `window`, answering pings (tungstenite pongs while reading);
/// returns how many came.
fn pings_answered_within(client: &mut Client, window: Duration) -> usize {
    let mut pings = 0;
    let start = Instant::now();
    while start.elapsed() < window {
        match client.ws.read() {
            Ok(Message::Ping(_)) => pings += 1,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("the connection failed: {e}"),
        }
    }
    pings
}

#[test]
fn a_client_that_answers_pings_stays_connected() {
    let (redis, node) = one_node(&["--heartbeat-interval", "1s", "--heartbeat-timeout", "1s"]);
    let im = helper(&redis, &[&node]);
    let mut alive = connect_as(&im, 1, "alive");
    let pings = pings_answered_within(&mut alive, Duration::from_millis(3500));
    assert!(pings >= 2, "pinged {pings} times in 3.5 s");
    assert_eq!(online_count(&redis, 1).as_deref(), Some("1"));
    im.send_message(0, &[1], "still here", false).unwrap();
    assert_eq!(alive.recv_text(PROMPTLY).as_deref(), Some("\"still here\""));
}

#[test]
fn after_a_pong_the_next_ping_comes_an_interval_later_even_with_a_longer_timeout() {
    // The pong moves the deadline from the ping's timeout (5 s) back to the
    // interval (1 s): it must not wait for the reminder filed at 5 s.
    let (redis, node) = one_node(&["--heartbeat-interval", "1s", "--heartbeat-timeout", "5s"]);
    let im = helper(&redis, &[&node]);
    let mut alive = connect_as(&im, 1, "alive");
    let pings = pings_answered_within(&mut alive, Duration::from_millis(4500));
    assert!(
        pings >= 3,
        "pinged {pings} times in 4.5 s at a 1 s interval"
    );
}

// ----- slow readers ---------------------------------------------------------------

#[test]
fn a_reader_that_falls_behind_is_closed_with_1008() {
    let (redis, node) = one_node(&["--max-send-buffer", "4096", "--max-push-bytes", "4000"]);
    let url = raw_token(&redis, &node, 1, "slow");
    let mut raw = RawWs::open_with_recv_buffer(&url, 4096);
    wait_online(&redis, 1, Some(1));

    // Publish 4000-byte messages, without reading, until the node gives up.
    let message = format!("\"{}\"", "x".repeat(3998));
    let command =
        serde_json::json!({"Item1": 0, "Item2": [1], "Item3": message, "Item4": false}).to_string();
    let mut conn = redis_conn(&redis, &node.channel());
    let mut sent = 0;
    while online_count(&redis, 1).is_some() {
        assert!(sent < 10_000, "40 MB queued and the reader is still open");
        let mut pipe = redis::pipe();
        for _ in 0..50 {
            pipe.cmd(redis.publish_verb())
                .arg(node.channel())
                .arg(&command)
                .ignore();
        }
        let () = pipe.query(&mut conn).unwrap();
        sent += 50;
    }
    assert_eq!(
        raw.read_close(PROMPTLY),
        Some(1008),
        "after {sent} messages"
    );
    assert_still_serves(&redis, &node);
}

// ----- control frames from the client ---------------------------------------------

#[test]
fn a_client_ping_gets_a_pong_with_the_same_payload() {
    let (redis, node) = one_node(&[]);
    let im = helper(&redis, &[&node]);
    let mut client = connect_as(&im, 1, "pinger");
    client
        .ws
        .send(Message::Ping(b"hello-123".to_vec().into()))
        .unwrap();
    let deadline = Instant::now() + PROMPTLY;
    let pong = loop {
        assert!(Instant::now() < deadline, "no pong");
        match client.ws.read() {
            Ok(Message::Pong(payload)) => break payload,
            Ok(_) => {}
            Err(tungstenite::Error::Io(_)) => {}
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(pong.as_ref(), b"hello-123");

    let mut raw = open_raw(&redis, &node, 2);
    let binary: Vec<u8> = (0..=124u8).map(|b| b.wrapping_mul(37)).collect();
    for payload in [&b""[..], &[0x00, 0xff, 0x80], &binary] {
        raw.send(&masked(0x9, payload));
        assert_eq!(
            raw.read_frame(PROMPTLY),
            Got::Frame(RawFrame {
                compressed: false,
                fin: true,
                opcode: 0xA,
                payload: payload.to_vec()
            })
        );
    }
}

#[test]
fn a_client_close_is_answered_with_the_same_code() {
    let (redis, node) = one_node(&[]);
    let im = helper(&redis, &[&node]);
    let mut events = im.events().unwrap();
    for (id, code) in [(1i64, 1000u16), (2, 1001), (3, 3000), (4, 4001)] {
        let mut raw = open_raw(&redis, &node, id);
        assert_eq!(next_events(&mut events, 1), [online(id, "raw")]);
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(b"bye");
        raw.send(&masked(0x8, &payload));
        assert_eq!(raw.read_close(PROMPTLY), Some(code), "close {code}");
        assert!(raw.closed_within(PROMPTLY));
        assert_eq!(next_events(&mut events, 1), [offline(id, "raw")]);
        wait_online(&redis, id, None);
    }
    // An empty close payload is answered with a close too.
    let mut raw = open_raw(&redis, &node, 5);
    raw.send(&masked(0x8, b""));
    assert!(matches!(raw.read_close(PROMPTLY), Some(1000 | 1005)));
    assert_still_serves(&redis, &node);
}

#[test]
fn a_frame_pipelined_with_the_handshake_is_handled() {
    let (redis, node) = one_node(&[]);
    // Several ids, so some are admitted on another event loop than the one
    // that accepted them (the early bytes move with the socket).
    for id in 1..=6 {
        let target = token_target(&redis, &node, id);
        let mut raw = RawWs::connect(&node.server);
        let mut bytes = request(&node, &target).into_bytes();
        bytes.extend(masked(0x9, format!("early {id}").as_bytes()));
        raw.send(&bytes);
        let head = raw.read_head(PROMPTLY).unwrap();
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        assert_eq!(
            raw.read_frame(PROMPTLY),
            Got::Frame(RawFrame {
                compressed: false,
                fin: true,
                opcode: 0xA,
                payload: format!("early {id}").into_bytes()
            }),
            "client {id}"
        );
    }
}

#[test]
fn client_frames_carry_no_commands() {
    let (redis, node) = one_node(&[]);
    let im = helper(&redis, &[&node]);
    let mut talker = connect_as(&im, 1, "talker");
    let mut victim = connect_as(&im, 2, "victim");
    wait_online(&redis, 2, Some(1));
    let send = r#"{"Item1":1,"Item2":[2],"Item3":"\"injected\"","Item4":true}"#;
    talker.ws.send(Message::text(send)).unwrap();
    talker
        .ws
        .send(Message::text("__FreeIM__(ForceOffline)2"))
        .unwrap();
    talker.ws.send(Message::binary(send.as_bytes())).unwrap();
    im.send_message(0, &[1, 2], "marker", false).unwrap();
    assert_eq!(victim.recv_text(PROMPTLY).as_deref(), Some("\"marker\""));
    assert_eq!(talker.recv_text(PROMPTLY).as_deref(), Some("\"marker\""));
    assert_eq!(online_count(&redis, 2).as_deref(), Some("1"));
}

#[test]
fn browser_style_handshakes_are_accepted() {
    let (redis, node) = one_node(&[]);
    let target = token_target(&redis, &node, 1);
    let token = target.split("token=").nth(1).unwrap().to_string();
    // Firefox: "Connection: keep-alive, Upgrade"; mixed-case values; its
    // permessage-deflate offer (accepted); Origin; other query params.
    let firefox = format!(
        "GET /ws?v=2&token={token}&x HTTP/1.1\r\nHost: {}\r\nUser-Agent: Mozilla/5.0\r\n\
         Accept: */*\r\nSec-WebSocket-Version: 13\r\nOrigin: http://example.com\r\n\
         Sec-WebSocket-Extensions: permessage-deflate\r\nsec-websocket-key: {SAMPLE_KEY}\r\n\
         Connection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n\r\n",
        node.server
    );
    let mut raw = RawWs::connect(&node.server);
    raw.send(firefox.as_bytes());
    let head = raw.read_head(PROMPTLY).unwrap();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(head.contains(SAMPLE_ACCEPT), "{head}");
    assert!(
        head.contains(NODE_ANSWER),
        "permessage-deflate negotiated: {head}"
    );
    wait_online(&redis, 1, Some(1));

    // A percent-encoded token is decoded before the lookup.
    redis.raw_command(&[
        "SET",
        &node.keys.token("a b/c"),
        r#"{"Item1":2,"Item2":"enc"}"#,
        "EX",
        "10",
    ]);
    let encoded = format!("ws://{}/ws?token=a%20b%2Fc", node.server);
    let _client = Client::connect(&encoded).expect("percent-encoded token");
    wait_online(&redis, 2, Some(1));
}

#[test]
fn http_1_0_is_refused_with_400() {
    let (redis, node) = one_node(&[]);
    let target = token_target(&redis, &node, 1);
    let old = request(&node, &target).replacen("HTTP/1.1", "HTTP/1.0", 1);
    assert_eq!(node.raw_status(old.as_bytes()), 400);
    assert_still_serves(&redis, &node);
}
