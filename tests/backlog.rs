//! Backlogs: what "behind" means for a reader (bytes queued behind the message
//! in flight, not the size of that message), the largest push as an enforced
//! limit on both sides, and fan-out frames that are queued by reference.

mod common;

use std::time::Duration;

use common::*;
use imhelper::{Error, ImHelper, ImHelperOptions};

/// A hand-made WebSocket for client `id` whose kernel receive window is
/// small, so what it has not read waits in the node's queue.
fn small_window_reader(redis: &TestRedis, node: &Node, id: i64) -> RawWs {
    let url = raw_token(redis, node, id, "reader");
    let raw = RawWs::open_with_recv_buffer(&url, 32 * 1024);
    wait_online(redis, id, Some(1));
    raw
}

/// The next text frame's payload, skipping pings.
fn next_text(raw: &mut RawWs, timeout: Duration) -> Option<Vec<u8>> {
    loop {
        match raw.read_frame(timeout) {
            Got::Frame(frame) if frame.opcode == 0x1 => return Some(frame.payload),
            Got::Frame(frame) if frame.opcode == 0x9 => {}
            Got::Frame(frame) => panic!("unexpected frame {}", frame.opcode),
            Got::Timeout | Got::Closed => return None,
        }
    }
}

#[test]
fn a_reader_that_keeps_reading_gets_the_largest_push_and_the_next_while_one_that_stops_is_closed() {
    // Defaults: --max-push-bytes 4 MiB, --max-send-buffer 8 MiB.
    let redis = TestRedis::start();
    let node = Node::start_with(&redis, &[]);
    let im = helper(&redis, &[&node]);
    let mut reading = small_window_reader(&redis, &node, 1);
    let mut stopped = small_window_reader(&redis, &node, 2);
    // A 32 Mbit/s link: 16 KiB every 4 ms; the largest push takes ~1 s.
    reading.pace = Duration::from_millis(4);

    let largest = "x".repeat((4 << 20) - 2); // 4 MiB of JSON with its quotes
    im.send_message(0, &[1], &largest, false).unwrap();
    im.send_message(0, &[1], "chat line", false).unwrap();
    let first = next_text(&mut reading, 4 * PROMPTLY).expect("the largest push");
    assert_eq!(first.len(), 4 << 20);
    assert_eq!(
        next_text(&mut reading, PROMPTLY).as_deref(),
        Some(&b"\"chat line\""[..]),
        "the message behind the one in flight"
    );

    // One that reads nothing: in flight, then 8 MiB behind it, then one more.
    for _ in 0..4 {
        im.send_message(0, &[2], &largest, false).unwrap();
    }
    assert_eq!(stopped.read_close(4 * PROMPTLY), Some(1008));
    wait_online(&redis, 2, None);

    // One byte over the limit is refused before anything is published.
    let over = im.send_message(0, &[1], &"x".repeat((4 << 20) - 1), false);
    assert!(
        matches!(
            over,
            Err(Error::MessageTooLarge {
                bytes,
                max_push_bytes
            }) if bytes == (4 << 20) + 1 && max_push_bytes == 4 << 20
        ),
        "{over:?}"
    );
    assert!(reading.pace > Duration::ZERO);
    reading.pace = Duration::ZERO;
    im.send_message(0, &[1], "still open", false).unwrap();
    assert_eq!(
        next_text(&mut reading, PROMPTLY).as_deref(),
        Some(&b"\"still open\""[..])
    );
}

#[test]
fn a_push_over_the_limit_from_another_helper_is_dropped_loudly_and_the_node_serves_on() {
    let redis = TestRedis::start();
    let admin = free_port();
    let admin_arg = format!("127.0.0.1:{admin}");
    let args = [
        "--max-push-bytes",
        "1000",
        "--max-send-buffer",
        "4096",
        "--admin",
        &admin_arg,
    ];
    let node = Node::start_with(&redis, &args);
    let mut options = ImHelperOptions::new(redis.url(), vec![node.server.clone()]);
    options.max_push_bytes = 1000;
    let im = ImHelper::new(options).unwrap();
    let mut client = connect_as(&im, 1, "c");

    let at_limit = "y".repeat(998);
    im.send_message(0, &[1], &at_limit, false).unwrap();
    assert_eq!(client.recv_text(PROMPTLY).map(|t| t.len()), Some(1000));
    let over = "y".repeat(999);
    assert!(matches!(
        im.send_message(0, &[1], &over, false),
        Err(Error::MessageTooLarge { bytes: 1001, .. })
    ));
    assert!(matches!(
        im.send_chan_message(0, "room", &over),
        Err(Error::MessageTooLarge { bytes: 1001, .. })
    ));
    assert!(matches!(
        im.send_broadcast_message(&over),
        Err(Error::MessageTooLarge { bytes: 1001, .. })
    ));

    // A helper that does not check (FreeIM's .NET one) publishes it anyway.
    let text = serde_json::to_string(&over).unwrap();
    let send = serde_json::json!({"Item1": 0, "Item2": [1], "Item3": text, "Item4": false});
    let broadcast = serde_json::json!({"Item1": 0, "Item2": null, "Item3": text});
    assert_eq!(publish(&redis, &node.channel(), &send.to_string()), 1);
    let broadcast = format!("__FreeIM__(ChanMessage){broadcast}");
    assert_eq!(publish(&redis, &node.channel(), &broadcast), 1);
    im.send_message(0, &[1], "next", false).unwrap();
    assert_eq!(client.recv_text(PROMPTLY).as_deref(), Some("\"next\""));
    let body = admin_get(admin, "/metrics").1;
    assert_eq!(admin_metric(&body, "freeim_pushes_refused_total"), 2);
    assert_still_serves(&redis, &node);
}

