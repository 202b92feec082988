//! `prev_connect_server` and `select_server` against a real Redis.

mod common;

use common::{helper, raw};
use imhelper::ImHelperOptions;
use redis::Commands;
use testkit::RedisServer;

fn token_of(url: &str) -> &str {
    url.split_once("?token=").expect("url has a token").1
}

#[test]
fn token_key_value_ttl_and_url() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["10.0.0.1:6001", "10.0.0.2:6001"]);
    let url = helper.prev_connect_server(43, "alice").unwrap();

    let token = token_of(&url);
    assert_eq!(token.len(), 128);
    assert!(token
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    assert_eq!(url, format!("ws://10.0.0.2:6001/ws?token={token}"));

    let mut con = raw(&redis);
    let key = format!("im_v2_wsToken{token}");
    let value: String = con.get(&key).unwrap();
    assert_eq!(value, r#"{"Item1":43,"Item2":"alice"}"#);
    let ttl: i64 = con.ttl(&key).unwrap();
    assert!((1..=10).contains(&ttl), "ttl {ttl}");
    let pttl: i64 = con.pttl(&key).unwrap();
    assert!(pttl <= 10_000, "pttl {pttl}");
}

#[test]
fn meta_is_json_escaped() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    let meta = "tab\t \"quoted\" back\\slash 你好";
    let url = helper.prev_connect_server(-7, meta).unwrap();
    let value: String = raw(&redis)
        .get(format!("im_v2_wsToken{}", token_of(&url)))
        .unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&value).unwrap();
    assert_eq!(parsed["Item1"], -7);
    assert_eq!(parsed["Item2"], meta);
    assert_eq!(
        value,
        r#"{"Item1":-7,"Item2":"tab\t \"quoted\" back\\slash 你好"}"#
    );
}

#[test]
fn every_call_makes_a_new_token() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    let a = helper.prev_connect_server(1, "").unwrap();
    let b = helper.prev_connect_server(1, "").unwrap();
    assert_ne!(token_of(&a), token_of(&b));
    let keys: Vec<String> = raw(&redis).keys("im_v2_wsToken*").unwrap();
    assert_eq!(keys.len(), 2);
}

#[test]
fn custom_path_changes_prefix_and_url() {
    let redis = RedisServer::start();
    let mut options = ImHelperOptions::new(redis.url(), vec!["h:9".into()]);
    options.path = "/im/chat".into();
    let helper = imhelper::ImHelper::new(options).unwrap();
    assert_eq!(helper.prefix(), "im_v2_im_chat");
    let url = helper.prev_connect_server(5, "m").unwrap();
    let token = token_of(&url);
    assert_eq!(url, format!("ws://h:9/im/chat?token={token}"));
    let value: String = raw(&redis)
        .get(format!("im_v2_im_chatToken{token}"))
        .unwrap();
    assert_eq!(value, r#"{"Item1":5,"Item2":"m"}"#);
}

#[test]
fn select_server_follows_the_servers_order() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["a:1", "b:2", "c:3"]);
    let picks: Vec<&str> = (0..7).map(|id| helper.select_server(id)).collect();
    assert_eq!(picks, ["a:1", "b:2", "c:3", "a:1", "b:2", "c:3", "a:1"]);
    // Negative ids fall back to the first server (FreeIM, and the node).
    assert_eq!(helper.select_server(-1), "a:1");
    assert_eq!(helper.select_server(-5), "a:1");
    let url = helper.prev_connect_server(-5, "").unwrap();
    assert!(url.starts_with("ws://a:1/ws?token="), "{url}");
}

#[test]
fn secure_helpers_hand_out_wss_urls() {
    let redis = testkit::RedisServer::start();
    let mut options =
        imhelper::ImHelperOptions::new(redis.url(), vec!["im.example.com:6443".into()]);
    options.secure = true;
    let im = imhelper::ImHelper::new(options).unwrap();
    let url = im.prev_connect_server(1, "m").unwrap();
    assert!(
        url.starts_with("wss://im.example.com:6443/ws?token="),
        "{url}"
    );
}

#[test]
fn server_names_are_trimmed_and_repeats_route_like_the_node() {
    let redis = RedisServer::start();
    let helper = common::helper(&redis, &[" a:1", "b:2\t", "a:1 "]);
    // servers[id mod 3] over the whole list, as on the nodes.
    let picks: Vec<&str> = (0..6).map(|id| helper.select_server(id)).collect();
    assert_eq!(picks, ["a:1", "b:2", "a:1", "a:1", "b:2", "a:1"]);
    let url = helper.prev_connect_server(2, "m").unwrap();
    assert!(url.starts_with("ws://a:1/ws?token="), "{url}");
    let shown = format!("{helper:?}");
    assert!(
        shown.contains(r#"servers: ["a:1", "b:2", "a:1"]"#),
        "{shown}"
    );
}

/// A change that makes otherwise valid options invalid.
type Spoil = fn(&mut ImHelperOptions);

#[test]
fn bad_options_are_config_errors_naming_the_option() {
    let cases: [(&str, Spoil); 11] = [
        ("servers", |o| o.servers.clear()),
        ("servers[1]", |o| o.servers[1] = "  ".into()),
        ("servers[0]", |o| o.servers[0] = "a :1".into()),
        ("servers[1]", |o| o.servers[1] = "b:2/ws".into()),
        ("path", |o| o.path = "ws".into()),
        ("path", |o| o.path = "/ws?x=1".into()),
        ("path", |o| o.path = "/w s".into()),
        ("redis_url", |o| o.redis_url = "http://nope".into()),
        ("io_timeout", |o| o.io_timeout = std::time::Duration::ZERO),
        ("max_connections", |o| o.max_connections = 0),
        ("liveness", |o| {
            o.liveness = std::time::Duration::from_millis(10)
        }),
    ];
    for (option, spoil) in cases {
        let mut options =
            ImHelperOptions::new("redis://127.0.0.1/", vec!["a:1".into(), "b:2".into()]);
        spoil(&mut options);
        match imhelper::ImHelper::new(options) {
            Err(imhelper::Error::Config(why)) => {
                assert!(why.starts_with(option), "{option}: {why}")
            }
            other => panic!("{option}: expected Config, got {other:?}"),
        }
    }
}
