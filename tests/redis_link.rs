//! The node's Redis link under the faults a deployment meets: a path that
//! goes silent without FIN or RST, a subscription Redis kills, a Sentinel
//! failover, and a TLS Redis that requires a password.
//!
//! Each test prints what it measured (recovery time, messages lost), the
//! figures the README's "Faults" section quotes.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use imhelper::{ImHelper, ImHelperOptions, PresenceEvent};
use testkit::Forwarder;

/// Sends numbered messages to `id` every `pace` until one arrives at
/// `client` (or `limit` passes); returns (time until the first delivery,
/// messages sent, messages delivered), counting from `since`.
fn time_to_delivery(
    im: &ImHelper,
    client: &mut Client,
    id: i64,
    since: Instant,
    limit: Duration,
) -> (Duration, usize, usize) {
    let mut sent = 0;
    while since.elapsed() < limit {
        // Errors (Redis switching, no subscriber yet) are what is measured.
        if im
            .send_message(0, &[id], &format!("n{sent}"), false)
            .is_ok()
        {
            sent += 1;
        }
        if client.recv_text(Duration::from_millis(100)).is_some() {
            return (since.elapsed(), sent, 1);
        }
    }
    panic!("no message reached client {id} within {limit:?} ({sent} sent)");
}

#[test]
fn a_silent_path_to_redis_is_noticed_and_delivery_resumes_within_15_s_by_default() {
    let redis = TestRedis::start();
    let Some(single) = single_server(&redis, "a forwarder in front of the server") else {
        return;
    };
    let forwarder = Forwarder::start(single.port());
    let server = format!("127.0.0.1:{}", free_port());
    let admin = free_port();
    let admin_arg = format!("127.0.0.1:{admin}");
    let node = Node::start_on(
        &forwarder.url(),
        &server,
        std::slice::from_ref(&server),
        &["--admin", &admin_arg],
    );
    redis.set_servers(std::slice::from_ref(&server));
    // The business side reaches Redis directly: only the node's path dies.
    let im = helper(&redis, &[&node]);
    let mut client = connect_as(&im, 7, "m");
    im.send_message(0, &[7], "before", false).unwrap();
    assert_eq!(client.recv_text(PROMPTLY).as_deref(), Some("\"before\""));
    assert_eq!(admin_get(admin, "/healthz").0, 200);

    forwarder.freeze();
    let frozen = Instant::now();
    // /healthz, watched meanwhile: when it first and last answered 503.
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let health = {
        let watching = std::sync::Arc::clone(&watching);
        std::thread::spawn(move || {
            let (mut first, mut last) = (None, None);
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                if admin_get(admin, "/healthz").0 == 503 {
                    first.get_or_insert(frozen.elapsed());
                    last = Some(frozen.elapsed());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (first, last)
        })
    };
    // Redis still counts the deaf subscription, so every PUBLISH "succeeds".
    let (resumed, sent, _) = time_to_delivery(&im, &mut client, 7, frozen, Duration::from_secs(20));
    assert!(wait_until(PROMPTLY, || admin_get(admin, "/healthz").0 == 200));
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    let (Some(unhealthy_at), Some(last_unhealthy)) = health.join().unwrap() else {
        panic!("/healthz never answered 503 while the path was silent");
    };
    let body = admin_get(admin, "/metrics").1;
    assert!(
        admin_metric(
            &body,
            "freeim_redis_liveness_failures_total{role=\"subscriber\"}"
        ) >= 1
    );
    assert!(admin_metric(&body, "freeim_redis_delivery_gaps_total") >= 1);
    eprintln!(
        "silent path, default --redis-liveness 15s: /healthz first 503 after {unhealthy_at:?}, \
         last 503 at {last_unhealthy:?}; delivery resumed after {resumed:?}; {} of {sent} \
         messages sent meanwhile were lost",
        sent.saturating_sub(1)
    );
    assert!(
        resumed < Duration::from_secs(15),
        "resumed after {resumed:?}"
    );
    // The socket survived the outage and presence is intact.
    assert_eq!(online_count(&redis, 7).as_deref(), Some("1"));
}

#[test]
fn a_subscription_redis_kills_is_restored_and_the_next_message_delivered() {
    let redis = TestRedis::start();
    let node = Node::start(&redis);
    let im = helper(&redis, &[&node]);
    let mut client = connect_as(&im, 3, "m");
    // Every master: on a cluster, the node's subscription is on one of them.
    let killed = redis.on_every_master(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    assert!(killed.iter().all(|k| k.starts_with(':')), "{killed:?}");
    let since = Instant::now();
    let (resumed, sent, _) = time_to_delivery(&im, &mut client, 3, since, PROMPTLY);
    eprintln!(
        "CLIENT KILL TYPE pubsub: delivery resumed after {resumed:?}, {} of {sent} lost",
        sent.saturating_sub(1)
    );
}

/// `HGETALL key` on the server at `port`.
fn hgetall_at(port: u16, key: &str) -> HashMap<String, String> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut connection = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap();
    redis::cmd("HGETALL")
        .arg(key)
        .query(&mut connection)
        .unwrap()
}

/// How a failover test replaces the primary.
enum Failover {
    /// SIGKILL: the primary is gone; Sentinel promotes the replica after
    /// `down-after-milliseconds`.
    Kill,
    /// `SENTINEL FAILOVER`: the old primary stays up and is demoted; only
    /// the `+switch-master` announcement (and Sentinel's disconnect of the
    /// demoted primary's clients) tell the clients.
    Manual,
}

/// Two nodes and an `imhelper` (with an event stream) on a Sentinel set,
/// six clients connected; the primary is replaced as `how` says. Then:
/// messages flow within 5 s, receipts and events arrive, and the Online and
/// Node hashes on the new primary equal the sockets held.
fn failover_scenario(how: Failover) {
    let mut set = testkit::SentinelSet::start("freeim", 1000);
    let servers: Vec<String> = (0..2)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let _nodes: Vec<Node> = servers
        .iter()
        .map(|server| Node::start_on(&set.url(), server, &servers, &[]))
        .collect();
    let mut options = ImHelperOptions::new(set.url(), servers.clone());
    options.io_timeout = Duration::from_secs(1);
    let im = ImHelper::new(options).unwrap();
    let mut events = im.events().unwrap();
    // Even ids live on the first node, odd ids on the second.
    let mut clients: Vec<(i64, Client)> =
        (10..16).map(|id| (id, connect_as(&im, id, "m"))).collect();
    assert_eq!(next_events(&mut events, 6).len(), 6);

    let old = set.primary_port();
    let started = Instant::now();
    let label = match how {
        Failover::Kill => {
            set.kill_primary();
            "SIGKILL of the primary"
        }
        Failover::Manual => {
            let asked =
                testkit::raw_command(set.sentinel_ports()[0], &["SENTINEL", "FAILOVER", "freeim"]);
            assert_eq!(asked, "+OK");
            "SENTINEL FAILOVER (old primary alive)"
        }
    };
    let new = set.wait_for_failover(old, Duration::from_secs(10));
    let switched = started.elapsed();
    let (id, client) = (clients[1].0, &mut clients[1].1);
    let (delivered_after, sent, _) =
        time_to_delivery(&im, client, id, started, Duration::from_secs(20));
    // Pub/sub keeps nothing for a subscriber that is away: the event stream
    // says when it is subscribed again (on the new primary: after a manual
    // failover the old link may look alive until the switch is noticed).
    assert!(wait_until(PROMPTLY, || events.reconnects() >= 1
        && events.is_connected()));
    eprintln!(
        "{label}, down-after-milliseconds 1000: new primary answering after {switched:?}; \
         first message delivered after {delivered_after:?} ({} of {sent} sends before it \
         refused or lost); imhelper event stream subscribed again after {:?}",
        sent.saturating_sub(1),
        started.elapsed()
    );
    assert!(
        delivered_after < Duration::from_secs(5),
        "first delivery {delivered_after:?} after the {label}"
    );

    // Messages, receipts and events flow; imhelper works without a restart.
    im.send_message(10, &[11], "after", true).unwrap();
    assert_eq!(
        clients[1].1.recv_text(PROMPTLY).as_deref(),
        Some("\"after\"")
    );
    let receipt = clients[0].1.recv_text(PROMPTLY).expect("a receipt");
    assert!(receipt.contains("after"), "{receipt}");
    let _late = connect_as(&im, 21, "late");
    let online = (0..20)
        .find_map(|_| match events.recv_timeout(PROMPTLY) {
            Some(PresenceEvent::Online(c)) if c.client_id == 21 => Some(c),
            _ => None,
        })
        .expect("the online event of a client that connected after the failover");
    assert_eq!(online.client_meta, "late");

    // Presence on the new primary equals the sockets held: no ghost, none missing.
    let held: Vec<i64> = (10..16).chain([21]).collect();
    let expected: HashMap<String, String> = held
        .iter()
        .map(|id| (id.to_string(), "1".to_string()))
        .collect();
    assert!(
        wait_until(Duration::from_secs(10), || hgetall_at(
            new,
            "im_v2_wsOnline"
        ) == expected),
        "Online on the new primary: {:?}",
        hgetall_at(new, "im_v2_wsOnline")
    );
    for (index, server) in servers.iter().enumerate() {
        let node_hash = hgetall_at(new, &format!("im_v2_wsNode{server}"));
        let mut ids: Vec<i64> = node_hash
            .values()
            .map(|v| v.split('|').next().unwrap().parse().unwrap())
            .collect();
        ids.sort_unstable();
        let want: Vec<i64> = held
            .iter()
            .copied()
            .filter(|id| id % 2 == index as i64)
            .collect();
        assert_eq!(ids, want, "Node hash of {server}");
    }
}

#[test]
fn a_sentinel_failover_after_the_primary_dies_costs_seconds_and_leaves_presence_exact() {
    failover_scenario(Failover::Kill);
}

#[test]
fn a_manual_failover_with_the_old_primary_alive_is_followed() {
    failover_scenario(Failover::Manual);
}

#[test]
fn tls_with_a_password_serves_node_and_imhelper_and_never_shows_the_password() {
    const PASSWORD: &str = "pw-Zq93xT";
    let tls = testkit::TlsRedis::start(PASSWORD);
    let server = format!("127.0.0.1:{}", free_port());
    let node = Node::start_on(&tls.url(), &server, std::slice::from_ref(&server), &[]);
    let im = ImHelper::new(ImHelperOptions::new(tls.url(), vec![node.server.clone()])).unwrap();
    let mut events = im.events().unwrap();
    let mut alice = connect_as(&im, 1, "alice");
    let mut bob = connect_as(&im, 2, "bob");
    assert_eq!(next_events(&mut events, 2).len(), 2);
    im.send_message(1, &[2], "over tls", true).unwrap();
    assert_eq!(bob.recv_text(PROMPTLY).as_deref(), Some("\"over tls\""));
    assert!(alice.recv_text(PROMPTLY).unwrap().contains("over tls"));
    assert!(im.has_online(2).unwrap());
    assert_eq!(tls.cli(&["HGET", "im_v2_wsOnline", "2"]), "1");

    // Passwords stay out of --help (even when set in the environment) and
    // out of start-up errors.
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_freeim-server"))
        .arg("--help")
        .env("FREEIM_REDIS", tls.url())
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains(PASSWORD));
    let wrong = tls.url().replace(PASSWORD, "pw-Wrong77");
    let (code, stderr) =
        run_node_to_exit(&["--redis", &wrong, "--listen", "127.0.0.1:0"], PROMPTLY);
    assert_ne!(code, Some(0));
    assert!(!stderr.contains("pw-Wrong77"), "{stderr}");
}

