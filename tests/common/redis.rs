//! Redis from the test's side, in either mode of [`TestRedis`]: the names of
//! the suite's nodes, reads of the presence hashes, publishing, and a
//! pub/sub [`Spy`] recording what the nodes publish.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use freeim_protocol::{Directory, Keys, Layout};

use super::{wait_until, TestRedis, PROMPTLY};

// ----- names ----------------------------------------------------------------

/// The layout the nodes use on `redis_url` (sharded on a Redis Cluster).
pub fn layout_of(redis_url: &str) -> Layout {
    let url: redis_link::RedisUrl = redis_url.parse().expect("a Redis URL");
    Layout::for_redis(url.is_cluster())
}

/// The names of node `server` of the list `servers` on the Redis at
/// `redis_url`, for the nodes' WebSocket `path`.
pub fn node_keys(redis_url: &str, path: &str, servers: &[String], server: &str) -> Keys {
    Directory::new(layout_of(redis_url), path, servers)
        .of(server)
        .clone()
}

/// The names of the nodes last started on `redis` (FreeIM's in the single
/// layout, each node's tagged ones on a cluster), for the default path `/ws`.
pub fn names(redis: &TestRedis) -> Directory {
    let servers = redis.servers();
    assert!(!servers.is_empty(), "start a node before asking for names");
    Directory::new(layout_of(&redis.url()), "/ws", &servers)
}

/// The names of the node owning client `id`.
pub fn owner_keys(redis: &TestRedis, id: i64) -> Keys {
    names(redis).owner(id).1.clone()
}

/// Every presence event channel of the suite's nodes (`kind` is `Online`
/// or `Offline`): one in the single layout, one per node on a cluster.
pub fn event_channels(redis: &TestRedis, kind: &str) -> Vec<String> {
    names(redis)
        .partitions()
        .map(|keys| match kind {
            "Online" => keys.online_event(),
            "Offline" => keys.offline_event(),
            other => panic!("no {other} events"),
        })
        .collect()
}

// ----- Redis reads ----------------------------------------------------------

/// A fresh `redis` crate connection to the server holding `key` (for
/// replies `raw_command` cannot show whole).
pub fn redis_conn(redis: &TestRedis, key: &str) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{}/", redis.port_of(key)))
        .unwrap()
        .get_connection_with_timeout(PROMPTLY)
        .expect("connect to redis")
}

/// `HGET key field`.
pub fn hget(redis: &TestRedis, key: &str, field: &str) -> Option<String> {
    redis::cmd("HGET")
        .arg(key)
        .arg(field)
        .query(&mut redis_conn(redis, key))
        .expect("HGET")
}

/// `HGETALL key`.
pub fn hgetall(redis: &TestRedis, key: &str) -> HashMap<String, String> {
    redis::cmd("HGETALL")
        .arg(key)
        .query(&mut redis_conn(redis, key))
        .expect("HGETALL")
}

/// Every Online count of the suite's nodes: `im_v2_wsOnline`, or the union
/// of every node's Online hash on a cluster.
pub fn online_all(redis: &TestRedis) -> HashMap<String, String> {
    names(redis)
        .partitions()
        .flat_map(|keys| hgetall(redis, &keys.online()))
        .collect()
}

/// The Online count of `id` (`None`: no field), in its owner's hash.
pub fn online_count(redis: &TestRedis, id: i64) -> Option<String> {
    hget(redis, &owner_keys(redis, id).online(), &id.to_string())
}

/// Waits until `id`'s Online count is `expected` (`None`: field absent).
pub fn wait_online(redis: &TestRedis, id: i64, expected: Option<u32>) {
    let expected = expected.map(|n| n.to_string());
    let ok = wait_until(PROMPTLY, || online_count(redis, id) == expected);
    assert!(
        ok,
        "Online count of {id}: expected {expected:?}, found {:?}",
        online_count(redis, id)
    );
}

/// Publishes `payload` on `channel` (`PUBLISH`, or `SPUBLISH` on a cluster);
/// returns how many subscribers heard it.
pub fn publish(redis: &TestRedis, channel: &str, payload: &str) -> i64 {
    redis.publish(channel, payload)
}

// ----- pub/sub spy ----------------------------------------------------------

/// Records every payload published on some channels (a thread of its own).
pub struct Spy {
    payloads: mpsc::Receiver<(String, String)>,
    stop: Arc<AtomicBool>,
}

impl Spy {
    /// Subscribes to `channels` (see [`TestRedis::subscribe`]: what one
    /// server or one slot carries comes in publishing order); returns once
    /// every subscription is live.
    pub fn start(redis: &TestRedis, channels: &[String]) -> Spy {
        let (sender, payloads) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        for mut subscription in redis.subscribe(channels) {
            let (sender, stopped) = (sender.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    match subscription.next(Duration::from_millis(100)) {
                        Ok(Some(message)) => {
                            if sender.send(message).is_err() {
                                return;
                            }
                        }
                        Ok(None) => {}
                        Err(_) => return,
                    }
                }
            });
        }
        Spy { payloads, stop }
    }

    /// The next `(channel, payload)` within `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<(String, String)> {
        self.payloads.recv_timeout(timeout).ok()
    }

    /// Everything published within `wait`.
    pub fn collect(&self, wait: Duration) -> Vec<(String, String)> {
        let deadline = Instant::now() + wait;
        let mut seen = Vec::new();
        while let Some(item) = self.next(deadline.saturating_duration_since(Instant::now())) {
            seen.push(item);
        }
        seen
    }
}

impl Drop for Spy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The one server of `redis`; `None` on a cluster, with a note on stderr
/// that the test checks `what`, which needs one server, in the single mode
/// only.
pub fn single_server<'a>(redis: &'a TestRedis, what: &str) -> Option<&'a testkit::RedisServer> {
    let server = redis.single();
    if server.is_none() {
        eprintln!("single Redis only ({what}): not checked on a cluster");
    }
    server
}
