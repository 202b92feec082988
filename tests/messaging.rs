//! Messaging through `imhelper` against a real one-node cluster: direct
//! messages, multi-device delivery, the sender-echo rule, receipts, receiver
//! de-duplication, channel messages, broadcasts and force-offline.
//!
//! Where a test asserts that something does *not* arrive, it sends a marker
//! afterwards along the same ordered path and asserts the marker is the next
//! thing the socket reads, so "nothing" is proved, not guessed by a timeout.

mod common;

use common::*;
use imhelper::ImHelper;
use serde_json::{json, Value};

const DELIVERED: &str = "发送成功";
const OFFLINE: &str = "用户不在线";

fn one_node() -> (TestRedis, Node, ImHelper) {
    let redis = TestRedis::start();
    let node = Node::start(&redis);
    let im = helper(&redis, &[&node]);
    (redis, node, im)
}

/// Sends a system message `marker` to `id` and asserts it is the next text
/// every given socket reads (so nothing else was queued before it).
fn assert_next_is_marker(im: &ImHelper, id: i64, sockets: &mut [&mut Client], what: &str) {
    im.send_message(0, &[id], "marker", false).unwrap();
    for (i, socket) in sockets.iter_mut().enumerate() {
        assert_eq!(
            socket.recv_text(PROMPTLY).as_deref(),
            Some("\"marker\""),
            "client {id} socket {i}: {what}"
        );
    }
}

/// The receipt text a sender's socket receives (FreeIM's exact shape).
fn receipt_text(original: &str, verdict: &str) -> String {
    format!(
        r#"{{"content":{},"receipt":"{verdict}"}}"#,
        serde_json::to_string(original).unwrap()
    )
}

#[test]
fn message_reaches_the_receiver_as_its_serde_json_text() {
    let (_redis, _node, im) = one_node();
    let mut bob = connect_as(&im, 2, "bob");

    let value =
        json!({"kind": "chat", "n": 3, "tags": ["a", "b"], "nested": {"x": null, "f": 1.5}});
    im.send_message(1, &[2], &value, false).unwrap();
    let text = bob.recv_text(PROMPTLY).expect("the message arrives");
    assert_eq!(text, serde_json::to_string(&value).unwrap());
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), value);

    im.send_message(1, &[2], "hi", false).unwrap();
    assert_eq!(bob.recv_text(PROMPTLY).as_deref(), Some("\"hi\""));
    im.send_message(1, &[2], &42, false).unwrap();
    assert_eq!(bob.recv_text(PROMPTLY).as_deref(), Some("42"));
}

#[test]
fn messages_arrive_in_the_order_they_were_sent() {
    let (_redis, _node, im) = one_node();
    let mut bob = connect_as(&im, 2, "bob");
    for i in 0..50 {
        im.send_message(1, &[2], &i, false).unwrap();
    }
    for i in 0..50 {
        assert_eq!(bob.recv_text(PROMPTLY), Some(i.to_string()));
    }
}

#[test]
fn every_socket_of_a_receiver_gets_the_message_once() {
    let (_redis, _node, im) = one_node();
    let mut devices: Vec<Client> = (0..3).map(|_| connect_as(&im, 7, "dev")).collect();
    let mut other = connect_as(&im, 8, "other");

    im.send_message(1, &[7], "to all my devices", false)
        .unwrap();
    for (i, device) in devices.iter_mut().enumerate() {
        assert_eq!(
            device.recv_text(PROMPTLY).as_deref(),
            Some("\"to all my devices\""),
            "device {i}"
        );
    }
    let mut sockets: Vec<&mut Client> = devices.iter_mut().collect();
    assert_next_is_marker(&im, 7, &mut sockets, "one copy per socket");
    assert_next_is_marker(&im, 8, &mut [&mut other], "a non-receiver gets nothing");
}

#[test]
fn a_senders_only_socket_gets_no_echo() {
    let (_redis, _node, im) = one_node();
    let mut alice = connect_as(&im, 5, "alice");
    let mut bob = connect_as(&im, 6, "bob");

    im.send_message(5, &[5, 6], "hello both", false).unwrap();
    assert_eq!(bob.recv_text(PROMPTLY).as_deref(), Some("\"hello both\""));
    assert_next_is_marker(
        &im,
        5,
        &mut [&mut alice],
        "a sender with one socket is not echoed to",
    );
}