#[test]
fn a_send_with_receipts_to_100000_receivers_costs_no_subscription() {
    let redis = TestRedis::start();
    let admin = free_port();
    let admin_arg = format!("127.0.0.1:{admin}");
    let node = Node::start_with(&redis, &["--admin", &admin_arg]);
    let im = helper(&redis, &[&node]);
    let mut sender = connect_as(&im, 1, "sender");
    let mut other = connect_as(&im, 2, "other");

    // Within the budget: every receipt comes back.
    let few: Vec<i64> = (1_000..1_300).collect();
    im.send_message(1, &few, "small", true).unwrap();
    for _ in &few {
        let receipt = sender.recv_text(PROMPTLY).expect("a receipt per receiver");
        assert!(receipt.contains("small"), "{receipt}");
    }

    // 100,000 receivers × 2 KB: ~220 MB of receipts into the sender's node's
    // subscription, past Redis's default pub/sub output-buffer limit (32 MB).
    // imhelper refuses it; a helper that does not check (FreeIM's .NET one)
    // publishes it, and the node delivers it without receipts.
    let many: Vec<i64> = (10_000..110_000).chain([2]).collect();
    let big = "x".repeat(2048);
    assert!(matches!(
        im.send_message(1, &many, &big, true),
        Err(imhelper::Error::TooManyReceipts { .. })
    ));
    let command = serde_json::json!({
        "Item1": 1,
        "Item2": many,
        "Item3": serde_json::to_string(&big).unwrap(),
        "Item4": true,
    });
    assert_eq!(publish(&redis, &node.channel(), &command.to_string()), 1);
    for n in 0..50 {
        im.send_message(0, &[2], &n, false).unwrap();
    }
    assert_eq!(other.recv_text(PROMPTLY).map(|t| t.len()), Some(2050));
    for n in 0..50 {
        assert_eq!(
            other.recv_text(PROMPTLY),
            Some(n.to_string()),
            "message {n}"
        );
    }
    let body = admin_get(admin, "/metrics").1;
    assert_eq!(admin_metric(&body, "freeim_receipts_refused_total"), 1);
    assert_eq!(admin_metric(&body, "freeim_redis_delivery_gaps_total"), 0);
    assert!(sender.receives_nothing(QUIET));
}

