//! Presence reads against an Online hash written with raw commands, and
//! force_offline's command.

mod common;

use common::{helper, raw, Sniffer};
use imhelper::Error;
use redis::Commands;
use testkit::RedisServer;

fn populate(redis: &RedisServer) {
    let () = raw(redis)
        .hset_multiple(
            "im_v2_wsOnline",
            &[
                ("1", "1"),
                ("2", "3"),
                ("-5", "1"),
                ("7", "0"),
                ("oops", "1"),
            ],
        )
        .unwrap();
}

#[test]
fn client_list_parses_ids_and_skips_junk() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    assert!(helper.get_client_list_by_online().unwrap().is_empty());
    populate(&redis);
    let mut ids = helper.get_client_list_by_online().unwrap();
    ids.sort();
    // 7 has a 0 count but a field: HKEYS lists it, as FreeIM does.
    assert_eq!(ids, vec![-5, 1, 2, 7]);
}

#[test]
fn has_online_needs_a_positive_count() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    populate(&redis);
    assert!(helper.has_online(1).unwrap());
    assert!(helper.has_online(2).unwrap());
    assert!(helper.has_online(-5).unwrap());
    assert!(!helper.has_online(7).unwrap());
    assert!(!helper.has_online(8).unwrap());
}

#[test]
fn has_online_many_answers_in_order() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    populate(&redis);
    assert_eq!(
        helper.has_online_many(&[8, 1, 7, 2, 1, -5]).unwrap(),
        vec![false, true, false, true, true, true]
    );
    assert_eq!(helper.has_online_many(&[42]).unwrap(), vec![false]);
    assert!(helper.has_online_many(&[]).unwrap().is_empty());
}

#[test]
fn has_online_many_without_the_hash() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    assert_eq!(helper.has_online_many(&[1, 2]).unwrap(), vec![false, false]);
}

#[test]
fn force_offline_publishes_to_the_clients_node() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["a:1", "b:2"]);
    let sniffer = Sniffer::start(
        &redis,
        &[
            "im_v2_wsServera:1".to_string(),
            "im_v2_wsServerb:2".to_string(),
        ],
    );
    helper.force_offline(43).unwrap();
    helper.force_offline(-2).unwrap();
    assert_eq!(
        sniffer.take_exactly(2),
        vec![
            (
                "im_v2_wsServerb:2".to_string(),
                "__FreeIM__(ForceOffline)43".to_string()
            ),
            (
                "im_v2_wsServera:1".to_string(),
                "__FreeIM__(ForceOffline)-2".to_string()
            ),
        ]
    );
}

#[test]
fn force_offline_to_an_unwatched_node_is_unrouted() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["a:1", "b:2"]);
    let _sniffer = Sniffer::start(&redis, &["im_v2_wsServera:1".to_string()]);
    helper.force_offline(2).unwrap();
    match helper.force_offline(3) {
        Err(Error::Unrouted { servers }) => assert_eq!(servers, ["b:2"]),
        other => panic!("expected Unrouted, got {other:?}"),
    }
}

#[test]
fn client_list_leaves_out_client_id_zero_as_freeim_does() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    let () = raw(&redis)
        .hset_multiple("im_v2_wsOnline", &[("0", "1"), ("3", "1")])
        .unwrap();
    assert_eq!(helper.get_client_list_by_online().unwrap(), [3]);
    // The count itself is still there to read.
    assert!(helper.has_online(0).unwrap());
}
