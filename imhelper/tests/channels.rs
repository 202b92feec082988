//! Channel membership: the join/leave scripts' exact effects, and the reads.

mod common;

use std::collections::HashMap;

use common::{helper, raw, Sniffer, QUIET};
use imhelper::ChanInfo;
use redis::Commands;
use testkit::RedisServer;

fn hash(redis: &RedisServer, key: &str) -> HashMap<String, String> {
    raw(redis).hgetall(key).unwrap()
}

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

#[test]
fn join_writes_all_three_hashes() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    helper.join_chan(7, &["room", "lobby"]).unwrap();

    assert_eq!(hash(&redis, "im_v2_wsChanroom"), map(&[("7", "0")]));
    assert_eq!(hash(&redis, "im_v2_wsChanlobby"), map(&[("7", "0")]));
    assert_eq!(
        hash(&redis, "im_v2_wsClient7"),
        map(&[("room", "0"), ("lobby", "0")])
    );
    assert_eq!(
        hash(&redis, "im_v2_wsListChan"),
        map(&[("room", "1"), ("lobby", "1")])
    );
}

#[test]
fn double_join_counts_once() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    helper.join_chan(7, &["room"]).unwrap();
    helper.join_chan(7, &["room"]).unwrap();
    helper.join_chan(7, &["room", "room"]).unwrap();
    helper.join_chan(8, &["room"]).unwrap();
    assert_eq!(helper.get_chan_online("room").unwrap(), 2);
    assert_eq!(
        hash(&redis, "im_v2_wsChanroom"),
        map(&[("7", "0"), ("8", "0")])
    );
}

#[test]
fn leave_undoes_join_and_deletes_the_count_at_zero() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    helper.join_chan(7, &["room", "lobby"]).unwrap();
    helper.join_chan(8, &["room"]).unwrap();

    helper.leave_chan(7, &["room"]).unwrap();
    assert_eq!(hash(&redis, "im_v2_wsChanroom"), map(&[("8", "0")]));
    assert_eq!(hash(&redis, "im_v2_wsClient7"), map(&[("lobby", "0")]));
    assert_eq!(
        hash(&redis, "im_v2_wsListChan"),
        map(&[("room", "1"), ("lobby", "1")])
    );

    helper.leave_chan(7, &["lobby"]).unwrap();
    helper.leave_chan(8, &["room"]).unwrap();
    let mut con = raw(&redis);
    let keys: Vec<String> = con.keys("im_v2_ws*").unwrap();
    assert!(keys.is_empty(), "left over: {keys:?}");
}

#[test]
fn leaving_a_channel_one_is_not_in_changes_nothing() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    helper.join_chan(8, &["room"]).unwrap();
    helper.leave_chan(7, &["room", "nowhere"]).unwrap();
    helper.leave_chan_clients("room", &[1, 2, 3]).unwrap();
    assert_eq!(helper.get_chan_online("room").unwrap(), 1);
    assert_eq!(hash(&redis, "im_v2_wsListChan"), map(&[("room", "1")]));
    assert_eq!(helper.get_chan_online("nowhere").unwrap(), 0);
}

#[test]
fn leave_deletes_a_count_already_at_or_below_zero() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    helper.join_chan(7, &["room"]).unwrap();
    // Damage the count the way a crashed FreeIM could leave it.
    let () = raw(&redis).hset("im_v2_wsListChan", "room", 0).unwrap();
    helper.leave_chan(7, &["room"]).unwrap();
    let exists: bool = raw(&redis).hexists("im_v2_wsListChan", "room").unwrap();
    assert!(!exists);
}