#[test]
fn a_sender_with_two_sockets_gets_the_echo_on_both() {
    let (_redis, _node, im) = one_node();
    let mut phone = connect_as(&im, 5, "phone");
    let mut laptop = connect_as(&im, 5, "laptop");
    let mut bob = connect_as(&im, 6, "bob");

    im.send_message(5, &[5, 6], "synced", false).unwrap();
    assert_eq!(bob.recv_text(PROMPTLY).as_deref(), Some("\"synced\""));
    assert_eq!(phone.recv_text(PROMPTLY).as_deref(), Some("\"synced\""));
    assert_eq!(laptop.recv_text(PROMPTLY).as_deref(), Some("\"synced\""));
    assert_next_is_marker(&im, 5, &mut [&mut phone, &mut laptop], "one echo each");
}

#[test]
fn a_receipt_for_a_delivered_message_has_the_exact_freeim_json() {
    let (redis, node, im) = one_node();
    let mut alice = connect_as(&im, 1, "alice");
    let mut bob = connect_as(&im, 2, "bob");
    let spy = Spy::start(&redis, &[node.channel()]);

    im.send_message(1, &[2], "hi", true).unwrap();
    assert_eq!(bob.recv_text(PROMPTLY).as_deref(), Some("\"hi\""));
    let receipt = alice.recv_text(PROMPTLY).expect("a receipt comes back");
    assert_eq!(receipt, r#"{"content":"\"hi\"","receipt":"发送成功"}"#);
    assert_eq!(receipt, receipt_text("\"hi\"", DELIVERED));

    // On the wire: the Send command from ImHelper, then the node's receipt,
    // a Send from the receiver to the sender without a receipt of its own.
    let (_, command) = spy.next(PROMPTLY).expect("the send command");
    assert_eq!(
        serde_json::from_str::<Value>(&command).unwrap(),
        json!({"Item1": 1, "Item2": [2], "Item3": "\"hi\"", "Item4": true})
    );
    let (_, receipt_command) = spy.next(PROMPTLY).expect("the receipt command");
    assert_eq!(
        serde_json::from_str::<Value>(&receipt_command).unwrap(),
        json!({"Item1": 2, "Item2": [1], "Item3": receipt, "Item4": false})
    );
    assert_next_is_marker(&im, 2, &mut [&mut bob], "the receiver gets no receipt");
    assert_next_is_marker(&im, 1, &mut [&mut alice], "one receipt only");
}

#[test]
fn a_receipt_for_an_offline_receiver_says_so() {
    let (_redis, _node, im) = one_node();
    let mut alice = connect_as(&im, 1, "alice");
    let mut bob = connect_as(&im, 2, "bob");
    let message = json!({"text": "are you there?"});
    let text = serde_json::to_string(&message).unwrap();

    im.send_message(1, &[3], &message, true).unwrap();
    assert_eq!(
        alice.recv_text(PROMPTLY),
        Some(receipt_text(&text, OFFLINE))
    );

    // Two receivers, one online and one not: one receipt each.
    im.send_message(1, &[2, 3], &message, true).unwrap();
    assert_eq!(bob.recv_text(PROMPTLY), Some(text.clone()));
    let mut receipts = vec![
        alice.recv_text(PROMPTLY).expect("first receipt"),
        alice.recv_text(PROMPTLY).expect("second receipt"),
    ];
    receipts.sort();
    let mut expected = vec![receipt_text(&text, DELIVERED), receipt_text(&text, OFFLINE)];
    expected.sort();
    assert_eq!(receipts, expected);
    assert_next_is_marker(&im, 1, &mut [&mut alice], "exactly two receipts");
}

#[test]
fn no_receipt_for_a_system_message_or_for_the_sender_itself() {
    let (redis, node, im) = one_node();
    let mut bob = connect_as(&im, 2, "bob");
    let mut phone = connect_as(&im, 5, "phone");
    let mut laptop = connect_as(&im, 5, "laptop");
    let spy = Spy::start(&redis, &[node.channel()]);

    im.send_message(0, &[2], "system notice", true).unwrap();
    assert_eq!(
        bob.recv_text(PROMPTLY).as_deref(),
        Some("\"system notice\"")
    );
    im.send_message(5, &[5], "note to self", true).unwrap();
    assert_eq!(
        phone.recv_text(PROMPTLY).as_deref(),
        Some("\"note to self\"")
    );
    assert_eq!(
        laptop.recv_text(PROMPTLY).as_deref(),
        Some("\"note to self\"")
    );

    let published: Vec<String> = spy.collect(QUIET).into_iter().map(|(_, p)| p).collect();
    assert_eq!(
        published.len(),
        2,
        "only the two send commands, no receipt: {published:?}"
    );

    // The spy does see receipts when one is due (so the check above can fail).
    im.send_message(2, &[5], "with receipt", true).unwrap();
    let published: Vec<String> = spy.collect(QUIET).into_iter().map(|(_, p)| p).collect();
    assert_eq!(published.len(), 2, "send + receipt: {published:?}");
    assert_eq!(
        bob.recv_text(PROMPTLY),
        Some(receipt_text("\"with receipt\"", DELIVERED))
    );
}

#[test]
fn a_receiver_listed_twice_gets_one_copy() {
    let (redis, node, im) = one_node();
    let mut alice = connect_as(&im, 1, "alice");
    let mut bob = connect_as(&im, 2, "bob");

    im.send_message(1, &[2, 2, 2], "once", false).unwrap();
    assert_eq!(bob.recv_text(PROMPTLY).as_deref(), Some("\"once\""));
    assert_next_is_marker(&im, 2, &mut [&mut bob], "imhelper de-duplicates");

    // A publisher that does not de-duplicate (e.g. another ImHelper): the node
    // does, and sends a single receipt.
    let raw = r#"{"Item1":1,"Item2":[2,2],"Item3":"\"raw twice\"","Item4":true}"#;
    assert_eq!(publish(&redis, &node.channel(), raw), 1);
    assert_eq!(bob.recv_text(PROMPTLY).as_deref(), Some("\"raw twice\""));
    assert_eq!(
        alice.recv_text(PROMPTLY),
        Some(receipt_text("\"raw twice\"", DELIVERED))
    );
    assert_next_is_marker(&im, 2, &mut [&mut bob], "the node de-duplicates");
    assert_next_is_marker(&im, 1, &mut [&mut alice], "one receipt");
}

#[test]
fn a_channel_message_reaches_its_members_only() {
    let (_redis, _node, im) = one_node();
    let mut sender = connect_as(&im, 10, "sender");
    let mut member_a = connect_as(&im, 11, "a1");
    let mut member_b = connect_as(&im, 11, "a2");
    let mut outsider = connect_as(&im, 12, "outsider");
    im.join_chan(10, &["room", "marker"]).unwrap();
    im.join_chan(11, &["room", "marker"]).unwrap();
    im.join_chan(12, &["marker"]).unwrap();
    im.join_chan(13, &["room"]).unwrap(); // a member with no socket

    let message = json!({"room": "room", "text": "hello room"});
    im.send_chan_message(10, "room", &message).unwrap();
    let text = serde_json::to_string(&message).unwrap();
    assert_eq!(member_a.recv_text(PROMPTLY), Some(text.clone()));
    assert_eq!(member_b.recv_text(PROMPTLY), Some(text));

    // Channel messages travel one path; a marker on another channel proves
    // what did not arrive before it.
    im.send_chan_message(0, "marker", "marker").unwrap();
    for (name, socket) in [
        ("the sender's only socket", &mut sender),
        ("member socket a", &mut member_a),
        ("member socket b", &mut member_b),
        ("a non-member", &mut outsider),
    ] {
        assert_eq!(
            socket.recv_text(PROMPTLY).as_deref(),
            Some("\"marker\""),
            "{name}"
        );
    }
}

#[test]
fn a_channel_message_is_echoed_to_a_senders_other_sockets() {
    let (_redis, _node, im) = one_node();
    let mut phone = connect_as(&im, 10, "phone");
    let mut laptop = connect_as(&im, 10, "laptop");
    im.join_chan(10, &["room"]).unwrap();

    im.send_chan_message(10, "room", "from me").unwrap();
    assert_eq!(phone.recv_text(PROMPTLY).as_deref(), Some("\"from me\""));
    assert_eq!(laptop.recv_text(PROMPTLY).as_deref(), Some("\"from me\""));
}

#[test]
fn a_broadcast_reaches_every_socket() {
    let (_redis, _node, im) = one_node();
    let mut sockets = [
        connect_as(&im, 1, "one"),
        connect_as(&im, 2, "two-a"),
        connect_as(&im, 2, "two-b"),
        connect_as(&im, 3, "three"),
        connect_as(&im, -4, "negative id"),
    ];
    let message = json!({"notice": "maintenance at noon"});
    im.send_broadcast_message(&message).unwrap();
    let text = serde_json::to_string(&message).unwrap();
    for (i, socket) in sockets.iter_mut().enumerate() {
        assert_eq!(socket.recv_text(PROMPTLY), Some(text.clone()), "socket {i}");
    }
    im.send_broadcast_message("marker").unwrap();
    for (i, socket) in sockets.iter_mut().enumerate() {
        assert_eq!(
            socket.recv_text(PROMPTLY).as_deref(),
            Some("\"marker\""),
            "socket {i}: one copy only"
        );
    }
}

#[test]
fn force_offline_closes_every_socket_of_that_client_only() {
    let (redis, _node, im) = one_node();
    let mut events = im.events().unwrap();
    let mut phone = connect_as(&im, 20, "phone");
    let mut laptop = connect_as(&im, 20, "laptop");
    let mut bystander = connect_as(&im, 21, "bystander");
    wait_online(&redis, 20, Some(2));
    wait_online(&redis, 21, Some(1));

    im.force_offline(20).unwrap();
    use tungstenite::protocol::frame::coding::CloseCode;
    // 4001: a kick, which a client tells from a drain (1001) or an error.
    assert_eq!(phone.closed_with(PROMPTLY), Some(CloseCode::Library(4001)));
    assert_eq!(laptop.closed_with(PROMPTLY), Some(CloseCode::Library(4001)));
    wait_online(&redis, 20, None);
    assert!(!im.has_online(20).unwrap());
    let seen = sorted(next_events(&mut events, 5));
    assert_eq!(
        seen,
        [
            online(20, "laptop"),
            online(20, "phone"),
            online(21, "bystander"),
            offline(20, "laptop"),
            offline(20, "phone")
        ]
    );

    im.send_message(0, &[21], "still connected", false).unwrap();
    assert_eq!(
        bystander.recv_text(PROMPTLY).as_deref(),
        Some("\"still connected\"")
    );
    assert_eq!(online_count(&redis, 21).as_deref(), Some("1"));
    // The client may come back.
    let mut again = connect_as(&im, 20, "again");
    im.send_message(0, &[20], "welcome back", false).unwrap();
    assert_eq!(
        again.recv_text(PROMPTLY).as_deref(),
        Some("\"welcome back\"")
    );
}

#[test]
fn unicode_quotes_and_escapes_arrive_unchanged() {
    let (redis, node, im) = one_node();
    let mut bob = connect_as(&im, 2, "bob");
    let tricky = "中文 \"quoted\" 'single' back\\slash 😀 tab\t newline\n nul\u{0} \u{1f} </script> \u{2028}";
    im.send_message(1, &[2], tricky, false).unwrap();
    assert_eq!(
        bob.recv_text(PROMPTLY),
        Some(serde_json::to_string(tricky).unwrap())
    );

    let object = json!({"键": tricky, "emoji": "👩‍👩‍👧", "n": -0.5e-3});
    im.send_message(1, &[2], &object, false).unwrap();
    let text = bob.recv_text(PROMPTLY).unwrap();
    assert_eq!(text, serde_json::to_string(&object).unwrap());
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), object);

    im.join_chan(2, &["全体"]).unwrap();
    im.send_chan_message(1, "全体", tricky).unwrap();
    assert_eq!(
        bob.recv_text(PROMPTLY),
        Some(serde_json::to_string(tricky).unwrap())
    );

    // The node writes Item3's content as is, even when it is not JSON.
    let command =
        json!({"Item1": 1, "Item2": [2], "Item3": "not json ünïcödé \"x\"", "Item4": false});
    publish(&redis, &node.channel(), &command.to_string());
    assert_eq!(
        bob.recv_text(PROMPTLY).as_deref(),
        Some("not json ünïcödé \"x\"")
    );
}

