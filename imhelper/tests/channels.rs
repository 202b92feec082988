//! Channel membership: the join/leave scripts' exact effects, and the reads.

mod common;

use std::collections::HashMap;

use common::{helper, raw};
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