#[test]
fn leave_chan_clients_removes_many_ids_from_one_channel() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    for id in [1, 2, 3, 4] {
        helper.join_chan(id, &["room", "other"]).unwrap();
    }
    helper.leave_chan_clients("room", &[1, 3, 3, 9]).unwrap();
    assert_eq!(
        sorted(helper.get_chan_client_list("room").unwrap()),
        vec![2, 4]
    );
    assert_eq!(helper.get_chan_online("room").unwrap(), 2);
    assert_eq!(helper.get_chan_online("other").unwrap(), 4);
    assert_eq!(hash(&redis, "im_v2_wsClient1"), map(&[("other", "0")]));
    assert_eq!(hash(&redis, "im_v2_wsClient2").len(), 2);

    helper.leave_chan_clients("room", &[2, 4]).unwrap();
    let exists: bool = raw(&redis).hexists("im_v2_wsListChan", "room").unwrap();
    assert!(!exists);
    let chan_exists: bool = raw(&redis).exists("im_v2_wsChanroom").unwrap();
    assert!(!chan_exists);
}

#[test]
fn reads_reflect_membership() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    helper.join_chan(1, &["a", "b"]).unwrap();
    helper.join_chan(2, &["a"]).unwrap();
    helper.join_chan(-3, &["a", "c d 你好"]).unwrap();

    assert_eq!(
        sorted(helper.get_chan_client_list("a").unwrap()),
        vec![-3, 1, 2]
    );
    assert_eq!(
        sorted(helper.get_chan_list_by_client_id(-3).unwrap()),
        vec!["a".to_string(), "c d 你好".to_string()]
    );
    assert!(helper.get_chan_list_by_client_id(99).unwrap().is_empty());
    assert!(helper.get_chan_client_list("none").unwrap().is_empty());

    let mut list = helper.get_chan_list().unwrap();
    list.sort_by(|x, y| x.chan.cmp(&y.chan));
    let info = |chan: &str, online| ChanInfo {
        chan: chan.to_string(),
        online,
    };
    assert_eq!(list, vec![info("a", 3), info("b", 1), info("c d 你好", 1)]);
    assert_eq!(helper.get_chan_online("a").unwrap(), 3);
    assert_eq!(helper.get_chan_online("c d 你好").unwrap(), 1);
}

#[test]
fn reads_skip_fields_that_do_not_parse() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    let mut con = raw(&redis);
    let () = con
        .hset_multiple("im_v2_wsChanroom", &[("1", "0"), ("x", "0"), ("2", "0")])
        .unwrap();
    let () = con
        .hset_multiple("im_v2_wsListChan", &[("room", "2"), ("bad", "many")])
        .unwrap();
    assert_eq!(
        sorted(helper.get_chan_client_list("room").unwrap()),
        vec![1, 2]
    );
    assert_eq!(
        helper.get_chan_list().unwrap(),
        vec![ChanInfo {
            chan: "room".into(),
            online: 2
        }]
    );
}

#[test]
fn empty_lists_are_no_ops() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    helper.join_chan(1, &[]).unwrap();
    helper.leave_chan(1, &[]).unwrap();
    helper.leave_chan_clients("room", &[]).unwrap();
    assert!(helper.get_chan_list().unwrap().is_empty());
}

#[test]
fn scripts_reload_after_script_flush() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    helper.join_chan(1, &["room"]).unwrap();
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut raw(&redis))
        .unwrap();
    helper.join_chan(2, &["room"]).unwrap();
    helper.leave_chan(1, &["room"]).unwrap();
    assert_eq!(helper.get_chan_client_list("room").unwrap(), vec![2]);
}

#[test]
fn keys_follow_a_custom_path() {
    let redis = RedisServer::start();
    let mut options = imhelper::ImHelperOptions::new(redis.url(), vec!["n:1".into()]);
    options.path = "/chat".into();
    let helper = imhelper::ImHelper::new(options).unwrap();
    helper.join_chan(5, &["room"]).unwrap();
    let mut keys: Vec<String> = raw(&redis).keys("*").unwrap();
    keys.sort();
    assert_eq!(
        keys,
        [
            "im_v2_chatChanroom",
            "im_v2_chatClient5",
            "im_v2_chatListChan"
        ]
    );
}