/// Sends a channel message on `chan` and asserts which sockets get it: every
/// socket in `expected` receives it, and every socket in `not_expected`
/// reads the marker broadcast sent next without anything before it.
fn assert_chan_reach(
    im: &ImHelper,
    chan: &str,
    text: &str,
    expected: &mut [&mut Client],
    not_expected: &mut [&mut Client],
) {
    im.send_chan_message(0, chan, text).unwrap();
    let json = serde_json::to_string(text).unwrap();
    for (i, socket) in expected.iter_mut().enumerate() {
        assert_eq!(
            socket.recv_text(PROMPTLY),
            Some(json.clone()),
            "{text}: member {i}"
        );
    }
    // A channel message may take a different path than a broadcast, so the
    // marker for non-members is a channel message too, on a channel they
    // joined (and so is read from Redis no earlier than `chan`'s).
    im.send_chan_message(0, "marker", "marker").unwrap();
    for (i, socket) in not_expected.iter_mut().enumerate() {
        assert_eq!(
            socket.recv_text(PROMPTLY).as_deref(),
            Some("\"marker\""),
            "{text}: non-member {i} got something before the marker"
        );
    }
    for socket in expected.iter_mut() {
        assert_eq!(socket.recv_text(PROMPTLY).as_deref(), Some("\"marker\""));
    }
}

