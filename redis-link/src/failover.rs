//! [`FailoverWatch`]: following Sentinel's `+switch-master` announcements.
//!
//! A failover usually announces itself to clients as a lost connection (the
//! old primary died, or Sentinel disconnects the clients of the primary it
//! demotes), but not always: a primary cut off from the sentinels (and so
//! replaced) can still be reachable from a client, which would go on
//! writing to it. The watch subscribes to `+switch-master` on one sentinel
//! at a time (the next one when that fails or goes silent) and calls back
//! whenever the sentinels switch this URL's master, so the caller drops its
//! connections and reconnects to the new primary at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::address::{Place, RedisUrl};

/// Connect and answer timeout towards a sentinel.
const SENTINEL_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the watch thread checks whether it should stop.
const POLL: Duration = Duration::from_millis(100);
/// Liveness bound of the subscription to a sentinel.
const LIVENESS: Duration = Duration::from_secs(6);
/// Wait after every sentinel failed once, before trying them again.
const RETRY: Duration = Duration::from_millis(500);

/// A thread following `+switch-master` for one master. [`stop`](Self::stop)
/// ends it and waits for it; dropping it only asks, and the thread ends on
/// its own within about the sentinel timeout (2 s), without blocking the
/// dropper.
pub struct FailoverWatch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RedisUrl {
    /// For a Sentinel URL, starts a thread that calls `on_switch` each time
    /// the sentinels announce a new primary for this URL's master
    /// (`+switch-master <master> <old ip> <old port> <new ip> <new port>`);
    /// `None` for other URLs. Announcements made while the thread has no
    /// sentinel subscription are missed; the callers' own reconnects cover
    /// those.
    ///
    /// # Errors
    /// The thread could not be started.
    pub fn watch_failovers(
        &self,
        on_switch: impl FnMut() + Send + 'static,
    ) -> std::io::Result<Option<FailoverWatch>> {
        let Place::Sentinel { sentinels, master } = &self.place else {
            return Ok(None);
        };
        let (url, sentinels, master) = (self.clone(), sentinels.clone(), master.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("sentinel-watch".into())
            .spawn(move || watch(&url, &sentinels, &master, &stopped, on_switch))?;
        Ok(Some(FailoverWatch {
            stop,
            thread: Some(thread),
        }))
    }
}

fn watch(
    url: &RedisUrl,
    sentinels: &[(String, u16)],
    master: &str,
    stop: &AtomicBool,
    mut on_switch: impl FnMut(),
) {
    let stopped = || stop.load(Ordering::Acquire);
    while !stopped() {
        for sentinel in sentinels {
            let Ok(mut subscription) = url.subscribe_sentinel(
                sentinel.clone(),
                &["+switch-master"],
                SENTINEL_TIMEOUT,
                POLL,
                LIVENESS,
            ) else {
                continue;
            };
            while !stopped() {
                match subscription.next_message() {
                    Ok(Some(message)) => {
                        let payload = message.get_payload_bytes();
                        if is_switch_of(payload, master) {
                            on_switch();
                        }
                    }
                    Ok(None) => {}
                    Err(_) => break,
                }
            }
            if stopped() {
                return;
            }
        }
        thread::sleep(RETRY);
    }
}

/// Whether a `+switch-master` payload names `master`.
fn is_switch_of(payload: &[u8], master: &str) -> bool {
    payload.split(|&b| b == b' ').next() == Some(master.as_bytes())
}

impl FailoverWatch {
    /// Stops the thread and waits for it (at most about the poll interval,
    /// or the sentinel timeout while it is connecting).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for FailoverWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl std::fmt::Debug for FailoverWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailoverWatch").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_masters_switch_counts() {
        assert!(is_switch_of(b"im 127.0.0.1 1 127.0.0.1 2", "im"));
        assert!(!is_switch_of(b"imx 127.0.0.1 1 127.0.0.1 2", "im"));
        assert!(!is_switch_of(b"", "im"));
    }

    #[test]
    fn plain_urls_need_no_watch() {
        let url: RedisUrl = "redis://127.0.0.1:1/".parse().unwrap();
        assert!(url.watch_failovers(|| {}).unwrap().is_none());
    }
}
