//! The `freeim.heartbeat.v1` subprotocol, end to end (real Redis, real node,
//! hand-made sockets): a client that offers it, alone or among others, gets
//! it selected in the 101, then a binary frame of the heartbeat interval in
//! milliseconds, and that frame again with every ping; a client that does
//! not offer it sees no subprotocol and no binary frame; with heartbeats off
//! (`--heartbeat-interval 0s`) it is never selected.

mod common;

use std::time::{Duration, Instant};

use common::*;

const OPCODE_BINARY: u8 = 0x2;
const OPCODE_PING: u8 = 0x9;
const OPCODE_PONG: u8 = 0xA;

/// A node pinging after 1 s of silence.
const FAST_HEARTBEATS: &[&str] = &["--heartbeat-interval", "1s", "--heartbeat-timeout", "2s"];

/// Opens a socket for client `id`, its upgrade request carrying
/// `Sec-WebSocket-Protocol: {offer}` when given; returns it and the `101`
/// head (the upgrade must succeed).
fn open_offering(redis: &TestRedis, node: &Node, id: i64, offer: Option<&str>) -> (RawWs, String) {
    let url = raw_token(redis, node, id, "hb");
    let target = &url[url.find("/ws").unwrap()..];
    let mut request = upgrade_request(&node.server, target);
    if let Some(offer) = offer {
        request.truncate(request.len() - 2); // before the blank line
        request.push_str(&format!("Sec-WebSocket-Protocol: {offer}\r\n\r\n"));
    }
    let mut raw = RawWs::connect(&node.server);
    raw.send(request.as_bytes());
    let head = raw.read_head(PROMPTLY).expect("a response head");
    assert!(
        head.starts_with("HTTP/1.1 101 "),
        "upgrade refused: {head:?}"
    );
    wait_online(redis, id, Some(1));
    (raw, head)
}

/// The values of the head's `Sec-WebSocket-Protocol` fields.
fn selected_subprotocols(head: &str) -> Vec<&str> {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-protocol"))
        .map(|(_, value)| value.trim())
        .collect()
}

/// The next frame within `timeout`; panics on a timeout or EOF.
fn next_frame(raw: &mut RawWs, timeout: Duration, what: &str) -> RawFrame {
    match raw.read_frame(timeout) {
        Got::Frame(frame) => frame,
        other => panic!("{what}: expected a frame, got {other:?}"),
    }
}

fn assert_interval_frame(frame: &RawFrame, millis: &str, what: &str) {
    assert_eq!(
        (frame.fin, frame.opcode, frame.payload.as_slice()),
        (true, OPCODE_BINARY, millis.as_bytes()),
        "{what}: the binary frame of the interval"
    );
}

#[test]
fn an_offered_heartbeat_is_selected_and_the_interval_follows_the_101() {
    let redis = TestRedis::start();
    let node = Node::start_with(&redis, &["--threads", "2"]);
    let im = helper(&redis, &[&node]);
    // Clients spread over both loops: those accepted by the loop that does
    // not own them are handed over, the selection with them.
    for id in 1..=4 {
        let (mut raw, head) = open_offering(&redis, &node, id, Some("freeim.heartbeat.v1"));
        assert_eq!(
            selected_subprotocols(&head),
            ["freeim.heartbeat.v1"],
            "client {id}"
        );
        let first = next_frame(&mut raw, PROMPTLY, "right after the 101");
        assert_interval_frame(&first, "30000", "the default 30 s");
        // Pushes still arrive as text frames.
        im.send_message(0, &[id], "hello", false).unwrap();
        let text = next_frame(&mut raw, PROMPTLY, "a push");
        assert_eq!(
            (text.opcode, text.payload.as_slice()),
            (0x1, &b"\"hello\""[..])
        );
    }
}

#[test]
fn every_heartbeat_ping_comes_with_the_interval() {
    let redis = TestRedis::start();
    let node = Node::start_with(&redis, FAST_HEARTBEATS);
    let (mut raw, _) = open_offering(&redis, &node, 1, Some("freeim.heartbeat.v1"));
    assert_interval_frame(
        &next_frame(&mut raw, PROMPTLY, "first"),
        "1000",
        "after the 101",
    );
    for round in 1..=2 {
        let what = format!("heartbeat {round}");
        let ping = next_frame(&mut raw, Duration::from_secs(3), &what);
        assert_eq!(ping.opcode, OPCODE_PING, "{what}: a ping");
        let follower = next_frame(&mut raw, PROMPTLY, &what);
        assert_interval_frame(&follower, "1000", &what);
        raw.send(&masked(OPCODE_PONG, b""));
    }
    assert_eq!(
        online_count(&redis, 1).as_deref(),
        Some("1"),
        "still online"
    );
}

#[test]
fn a_client_that_does_not_offer_it_sees_no_subprotocol_and_no_binary_frame() {
    let redis = TestRedis::start();
    let node = Node::start_with(&redis, FAST_HEARTBEATS);
    for (id, offer) in [(1, None), (2, Some("chat, superchat"))] {
        let (mut raw, head) = open_offering(&redis, &node, id, offer);
        assert!(
            selected_subprotocols(&head).is_empty(),
            "{offer:?}: {head:?}"
        );
        let mut pings = 0;
        let start = Instant::now();
        while pings < 2 {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{offer:?}: two pings"
            );
            let frame = next_frame(&mut raw, Duration::from_secs(3), "a heartbeat");
            assert_eq!(frame.opcode, OPCODE_PING, "{offer:?}: only pings");
            pings += 1;
            raw.send(&masked(OPCODE_PONG, b""));
        }
    }
}

#[test]
fn an_offer_among_other_subprotocols_is_selected() {
    let redis = TestRedis::start();
    let node = Node::start(&redis);
    let (mut raw, head) = open_offering(&redis, &node, 1, Some("chat, freeim.heartbeat.v1"));
    assert_eq!(selected_subprotocols(&head), ["freeim.heartbeat.v1"]);
    assert_interval_frame(
        &next_frame(&mut raw, PROMPTLY, "first"),
        "30000",
        "after the 101",
    );
}

#[test]
fn with_heartbeats_off_the_subprotocol_is_not_selected() {
    let redis = TestRedis::start();
    let node = Node::start_with(&redis, &["--heartbeat-interval", "0s"]);
    let (mut raw, head) = open_offering(&redis, &node, 1, Some("freeim.heartbeat.v1"));
    assert!(selected_subprotocols(&head).is_empty(), "{head:?}");
    assert_eq!(raw.read_frame(QUIET * 3), Got::Timeout, "no frame at all");
    let im = helper(&redis, &[&node]);
    im.send_message(0, &[1], "hello", false).unwrap();
    let text = next_frame(&mut raw, PROMPTLY, "a push");
    assert_eq!(
        (text.opcode, text.payload.as_slice()),
        (0x1, &b"\"hello\""[..])
    );
}
