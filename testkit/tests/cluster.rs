//! [`RedisCluster`] with 3 masters and a replica each: the seed URL, hash
//! slots as the servers compute them, keys and sharded pub/sub on the owning
//! master, and a failover after the owner of a slot is killed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use testkit::{key_slot, RedisCluster};

/// Keys of the cluster spec's examples, and one of the project's.
const KEYS: [&str; 5] = [
    "{user1000}.following",
    "{user1000}.followers",
    "foo{}{bar}",
    "foo{{bar}}zap",
    "im_v2_wsOnline",
];

/// The RESP form of an array of bulk strings, with `tail` (RESP-encoded
/// elements) after them and counted in the length.
fn resp(args: &[&str], tail: &[&str]) -> String {
    let mut out = format!("*{}\r\n", args.len() + tail.len());
    for arg in args {
        out.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    out.extend(tail.iter().copied());
    out
}

/// Reads exactly `expected` from `stream`.
fn expect(stream: &mut TcpStream, expected: &str) {
    let mut got = vec![0; expected.len()];
    stream.read_exact(&mut got).expect("read the subscriber");
    assert_eq!(String::from_utf8_lossy(&got), expected);
}

#[test]
fn cluster_serves_slots_and_fails_over() {
    let started = Instant::now();
    let mut cluster = RedisCluster::start(3, 1, 1000);
    let start_time = started.elapsed();

    // Six processes; the seeds are the three masters.
    let ports = cluster.ports();
    assert_eq!(ports.len(), 6);
    let masters = cluster.master_ports();
    assert_eq!(masters.len(), 3);
    let url = cluster.url();
    let mut seeds: Vec<u16> = url
        .strip_prefix("redis+cluster://")
        .and_then(|rest| rest.strip_suffix('/'))
        .unwrap_or_else(|| panic!("url {url}"))
        .split(',')
        .map(|host| host.strip_prefix("127.0.0.1:").unwrap().parse().unwrap())
        .collect();
    seeds.sort_unstable();
    assert_eq!(seeds, masters, "{url}");

    // Hash slots as the servers compute them; each key lives on its owner.
    for key in KEYS {
        let slot = key_slot(key);
        assert_eq!(
            cluster.cli(ports[0], &["CLUSTER", "KEYSLOT", key]),
            slot.to_string(),
            "{key}"
        );
        let owner = cluster.master_of_slot(slot);
        assert!(masters.contains(&owner), "{key}: owner {owner}");
        assert_eq!(cluster.cli(owner, &["SET", key, "v"]), "OK", "{key}");
        let other = *masters.iter().find(|&&port| port != owner).unwrap();
        assert_eq!(
            cluster.cli(other, &["GET", key]),
            format!("MOVED {slot} 127.0.0.1:{owner}")
        );
    }

    // Sharded pub/sub on the owner of the channel's slot.
    let channel = "im_v2_wsOnline";
    let slot = key_slot(channel);
    let owner = cluster.master_of_slot(slot);
    let mut subscriber = TcpStream::connect(("127.0.0.1", owner)).unwrap();
    subscriber
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    subscriber
        .write_all(resp(&["SSUBSCRIBE", channel], &[]).as_bytes())
        .unwrap();
    expect(
        &mut subscriber,
        &resp(&["ssubscribe", channel], &[":1\r\n"]),
    );
    assert_eq!(cluster.cli(owner, &["SPUBLISH", channel, "hello"]), "1");
    expect(&mut subscriber, &resp(&["smessage", channel, "hello"], &[]));
    drop(subscriber);

    // The replica has the key before its master goes.
    assert_eq!(cluster.cli(owner, &["SET", channel, "kept"]), "OK");
    assert_eq!(cluster.cli(owner, &["WAIT", "1", "5000"]), "1");

    // Kill the owner: its replica takes the slot.
    cluster.kill(owner);
    let killed = Instant::now();
    let new_owner = cluster.wait_for_failover(slot, owner, Duration::from_secs(10));
    let failover_time = killed.elapsed();
    assert_ne!(new_owner, owner);
    assert!(!masters.contains(&new_owner), "a replica was promoted");
    assert_eq!(cluster.master_of_slot(slot), new_owner);
    let masters_now = cluster.master_ports();
    assert_eq!(masters_now.len(), 3, "{masters_now:?}");
    assert!(masters_now.contains(&new_owner) && !masters_now.contains(&owner));
    assert_eq!(cluster.cli(new_owner, &["GET", channel]), "kept");
    eprintln!("cluster started in {start_time:?}, failed over in {failover_time:?}");
}