#[test]
fn join_and_leave_announce_changed_channels_for_node_caches() {
    let redis = RedisServer::start();
    let im = helper(&redis, &["127.0.0.1:6001"]);
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let mut pubsub = conn.as_pubsub();
    pubsub.subscribe("im_v2_wsChanChanged").unwrap();
    pubsub
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut next = || -> String { pubsub.get_message().unwrap().get_payload().unwrap() };

    im.join_chan(1, &["a", "b"]).unwrap();
    assert_eq!((next(), next()), ("a".to_string(), "b".to_string()));
    im.join_chan(1, &["a"]).unwrap(); // no change: no notice
    im.leave_chan(1, &["a"]).unwrap();
    assert_eq!(next(), "a");
    im.leave_chan_clients("b", &[1]).unwrap();
    assert_eq!(next(), "b");
}

/// Every key in Redis, sorted.
fn all_keys(redis: &RedisServer) -> Vec<String> {
    sorted(raw(redis).keys("*").unwrap())
}

#[test]
fn empty_chan_names_are_skipped_by_join_and_both_leaves() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    helper.join_chan(1005, &[""]).unwrap();
    assert!(all_keys(&redis).is_empty(), "{:?}", all_keys(&redis));

    helper.join_chan(1005, &["", "room", ""]).unwrap();
    assert_eq!(
        all_keys(&redis),
        ["im_v2_wsChanroom", "im_v2_wsClient1005", "im_v2_wsListChan"]
    );
    assert_eq!(hash(&redis, "im_v2_wsClient1005"), map(&[("room", "0")]));
    assert_eq!(hash(&redis, "im_v2_wsListChan"), map(&[("room", "1")]));

    // A membership of the empty name, as an older helper could write it:
    // neither leave form touches it.
    let mut con = raw(&redis);
    let () = con.hset("im_v2_wsChan", "1005", 0).unwrap();
    let () = con.hset("im_v2_wsClient1005", "", 0).unwrap();
    let () = con.hset("im_v2_wsListChan", "", 1).unwrap();
    helper.leave_chan_clients("", &[1005]).unwrap();
    helper.leave_chan(1005, &[""]).unwrap();
    assert_eq!(hash(&redis, "im_v2_wsChan"), map(&[("1005", "0")]));
    assert_eq!(
        hash(&redis, "im_v2_wsListChan"),
        map(&[("room", "1"), ("", "1")])
    );

    helper.leave_chan(1005, &["", "room"]).unwrap();
    assert_eq!(hash(&redis, "im_v2_wsClient1005"), map(&[("", "0")]));
    assert_eq!(hash(&redis, "im_v2_wsListChan"), map(&[("", "1")]));
}

#[test]
fn the_empty_chan_name_reads_as_no_channel() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    helper.join_chan(7, &["room"]).unwrap();
    // Left over by an older helper: the empty name as a channel.
    let mut con = raw(&redis);
    let () = con.hset("im_v2_wsChan", "7", 0).unwrap();
    let () = con.hset("im_v2_wsClient7", "", 0).unwrap();
    let () = con.hset("im_v2_wsListChan", "", 1).unwrap();

    assert!(helper.get_chan_client_list("").unwrap().is_empty());
    assert_eq!(helper.get_chan_online("").unwrap(), 0);
    assert_eq!(helper.clear_chan_client("").unwrap(), 0);
    assert_eq!(helper.get_chan_list_by_client_id(7).unwrap(), ["room"]);
    assert_eq!(
        helper.get_chan_list().unwrap(),
        [ChanInfo {
            chan: "room".into(),
            online: 1
        }]
    );
    // Nothing was changed.
    assert_eq!(hash(&redis, "im_v2_wsChan"), map(&[("7", "0")]));
}

#[test]
fn chan_members_leave_out_client_id_zero_as_freeim_does() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    helper.join_chan(0, &["room"]).unwrap();
    helper.join_chan(3, &["room"]).unwrap();
    assert_eq!(helper.get_chan_client_list("room").unwrap(), [3]);
    // The membership itself is kept and counted, as FreeIM keeps it.
    assert_eq!(helper.get_chan_online("room").unwrap(), 2);
}

/// Marks `ids` online with `count` sockets each, as a node would.
fn set_online(redis: &RedisServer, ids: &[i64], count: i64) {
    let mut con = raw(redis);
    for id in ids {
        let () = con.hset("im_v2_wsOnline", id, count).unwrap();
    }
}