#[test]
fn channel_membership_changes_take_effect_at_once() {
    let (_redis, _node, im) = one_node();
    let mut a = connect_as(&im, 1, "a");
    let mut b = connect_as(&im, 2, "b");
    im.join_chan(1, &["room", "marker"]).unwrap();
    im.join_chan(2, &["marker"]).unwrap();
    assert_chan_reach(&im, "room", "only a", &mut [&mut a], &mut [&mut b]);

    im.join_chan(2, &["room"]).unwrap();
    assert_chan_reach(&im, "room", "a and b", &mut [&mut a, &mut b], &mut []);

    im.leave_chan(1, &["room"]).unwrap();
    assert_chan_reach(&im, "room", "only b", &mut [&mut b], &mut [&mut a]);

    im.leave_chan_clients("room", &[2]).unwrap();
    assert_chan_reach(&im, "room", "nobody", &mut [], &mut [&mut a, &mut b]);
}

#[test]
fn a_client_back_after_its_last_socket_closed_is_no_longer_a_member() {
    let (redis, _node, im) = one_node();
    let mut watcher = connect_as(&im, 9, "watcher");
    im.join_chan(9, &["marker"]).unwrap();
    let mut first = connect_as(&im, 5, "first");
    wait_online(&redis, 5, Some(1));
    im.join_chan(5, &["room", "marker"]).unwrap();
    assert_chan_reach(&im, "room", "to 5", &mut [&mut first], &mut [&mut watcher]);

    first.close();
    wait_online(&redis, 5, None);
    assert!(im.get_chan_client_list("room").unwrap().is_empty());

    let mut again = connect_as(&im, 5, "again");
    im.join_chan(5, &["marker"]).unwrap();
    assert_chan_reach(
        &im,
        "room",
        "after 5 left",
        &mut [],
        &mut [&mut again, &mut watcher],
    );
}

