//! `imhelper` on a real Redis Cluster (`redis+cluster://`, the sharded
//! layout): memberships, presence and tokens in their owner's partition,
//! reads merged across partitions, `SPUBLISH` to each node's shard, events
//! from every node's shard, and a slot moved to another master or failed
//! over to a replica meanwhile.
//! Everything is arranged and checked through plain connections to the
//! master the harness names, never through the code under test.

mod common;

use std::time::Duration;

use common::{helper_on, PATIENCE};
use freeim_protocol::{Directory, Keys, Layout};
use imhelper::{ChanInfo, Error, ImHelper, PresenceEvent};
use testkit::{key_slot, RedisCluster};

/// Three nodes: with three masters, one node per shard.
const SERVERS: [&str; 3] = ["10.0.0.1:6001", "10.0.0.2:6001", "10.0.0.3:6001"];

fn directory() -> Directory {
    let servers: Vec<String> = SERVERS.iter().map(|s| s.to_string()).collect();
    Directory::new(Layout::Sharded, "/ws", &servers)
}

fn helper(cluster: &RedisCluster) -> ImHelper {
    helper_on(&cluster.url(), &SERVERS, |options| {
        options.io_timeout = Duration::from_secs(2);
    })
}

/// A plain connection to the master serving `keys`' slot now.
fn master_of(cluster: &RedisCluster, keys: &Keys) -> redis::Connection {
    let port = cluster.master_of_slot(key_slot(&keys.online()));
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let connection = client.get_connection().unwrap();
    connection
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    connection
}

/// `SSUBSCRIBE channel` on `connection`, confirmed.
fn ssubscribe(connection: &mut redis::Connection, channel: &str) {
    let command = redis::cmd("SSUBSCRIBE").arg(channel).get_packed_command();
    connection.send_packed_command(&command).unwrap();
    let (kind, name, _): (String, String, i64) =
        redis::from_redis_value(connection.recv_response().unwrap()).unwrap();
    assert_eq!((kind.as_str(), name.as_str()), ("ssubscribe", channel));
}

/// The next `smessage` on a subscribed connection: `(channel, payload)`.
fn smessage(connection: &mut redis::Connection) -> (String, String) {
    let (kind, channel, payload): (String, String, String) =
        redis::from_redis_value(connection.recv_response().unwrap()).unwrap();
    assert_eq!(kind, "smessage");
    (channel, payload)
}

fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items
}

