//! Redis going away, freezing and coming back; and many threads at once.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{helper, raw, Sniffer, IO_TIMEOUT, PATIENCE};
use imhelper::{Error, ImHelper};
use testkit::{wait_until, RedisServer};

/// One named call whose result is reduced to `()`.
type Call<'a> = (&'static str, Box<dyn Fn() -> imhelper::Result<()> + 'a>);

/// Every kind of call once; all must fail the same way while Redis is out.
fn every_call_fails_fast(helper: &ImHelper) {
    let calls: Vec<Call> = vec![
        (
            "prev_connect_server",
            Box::new(|| helper.prev_connect_server(1, "m").map(drop)),
        ),
        (
            "send_message",
            Box::new(|| helper.send_message(1, &[2], "x", false)),
        ),
        (
            "send_chan_message",
            Box::new(|| helper.send_chan_message(1, "c", "x")),
        ),
        (
            "send_broadcast_message",
            Box::new(|| helper.send_broadcast_message("x")),
        ),
        ("force_offline", Box::new(|| helper.force_offline(1))),
        (
            "get_client_list_by_online",
            Box::new(|| helper.get_client_list_by_online().map(drop)),
        ),
        ("has_online", Box::new(|| helper.has_online(1).map(drop))),
        (
            "has_online_many",
            Box::new(|| helper.has_online_many(&[1, 2]).map(drop)),
        ),
        ("join_chan", Box::new(|| helper.join_chan(1, &["c"]))),
        ("leave_chan", Box::new(|| helper.leave_chan(1, &["c"]))),
        (
            "leave_chan_clients",
            Box::new(|| helper.leave_chan_clients("c", &[1])),
        ),
        (
            "get_chan_client_list",
            Box::new(|| helper.get_chan_client_list("c").map(drop)),
        ),
        (
            "get_chan_list",
            Box::new(|| helper.get_chan_list().map(drop)),
        ),
        (
            "get_chan_list_by_client_id",
            Box::new(|| helper.get_chan_list_by_client_id(1).map(drop)),
        ),
        (
            "get_chan_online",
            Box::new(|| helper.get_chan_online("c").map(drop)),
        ),
    ];
    for (name, call) in calls {
        let started = Instant::now();
        let result = call();
        assert!(matches!(result, Err(Error::Redis(_))), "{name}: {result:?}");
        let took = started.elapsed();
        assert!(took < IO_TIMEOUT * 3, "{name} took {took:?}");
    }
}

#[test]
fn calls_fail_while_redis_is_down_and_recover_after_restart() {
    let mut redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    helper.join_chan(1, &["c"]).unwrap();

    redis.kill();
    every_call_fails_fast(&helper);

    redis.restart(); // empty again
    helper.join_chan(1, &["c"]).unwrap();
    assert_eq!(helper.get_chan_online("c").unwrap(), 1);
    assert!(!helper.has_online(1).unwrap());
}

#[test]
fn idle_connections_from_before_a_restart_are_replaced_silently() {
    let mut redis = RedisServer::start();
    let helper = Arc::new(helper(&redis, &["n:1"]));
    // Fill the pool with several connections.
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let helper = Arc::clone(&helper);
            std::thread::spawn(move || {
                for _ in 0..20 {
                    helper.join_chan(i, &["c"]).unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }

    redis.kill();
    redis.restart();
    // No call in between: every pooled connection is dead, yet the first
    // call after the restart succeeds.
    helper.join_chan(7, &["c"]).unwrap();
    // The dead connection was caught by the retry, or (when the restart
    // took over a second) by the idle check before reuse.
    let stats = helper.stats();
    assert_eq!(stats.retried + stats.stale_replaced, 1, "{stats:?}");
    assert_eq!(helper.get_chan_client_list("c").unwrap(), vec![7]);
    for _ in 0..10 {
        assert!(!helper.has_online(7).unwrap());
    }
}

fn redis_pid(redis: &RedisServer) -> String {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut raw(redis))
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .expect("INFO has process_id")
        .trim()
        .to_string()
}

fn signal(pid: &str, sig: &str) {
    let status = Command::new("kill").args([sig, pid]).status().unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

#[test]
fn a_frozen_redis_makes_calls_time_out_not_hang() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    helper.join_chan(1, &["c"]).unwrap(); // one pooled connection
    let bus = helper.event_bus(|_| {}, |_| {}).unwrap();
    let pid = redis_pid(&redis);
    signal(&pid, "-STOP");

    // Pooled connection, then fresh connections (accepted by the kernel,
    // never answered): all bounded by the I/O timeout.
    for _ in 0..3 {
        let started = Instant::now();
        let result = helper.has_online(1);
        assert!(matches!(result, Err(Error::Redis(_))), "{result:?}");
        assert!(
            started.elapsed() < IO_TIMEOUT * 3,
            "{:?}",
            started.elapsed()
        );
    }
    let started = Instant::now();
    assert!(matches!(helper.events(), Err(Error::Redis(_))));
    assert!(started.elapsed() < IO_TIMEOUT * 4);
    let started = Instant::now();
    bus.stop();
    assert!(started.elapsed() < Duration::from_secs(2));

    signal(&pid, "-CONT");
    assert!(wait_until(PATIENCE, || helper.has_online(1).is_ok()));
    assert_eq!(helper.get_chan_online("c").unwrap(), 1);
}

#[test]
fn eight_threads_at_once() {
    const THREADS: i64 = 8;
    const PER_THREAD: i64 = 40;
    let redis = RedisServer::start();
    let helper = Arc::new(helper(&redis, &["a:1", "b:2"]));
    let sniffer = Sniffer::start(
        &redis,
        &[
            "im_v2_wsServera:1".to_string(),
            "im_v2_wsServerb:2".to_string(),
        ],
    );

    let barrier = Arc::new(std::sync::Barrier::new(THREADS as usize));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let helper = Arc::clone(&helper);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                // Everybody joins and leaves the same membership at once.
                helper.join_chan(1, &["race"]).unwrap();
                barrier.wait();
                helper.leave_chan(1, &["race"]).unwrap();
                // Ids from 1: like FreeIM, member reads never list 0.
                for i in 1..=PER_THREAD {
                    let id = t * 1000 + i;
                    helper.join_chan(id, &["shared", &format!("t{t}")]).unwrap();
                    helper.join_chan(id, &["shared"]).unwrap();
                    helper.send_message(id, &[id, id + 1], "m", false).unwrap();
                    assert!(!helper.has_online(id).unwrap());
                    let url = helper.prev_connect_server(id, "meta").unwrap();
                    assert!(
                        url.starts_with(&format!("ws://{}/ws?token=", helper.select_server(id)))
                    );
                }
                helper
                    .leave_chan_clients(
                        &format!("t{t}"),
                        &(1..=PER_THREAD).map(|i| t * 1000 + i).collect::<Vec<_>>(),
                    )
                    .unwrap();
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }

    assert_eq!(helper.get_chan_online("race").unwrap(), 0);
    assert_eq!(
        helper.get_chan_online("shared").unwrap(),
        THREADS * PER_THREAD
    );
    assert_eq!(
        helper.get_chan_client_list("shared").unwrap().len() as i64,
        THREADS * PER_THREAD
    );
    let list = helper.get_chan_list().unwrap();
    assert_eq!(list.len(), 1, "only 'shared' is left: {list:?}");
    // id and id+1 land on different nodes: two publishes per send.
    let mut published = 0;
    while sniffer.next(Duration::from_secs(2)).is_some() {
        published += 1;
    }
    assert_eq!(published, THREADS * PER_THREAD * 2);
}
