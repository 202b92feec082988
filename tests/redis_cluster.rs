//! The system on a real Redis Cluster (`redis+cluster://`, the sharded
//! layout): three masters, two nodes, `imhelper` in cluster mode. Messages
//! with receipts across nodes, channels, presence and its events, force
//! offline, a node killed and restarted, a drain, the links a shard kills
//! (`CLIENT KILL`) rebuilt, a node's slot resharded to another master
//! (followed), a shard master killed with replicas present (delivery
//! resumes within 5 s, presence true after), and one hung (silent links:
//! noticed by the liveness checks, delivery resumes on its replica). The
//! other suites run on a cluster too (`FREEIM_TEST_REDIS=cluster`).

mod common;

use std::time::{Duration, Instant};

use common::*;
use freeim_protocol::key_slot;
use imhelper::{ImHelper, ImHelperOptions};
use testkit::RedisCluster;
use tungstenite::protocol::frame::coding::CloseCode;

/// Two nodes on `cluster`, and a helper for them.
fn two_nodes(cluster: &RedisCluster) -> (Vec<Node>, ImHelper) {
    two_nodes_with(cluster, &[])
}

/// [`two_nodes`] with `extra` node arguments.
fn two_nodes_with(cluster: &RedisCluster, extra: &[&str]) -> (Vec<Node>, ImHelper) {
    let servers: Vec<String> = (0..2)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let nodes = servers
        .iter()
        .map(|server| Node::start_on(&cluster.url(), server, &servers, extra))
        .collect();
    let im = ImHelper::new(ImHelperOptions::new(cluster.url(), servers)).expect("helper");
    (nodes, im)
}

/// A client id owned by node `index` of two.
fn owned_by(index: i64, n: i64) -> i64 {
    2 * n + index
}

#[test]
fn messages_channels_and_presence_work_across_shards() {
    let cluster = RedisCluster::start(3, 0, 1000);
    let (mut nodes, im) = two_nodes(&cluster);
    let mut events = im.events().expect("event bus");
    let (alice_id, bob_id) = (owned_by(0, 1), owned_by(1, 1));
    let mut alice = connect_as(&im, alice_id, "alice");
    let mut bob = connect_as(&im, bob_id, "bob");
    assert_eq!(
        sorted(next_events(&mut events, 2)),
        sorted(vec![online(alice_id, "alice"), online(bob_id, "bob")])
    );
    assert!(im.has_online(alice_id).unwrap() && im.has_online(bob_id).unwrap());
    let mut listed = im.get_client_list_by_online().unwrap();
    listed.sort();
    assert_eq!(listed, vec![alice_id, bob_id]);

    // A message across nodes, with its receipt back to the sender's node.
    im.send_message(alice_id, &[bob_id], "hello bob", true)
        .unwrap();
    assert_eq!(bob.recv_text(PROMPTLY).as_deref(), Some("\"hello bob\""));
    let receipt = alice.recv_text(PROMPTLY).expect("a receipt");
    assert!(receipt.contains("hello bob"), "{receipt}");

    // A channel whose members live in both nodes' partitions.
    im.join_chan(alice_id, &["room"]).unwrap();
    im.join_chan(bob_id, &["room"]).unwrap();
    let mut members = im.get_chan_client_list("room").unwrap();
    members.sort();
    assert_eq!(members, vec![alice_id, bob_id]);
    assert_eq!(im.get_chan_online("room").unwrap(), 2);
    im.send_chan_message(0, "room", "to the room").unwrap();
    assert_eq!(
        alice.recv_text(PROMPTLY).as_deref(),
        Some("\"to the room\"")
    );
    assert_eq!(bob.recv_text(PROMPTLY).as_deref(), Some("\"to the room\""));
    im.leave_chan(bob_id, &["room"]).unwrap();
    im.send_chan_message(0, "room", "bob left").unwrap();
    assert_eq!(alice.recv_text(PROMPTLY).as_deref(), Some("\"bob left\""));
    assert!(bob.receives_nothing(QUIET));

    // Force offline: closed with 4001, announced offline, counted out.
    im.force_offline(bob_id).unwrap();
    assert_eq!(bob.closed_with(PROMPTLY), Some(CloseCode::Library(4001)));
    assert_eq!(next_events(&mut events, 1), vec![offline(bob_id, "bob")]);
    assert!(!im.has_online(bob_id).unwrap());

    // A node killed with a client on it, then restarted: the restart takes
    // the dead run's socket back (one offline event).
    let carol_id = owned_by(1, 2);
    let _carol = connect_as(&im, carol_id, "carol");
    assert_eq!(next_events(&mut events, 1), vec![online(carol_id, "carol")]);
    nodes[1].kill();
    nodes[1].restart();
    assert_eq!(
        next_events(&mut events, 1),
        vec![offline(carol_id, "carol")]
    );
    assert!(!im.has_online(carol_id).unwrap());

    // A drain: the node's clients go offline, its partition is emptied.
    nodes[0].terminate(PROMPTLY).expect("drained");
    assert_eq!(
        next_events(&mut events, 1),
        vec![offline(alice_id, "alice")]
    );
    assert!(im.get_client_list_by_online().unwrap().is_empty());
    assert!(im.get_chan_client_list("room").unwrap().is_empty());
}