/// A .NET FreeIM ImHelper changes membership with its own Lua script (no
/// notice to the nodes) and publishes channel messages without this project's
/// extensions: the node must still deliver by Redis' current membership.
#[test]
fn channels_driven_by_a_freeim_dotnet_helper_work() {
    let (redis, node, im) = one_node();
    let mut member = connect_as(&im, 1, "member");
    let mut other = connect_as(&im, 2, "other");
    // FreeIM's names; on a cluster, those of the member's owner.
    let keys = |id: &str| owner_keys(&redis, id.parse().unwrap());
    let join = |id: &str, chan: &str| {
        let keys = keys(id);
        assert_eq!(
            redis.raw_command(&["HSETNX", &keys.chan(chan), id, "0"]),
            ":1"
        );
        redis.raw_command(&["HSET", &keys.client(id), chan, "0"]);
        redis.raw_command(&["HINCRBY", &keys.list_chan(), chan, "1"]);
    };
    let leave = |id: &str, chan: &str| {
        let keys = keys(id);
        assert_eq!(redis.raw_command(&["HDEL", &keys.chan(chan), id]), ":1");
        redis.raw_command(&["HDEL", &keys.client(id), chan]);
        redis.raw_command(&["HINCRBY", &keys.list_chan(), chan, "-1"]);
    };
    // FreeIM serialises the value tuple (sender, chan, messageJson).
    let send = |chan: &str, text: &str| {
        let payload = format!(
            "__FreeIM__(ChanMessage){}",
            json!({"Item1": 0, "Item2": chan, "Item3": serde_json::to_string(text).unwrap()})
        );
        assert_eq!(publish(&redis, &node.channel(), &payload), 1);
    };
    join("1", "room");
    join("1", "marker");
    join("2", "marker");

    send("room", "first");
    assert_eq!(member.recv_text(PROMPTLY).as_deref(), Some("\"first\""));
    send("marker", "marker");
    assert_eq!(other.recv_text(PROMPTLY).as_deref(), Some("\"marker\""));
    assert_eq!(member.recv_text(PROMPTLY).as_deref(), Some("\"marker\""));

    join("2", "room");
    leave("1", "room");
    send("room", "second");
    assert_eq!(other.recv_text(PROMPTLY).as_deref(), Some("\"second\""));
    send("marker", "marker");
    assert_eq!(
        member.recv_text(PROMPTLY).as_deref(),
        Some("\"marker\""),
        "a member who left through the .NET helper gets no more messages"
    );
    assert_eq!(other.recv_text(PROMPTLY).as_deref(), Some("\"marker\""));

    // A broadcast in FreeIM's shape: Item2 null.
    let broadcast = r#"__FreeIM__(ChanMessage){"Item1":0,"Item2":null,"Item3":"\"all\""}"#;
    publish(&redis, &node.channel(), broadcast);
    assert_eq!(member.recv_text(PROMPTLY).as_deref(), Some("\"all\""));
    assert_eq!(other.recv_text(PROMPTLY).as_deref(), Some("\"all\""));
}

