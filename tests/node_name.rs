//! One name, one live node: a second process started with a running node's
//! `--server` refuses to start; `--take-over` replaces the running node on
//! purpose; a restart after a crash takes its dead run's presence back.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_second_process_with_a_live_nodes_name_refuses_to_start() {
    let redis = TestRedis::start();
    let node = Node::start(&redis);
    let im = helper(&redis, &[&node]);
    let mut client = connect_as(&im, 1, "one");
    let url = redis.url();
    let listen = format!("127.0.0.1:{}", free_port());
    let args = [
        "--redis",
        &url,
        "--listen",
        &listen,
        "--server",
        &node.server,
        "--servers",
        &node.server,
    ];
    assert_refuses_to_start(
        &args,
        &format!("another node process holds --server {}", node.server),
    );
    // The running node lost nothing: presence, sockets, delivery.
    assert_eq!(online_count(&redis, 1).as_deref(), Some("1"));
    im.send_message(0, &[1], "still here", false).unwrap();
    assert_eq!(
        client.recv_text(PROMPTLY).as_deref(),
        Some("\"still here\"")
    );
}

#[test]
fn take_over_replaces_a_live_node_which_exits_leaving_presence_to_it() {
    let redis = TestRedis::start();
    let mut old = Node::start(&redis);
    let im = helper(&redis, &[&old]);
    let _client = connect_as(&im, 1, "on the old node");
    wait_online(&redis, 1, Some(1));

    // E.g. the name moved to another machine behind the same address.
    let listen = format!("127.0.0.1:{}", free_port());
    let mut new = Node::start_named(&redis, &old.server, &listen, &["--take-over"]);
    // The new run cleared what the old one held; the old one exits at its
    // next lease renewal without touching presence.
    wait_online(&redis, 1, None);
    let status = old.wait_exit(Duration::from_secs(8));
    assert_eq!(status.and_then(|s| s.code()), Some(3), "the old node exits");
    let url = im.prev_connect_server(2, "on the new node").unwrap();
    let mut client =
        Client::connect(&url.replace(&old.server, &listen)).expect("the new node serves the name");
    wait_online(&redis, 2, Some(1));
    im.send_message(0, &[2], "hello", false).unwrap();
    assert_eq!(client.recv_text(PROMPTLY).as_deref(), Some("\"hello\""));
    assert!(new.is_running());
}

#[test]
fn a_restart_after_a_crash_takes_the_dead_runs_presence_back_at_once() {
    let redis = TestRedis::start();
    let mut node = Node::start(&redis);
    let im = helper(&redis, &[&node]);
    let _client = connect_as(&im, 1, "before the crash");
    wait_online(&redis, 1, Some(1));
    node.kill(); // SIGKILL: the lease stays for up to 15 s
    let started = Instant::now();
    node.restart();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a dead holder on this host is known at once, not after its lease lapses"
    );
    wait_online(&redis, 1, None);
}

#[test]
fn a_holder_on_another_host_is_watched_until_it_renews_or_lapses() {
    let redis = TestRedis::start();
    let server = format!("127.0.0.1:{}", free_port());
    let url = redis.url();
    let servers = [server.clone()];
    let alive = node_keys(&url, "/ws", &servers, &server).alive(&server);
    let args = [
        "--redis",
        &url,
        "--listen",
        &server,
        "--server",
        &server,
        "--servers",
        &server,
    ];

    // Renewed every 500 ms from "elsewhere": a live node; refused.
    let renewing = std::sync::atomic::AtomicBool::new(true);
    let (code, stderr) = std::thread::scope(|scope| {
        scope.spawn(|| {
            while renewing.load(std::sync::atomic::Ordering::Relaxed) {
                redis.raw_command(&["SET", &alive, "1@elsewhere", "EX", "15"]);
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        let run = run_node_to_exit(&args, Duration::from_secs(10));
        renewing.store(false, std::sync::atomic::Ordering::Relaxed);
        run
    });
    assert!(matches!(code, Some(c) if c != 0), "{code:?} {stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.contains("renewed just now"), "{stderr}");

    // Left to lapse: a dead node; the node starts once it has.
    redis.raw_command(&["SET", &alive, "1@elsewhere", "PX", "1500"]);
    let started = Instant::now();
    let node = Node::start_in(&redis, &server, std::slice::from_ref(&server), &[]);
    assert!(started.elapsed() >= Duration::from_millis(1000));
    let holder: String = redis::cmd("GET")
        .arg(&alive)
        .query(&mut redis_conn(&redis, &alive))
        .unwrap();
    assert!(
        holder.contains(&format!("{}@", node.pid().unwrap())),
        "{holder}"
    );
}