#[test]
fn a_channel_backlog_holds_each_frame_once_not_once_per_member() {
    const MEMBERS: i64 = 200;
    const MESSAGES: usize = 200;
    let redis = TestRedis::start();
    let node = Node::start_with(&redis, &[]);
    let pid = node.pid().unwrap();
    let im = helper(&redis, &[&node]);
    let readers: Vec<RawWs> = (1..=MEMBERS)
        .map(|id| small_window_reader(&redis, &node, id))
        .collect();
    let ids: Vec<i64> = (1..=MEMBERS).collect();
    for id in &ids {
        im.join_chan(*id, &["room"]).unwrap();
    }
    let rss_before = rss_kib(pid);

    // 200 × 4 KiB to 200 members that do not read: 160 MB if every member
    // held a copy, under 1 MB of frames plus 16 B per queued delivery shared.
    let message = "z".repeat(4096);
    for _ in 0..MESSAGES {
        im.send_chan_message(0, "room", &message).unwrap();
    }
    let mut marker = small_window_reader(&redis, &node, MEMBERS + 1);
    im.send_message(0, &[MEMBERS + 1], "after", false).unwrap();
    assert_eq!(
        next_text(&mut marker, PROMPTLY).as_deref(),
        Some(&b"\"after\""[..]),
        "the burst was routed"
    );
    let grown = rss_kib(pid).saturating_sub(rss_before);
    assert!(
        grown < 24 * 1024,
        "node grew by {grown} KiB for a backlog of {} deliveries",
        MEMBERS as usize * MESSAGES
    );
    for mut reader in readers {
        let first = next_text(&mut reader, PROMPTLY).expect("the backlog is still delivered");
        assert_eq!(first.len(), 4098);
    }
}

#[test]
fn a_deflating_reader_that_stops_is_closed_and_one_that_reads_gets_every_message_compressed() {
    // --max-push-bytes 64 KiB, --max-send-buffer 256 KiB: a reader that
    // negotiated permessage-deflate and stops reading is closed as slow
    // with compressed frames queued; one that reads gets them all.
    let redis = TestRedis::start();
    let node = Node::start_with(
        &redis,
        &["--max-push-bytes", "65536", "--max-send-buffer", "262144"],
    );
    let open = |id: i64| {
        let url = raw_token(&redis, &node, id, "deflating reader");
        let addr: std::net::SocketAddr = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(32 * 1024).unwrap();
        socket.connect(&addr.into()).unwrap();
        let mut raw = RawWs::from_stream(socket.into());
        let head = raw.handshake_with(&url, BROWSER_OFFER);
        assert!(head.contains(NODE_ANSWER), "{head}");
        wait_online(&redis, id, Some(1));
        raw
    };
    let im = helper(&redis, &[&node]);
    let mut stopped = open(1);
    let mut reading = open(2);
    // 60 KiB of chat words, about a third of that compressed.
    let text = chat_words(String::new(), 60 * 1024, &mut 0x9e37_79b9_7f4a_7c15);
    // As many as it takes to fill the kernel's buffers (they grow to a few
    // MiB, and the words compress well) and then the cap, for one that
    // reads nothing: until the node gives up on it.
    let mut sent = 0;
    while online_count(&redis, 1).is_some() {
        assert!(
            sent < 5000,
            "{sent} messages queued and the reader is still open"
        );
        for _ in 0..50 {
            im.send_message(0, &[1], &text, false).unwrap();
        }
        sent += 50;
    }
    assert_eq!(stopped.read_close(4 * PROMPTLY), Some(1008));
    wait_online(&redis, 1, None);

    // One that reads gets every message, compressed, in full.
    for _ in 0..100 {
        im.send_message(0, &[2], &text, false).unwrap();
    }
    let mut got = 0;
    while got < 100 {
        match reading.read_frame(PROMPTLY) {
            Got::Frame(frame) if frame.opcode == 0x1 => {
                assert!(frame.compressed && frame.payload.len() < text.len() / 2);
                let message: String = serde_json::from_slice(&inflate(&frame.payload)).unwrap();
                assert!(message == text);
                got += 1;
            }
            Got::Frame(frame) if frame.opcode == 0x9 => {}
            other => panic!("after {got} messages: {other:?}"),
        }
    }
}
