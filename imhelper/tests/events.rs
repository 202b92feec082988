//! The event bus and event stream: delivery from raw PUBLISHes, skipping
//! bad payloads, stopping, and surviving a Redis restart.

mod common;

use std::time::{Duration, Instant};

use common::{helper, helper_on, info_field, publish, subscribers, PATIENCE, QUIET};
use crossbeam_channel::Receiver;
use imhelper::{ClientEvent, Error, ImHelper, PresenceEvent};
use testkit::{wait_until, Forwarder, RedisServer};

const ONLINE: &str = "evt_im_v2_wsOnline";
const OFFLINE: &str = "evt_im_v2_wsOffline";

fn client(id: i64, meta: &str) -> ClientEvent {
    ClientEvent {
        client_id: id,
        client_meta: meta.to_string(),
    }
}

/// A bus whose callbacks forward into a channel.
fn bus(helper: &ImHelper) -> (imhelper::EventBus, Receiver<PresenceEvent>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let tx2 = tx.clone();
    let bus = helper
        .event_bus(
            move |c| tx.send(PresenceEvent::Online(c)).unwrap(),
            move |c| tx2.send(PresenceEvent::Offline(c)).unwrap(),
        )
        .unwrap();
    (bus, rx)
}

#[test]
fn bus_delivers_online_and_offline_in_order() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    let (_bus, rx) = bus(&helper);

    assert_eq!(
        publish(&redis, ONLINE, r#"{"Item1":42,"Item2":"alice"}"#),
        1
    );
    assert_eq!(publish(&redis, OFFLINE, r#"{"Item2":"bob","Item1":-7}"#), 1);
    assert_eq!(publish(&redis, ONLINE, r#"{"Item1":1,"Item2":null}"#), 1);

    assert_eq!(
        rx.recv_timeout(PATIENCE).unwrap(),
        PresenceEvent::Online(client(42, "alice"))
    );
    assert_eq!(
        rx.recv_timeout(PATIENCE).unwrap(),
        PresenceEvent::Offline(client(-7, "bob"))
    );
    assert_eq!(
        rx.recv_timeout(PATIENCE).unwrap(),
        PresenceEvent::Online(client(1, ""))
    );
}

#[test]
fn bad_payloads_are_skipped() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    let (_bus, rx) = bus(&helper);
    for bad in [
        "",
        "junk",
        "{}",
        r#"{"Item1":"x"}"#,
        "[1,2]",
        r#"{"Item1":1.5}"#,
    ] {
        publish(&redis, ONLINE, bad);
        publish(&redis, OFFLINE, bad);
    }
    publish(
        &redis,
        OFFLINE,
        r#"{"Item1":5,"Item2":"ok \"quoted\" 你好"}"#,
    );
    assert_eq!(
        rx.recv_timeout(PATIENCE).unwrap(),
        PresenceEvent::Offline(client(5, "ok \"quoted\" 你好"))
    );
    assert!(rx.recv_timeout(QUIET).is_err());
}

#[test]
fn other_prefixes_are_not_heard() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    let (_bus, rx) = bus(&helper);
    assert_eq!(
        publish(&redis, "evt_im_v2_chatOnline", r#"{"Item1":1,"Item2":""}"#),
        0
    );
    assert!(rx.recv_timeout(QUIET).is_err());
}

#[test]
fn stop_unsubscribes_and_ends_callbacks() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    let (bus, rx) = bus(&helper);
    assert_eq!(subscribers(&redis, ONLINE), 1);
    assert_eq!(subscribers(&redis, OFFLINE), 1);
    let started = Instant::now();
    bus.stop();
    assert!(started.elapsed() < Duration::from_secs(2));
    // The callbacks (and with them the senders) are gone.
    assert!(matches!(
        rx.recv_timeout(PATIENCE),
        Err(crossbeam_channel::RecvTimeoutError::Disconnected)
    ));
    assert!(wait_until(PATIENCE, || subscribers(&redis, ONLINE) == 0));
}

#[test]
fn dropping_the_bus_stops_it() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    let (bus, _rx) = bus(&helper);
    drop(bus);
    assert!(wait_until(PATIENCE, || subscribers(&redis, OFFLINE) == 0));
}

#[test]
fn stream_yields_events_and_times_out_when_quiet() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    let mut events = helper.events().unwrap();
    assert!(events.recv_timeout(Duration::from_millis(100)).is_none());
    publish(&redis, ONLINE, r#"{"Item1":3,"Item2":"m"}"#);
    publish(&redis, OFFLINE, r#"{"Item1":3,"Item2":"m"}"#);
    assert_eq!(
        events.recv_timeout(PATIENCE),
        Some(PresenceEvent::Online(client(3, "m")))
    );
    // The iterator form blocks for the next one.
    assert_eq!(events.next(), Some(PresenceEvent::Offline(client(3, "m"))));
    drop(events);
    assert!(wait_until(PATIENCE, || subscribers(&redis, ONLINE) == 0));
}

#[test]
fn starting_while_redis_is_down_is_an_error() {
    let mut redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    redis.kill();
    let started = Instant::now();
    assert!(matches!(helper.events(), Err(Error::Redis(_))));
    assert!(matches!(
        helper.event_bus(|_| {}, |_| {}),
        Err(Error::Redis(_))
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Publishes `payload` until a subscriber hears it (the listener has
/// resubscribed), then returns.
fn publish_until_heard(redis: &RedisServer, channel: &str, payload: &str) {
    assert!(
        wait_until(PATIENCE, || publish(redis, channel, payload) > 0),
        "nobody resubscribed to {channel}"
    );
}

#[test]
fn bus_reconnects_after_redis_restarts() {
    let mut redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    let (_bus, rx) = bus(&helper);
    publish(&redis, ONLINE, r#"{"Item1":1,"Item2":"before"}"#);
    assert_eq!(
        rx.recv_timeout(PATIENCE).unwrap(),
        PresenceEvent::Online(client(1, "before"))
    );

    for round in 0..2 {
        redis.kill();
        std::thread::sleep(Duration::from_millis(300)); // let it fail and back off
        redis.restart();
        let meta = format!("after-{round}");
        publish_until_heard(
            &redis,
            OFFLINE,
            &format!(r#"{{"Item1":2,"Item2":"{meta}"}}"#),
        );
        assert_eq!(
            rx.recv_timeout(PATIENCE).unwrap(),
            PresenceEvent::Offline(client(2, &meta))
        );
        assert_eq!(subscribers(&redis, ONLINE), 1, "exactly one subscription");
    }
}

#[test]
fn stream_reconnects_after_redis_restarts() {
    let mut redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    let mut events = helper.events().unwrap();
    redis.kill();
    redis.restart();
    publish_until_heard(&redis, ONLINE, r#"{"Item1":9,"Item2":"back"}"#);
    assert_eq!(
        events.recv_timeout(PATIENCE),
        Some(PresenceEvent::Online(client(9, "back")))
    );
}

#[test]
fn stop_is_prompt_while_redis_is_down() {
    let mut redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    let (bus, _rx) = bus(&helper);
    redis.kill();
    std::thread::sleep(Duration::from_secs(3)); // backoff has reached its 2 s cap
    let started = Instant::now();
    bus.stop();
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn a_callback_may_drop_its_own_bus() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    let slot: std::sync::Arc<parking_lot::Mutex<Option<imhelper::EventBus>>> = Default::default();
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    let inner = std::sync::Arc::clone(&slot);
    let bus = helper
        .event_bus(
            move |_| {
                drop(inner.lock().take());
                let _ = done_tx.send(());
            },
            |_| {},
        )
        .unwrap();
    *slot.lock() = Some(bus);
    publish(&redis, ONLINE, r#"{"Item1":1,"Item2":""}"#);
    done_rx.recv_timeout(PATIENCE).unwrap();
    assert!(wait_until(PATIENCE, || subscribers(&redis, ONLINE) == 0));
}

#[test]
fn a_deaf_link_is_noticed_by_ping_and_replaced() {
    const LIVENESS: Duration = Duration::from_secs(1);
    let redis = RedisServer::start();
    let forwarder = Forwarder::start(redis.port());
    let helper = helper_on(&forwarder.url(), &["n:1"], |o| o.liveness = LIVENESS);
    let (bus, rx) = bus(&helper);
    assert!(bus.is_connected());
    publish(&redis, ONLINE, r#"{"Item1":1,"Item2":"before"}"#);
    assert_eq!(
        rx.recv_timeout(PATIENCE).unwrap(),
        PresenceEvent::Online(client(1, "before"))
    );

    // The link stays open but passes nothing on: no error ever comes, and
    // Redis still counts the old subscription. Only PING can tell.
    forwarder.freeze();
    let frozen = Instant::now();
    let mut sent = 0;
    let heard = loop {
        assert!(
            frozen.elapsed() < Duration::from_secs(5),
            "no event heard {:?} after the freeze ({sent} published); {bus:?}",
            frozen.elapsed()
        );
        sent += 1;
        publish(
            &redis,
            OFFLINE,
            &format!(r#"{{"Item1":{sent},"Item2":"after"}}"#),
        );
        if let Ok(event) = rx.recv_timeout(Duration::from_millis(100)) {
            break event;
        }
    };
    let took = frozen.elapsed();
    eprintln!("deaf link replaced: first event heard {took:?} after the freeze; {bus:?}");
    let PresenceEvent::Offline(heard) = heard else {
        panic!("expected an offline event, got {heard:?}");
    };
    assert_eq!(heard.client_meta, "after");
    // Nothing is declared dead before a PING went unanswered for a third.
    assert!(took >= LIVENESS / 2, "{took:?}");
    assert!(bus.liveness_failures() >= 1, "{bus:?}");
    assert!(bus.reconnects() >= 1, "{bus:?}");
    assert!(bus.is_connected());
    assert_eq!(forwarder.accepted(), 2, "one new connection, not a storm");
}

#[test]
fn a_quiet_healthy_link_is_pinged_not_dropped() {
    let redis = RedisServer::start();
    let helper = helper_on(&redis.url(), &["n:1"], |o| {
        // PING after 500 ms of silence, 500 ms for the answer: room for a
        // loaded machine.
        o.liveness = Duration::from_millis(1500);
    });
    let (bus, rx) = bus(&helper);
    std::thread::sleep(Duration::from_millis(2600));
    let pings: u64 = info_field(&redis, "commandstats", "cmdstat_ping")
        .strip_prefix("calls=")
        .and_then(|rest| rest.split(',').next())
        .and_then(|calls| calls.parse().ok())
        .unwrap();
    assert!(pings >= 3, "{pings} PINGs in 2.6 s of silence");
    assert_eq!(
        (bus.liveness_failures(), bus.reconnects()),
        (0, 0),
        "{bus:?}"
    );
    assert!(bus.is_connected());
    publish(&redis, ONLINE, r#"{"Item1":4,"Item2":"still here"}"#);
    assert_eq!(
        rx.recv_timeout(PATIENCE).unwrap(),
        PresenceEvent::Online(client(4, "still here"))
    );
}

#[test]
fn a_panicking_callback_does_not_end_the_bus() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    let (tx, rx) = crossbeam_channel::unbounded();
    let tx2 = tx.clone();
    let bus = helper
        .event_bus(
            move |c| {
                assert_ne!(c.client_id, 1, "the test's callback panics on client 1");
                tx.send(PresenceEvent::Online(c)).unwrap();
            },
            move |c| tx2.send(PresenceEvent::Offline(c)).unwrap(),
        )
        .unwrap();
    publish(&redis, ONLINE, r#"{"Item1":1,"Item2":"boom"}"#);
    publish(&redis, ONLINE, r#"{"Item1":2,"Item2":"next"}"#);
    publish(&redis, OFFLINE, r#"{"Item1":2,"Item2":"next"}"#);
    assert_eq!(
        rx.recv_timeout(PATIENCE).unwrap(),
        PresenceEvent::Online(client(2, "next"))
    );
    assert_eq!(
        rx.recv_timeout(PATIENCE).unwrap(),
        PresenceEvent::Offline(client(2, "next"))
    );
    assert_eq!(bus.callback_panics(), 1);
    assert!(bus.is_connected());
    assert_eq!(
        subscribers(&redis, ONLINE),
        1,
        "same subscription, no reconnect"
    );
    assert_eq!(bus.reconnects(), 0);
}

#[test]
fn is_connected_follows_a_redis_outage() {
    let mut redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    let mut events = helper.events().unwrap();
    assert!(events.is_connected());
    redis.kill();
    assert!(wait_until(PATIENCE, || !events.is_connected()));
    redis.restart();
    assert!(wait_until(PATIENCE, || events.is_connected()));
    assert_eq!(events.reconnects(), 1);
    assert_eq!(
        events.liveness_failures(),
        0,
        "a closed link is not a deaf one"
    );
    publish_until_heard(&redis, ONLINE, r#"{"Item1":5,"Item2":"back"}"#);
    assert_eq!(
        events.recv_timeout(PATIENCE),
        Some(PresenceEvent::Online(client(5, "back")))
    );
}