#[test]
fn every_operation_uses_its_owners_partition_or_merges_them_all() {
    let cluster = RedisCluster::start(3, 0, 1000);
    let helper = helper(&cluster);
    let directory = directory();
    let masters: Vec<u16> = directory
        .nodes()
        .map(|(_, keys)| cluster.master_of_slot(key_slot(&keys.online())))
        .collect();
    assert_eq!(sorted(masters).len(), 3, "one node per master");

    // Memberships across the three partitions (ids 1, 4 → node 2; 2 → node
    // 3; 3, 6 → node 1).
    helper.join_chan(1, &["room"]).unwrap();
    helper.join_chan(2, &["room"]).unwrap();
    helper.join_chan(3, &["room", "x"]).unwrap();
    helper.join_chan(6, &["room"]).unwrap();
    helper.join_chan(4, &["x"]).unwrap();
    assert_eq!(
        sorted(helper.get_chan_client_list("room").unwrap()),
        [1, 2, 3, 6]
    );
    assert_eq!(helper.get_chan_online("room").unwrap(), 4);
    let room = |online| ChanInfo {
        chan: "room".into(),
        online,
    };
    let x = |online| ChanInfo {
        chan: "x".into(),
        online,
    };
    let mut list = helper.get_chan_list().unwrap();
    list.sort_by(|a, b| a.chan.cmp(&b.chan));
    assert_eq!(list, [room(4), x(2)]);
    assert_eq!(
        sorted(helper.get_chan_list_by_client_id(3).unwrap()),
        ["room", "x"]
    );
    let (owner, keys) = directory.owner(3);
    assert_eq!(owner, SERVERS[0]);
    let mut node1 = master_of(&cluster, keys);
    let members: Vec<String> = redis::cmd("HKEYS")
        .arg(keys.chan("room"))
        .query(&mut node1)
        .unwrap();
    assert_eq!(sorted(members), ["3", "6"], "node 1's partition");
    let count: i64 = redis::cmd("HGET")
        .arg(keys.list_chan())
        .arg("room")
        .query(&mut node1)
        .unwrap();
    assert_eq!(count, 2);

    helper.leave_chan_clients("room", &[1, 2, 6]).unwrap();
    assert_eq!(helper.get_chan_client_list("room").unwrap(), [3]);
    assert_eq!(helper.get_chan_online("room").unwrap(), 1);
    helper.leave_chan(3, &["room", "x"]).unwrap();
    assert_eq!(helper.get_chan_list().unwrap(), [x(1)]);

    // Presence written straight into the owners' Online hashes.
    for (id, sockets) in [(4, 1), (5, 2), (7, 0)] {
        let keys = directory.owner(id).1;
        let () = redis::cmd("HSET")
            .arg(keys.online())
            .arg(id)
            .arg(sockets)
            .query(&mut master_of(&cluster, keys))
            .unwrap();
    }
    assert!(helper.has_online(4).unwrap());
    assert!(helper.has_online(5).unwrap());
    assert!(!helper.has_online(7).unwrap());
    assert!(!helper.has_online(8).unwrap());
    assert_eq!(
        helper.has_online_many(&[5, 7, 4, 8, 4]).unwrap(),
        [true, false, true, false, true]
    );
    assert_eq!(
        sorted(helper.get_client_list_by_online().unwrap()),
        [4, 5, 7]
    );

    // Clearing visits every partition: 4 and 5 are online, 9 and 10 not.
    for id in [5, 9, 10] {
        helper.join_chan(id, &["x"]).unwrap();
    }
    assert_eq!(helper.clear_chan_client("x").unwrap(), 2);
    assert_eq!(sorted(helper.get_chan_client_list("x").unwrap()), [4, 5]);
    assert_eq!(helper.get_chan_online("x").unwrap(), 2);
    assert!(helper.get_chan_list_by_client_id(9).unwrap().is_empty());

    // The token waits in its owner's partition.
    let url = helper.prev_connect_server(5, "web").unwrap();
    let (owner, keys) = directory.owner(5);
    let token = url
        .strip_prefix(&format!("ws://{owner}/ws?token="))
        .unwrap_or_else(|| panic!("{url}"));
    let ticket: String = redis::cmd("GET")
        .arg(keys.token(token))
        .query(&mut master_of(&cluster, keys))
        .unwrap();
    assert_eq!(ticket, r#"{"Item1":5,"Item2":"web"}"#);
}

#[test]
fn commands_and_events_travel_on_each_nodes_shard() {
    let cluster = RedisCluster::start(3, 0, 1000);
    let helper = helper(&cluster);
    let directory = directory();

    // No node subscribed: every command is unrouted.
    match helper.send_message(0, &[1, 2], "hi", false) {
        Err(Error::Unrouted { servers }) => assert_eq!(servers, [SERVERS[1], SERVERS[2]]),
        other => panic!("{other:?}"),
    }

    // A raw SSUBSCRIBE subscriber standing in for node 2.
    let keys = directory.of(SERVERS[1]);
    let mut node2 = master_of(&cluster, keys);
    ssubscribe(&mut node2, &keys.server(SERVERS[1]));
    ssubscribe(&mut node2, &keys.chan_changed());
    helper.send_message(0, &[1], "hi", false).unwrap();
    assert_eq!(
        smessage(&mut node2),
        (
            keys.server(SERVERS[1]),
            r#"{"Item1":0,"Item2":[1],"Item3":"\"hi\"","Item4":false}"#.to_string()
        )
    );
    helper.force_offline(4).unwrap();
    assert_eq!(smessage(&mut node2).1, "__FreeIM__(ForceOffline)4");
    // The join script announces the change on the owner's own shard.
    helper.join_chan(1, &["room"]).unwrap();
    assert_eq!(smessage(&mut node2), (keys.chan_changed(), "room".into()));

    // Events from every node's shard reach one stream.
    let mut events = helper.events().unwrap();
    assert!(events.is_connected());
    for (id, (_, keys)) in directory.nodes().enumerate() {
        let mut master = master_of(&cluster, keys);
        let payload = format!(r#"{{"Item1":{id},"Item2":"m{id}"}}"#);
        for channel in [keys.online_event(), keys.offline_event()] {
            let heard: i64 = redis::cmd("SPUBLISH")
                .arg(&channel)
                .arg(&payload)
                .query(&mut master)
                .unwrap();
            assert_eq!(heard, 1, "{channel}");
        }
    }
    let mut got = Vec::new();
    while got.len() < 6 {
        got.push(events.recv_timeout(PATIENCE).expect("an event"));
    }
    let online = got
        .iter()
        .filter(|event| matches!(event, PresenceEvent::Online(_)))
        .count();
    assert_eq!(online, 3, "{got:?}");
}

#[test]
fn a_slot_moved_to_another_master_is_followed() {
    let cluster = RedisCluster::start(3, 0, 1000);
    let helper = helper(&cluster);
    let keys = directory().of(SERVERS[1]).clone();
    let slot = key_slot(&keys.online());
    let mut events = helper.events().unwrap();
    helper.join_chan(1, &["room"]).unwrap();
    let from = cluster.master_of_slot(slot);
    let to = *cluster
        .master_ports()
        .iter()
        .find(|&&port| port != from)
        .unwrap();
    cluster.move_slot(slot, to);

    // The pooled connection to the old master gets MOVED: the call runs
    // once more on a connection to the new one.
    assert_eq!(helper.get_chan_list_by_client_id(1).unwrap(), ["room"]);
    assert_eq!(helper.stats().retried, 1);

    // The event link was unsubscribed by the old master (`sunsubscribe`)
    // and subscribes again on the new one.
    publish_until_heard(&cluster, &keys, &keys.online_event(), "again");
    assert!(matches!(
        events.recv_timeout(PATIENCE),
        Some(PresenceEvent::Online(client)) if client.client_meta == "again"
    ));
    assert_eq!(events.reconnects(), 1);
    assert!(events.is_connected());
}

#[test]
fn a_failover_of_a_nodes_master_is_followed() {
    let mut cluster = RedisCluster::start(3, 1, 1000);
    let helper = helper(&cluster);
    let keys = directory().of(SERVERS[1]).clone();
    let slot = key_slot(&keys.online());
    let mut events = helper.events().unwrap();
    helper.join_chan(1, &["room"]).unwrap();
    // Replication is asynchronous: a write acknowledged by the replica after
    // the join proves the join is there too.
    let mut old_master = master_of(&cluster, &keys);
    let () = redis::cmd("SET")
        .arg(keys.token("synced"))
        .arg(1)
        .query(&mut old_master)
        .unwrap();
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query(&mut old_master)
        .unwrap();
    assert_eq!(acked, 1, "the replica has the join");
    let old = cluster.master_of_slot(slot);
    cluster.kill(old);
    let new = cluster.wait_for_failover(slot, old, PATIENCE);

    // Calls fail while the slot has no master, then work on the new one
    // by themselves.
    let works = testkit::wait_until(PATIENCE, || helper.get_chan_list_by_client_id(1).is_ok());
    assert!(works, "no call worked after the failover");
    assert_eq!(helper.get_chan_list_by_client_id(1).unwrap(), ["room"]);

    // The event link lost its connection and subscribes on the new master.
    assert_eq!(cluster.master_of_slot(slot), new);
    publish_until_heard(&cluster, &keys, &keys.offline_event(), "after");
    assert!(matches!(
        events.recv_timeout(PATIENCE),
        Some(PresenceEvent::Offline(client)) if client.client_meta == "after"
    ));
    assert!(events.reconnects() >= 1);
}

/// `SPUBLISH`es an event of client 1 with `meta` on `channel` (of `keys`'
/// node), on the master serving it now, until a subscriber hears it: the
/// event link is back.
fn publish_until_heard(cluster: &RedisCluster, keys: &Keys, channel: &str, meta: &str) {
    let mut master = master_of(cluster, keys);
    let payload = format!(r#"{{"Item1":1,"Item2":"{meta}"}}"#);
    let heard = testkit::wait_until(PATIENCE, || {
        let heard: i64 = redis::cmd("SPUBLISH")
            .arg(channel)
            .arg(&payload)
            .query(&mut master)
            .unwrap();
        heard == 1
    });
    assert!(heard, "the event link never came back to {channel}");
}
