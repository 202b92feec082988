//! The admin endpoints: `/metrics` counts what happened, `/healthz` follows Redis.

mod common;

use common::*;
use imhelper::{ImHelper, ImHelperOptions};

#[test]
fn metrics_count_connections_pushes_and_refusals_and_healthz_follows_redis() {
    let mut redis = TestRedis::start();
    let admin = free_port();
    let server = format!("127.0.0.1:{}", free_port());
    let admin_arg = format!("127.0.0.1:{admin}");
    let node = Node::start_in(
        &redis,
        &server,
        std::slice::from_ref(&server),
        &["--admin", &admin_arg],
    );
    let im = ImHelper::new(ImHelperOptions::new(redis.url(), vec![node.server.clone()])).unwrap();

    let mut client = Client::connect(&im.prev_connect_server(7, "m").unwrap()).unwrap();
    im.send_message(0, &[7], "hello", false).unwrap();
    assert_eq!(client.recv_text(PROMPTLY).as_deref(), Some("\"hello\""));
    assert_eq!(
        Client::refusal_status(&format!("ws://{server}/ws?token=nope")),
        401
    );

    assert!(wait_until(PROMPTLY, || {
        admin_metric(&admin_get(admin, "/metrics").1, "freeim_connections_open") == 1
    }));
    let (status, body) = admin_get(admin, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(admin_metric(&body, "freeim_clients_online"), 1);
    assert_eq!(admin_metric(&body, "freeim_upgrades_accepted_total"), 1);
    assert_eq!(admin_metric(&body, "freeim_messages_pushed_total"), 1);
    assert_eq!(
        admin_metric(&body, "freeim_upgrades_refused_total{status=\"401\"}"),
        1
    );
    assert!(admin_metric(&body, "freeim_command_lag_seconds_count") >= 1);
    assert_eq!(admin_get(admin, "/healthz"), (200, "ok\n".into()));
    assert_eq!(admin_get(admin, "/nope").0, 404);

    redis.kill();
    assert!(wait_until(PROMPTLY, || admin_get(admin, "/healthz").0 == 503));
    redis.restart();
    assert!(wait_until(PROMPTLY, || admin_get(admin, "/healthz").0 == 200));
    assert!(
        admin_metric(
            &admin_get(admin, "/metrics").1,
            "freeim_redis_reconnects_total{role=\"subscriber\"}"
        ) >= 1
    );
}
