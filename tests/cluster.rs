//! Two-node clusters: partitioning by `id mod 2`, messages, receipts, channel
//! messages and broadcasts crossing nodes, a dead node's presence taken back
//! by the live one; and nodes that must refuse to start.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::*;
use imhelper::{Error, ImHelper};
use serde_json::json;

fn two_nodes() -> (TestRedis, Vec<Node>, ImHelper) {
    let redis = TestRedis::start();
    let nodes = start_cluster(&redis, 2, &[]);
    let im = helper(&redis, &[&nodes[0], &nodes[1]]);
    (redis, nodes, im)
}

fn receipt_text(original: &str, verdict: &str) -> String {
    json!({"content": original, "receipt": verdict}).to_string()
}

#[test]
fn clients_connect_to_the_node_of_id_mod_2() {
    let (redis, nodes, im) = two_nodes();
    let mut events = im.events().unwrap();
    let mut clients = Vec::new();
    for id in [0i64, 1, 2, 3, 10, 11, -3] {
        let url = im.prev_connect_server(id, &format!("c{id}")).unwrap();
        // Negative ids fall back to the first server, as FreeIM does.
        let owner = if id < 0 { 0 } else { id.rem_euclid(2) as usize };
        assert!(
            url.starts_with(&format!("ws://{}/ws?token=", nodes[owner].server)),
            "client {id}: {url}"
        );
        clients.push((id, Client::connect(&url).expect("upgrade")));
        assert_eq!(next_events(&mut events, 1), [online(id, &format!("c{id}"))]);
    }
    for (id, _) in &clients {
        wait_online(&redis, *id, Some(1));
    }
    // Each node holds exactly its share: a message routed by the same rule
    // reaches every client.
    let ids: Vec<i64> = clients.iter().map(|(id, _)| *id).collect();
    // (Sender 1000: a system message would skip client 0's only socket,
    // since FreeIM's echo rule compares the receiver with the sender id 0.)
    im.send_message(1000, &ids, "everyone by id", false)
        .unwrap();
    for (id, client) in &mut clients {
        assert_eq!(
            client.recv_text(PROMPTLY).as_deref(),
            Some("\"everyone by id\""),
            "client {id}"
        );
    }
}

#[test]
fn a_message_crosses_nodes() {
    let (_redis, _nodes, im) = two_nodes();
    let mut two = connect_as(&im, 2, "on A");
    let mut one = connect_as(&im, 1, "on B");
    let mut three = connect_as(&im, 3, "on B");
    let mut four = connect_as(&im, 4, "on A");

    im.send_message(2, &[1, 3, 4, 2], "from A", false).unwrap();
    for (name, client) in [("1", &mut one), ("3", &mut three), ("4", &mut four)] {
        assert_eq!(
            client.recv_text(PROMPTLY).as_deref(),
            Some("\"from A\""),
            "client {name}"
        );
    }
    im.send_message(1, &[2], "from B", false).unwrap();
    assert_eq!(two.recv_text(PROMPTLY).as_deref(), Some("\"from B\""));
    // The sender's single socket got no echo of "from A".
    im.send_message(0, &[2], "marker", false).unwrap();
    assert_eq!(two.recv_text(PROMPTLY).as_deref(), Some("\"marker\""));
}

#[test]
fn receipts_cross_nodes_back_to_the_sender() {
    let (_redis, _nodes, im) = two_nodes();
    let mut sender = connect_as(&im, 2, "sender on A");
    let mut negative = connect_as(&im, -3, "negative sender on A");
    let mut receiver = connect_as(&im, 1, "receiver on B");

    im.send_message(2, &[1], "ping", true).unwrap();
    assert_eq!(receiver.recv_text(PROMPTLY).as_deref(), Some("\"ping\""));
    assert_eq!(
        sender.recv_text(PROMPTLY),
        Some(receipt_text("\"ping\"", "发送成功"))
    );

    im.send_message(2, &[3], "anyone?", true).unwrap(); // 3 belongs to B, offline
    assert_eq!(
        sender.recv_text(PROMPTLY),
        Some(receipt_text("\"anyone?\"", "用户不在线"))
    );

    im.send_message(-3, &[1], "from a negative id", true)
        .unwrap();
    assert_eq!(
        receiver.recv_text(PROMPTLY).as_deref(),
        Some("\"from a negative id\"")
    );
    assert_eq!(
        negative.recv_text(PROMPTLY),
        Some(receipt_text("\"from a negative id\"", "发送成功"))
    );
}

