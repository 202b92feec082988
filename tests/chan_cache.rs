//! The node's channel-member cache never serves stale members.

mod common;

use std::time::Duration;

use common::*;
use imhelper::{ImHelper, ImHelperOptions};

const QUIET: Duration = Duration::from_millis(300);

fn setup() -> (TestRedis, Node, ImHelper) {
    let redis = TestRedis::start();
    let node = Node::start(&redis);
    let im = ImHelper::new(ImHelperOptions::new(redis.url(), vec![node.server.clone()])).unwrap();
    (redis, node, im)
}

fn connect(im: &ImHelper, id: i64) -> Client {
    Client::connect(&im.prev_connect_server(id, "m").unwrap()).unwrap()
}

#[test]
fn joins_and_leaves_between_messages_are_seen_at_once() {
    let (_redis, _node, im) = setup();
    let mut alice = connect(&im, 1);
    let mut bob = connect(&im, 2);
    im.join_chan(1, &["room"]).unwrap();
    im.send_chan_message(0, "room", "first").unwrap();
    assert_eq!(alice.recv_text(PROMPTLY).as_deref(), Some("\"first\""));
    assert!(bob.receives_nothing(QUIET));

    // The members are cached now; a join must be seen by the very next message.
    im.join_chan(2, &["room"]).unwrap();
    im.send_chan_message(0, "room", "second").unwrap();
    assert_eq!(alice.recv_text(PROMPTLY).as_deref(), Some("\"second\""));
    assert_eq!(bob.recv_text(PROMPTLY).as_deref(), Some("\"second\""));

    im.leave_chan(1, &["room"]).unwrap();
    im.send_chan_message(0, "room", "third").unwrap();
    assert_eq!(bob.recv_text(PROMPTLY).as_deref(), Some("\"third\""));
    assert!(
        alice.receives_nothing(QUIET),
        "a member who left gets nothing"
    );
}

#[test]
fn a_last_socket_closing_updates_the_cache() {
    let (_redis, _node, im) = setup();
    let alice = connect(&im, 1);
    im.join_chan(1, &["room"]).unwrap();
    im.send_chan_message(0, "room", "warm the cache").unwrap();
    drop(alice);
    assert!(wait_until(PROMPTLY, || im
        .get_chan_client_list("room")
        .unwrap()
        .is_empty()));
    // Alice comes back without joining: she is no member any more.
    let mut alice = connect(&im, 1);
    im.send_chan_message(0, "room", "after").unwrap();
    assert!(alice.receives_nothing(QUIET));
}

#[test]
fn messages_without_the_cache_marker_read_members_afresh() {
    let (redis, node, im) = setup();
    let mut alice = connect(&im, 1);
    let mut bob = connect(&im, 2);
    im.join_chan(1, &["room"]).unwrap();
    im.send_chan_message(0, "room", "warm").unwrap();
    assert_eq!(alice.recv_text(PROMPTLY).as_deref(), Some("\"warm\""));

    // A .NET ImHelper joins without announcing it, then sends (no "Item4").
    assert_eq!(
        redis.raw_command(&["HSET", &owner_keys(&redis, 2).chan("room"), "2", "0"]),
        ":1"
    );
    let dotnet = r#"__FreeIM__(ChanMessage){"Item1":0,"Item2":"room","Item3":"\"dotnet\""}"#;
    assert_eq!(publish(&redis, &node.channel(), dotnet), 1);
    assert_eq!(alice.recv_text(PROMPTLY).as_deref(), Some("\"dotnet\""));
    assert_eq!(bob.recv_text(PROMPTLY).as_deref(), Some("\"dotnet\""));
}

/// How many HKEYS commands Redis has run (every master, on a cluster).
fn hkeys_calls(redis: &TestRedis) -> u64 {
    let calls = |port: u16| -> u64 {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
        let mut conn = client.get_connection().unwrap();
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut conn)
            .unwrap();
        info.lines()
            .find_map(|line| line.strip_prefix("cmdstat_hkeys:calls="))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |calls| calls.parse().unwrap())
    };
    redis.masters().into_iter().map(calls).sum()
}

#[test]
fn repeated_channel_messages_cost_one_member_read() {
    let (redis, _node, im) = setup();
    let mut alice = connect(&im, 1);
    im.join_chan(1, &["room"]).unwrap();
    let before = hkeys_calls(&redis);
    for n in 0..20 {
        im.send_chan_message(0, "room", &n).unwrap();
        assert_eq!(alice.recv_text(PROMPTLY), Some(n.to_string()));
    }
    assert_eq!(
        hkeys_calls(&redis) - before,
        1,
        "members read once, then cached"
    );
}
