//! Helpers shared by the integration tests: a helper pointed at a real
//! `redis-server`, raw connections, and a raw pub/sub "sniffer" that records
//! exactly what was published.

#![allow(dead_code)] // each test binary uses a different subset

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use imhelper::{ImHelper, ImHelperOptions};
use testkit::RedisServer;

/// The I/O timeout the tests run with: short, so "Redis is down" tests are quick.
pub const IO_TIMEOUT: Duration = Duration::from_millis(500);

/// How long to wait for something that should happen.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// How long to wait to be fairly sure something does not happen.
pub const QUIET: Duration = Duration::from_millis(300);

/// An `ImHelper` on `redis` for a cluster of `servers`, default path.
pub fn helper(redis: &RedisServer, servers: &[&str]) -> ImHelper {
    let mut options =
        ImHelperOptions::new(redis.url(), servers.iter().map(|s| s.to_string()).collect());
    options.io_timeout = IO_TIMEOUT;
    ImHelper::new(options).expect("valid options")
}

/// An `ImHelper` on any Redis URL (a forwarder's, say) for a cluster of
/// `servers`, with the tests' I/O timeout and then `configure`'s changes.
pub fn helper_on(
    url: &str,
    servers: &[&str],
    configure: impl FnOnce(&mut ImHelperOptions),
) -> ImHelper {
    let mut options = ImHelperOptions::new(url, servers.iter().map(|s| s.to_string()).collect());
    options.io_timeout = IO_TIMEOUT;
    configure(&mut options);
    ImHelper::new(options).expect("valid options")
}

/// A field of `INFO section` (e.g. `total_connections_received` in
/// `stats`), read through a fresh raw connection.
pub fn info_field(redis: &RedisServer, section: &str, field: &str) -> String {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query(&mut raw(redis))
        .unwrap();
    let prefix = format!("{field}:");
    info.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("INFO {section} has no {field}: {info}"))
        .trim()
        .to_string()
}

/// A plain connection for arranging and inspecting Redis state.
pub fn raw(redis: &RedisServer) -> redis::Connection {
    let client = redis::Client::open(redis.url()).unwrap();
    let connection = client.get_connection().unwrap();
    connection
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    connection
}

/// `PUBLISH channel payload` through a raw connection; returns the receiver count.
pub fn publish(redis: &RedisServer, channel: &str, payload: &str) -> i64 {
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg(payload)
        .query(&mut raw(redis))
        .unwrap()
}

/// How many subscribers `channel` has.
pub fn subscribers(redis: &RedisServer, channel: &str) -> i64 {
    let (_, count): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query(&mut raw(redis))
        .unwrap();
    count
}

/// A raw subscriber recording `(channel, payload bytes)` in arrival order.
pub struct Sniffer {
    messages: Receiver<(String, Vec<u8>)>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sniffer {
    /// Subscribes to `channels` and returns once the subscriptions exist.
    pub fn start(redis: &RedisServer, channels: &[String]) -> Sniffer {
        let client = redis::Client::open(redis.url()).unwrap();
        let channels = channels.to_vec();
        let (tx, messages) = crossbeam_channel::unbounded();
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut connection = client.get_connection().unwrap();
            let mut pubsub = connection.as_pubsub();
            for channel in &channels {
                pubsub.subscribe(channel).unwrap();
            }
            pubsub
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            ready_tx.send(()).unwrap();
            while !thread_stop.load(Ordering::Acquire) {
                match pubsub.get_message() {
                    Ok(message) => {
                        let entry = (
                            message.get_channel_name().to_string(),
                            message.get_payload_bytes().to_vec(),
                        );
                        if tx.send(entry).is_err() {
                            return;
                        }
                    }
                    Err(err) if err.is_timeout() => continue,
                    Err(_) => return,
                }
            }
        });
        ready_rx.recv_timeout(PATIENCE).expect("sniffer subscribed");
        Sniffer {
            messages,
            stop,
            thread: Some(thread),
        }
    }

    /// The next message, as `(channel, payload as UTF-8)`.
    pub fn next(&self, timeout: Duration) -> Option<(String, String)> {
        match self.messages.recv_timeout(timeout) {
            Ok((channel, payload)) => Some((channel, String::from_utf8(payload).unwrap())),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Exactly `n` messages (panics when fewer arrive), then checks that no
    /// further one arrives for a moment.
    pub fn take_exactly(&self, n: usize) -> Vec<(String, String)> {
        let mut got = Vec::with_capacity(n);
        for i in 0..n {
            let message = self
                .next(PATIENCE)
                .unwrap_or_else(|| panic!("message {i} of {n} never came; got {got:?}"));
            got.push(message);
        }
        if let Some(extra) = self.next(QUIET) {
            panic!("unexpected extra message {extra:?} after {got:?}");
        }
        got
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
