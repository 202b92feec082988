//! permessage-deflate end to end (RFC 7692), with real Redis, a real node
//! (two loops) and clients that negotiate it by hand: a channel message to
//! many members is compressed once (the node's counters) and every member
//! inflates the same bytes; clients that did not offer it, and short
//! messages, get plain frames; a client's compressed message is inflated,
//! a deflate bomb closes its sender with 1009 and no one else; with
//! `--compression off` offers are declined.

mod common;

use common::*;
use imhelper::ImHelper;

/// A 1 KiB JSON message, as a chat service would send one.
fn chat_message() -> serde_json::Value {
    let lines: Vec<serde_json::Value> = (0..15)
        .map(|i| serde_json::json!({"id": 1000 + i, "from": "alice", "text": "see you at the station at nine"}))
        .collect();
    serde_json::json!({"type": "chan", "room": "general", "lines": lines})
}

/// A client of `id` that offered permessage-deflate; the node's answer is
/// checked.
fn deflating(im: &ImHelper, id: i64) -> RawWs {
    let url = im.prev_connect_server(id, "d").unwrap();
    let (raw, head) = RawWs::open_with(&url, BROWSER_OFFER);
    assert!(head.contains(NODE_ANSWER), "{head}");
    raw
}

/// The next data message a deflating client gets: whether it came
/// compressed, and its text.
fn next_message(raw: &mut RawWs) -> (bool, String) {
    loop {
        match raw.read_frame(PROMPTLY) {
            Got::Frame(frame) if frame.opcode == 0x1 => {
                assert!(frame.fin);
                let text = match frame.compressed {
                    true => inflate(&frame.payload),
                    false => frame.payload,
                };
                return (frame.compressed, String::from_utf8(text).unwrap());
            }
            Got::Frame(_) => {}
            other => panic!("no message: {other:?}"),
        }
    }
}

fn metric(admin: u16, name: &str) -> u64 {
    admin_metric(&admin_get(admin, "/metrics").1, name)
}

#[test]
fn a_fan_out_is_compressed_once() {
    let redis = TestRedis::start();
    let admin = free_port();
    let admin_arg = format!("127.0.0.1:{admin}");
    let node = Node::start_with(&redis, &["--admin", &admin_arg]);
    let im = helper(&redis, &[&node]);
    // Ids on both loops (id mod 2).
    let mut members: Vec<RawWs> = (1..=30).map(|id| deflating(&im, id)).collect();
    let mut plain: Vec<Client> = (101..=104).map(|id| connect_as(&im, id, "p")).collect();
    for id in (1..=30).chain(101..=104) {
        im.join_chan(id, &["room"]).unwrap();
    }

    let message = chat_message();
    let text = serde_json::to_string(&message).unwrap();
    assert!(text.len() > 1000, "{} bytes", text.len());
    im.send_chan_message(0, "room", &text).unwrap();
    let mut received = Vec::new();
    for raw in &mut members {
        let (compressed, got) = next_message(raw);
        assert!(compressed, "a long message goes compressed");
        received.push(got);
    }
    let expected = plain[0].recv_text(PROMPTLY).unwrap();
    for client in &mut plain[1..] {
        assert_eq!(client.recv_text(PROMPTLY).unwrap(), expected);
    }
    assert!(received.iter().all(|got| *got == expected));

    assert!(wait_until(PROMPTLY, || metric(
        admin,
        "freeim_messages_pushed_total"
    ) == 34));
    assert_eq!(
        metric(admin, "freeim_compressions_total"),
        1,
        "once for 30 receivers on 2 loops"
    );
    assert_eq!(metric(admin, "freeim_messages_deflated_total"), 30);
    let wire = metric(admin, "freeim_bytes_pushed_total");
    assert!(
        wire < 4 * expected.len() as u64 + 30 * expected.len() as u64 / 2,
        "{wire} bytes"
    );

    // A short message goes plain even to a deflating client; a long direct
    // message is compressed for it, once more.
    im.send_message(0, &[1], "hi", false).unwrap();
    assert_eq!(next_message(&mut members[0]), (false, "\"hi\"".to_string()));
    im.send_message(0, &[1], &message, false).unwrap();
    let (compressed, got) = next_message(&mut members[0]);
    assert!(compressed);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&got).unwrap(),
        message
    );
    assert!(wait_until(PROMPTLY, || metric(
        admin,
        "freeim_compressions_total"
    ) == 2));
}

#[test]
fn client_messages_are_inflated_and_a_bomb_closes_only_its_sender() {
    let redis = TestRedis::start();
    let node = Node::start(&redis);
    let im = helper(&redis, &[&node]);
    let mut sender = deflating(&im, 1);
    let mut bystander = deflating(&im, 2);

    // A compressed message within the limit: validated and dropped, the
    // connection goes on.
    let data = deflate(serde_json::to_string(&chat_message()).unwrap().as_bytes());
    sender.send(&frame(true, 0b100, 0x1, &data, Some([1, 2, 3, 4])));
    sender.send(&masked(0x9, b"alive?"));
    let pong = loop {
        match sender.read_frame(PROMPTLY) {
            Got::Frame(frame) if frame.opcode == 0xA => break frame.payload,
            Got::Frame(_) => {}
            other => panic!("no pong: {other:?}"),
        }
    };
    assert_eq!(pong, b"alive?");

    // 10 MiB of zeros in ~10 KB: over --max-message-bytes (64 KiB) inflated.
    let bomb = deflate(&vec![0u8; 10 << 20]);
    assert!(bomb.len() < 65536, "{} bytes", bomb.len());
    sender.send(&frame(true, 0b100, 0x2, &bomb, Some([1, 2, 3, 4])));
    assert_eq!(sender.read_close(PROMPTLY), Some(1009));

    im.send_message(0, &[2], "still here", false).unwrap();
    assert_eq!(
        next_message(&mut bystander),
        (false, "\"still here\"".to_string())
    );
}

#[test]
fn with_compression_off_offers_are_declined() {
    let redis = TestRedis::start();
    let node = Node::start_with(&redis, &["--compression", "off"]);
    let im = helper(&redis, &[&node]);
    let url = im.prev_connect_server(1, "d").unwrap();
    let (mut raw, head) = RawWs::open_with(&url, BROWSER_OFFER);
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("sec-websocket-extensions"),
        "{head}"
    );
    let data = deflate(b"hello hello hello hello");
    raw.send(&frame(true, 0b100, 0x1, &data, Some([1, 2, 3, 4])));
    assert_eq!(raw.read_close(PROMPTLY), Some(1002));
}
