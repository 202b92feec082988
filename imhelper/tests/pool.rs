//! The bounded pool against a real Redis: many threads in bursts never open
//! more than `max_connections`; a call that cannot get a connection in time
//! fails with `PoolExhausted` instead of hanging, and the pool recovers.

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{helper_on, info_field, raw};
use imhelper::Error;
use testkit::{wait_until, RedisServer};

/// Connections Redis has accepted so far (each inspection opens one more).
fn connections_received(redis: &RedisServer) -> u64 {
    info_field(redis, "stats", "total_connections_received")
        .parse()
        .unwrap()
}

#[test]
fn thirty_two_threads_in_bursts_stay_within_max_connections() {
    const THREADS: usize = 32;
    const BURSTS: usize = 50;
    const MAX_CONNECTIONS: usize = 16;
    let redis = RedisServer::start();
    let helper = Arc::new(helper_on(&redis.url(), &["n:1"], |o| {
        o.max_connections = MAX_CONNECTIONS;
        // This test is about the bound, not the wait: two shared cores and
        // 32 threads must not turn a slow scheduler into a failure.
        o.pool_wait = Some(Duration::from_secs(10));
    }));
    let before = connections_received(&redis);

    let barrier = Arc::new(Barrier::new(THREADS));
    let started = Instant::now();
    let workers: Vec<_> = (0..THREADS as i64)
        .map(|t| {
            let helper = Arc::clone(&helper);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                for burst in 0..BURSTS as i64 {
                    // Everybody calls at the same moment, 50 times over.
                    barrier.wait();
                    helper.join_chan(t * 1000 + burst, &["burst"]).unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let took = started.elapsed();

    // +1: the inspection connection of this second reading.
    let opened = connections_received(&redis) - before;
    let stats = helper.stats();
    eprintln!(
        "{} calls from {THREADS} threads in {BURSTS} bursts: Redis accepted {opened} connections \
         (incl. 1 for inspection) in {took:?}; {stats:?}",
        THREADS * BURSTS
    );
    assert!(
        opened <= MAX_CONNECTIONS as u64 + 1,
        "{opened} connections for max_connections {MAX_CONNECTIONS}"
    );
    assert!(stats.open <= MAX_CONNECTIONS && stats.opened <= MAX_CONNECTIONS as u64);
    assert_eq!(
        stats.open, stats.idle,
        "no call holds a connection any more"
    );
    assert_eq!((stats.waiting, stats.pool_exhausted), (0, 0));
    // Every call did its work.
    assert_eq!(
        helper.get_chan_online("burst").unwrap(),
        (THREADS * BURSTS) as i64
    );
}

#[test]
fn a_call_finding_every_connection_busy_fails_with_pool_exhausted_after_pool_wait() {
    const POOL_WAIT: Duration = Duration::from_millis(300);
    let redis = RedisServer::start();
    let helper = Arc::new(helper_on(&redis.url(), &["n:1"], |o| {
        o.max_connections = 1;
        o.pool_wait = Some(POOL_WAIT);
        o.io_timeout = Duration::from_secs(10);
    }));
    helper.has_online(1).unwrap(); // the one connection, idle now

    // Redis holds every client's commands for 4 s (room for a loaded
    // machine): the next call keeps the only connection that long.
    let paused: String = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(4000)
        .query(&mut raw(&redis))
        .unwrap();
    assert_eq!(paused, "OK");
    let holder = {
        let helper = Arc::clone(&helper);
        std::thread::spawn(move || helper.has_online(1))
    };
    assert!(wait_until(Duration::from_secs(2), || helper.stats().idle == 0));

    let started = Instant::now();
    let result = helper.has_online(2);
    let took = started.elapsed();
    match result {
        Err(Error::PoolExhausted {
            max_connections,
            waited,
        }) => {
            assert_eq!(max_connections, 1);
            assert!(waited >= POOL_WAIT, "{waited:?}");
        }
        other => panic!("expected PoolExhausted, got {other:?}"),
    }
    assert!(
        took >= POOL_WAIT && took < POOL_WAIT + Duration::from_secs(1),
        "{took:?}"
    );
    let message = helper.has_online(2).unwrap_err().to_string();
    assert!(
        message.contains("1 Redis connections stayed busy"),
        "{message}"
    );

    // The held call finishes once the pause ends, and the pool serves again.
    assert!(!holder.join().unwrap().unwrap());
    assert!(!helper.has_online(3).unwrap());
    let stats = helper.stats();
    assert_eq!(stats.pool_exhausted, 2);
    assert_eq!((stats.open, stats.idle, stats.opened), (1, 1, 1));
}

#[test]
fn a_full_pool_serves_waiting_calls_as_connections_free_up() {
    let redis = RedisServer::start();
    let helper = Arc::new(helper_on(&redis.url(), &["n:1"], |o| {
        o.max_connections = 2;
        o.pool_wait = Some(Duration::from_secs(5));
        o.io_timeout = Duration::from_secs(5);
    }));
    let paused: String = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(3000)
        .query(&mut raw(&redis))
        .unwrap();
    assert_eq!(paused, "OK");
    // Eight calls at once on two connections: six wait, then all succeed.
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let helper = Arc::clone(&helper);
            std::thread::spawn(move || helper.has_online(i))
        })
        .collect();
    assert!(wait_until(Duration::from_millis(2500), || helper
        .stats()
        .waiting
        == 6));
    for worker in workers {
        assert!(!worker.join().unwrap().unwrap());
    }
    let stats = helper.stats();
    assert_eq!(
        (stats.opened, stats.pool_exhausted, stats.waiting),
        (2, 0, 0)
    );
}