#[test]
fn an_acl_user_serves_node_and_imhelper() {
    let redis = TestRedis::start();
    let Some(redis) = single_server(&redis, "a URL naming one server") else {
        return;
    };
    let created = redis.raw_command(&[
        "ACL",
        "SETUSER",
        "freeim",
        "on",
        ">pw-Acl51x",
        "~*",
        "&*",
        "+@all",
    ]);
    assert_eq!(created, "+OK");
    // The default user is locked out: only the ACL user gets in.
    assert_eq!(
        redis.raw_command(&["ACL", "SETUSER", "default", "off"]),
        "+OK"
    );
    let url = format!("redis://freeim:pw-Acl51x@127.0.0.1:{}/", redis.port());
    let server = format!("127.0.0.1:{}", free_port());
    let node = Node::start_on(&url, &server, std::slice::from_ref(&server), &[]);
    let im = ImHelper::new(ImHelperOptions::new(url, vec![node.server.clone()])).unwrap();
    let mut events = im.events().unwrap();
    let mut client = connect_as(&im, 5, "acl");
    assert_eq!(next_events(&mut events, 1).len(), 1);
    im.send_message(0, &[5], "as an ACL user", false).unwrap();
    assert_eq!(
        client.recv_text(PROMPTLY).as_deref(),
        Some("\"as an ACL user\"")
    );
    assert!(im.has_online(5).unwrap());
}
