//! Redis from the test's side: reads of the presence hashes, `PUBLISH`, and
//! a pub/sub [`Spy`] recording what the nodes publish.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{wait_until, RedisServer, PROMPTLY};

// ----- Redis reads ----------------------------------------------------------

/// A fresh `redis` crate connection (for replies `raw_command` cannot show whole).
pub fn redis_conn(redis: &RedisServer) -> redis::Connection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_connection_with_timeout(PROMPTLY)
        .expect("connect to redis")
}

/// `HGET key field`.
pub fn hget(redis: &RedisServer, key: &str, field: &str) -> Option<String> {
    redis::cmd("HGET")
        .arg(key)
        .arg(field)
        .query(&mut redis_conn(redis))
        .expect("HGET")
}

/// `HGETALL key`.
pub fn hgetall(redis: &RedisServer, key: &str) -> HashMap<String, String> {
    redis::cmd("HGETALL")
        .arg(key)
        .query(&mut redis_conn(redis))
        .expect("HGETALL")
}

/// The `im_v2_wsOnline` count of `id` (`None`: no field).
pub fn online_count(redis: &RedisServer, id: i64) -> Option<String> {
    hget(redis, "im_v2_wsOnline", &id.to_string())
}

/// Waits until `id`'s Online count is `expected` (`None`: field absent).
pub fn wait_online(redis: &RedisServer, id: i64, expected: Option<u32>) {
    let expected = expected.map(|n| n.to_string());
    let ok = wait_until(PROMPTLY, || online_count(redis, id) == expected);
    assert!(
        ok,
        "Online count of {id}: expected {expected:?}, found {:?}",
        online_count(redis, id)
    );
}

/// Publishes `payload` on `channel`; returns how many subscribers heard it.
pub fn publish(redis: &RedisServer, channel: &str, payload: &str) -> i64 {
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg(payload)
        .query(&mut redis_conn(redis))
        .expect("PUBLISH")
}

// ----- pub/sub spy ----------------------------------------------------------

/// Records every payload published on some channels (a thread of its own).
pub struct Spy {
    payloads: mpsc::Receiver<(String, String)>,
    stop: Arc<AtomicBool>,
}

impl Spy {
    /// Subscribes to `channels`; returns once the subscription is live.
    pub fn start(redis: &RedisServer, channels: &[String]) -> Spy {
        let mut conn = redis_conn(redis);
        let (sender, payloads) = mpsc::channel();
        let (ready_tx, ready) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let channels = channels.to_vec();
        std::thread::spawn(move || {
            let mut pubsub = conn.as_pubsub();
            for channel in &channels {
                pubsub.subscribe(channel).expect("SUBSCRIBE");
            }
            pubsub
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let _ = ready_tx.send(());
            while !stopped.load(Ordering::Relaxed) {
                match pubsub.get_message() {
                    Ok(message) => {
                        let payload: String = message.get_payload().unwrap_or_default();
                        let channel = message.get_channel_name().to_string();
                        if sender.send((channel, payload)).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.is_timeout() => {}
                    Err(_) => return,
                }
            }
        });
        ready.recv_timeout(PROMPTLY).expect("spy subscribed");
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