#[test]
fn a_shard_master_killed_fails_over_and_delivery_resumes() {
    let mut cluster = RedisCluster::start(3, 1, 1000);
    let (nodes, im) = two_nodes(&cluster);
    let mut events = im.events().expect("event bus");
    let id = owned_by(0, 3);
    let mut client = connect_as(&im, id, "dave");
    assert_eq!(next_events(&mut events, 1), vec![online(id, "dave")]);

    // Kill the master serving the first node's names.
    let slot = first_node_slot(&nodes);
    let master = cluster.master_of_slot(slot);
    // Replication is asynchronous: let the replica have the presence writes
    // first, so that no write is lost and re-asserted with an event.
    assert!(wait_until(PROMPTLY, || replicated(&cluster, master)));
    cluster.kill(master);
    let delivered = resumes_within(&im, &mut client, id, Duration::from_secs(15));
    assert!(
        delivered < Duration::from_secs(5),
        "resumed after {delivered:?}"
    );
    eprintln!("delivery resumed {delivered:?} after the master was killed");
    assert_ne!(cluster.master_of_slot(slot), master);

    // Presence is true afterwards: still online, and no event fired.
    assert!(im.has_online(id).unwrap());
    let stray = events.recv_timeout(QUIET);
    assert!(stray.is_none(), "{stray:?}");
}

#[test]
fn a_hung_shard_master_is_noticed_and_delivery_resumes_on_its_replica() {
    const LIVENESS: Duration = Duration::from_secs(2);
    let cluster = RedisCluster::start(3, 1, 1000);
    let (nodes, _) = two_nodes_with(&cluster, &["--redis-liveness", "2s"]);
    // The business side given the same bound for an answer.
    let servers = nodes.iter().map(|n| n.server.clone()).collect();
    let mut options = ImHelperOptions::new(cluster.url(), servers);
    options.io_timeout = LIVENESS;
    let im = ImHelper::new(options).expect("helper");
    let mut events = im.events().expect("event bus");
    let id = owned_by(0, 5);
    let mut client = connect_as(&im, id, "fay");
    assert_eq!(next_events(&mut events, 1), vec![online(id, "fay")]);

    // The master serving the first node's names hangs: its links stay open
    // and silent (no reset to notice), and its replica takes over after the
    // node timeout.
    let slot = first_node_slot(&nodes);
    let master = cluster.master_of_slot(slot);
    assert!(wait_until(PROMPTLY, || replicated(&cluster, master)));
    cluster.pause(master);
    let delivered = resumes_within(&im, &mut client, id, Duration::from_secs(20));
    eprintln!(
        "delivery resumed {delivered:?} after the master hung \
         (--redis-liveness and helper io_timeout {LIVENESS:?}, cluster-node-timeout 1 s)"
    );
    // Noticing the silence (the liveness bound), the failover, then the
    // node's and the helper's moves to the new master (a seed that hangs
    // costs them 1 s each time they ask it where the master is).
    assert!(
        delivered < LIVENESS + Duration::from_secs(6),
        "resumed after {delivered:?}"
    );
    assert!(im.has_online(id).unwrap());
    let stray = events.recv_timeout(QUIET);
    assert!(stray.is_none(), "{stray:?}");
}

