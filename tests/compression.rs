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

/// The `Sec-WebSocket-Extensions` lines of a response head.
fn extension_lines(head: &str) -> Vec<&str> {
    head.split("\r\n")
        .filter(|line| {
            line.to_ascii_lowercase()
                .starts_with("sec-websocket-extensions:")
        })
        .collect()
}

/// Pings with `payload` and waits for its pong: the connection is alive.
fn answers_ping(raw: &mut RawWs, payload: &[u8]) -> bool {
    raw.send(&masked(0x9, payload));
    loop {
        match raw.read_frame(PROMPTLY) {
            Got::Frame(frame) if frame.opcode == 0xA => return frame.payload == payload,
            Got::Frame(frame) if frame.opcode == 0x8 => return false,
            Got::Frame(_) => {}
            _ => return false,
        }
    }
}

#[test]
fn offers_are_negotiated_by_rfc_7692_across_fields_or_declined() {
    let redis = TestRedis::start();
    let node = Node::start(&redis);
    let im = helper(&redis, &[&node]);
    let answer = "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
                  client_no_context_takeover";
    let cases: &[(&str, Option<String>)] = &[
        (
            // Several fields: the first valid offer across them wins.
            "Sec-WebSocket-Extensions: x-foo; a=\"b,c\", permessage-deflate; mux\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=\"15\", \
             permessage-deflate\r\n",
            Some(format!("{answer}; server_max_window_bits=15")),
        ),
        (
            "Sec-WebSocket-Extensions: PerMessage-Deflate ;\tclient_max_window_bits ; \
             server_max_window_bits = 8\r\n",
            Some(format!("{answer}; server_max_window_bits=8")),
        ),
        (
            "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; \
             server_no_context_takeover; client_max_window_bits=9\r\n",
            Some(answer.to_string()),
        ),
        (
            "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=7\r\n",
            None,
        ),
        (
            "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=16, \
             permessage-deflate; server_max_window_bits=08, \
             permessage-deflate; server_max_window_bits=, \
             permessage-deflate; server_max_window_bits\r\n",
            None,
        ),
        (
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits; \
             client_max_window_bits\r\n\
             Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n",
            None,
        ),
    ];
    let long = serde_json::to_string(&chat_message()).unwrap();
    for (id, (offer, expected)) in (1..).zip(cases) {
        let url = im.prev_connect_server(id, "n").unwrap();
        let (mut raw, head) = RawWs::open_with(&url, offer);
        let lines = extension_lines(&head);
        match expected {
            Some(line) => assert_eq!(lines, [line.as_str()], "{offer}"),
            None => assert!(lines.is_empty(), "{offer}: {head}"),
        }
        im.send_message(0, &[id], &long, false).unwrap();
        let (compressed, got) = next_message(&mut raw);
        // A 1 KiB message goes compressed unless the window is 2^8 bytes.
        let fits = expected.as_ref().is_some_and(|line| !line.ends_with("=8"));
        assert_eq!(compressed, fits, "{offer}");
        assert_eq!(serde_json::from_str::<String>(&got).unwrap(), long);
        if expected.is_none() {
            // Declined: RSV1 is not defined on this connection.
            let data = deflate(b"hello hello hello hello");
            raw.send(&frame(true, 0b100, 0x1, &data, Some([1, 2, 3, 4])));
            assert_eq!(raw.read_close(PROMPTLY), Some(1002), "{offer}");
        }
    }
}

#[test]
fn a_small_server_window_gets_only_messages_that_fit_it_compressed() {
    let redis = TestRedis::start();
    let node = Node::start_with(&redis, &["--compression-min-bytes", "0"]);
    let im = helper(&redis, &[&node]);
    let url = im.prev_connect_server(1, "w").unwrap();
    let offer = "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=8\r\n";
    let (mut raw, head) = RawWs::open_with(&url, offer);
    assert!(head.contains("server_max_window_bits=8\r\n"), "{head}");

    // 1 KiB: longer than the 256-byte window, so it goes plain.
    let long = serde_json::to_string(&chat_message()).unwrap();
    im.send_message(0, &[1], &long, false).unwrap();
    let (compressed, got) = next_message(&mut raw);
    assert!(!compressed);
    assert_eq!(serde_json::from_str::<String>(&got).unwrap(), long);

    // 254 bytes of text (256 with its quotes): fits, goes compressed.
    let short = "ab".repeat(127);
    im.send_message(0, &[1], &short, false).unwrap();
    let (compressed, got) = next_message(&mut raw);
    assert!(compressed);
    assert_eq!(got, format!("\"{short}\""));
}