#[test]
fn clear_chan_client_removes_members_not_online_from_all_three_hashes() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    for id in 1..=5 {
        helper.join_chan(id, &["room", "other"]).unwrap();
    }
    set_online(&redis, &[1], 1);
    set_online(&redis, &[4], 3);
    set_online(&redis, &[3], 0); // a stale count: not online
    let notices = Sniffer::start(&redis, &["im_v2_wsChanChanged".to_string()]);

    assert_eq!(helper.clear_chan_client("room").unwrap(), 3);

    assert_eq!(
        hash(&redis, "im_v2_wsChanroom"),
        map(&[("1", "0"), ("4", "0")])
    );
    assert_eq!(
        hash(&redis, "im_v2_wsListChan"),
        map(&[("room", "2"), ("other", "5")])
    );
    for id in [2, 3, 5] {
        assert_eq!(
            hash(&redis, &format!("im_v2_wsClient{id}")),
            map(&[("other", "0")]),
            "client {id}"
        );
    }
    for id in [1, 4] {
        assert_eq!(
            hash(&redis, &format!("im_v2_wsClient{id}")),
            map(&[("room", "0"), ("other", "0")]),
            "client {id}"
        );
    }
    // Nodes caching the members hear of it once.
    assert_eq!(
        notices.take_exactly(1),
        [("im_v2_wsChanChanged".to_string(), "room".to_string())]
    );
    // Clearing again removes nothing and announces nothing.
    assert_eq!(helper.clear_chan_client("room").unwrap(), 0);
    assert!(notices.next(QUIET).is_none());
}

#[test]
fn clear_chan_client_of_a_channel_nobody_is_online_in_leaves_no_trace() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    for id in [7, -3, 0] {
        helper.join_chan(id, &["room"]).unwrap();
    }
    assert_eq!(helper.clear_chan_client("room").unwrap(), 3);
    assert!(all_keys(&redis).is_empty(), "{:?}", all_keys(&redis));
    assert_eq!(helper.clear_chan_client("room").unwrap(), 0);
    assert_eq!(helper.clear_chan_client("never-joined").unwrap(), 0);
    assert!(all_keys(&redis).is_empty(), "{:?}", all_keys(&redis));
}

#[test]
fn clear_chan_client_repairs_the_count_freeims_clear_leaves_wrong() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    helper.join_chan(1, &["room", "gone"]).unwrap();
    helper.join_chan(2, &["room"]).unwrap();
    set_online(&redis, &[1, 2], 1);
    // FreeIM's ClearChanClient deleted 3 offline members from the Chan
    // hashes only: the counts still include them.
    let mut con = raw(&redis);
    let () = con.hset("im_v2_wsListChan", "room", 5).unwrap();
    let () = con.del("im_v2_wsChangone").unwrap();

    assert_eq!(helper.clear_chan_client("room").unwrap(), 0);
    assert_eq!(helper.clear_chan_client("gone").unwrap(), 0);
    assert_eq!(hash(&redis, "im_v2_wsListChan"), map(&[("room", "2")]));
}

#[test]
fn clear_chan_client_clears_a_large_channel_in_full() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    let ids: Vec<i64> = (1..=2500).collect();
    for id in &ids {
        helper.join_chan(*id, &["big"]).unwrap();
    }
    let online: Vec<i64> = ids.iter().copied().filter(|id| id % 3 == 0).collect();
    set_online(&redis, &online, 1);

    assert_eq!(
        helper.clear_chan_client("big").unwrap(),
        ids.len() - online.len()
    );
    assert_eq!(sorted(helper.get_chan_client_list("big").unwrap()), online);
    assert_eq!(
        helper.get_chan_online("big").unwrap(),
        i64::try_from(online.len()).unwrap()
    );
    let left: i64 = raw(&redis).exists("im_v2_wsClient1").unwrap();
    assert_eq!(left, 0);
    assert_eq!(hash(&redis, "im_v2_wsClient3"), map(&[("big", "0")]));
}