/// Whether `master`'s replica has everything it wrote (`INFO replication`:
/// the replica's offset is the master's).
fn replicated(cluster: &RedisCluster, master: u16) -> bool {
    let info = cluster.cli(master, &["INFO", "replication"]);
    let Some(offset) = info
        .lines()
        .find_map(|line| line.trim().strip_prefix("master_repl_offset:"))
    else {
        return false;
    };
    info.lines()
        .any(|line| line.starts_with("slave0:") && line.contains(&format!("offset={offset},")))
}

#[test]
fn links_the_shard_kills_are_rebuilt() {
    let cluster = RedisCluster::start(3, 0, 1000);
    let (nodes, im) = two_nodes(&cluster);
    let mut events = im.events().expect("event bus");
    let id = owned_by(0, 4);
    let mut client = connect_as(&im, id, "erin");
    assert_eq!(next_events(&mut events, 1), vec![online(id, "erin")]);

    // The shard serving the first node drops every client link (its
    // worker's, its subscriber's, the helper's).
    let master = cluster.master_of_slot(first_node_slot(&nodes));
    cluster.cli(master, &["CLIENT", "KILL", "TYPE", "pubsub"]);
    cluster.cli(master, &["CLIENT", "KILL", "TYPE", "normal"]);
    let resumed = resumes_within(&im, &mut client, id, Duration::from_secs(10));
    assert!(
        resumed < Duration::from_secs(5),
        "resumed after {resumed:?}"
    );
    // Presence untouched: still online, no event either way.
    assert!(im.has_online(id).unwrap());
    let stray = events.recv_timeout(QUIET);
    assert!(stray.is_none(), "{stray:?}");
}

/// The hash slot of the first node's names (in the sharded layout).
fn first_node_slot(nodes: &[Node]) -> u16 {
    key_slot(&nodes[0].keys.online())
}

/// Sends client `id` messages until one arrives (each given 200 ms);
/// returns how long that took, panicking after `limit`.
fn resumes_within(im: &ImHelper, client: &mut Client, id: i64, limit: Duration) -> Duration {
    let since = Instant::now();
    for n in 0.. {
        assert!(since.elapsed() < limit, "no delivery within {limit:?}");
        let sent = im
            .send_message(0, &[id], &format!("probe {n}"), false)
            .is_ok();
        let got = client.recv_text(Duration::from_millis(200));
        if sent && got.is_some_and(|t| t.starts_with("\"probe")) {
            return since.elapsed();
        }
    }
    unreachable!("the loop ends by returning or panicking")
}

#[test]
fn a_node_follows_its_slot_to_another_master() {
    let cluster = RedisCluster::start(3, 0, 1000);
    let (nodes, im) = two_nodes(&cluster);
    let mut events = im.events().expect("event bus");
    let (id, other) = (owned_by(0, 5), owned_by(0, 6));
    let mut client = connect_as(&im, id, "frank");
    assert_eq!(next_events(&mut events, 1), vec![online(id, "frank")]);

    // Reshard the first node's slot (its keys and channels) elsewhere.
    let slot = first_node_slot(&nodes);
    let from = cluster.master_of_slot(slot);
    let to = *cluster.master_ports().iter().find(|&&p| p != from).unwrap();
    cluster.move_slot(slot, to);

    // Its subscriber is told (`sunsubscribe`) and subscribes on the new
    // master; its worker is sent there by `MOVED`.
    let resumed = resumes_within(&im, &mut client, id, Duration::from_secs(10));
    assert!(
        resumed < Duration::from_secs(5),
        "resumed after {resumed:?}"
    );
    let _late = connect_as(&im, other, "gina");
    assert_eq!(next_events(&mut events, 1), vec![online(other, "gina")]);
    client.close();
    assert_eq!(next_events(&mut events, 1), vec![offline(id, "frank")]);
    assert!(!im.has_online(id).unwrap() && im.has_online(other).unwrap());
}
