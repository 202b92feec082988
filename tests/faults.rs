//! Faults: Redis going away and coming back empty, and graceful drain.

mod common;

use std::time::Duration;

use common::*;
use imhelper::{ImHelper, ImHelperOptions};
use tungstenite::protocol::frame::coding::CloseCode;

fn helper(redis: &TestRedis, node: &Node) -> ImHelper {
    ImHelper::new(ImHelperOptions::new(redis.url(), vec![node.server.clone()])).unwrap()
}

#[test]
fn redis_restarted_empty_keeps_sockets_and_restores_presence() {
    let mut redis = TestRedis::start();
    let node = Node::start(&redis);
    let im = helper(&redis, &node);
    let mut alice = Client::connect(&im.prev_connect_server(1, "a").unwrap()).unwrap();
    let mut bob = Client::connect(&im.prev_connect_server(2, "b").unwrap()).unwrap();
    assert!(wait_until(PROMPTLY, || online_count(&redis, 2).as_deref() == Some("1")));

    assert_eq!(redis.raw_command(&["SET", "marker", "1"]), "+OK");
    redis.kill();
    assert!(
        im.send_message(1, &[2], "lost", false).is_err(),
        "helper errors while Redis is down"
    );
    redis.restart();
    // (The node may restore presence before any read here: a key only the
    // test writes shows the restarted Redis is empty.)
    assert_eq!(
        redis.raw_command(&["GET", "marker"]),
        "$-1",
        "the restarted Redis is empty"
    );

    assert!(
        wait_until(Duration::from_secs(10), || online_count(&redis, 1)
            .as_deref()
            == Some("1")
            && online_count(&redis, 2).as_deref() == Some("1")),
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
    let redis = TestRedis::start();
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

#[test]
fn pending_upgrades_are_capped_with_503() {
    let redis = TestRedis::start();
    let server = format!("127.0.0.1:{}", free_port());
    let args = ["--threads", "1", "--max-pending-upgrades", "2"];
    let node = Node::start_in(&redis, &server, std::slice::from_ref(&server), &args);
    let im = helper(&redis, &node);
    // Node::start_in's readiness probe connected and left: wait until it is gone.
    std::thread::sleep(Duration::from_millis(300));
    let idle: Vec<std::net::TcpStream> = (0..2)
        .map(|_| std::net::TcpStream::connect(&server).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        Client::refusal_status(&im.prev_connect_server(1, "m").unwrap()),
        503
    );
    drop(idle);
    assert!(wait_until(PROMPTLY, || Client::connect(
        &im.prev_connect_server(1, "m").unwrap()
    )
    .is_ok()));
}

#[test]
fn a_slow_reader_is_closed_and_memory_stays_bounded_while_others_get_everything() {
    let redis = TestRedis::start();
    let server = format!("127.0.0.1:{}", free_port());
    // 8 MiB of slack: a reader thread starved of CPU for a moment on a busy
    // machine is not a slow reader; one that never reads overflows it.
    let args = ["--max-send-buffer", "8388608"];
    let node = Node::start_in(&redis, &server, std::slice::from_ref(&server), &args);
    let im = helper(&redis, &node);
    let mut readers: Vec<Client> = (1..=3)
        .map(|id| Client::connect(&im.prev_connect_server(id, "r").unwrap()).unwrap())
        .collect();
    // A tiny receive buffer, never read.
    let _slow = RawWs::open_with_recv_buffer(&im.prev_connect_server(99, "slow").unwrap(), 4096);
    assert!(wait_until(PROMPTLY, || im.has_online(99).unwrap()));

    let rss_before = rss_kib(node.pid().unwrap());
    const MESSAGES: usize = 4000;
    let message = "x".repeat(8000);
    // At most 256 messages (2 MB) in flight to a reader that keeps reading.
    let readers_done = broadcast_while_counting(&im, &mut readers, MESSAGES, &message, 256);
    assert_eq!(
        readers_done,
        vec![MESSAGES; 3],
        "readers that keep up lose nothing"
    );
    assert!(
        wait_until(PROMPTLY, || !im.has_online(99).unwrap()),
        "the slow reader was closed"
    );
    let grown = rss_kib(node.pid().unwrap()).saturating_sub(rss_before);
    assert!(
        grown < 24 * 1024,
        "node grew by {grown} KiB for one slow reader"
    );
}

#[test]
fn a_thousand_readers_that_stop_reading_during_a_broadcast_storm_are_closed_with_memory_bounded() {
    const SLOW: i64 = 1000;
    const MESSAGES: usize = 1500;
    const CAP: u64 = 256 * 1024;
    let redis = TestRedis::start();
    let server = format!("127.0.0.1:{}", free_port());
    let args = ["--max-send-buffer", "262144", "--max-push-bytes", "65536"];
    let node = Node::start_in(&redis, &server, std::slice::from_ref(&server), &args);
    let pid = node.pid().unwrap();
    let im = helper(&redis, &node);
    let mut readers: Vec<Client> = (1..=3)
        .map(|id| Client::connect(&im.prev_connect_server(id, "r").unwrap()).unwrap())
        .collect();
    let _slow: Vec<RawWs> = (1000..1000 + SLOW)
        .map(|id| RawWs::open_with_recv_buffer(&im.prev_connect_server(id, "slow").unwrap(), 4096))
        .collect();
    assert!(wait_until(PROMPTLY, || im
        .get_client_list_by_online()
        .unwrap()
        .len()
        == 3 + SLOW as usize));

    let rss_before = rss_kib(pid);
    let storming = std::sync::atomic::AtomicBool::new(true);
    // 3 MB per reader: well past the cap plus what the kernel buffers for a
    // reader that never reads.
    let message = "x".repeat(2000);
    let (received, peak) = std::thread::scope(|scope| {
        let peak = scope.spawn(|| {
            let mut peak = 0;
            while storming.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        });
        // At most 64 messages (128 KB, half the cap) in flight to a reader
        // that keeps reading.
        let received = broadcast_while_counting(&im, &mut readers, MESSAGES, &message, 64);
        storming.store(false, std::sync::atomic::Ordering::Relaxed);
        (received, peak.join().unwrap())
    });
    assert_eq!(
        received,
        vec![MESSAGES; 3],
        "readers that keep up lose nothing"
    );
    assert!(
        wait_until(PROMPTLY, || im.get_client_list_by_online().unwrap().len()
            == 3),
        "every reader that stopped was closed (offline)"
    );
    // Unbounded, the node would hold ~3 MB for each of the 1,000 (3 GB); the
    // cap bounds each queue by 256 KiB of messages (256 MiB if every reader
    // held copies). Queues share the frames: the 3 MB of messages once, plus
    // 16 B per queued delivery (~131 each before the cap): ~5 MB, measured.
    let grown = peak.saturating_sub(rss_before);
    let copies = SLOW as u64 * CAP / 1024;
    assert!(
        grown < copies / 10,
        "peak growth {grown} KiB; one copy per reader would be {copies} KiB"
    );
}

/// Broadcasts `message` `count` times while each reader counts what it
/// receives (stopping at the first silence of `PROMPTLY`); returns each
/// reader's count. The broadcaster never runs more than `window` messages
/// ahead of the slowest counting reader, so however the machine schedules
/// the reader threads, a reader that keeps reading never has more than
/// `window` messages queued for it at the node.
fn broadcast_while_counting(
    im: &ImHelper,
    readers: &mut [Client],
    count: usize,
    message: &str,
    window: usize,
) -> Vec<usize> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let received: Vec<AtomicUsize> = readers.iter().map(|_| AtomicUsize::new(0)).collect();
    std::thread::scope(|scope| {
        let counters: Vec<_> = readers
            .iter_mut()
            .zip(&received)
            .map(|(reader, received)| {
                scope.spawn(move || {
                    while received.load(Ordering::Relaxed) < count
                        && reader.recv_text(PROMPTLY).is_some()
                    {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for sent in 0..count {
            let slowest = || received.iter().map(|r| r.load(Ordering::Relaxed)).min();
            // A reader that lost messages never catches up: stop waiting
            // and let the caller's assertion report its count.
            wait_until(PROMPTLY, || slowest().unwrap_or(sent) + window > sent);
            im.send_broadcast_message(message).unwrap();
        }
        counters.into_iter().for_each(|c| c.join().unwrap());
    });
    received.into_iter().map(AtomicUsize::into_inner).collect()
}