#[test]
fn client_messages_at_the_edges_of_the_rules() {
    let redis = TestRedis::start();
    let node = Node::start_with(&redis, &["--max-message-bytes", "4096"]);
    let im = helper(&redis, &[&node]);
    let key = Some([9, 8, 7, 6]);
    let text = "0123456789abcdef".repeat(256); // 4096 bytes
    let mut id = 0;
    let mut open = || {
        id += 1;
        deflating(&im, id)
    };

    // Exactly --max-message-bytes inflated passes; one more byte is 1009.
    let mut raw = open();
    raw.send(&frame(true, 0b100, 0x1, &deflate(text.as_bytes()), key));
    assert!(answers_ping(&mut raw, b"at the limit"));
    let over = format!("{text}!");
    raw.send(&frame(true, 0b100, 0x1, &deflate(over.as_bytes()), key));
    assert_eq!(raw.read_close(PROMPTLY), Some(1009));

    // Fragmented, a ping and a pong between the fragments; then an empty
    // compressed message, both ways RFC 7692 allows (§7.2.3.6).
    let mut raw = open();
    let data = deflate(text.as_bytes());
    let (a, rest) = data.split_at(data.len() / 3);
    let (b, c) = rest.split_at(rest.len() / 2);
    raw.send(&frame(false, 0b100, 0x1, a, key));
    raw.send(&masked(0xA, b"unsolicited"));
    raw.send(&frame(false, 0, 0x0, b, key));
    assert!(answers_ping(&mut raw, b"between"));
    raw.send(&frame(true, 0, 0x0, c, key));
    raw.send(&frame(true, 0b100, 0x1, &[0x00], key));
    raw.send(&frame(true, 0b100, 0x2, &[], key));
    assert!(answers_ping(&mut raw, b"after"));

    // RSV1 on a continuation or a control frame: 1002.
    let mut raw = open();
    raw.send(&frame(false, 0b100, 0x1, a, key));
    raw.send(&frame(true, 0b100, 0x0, rest, key));
    assert_eq!(raw.read_close(PROMPTLY), Some(1002));
    let mut raw = open();
    raw.send(&frame(true, 0b100, 0x9, b"ping", key));
    assert_eq!(raw.read_close(PROMPTLY), Some(1002));
    // RSV2 and RSV3 stay undefined.
    let mut raw = open();
    raw.send(&frame(true, 0b110, 0x1, &deflate(b"hello hello"), key));
    assert_eq!(raw.read_close(PROMPTLY), Some(1002));

    // Not DEFLATE (a block of the reserved type 11): 1007.
    let mut raw = open();
    raw.send(&frame(true, 0b100, 0x1, &[0xff, 0xff, 0xff], key));
    assert_eq!(raw.read_close(PROMPTLY), Some(1007));

    // Invalid UTF-8 once inflated: 1007; as binary it is fine.
    let mut bad = b"hello hello hello hello ".repeat(4);
    bad.push(0xff);
    let mut raw = open();
    raw.send(&frame(true, 0b100, 0x2, &deflate(&bad), key));
    assert!(answers_ping(&mut raw, b"binary"));
    raw.send(&frame(true, 0b100, 0x1, &deflate(&bad), key));
    assert_eq!(raw.read_close(PROMPTLY), Some(1007));
}

#[test]
fn context_takeover_against_the_answer_is_closed_as_invalid_data() {
    // The node answered client_no_context_takeover: a client that keeps its
    // compressor between messages refers back into a message the node no
    // longer has.
    let redis = TestRedis::start();
    let node = Node::start(&redis);
    let im = helper(&redis, &[&node]);
    let mut raw = deflating(&im, 1);
    let text = serde_json::to_string(&chat_message()).unwrap();
    let mut compress = flate2::Compress::new(flate2::Compression::default(), false);
    let mut next = || {
        let mut out = Vec::with_capacity(text.len() + 64);
        let before = compress.total_in();
        compress
            .compress_vec(text.as_bytes(), &mut out, flate2::FlushCompress::Sync)
            .unwrap();
        assert_eq!(compress.total_in() - before, text.len() as u64);
        out.truncate(out.len() - 4);
        out
    };
    let (first, second) = (next(), next());
    assert!(second.len() < first.len() / 4, "the second refers back");
    raw.send(&frame(true, 0b100, 0x1, &first, Some([1, 2, 3, 4])));
    assert!(answers_ping(&mut raw, b"first"));
    raw.send(&frame(true, 0b100, 0x1, &second, Some([1, 2, 3, 4])));
    let close = loop {
        match raw.read_frame(PROMPTLY) {
            Got::Frame(f) if f.opcode == 0x8 => break f.payload,
            Got::Frame(_) => {}
            other => panic!("no close: {other:?}"),
        }
    };
    assert_eq!(close[..2], 1007u16.to_be_bytes());
    let reason = String::from_utf8_lossy(&close[2..]);
    assert!(reason.contains("client_no_context_takeover"), "{reason}");
}

#[test]
fn incompressible_pushes_go_plain_and_a_final_block_ends_a_client_message() {
    let redis = TestRedis::start();
    let node = Node::start(&redis);
    let im = helper(&redis, &[&node]);
    let mut raw = deflating(&im, 1);

    // 4 KiB of random base64: the compressor does not make it shorter.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let noise: String = (0..4096)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            char::from(alphabet[(seed % 64) as usize])
        })
        .collect();
    im.send_message(0, &[1], &noise, false).unwrap();
    let (compressed, got) = next_message(&mut raw);
    assert!(!compressed, "sent as it is");
    assert_eq!(serde_json::from_str::<String>(&got).unwrap(), noise);

    // A client message ending in a final block (BFINAL, no sync flush
    // tail, RFC 7692 §7.2.3.3) is complete.
    let text = b"final final final final final final final final";
    let mut compress = flate2::Compress::new(flate2::Compression::default(), false);
    let mut data = Vec::with_capacity(256);
    compress
        .compress_vec(text, &mut data, flate2::FlushCompress::Finish)
        .unwrap();
    raw.send(&frame(true, 0b100, 0x1, &data, Some([5, 6, 7, 8])));
    assert!(answers_ping(&mut raw, b"final"));
    // Its UTF-8 is still checked.
    let mut data = Vec::with_capacity(256);
    let mut compress = flate2::Compress::new(flate2::Compression::default(), false);
    compress
        .compress_vec(
            b"final\xff final final final",
            &mut data,
            flate2::FlushCompress::Finish,
        )
        .unwrap();
    raw.send(&frame(true, 0b100, 0x1, &data, Some([5, 6, 7, 8])));
    assert_eq!(raw.read_close(PROMPTLY), Some(1007));
}