/// FreeIM's node handles the commands of its channel one after another, so a
/// client reads messages in the order they were published, whatever their
/// kind (a business service may send "you were added to the room" before the
/// room's first message, or the reverse).
#[test]
fn channel_direct_and_broadcast_messages_keep_their_publish_order() {
    let (_redis, _node, im) = one_node();
    let mut client = connect_as(&im, 1, "reader");
    let mut expected = Vec::new();
    for round in 0..20 {
        let chan = format!("room{round}"); // a channel the node has not seen yet
        im.join_chan(1, &[chan.as_str()]).unwrap();
        im.send_chan_message(0, &chan, &format!("chan {round}"))
            .unwrap();
        im.send_message(0, &[1], &format!("direct {round}"), false)
            .unwrap();
        im.send_broadcast_message(&format!("broadcast {round}"))
            .unwrap();
        for kind in ["chan", "direct", "broadcast"] {
            expected.push(serde_json::to_string(&format!("{kind} {round}")).unwrap());
        }
    }
    let received: Vec<String> = (0..expected.len())
        .map(|_| client.recv_text(PROMPTLY).expect("a message"))
        .collect();
    assert_eq!(received, expected);
}

#[test]
fn commands_are_read_with_their_fields_in_any_order() {
    let (redis, node, im) = one_node();
    let mut alice = connect_as(&im, 1, "alice");
    let mut bob = connect_as(&im, 2, "bob");
    im.join_chan(2, &["room"]).unwrap();
    let channel = node.channel();
    publish(
        &redis,
        &channel,
        r#"{"Item4":true,"Item3":"\"reordered\"","Item2":[2],"Item1":1}"#,
    );
    assert_eq!(bob.recv_text(PROMPTLY).as_deref(), Some("\"reordered\""));
    assert_eq!(
        alice.recv_text(PROMPTLY),
        Some(receipt_text("\"reordered\"", DELIVERED))
    );
    publish(
        &redis,
        &channel,
        r#"__FreeIM__(ChanMessage){"Item3":"\"chan reordered\"","Item2":"room","Item1":0}"#,
    );
    assert_eq!(
        bob.recv_text(PROMPTLY).as_deref(),
        Some("\"chan reordered\"")
    );
}

#[test]
fn concurrent_publishers_never_interleave_frames_on_a_socket() {
    let (_redis, _node, im) = one_node();
    let mut sockets = [connect_as(&im, 1, "a"), connect_as(&im, 1, "b")];
    im.join_chan(1, &["room"]).unwrap();
    let padding = "p".repeat(3000); // frames of several KB, written in parts
    std::thread::scope(|s| {
        for t in 0..4 {
            let (im, padding) = (&im, &padding);
            s.spawn(move || {
                for i in 0..50 {
                    let message = json!({"t": t, "i": i, "pad": padding});
                    match i % 3 {
                        0 => im.send_message(0, &[1], &message, false).unwrap(),
                        1 => im.send_chan_message(0, "room", &message).unwrap(),
                        _ => im.send_broadcast_message(&message).unwrap(),
                    }
                }
            });
        }
    });
    for (n, socket) in sockets.iter_mut().enumerate() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let text = socket.recv_text(PROMPTLY).expect("a message");
            let value: Value = serde_json::from_str(&text).expect("an intact frame");
            assert_eq!(value["pad"], json!(padding), "socket {n}");
            let key = (value["t"].as_i64().unwrap(), value["i"].as_i64().unwrap());
            assert!(seen.insert(key), "socket {n}: {key:?} twice");
        }
        assert_eq!(seen.len(), 200, "socket {n}");
    }
}