#[test]
fn a_channel_message_reaches_members_on_both_nodes() {
    let (_redis, _nodes, im) = two_nodes();
    let mut one = connect_as(&im, 1, "B");
    let mut two = connect_as(&im, 2, "A");
    let mut four_a = connect_as(&im, 4, "A");
    let mut four_b = connect_as(&im, 4, "A");
    let mut outsider = connect_as(&im, 3, "B");
    for id in [1, 2, 4] {
        im.join_chan(id, &["room", "marker"]).unwrap();
    }
    im.join_chan(3, &["marker"]).unwrap();

    im.send_chan_message(2, "room", &json!({"hello": "room"}))
        .unwrap();
    for (name, client) in [("1", &mut one), ("4a", &mut four_a), ("4b", &mut four_b)] {
        assert_eq!(
            client.recv_text(PROMPTLY).as_deref(),
            Some(r#"{"hello":"room"}"#),
            "member {name}"
        );
    }
    im.send_chan_message(0, "marker", "marker").unwrap();
    for (name, client) in [
        ("the sender 2", &mut two),
        ("1", &mut one),
        ("4a", &mut four_a),
        ("4b", &mut four_b),
        ("the non-member 3", &mut outsider),
    ] {
        assert_eq!(
            client.recv_text(PROMPTLY).as_deref(),
            Some("\"marker\""),
            "{name}: nothing before the marker"
        );
    }
}

#[test]
fn a_broadcast_reaches_both_nodes() {
    let (_redis, _nodes, im) = two_nodes();
    let mut clients: Vec<Client> = [1, 2, 3, 4, 4]
        .iter()
        .map(|&id| connect_as(&im, id, "x"))
        .collect();
    im.send_broadcast_message("to all").unwrap();
    for (i, client) in clients.iter_mut().enumerate() {
        assert_eq!(
            client.recv_text(PROMPTLY).as_deref(),
            Some("\"to all\""),
            "socket {i}"
        );
    }
}

#[test]
fn publishing_to_a_node_that_is_not_running_is_reported_unrouted() {
    let redis = TestRedis::start();
    let a = format!("127.0.0.1:{}", free_port());
    let b = format!("127.0.0.1:{}", free_port());
    let servers = vec![a.clone(), b.clone()];
    let _node_a = Node::start_in(&redis, &a, &servers, &[]); // B never starts
    let im = ImHelper::new(imhelper::ImHelperOptions::new(redis.url(), servers)).unwrap();
    let mut two = connect_as(&im, 2, "A");

    match im.send_message(0, &[1, 2], "half", false) {
        Err(Error::Unrouted { servers }) => assert_eq!(servers, std::slice::from_ref(&b)),
        other => panic!("expected Unrouted, got {other:?}"),
    }
    assert_eq!(two.recv_text(PROMPTLY).as_deref(), Some("\"half\""));
    match im.send_broadcast_message("all") {
        Err(Error::Unrouted { servers }) => assert_eq!(servers, [b]),
        other => panic!("expected Unrouted, got {other:?}"),
    }
    assert_eq!(two.recv_text(PROMPTLY).as_deref(), Some("\"all\""));
}

#[test]
fn the_live_node_takes_back_a_dead_nodes_presence_when_its_lease_lapses() {
    let (redis, mut nodes, im) = two_nodes();
    let spy = Spy::start(&redis, &event_channels(&redis, "Offline"));
    let mut on_a = connect_as(&im, 2, "A");
    let on_b = connect_as(&im, 1, "B");
    let on_b_too = connect_as(&im, 3, "B");
    im.join_chan(1, &["room"]).unwrap();
    im.join_chan(2, &["room"]).unwrap();
    wait_online(&redis, 1, Some(1));
    wait_online(&redis, 3, Some(1));
    wait_online(&redis, 2, Some(1));

    nodes[1].kill();
    drop((on_b, on_b_too));
    let alive = nodes[1].keys.alive(&nodes[1].server);
    assert_eq!(
        redis.raw_command(&["EXISTS", &alive]),
        ":1",
        "the dead node's lease is still live (precondition)"
    );
    assert_eq!(online_count(&redis, 1).as_deref(), Some("1"));
    // Lapse the lease now instead of waiting out its TTL.
    redis.raw_command(&["DEL", &alive]);

    assert!(
        wait_until(Duration::from_secs(8), || online_count(&redis, 1).is_none()
            && online_count(&redis, 3).is_none()),
        "node A reaps node B's sockets"
    );
    assert_eq!(im.get_client_list_by_online().unwrap(), [2]);
    assert_eq!(im.get_chan_client_list("room").unwrap(), [2]);
    let mut reaped: Vec<String> = spy.collect(QUIET).into_iter().map(|(_, p)| p).collect();
    reaped.sort();
    assert_eq!(
        reaped,
        [r#"{"Item1":1,"Item2":"B"}"#, r#"{"Item1":3,"Item2":"B"}"#]
    );
    im.send_message(0, &[2], "A is fine", false).unwrap();
    assert_eq!(on_a.recv_text(PROMPTLY).as_deref(), Some("\"A is fine\""));
}

fn listen_arg() -> String {
    format!("127.0.0.1:{}", free_port())
}

#[test]
fn a_node_whose_server_is_not_in_servers_refuses_to_start() {
    let redis = TestRedis::start();
    let listen = listen_arg();
    let url = redis.url();
    assert_refuses_to_start(
        &[
            "--listen",
            &listen,
            "--redis",
            &url,
            "--server",
            &listen,
            "--servers",
            "127.0.0.1:1;127.0.0.1:2",
        ],
        "not in --servers",
    );
}

#[test]
fn invalid_flag_values_refuse_to_start_with_one_line() {
    let redis = TestRedis::start();
    let listen = listen_arg();
    let url = redis.url();
    for (extra, needle) in [
        (&["--threads", "0"][..], "--threads"),
        (&["--path", "ws"], "--path"),
        (&["--max-header-bytes", "10"], "--max-header-bytes"),
        (&["--max-message-bytes", "1"], "--max-message-bytes"),
        (&["--handshake-timeout", "0s"], "--handshake-timeout"),
        (&["--max-connections", "0"], "--max-connections"),
    ] {
        let base = ["--listen", listen.as_str(), "--redis", url.as_str()];
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        assert_refuses_to_start(&args, needle);
    }
    assert_refuses_to_start(
        &["--listen", &listen, "--redis", "http://127.0.0.1/"],
        "--redis",
    );
}

/// Values the command-line parser itself rejects (not a number, not a
/// duration, an unknown flag) must also end in one line, not clap's
/// multi-line usage text.
#[test]
fn unparsable_flag_values_refuse_to_start_with_one_line() {
    let redis = TestRedis::start();
    let listen = listen_arg();
    let url = redis.url();
    for (extra, needle) in [
        (&["--threads", "many"][..], "--threads"),
        (
            &["--heartbeat-interval", "10 parsecs"],
            "--heartbeat-interval",
        ),
        (&["--listen", "nowhere"], "--listen"),
        (&["--no-such-flag"], "--no-such-flag"),
    ] {
        let base = ["--listen", listen.as_str(), "--redis", url.as_str()];
        let mut args: Vec<&str> = base.iter().chain(extra).copied().collect();
        if extra[0] == "--listen" {
            args.drain(..2);
        }
        assert_refuses_to_start(&args, needle);
    }
}

#[test]
fn an_unreachable_redis_refuses_to_start_with_one_line() {
    let listen = listen_arg();
    assert_refuses_to_start(
        &["--listen", &listen, "--redis", "redis://127.0.0.1:1/"],
        "Redis",
    );
}

#[test]
fn a_taken_listen_port_refuses_to_start_with_one_line() {
    let redis = TestRedis::start();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let url = redis.url();
    assert_refuses_to_start(&["--listen", &listen, "--redis", &url], &listen);
}

#[test]
fn a_second_node_on_a_port_a_node_holds_refuses_to_start() {
    let redis = TestRedis::start();
    let node = Node::start(&redis);
    let url = redis.url();
    let listen = node.server.clone();
    assert_refuses_to_start(&["--listen", &listen, "--redis", &url], &listen);
}
