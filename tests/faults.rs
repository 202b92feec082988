//! Faults: Redis going away and coming back empty, and graceful drain.

mod common;

use std::time::Duration;

use common::*;
use imhelper::{ImHelper, ImHelperOptions};
use tungstenite::protocol::frame::coding::CloseCode;

fn helper(redis: &RedisServer, node: &Node) -> ImHelper {
    ImHelper::new(ImHelperOptions::new(redis.url(), vec![node.server.clone()])).unwrap()
}

fn online_count(redis: &RedisServer, id: i64) -> String {
    redis.raw_command(&["HGET", "im_v2_wsOnline", &id.to_string()])
}

#[test]
fn redis_restarted_empty_keeps_sockets_and_restores_presence() {
    let mut redis = RedisServer::start();
    let node = Node::start(&redis);
    let im = helper(&redis, &node);
    let mut alice = Client::connect(&im.prev_connect_server(1, "a").unwrap()).unwrap();
    let mut bob = Client::connect(&im.prev_connect_server(2, "b").unwrap()).unwrap();
    assert!(wait_until(PROMPTLY, || online_count(&redis, 2) == "$1"));

    redis.kill();
    assert!(
        im.send_message(1, &[2], "lost", false).is_err(),
        "helper errors while Redis is down"
    );
    redis.restart();
    assert_eq!(
        online_count(&redis, 1),
        "$-1",
        "the restarted Redis is empty"
    );

    assert!(
        wait_until(Duration::from_secs(10), || online_count(&redis, 1) == "$1"
            && online_count(&redis, 2) == "$1"),
        "presence of held sockets restored"
    );
    let returned = std::time::Instant::now();
    assert!(wait_until(Duration::from_secs(5), || im
        .send_message(1, &[2], "back", false)
        .is_ok()));
    assert_eq!(
        bob.recv_text(PROMPTLY).as_deref(),
        Some("\"back\""),
        "messages flow again"
    );
    assert!(returned.elapsed() < Duration::from_secs(3));
    assert!(
        alice.receives_nothing(Duration::from_millis(100)),
        "sockets stayed open and quiet"
    );
}

#[test]
fn sigterm_drains_with_1001_offline_events_and_clean_presence() {
    let redis = RedisServer::start();
    let mut node = Node::start(&redis);
    let im = helper(&redis, &node);
    let mut events = im.events().unwrap();
    let mut clients: Vec<Client> = (1..=3)
        .map(|id| Client::connect(&im.prev_connect_server(id, "m").unwrap()).unwrap())
        .collect();
    assert!(wait_until(PROMPTLY, || im
        .get_client_list_by_online()
        .unwrap()
        .len()
        == 3));

    let status = node
        .terminate(Duration::from_secs(10))
        .expect("node exits within its drain deadline");
    assert!(status.success(), "exit status {status:?}");
    for client in &mut clients {
        assert_eq!(client.closed_with(PROMPTLY), Some(CloseCode::Away));
    }
    assert!(
        im.get_client_list_by_online().unwrap().is_empty(),
        "no ghost presence"
    );
    let mut offline = 0;
    while let Some(event) = events.recv_timeout(Duration::from_millis(500)) {
        if matches!(event, imhelper::PresenceEvent::Offline(_)) {
            offline += 1;
        }
    }
    assert_eq!(offline, 3);
}
