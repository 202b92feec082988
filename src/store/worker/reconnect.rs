//! The worker's connection upkeep: the live link, reconnects with a growing
//! backoff, and a lost link given up (and logged, rate-limited).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::link::Link;
use super::{Worker, BACKOFF_MAX, BACKOFF_MIN, IO_TIMEOUT};
use crate::bus::LoopMsg;

/// Shortest time between two lines about a lost link.
pub(super) const LINK_LOG_EVERY: Duration = Duration::from_secs(10);

impl Worker {
    /// The live link, reconnecting when there is none and the backoff since
    /// the last failure has passed.
    pub(super) fn link(&mut self) -> Option<&mut Link> {
        if self.link.is_none() && Instant::now() >= self.retry_at {
            self.reconnect();
        }
        self.link.as_mut()
    }

    /// The live link after [`Link::probe_if_idle`]: a link that died while
    /// idle is replaced at once, before anything is written on it.
    pub(super) fn probed_link(&mut self) -> Option<&mut Link> {
        let probe = self.link.as_mut()?.probe_if_idle();
        if let Err(e) = probe {
            self.lost(&e);
            self.link_now();
        }
        self.link.as_mut()
    }

    /// The live link, reconnecting at once (whatever the backoff) when there
    /// is none: for a second send, and for a client waiting on its token.
    pub(super) fn link_now(&mut self) -> Option<&mut Link> {
        if self.link.is_none() {
            self.reconnect();
        }
        self.link.as_mut()
    }

    /// Opens a connection; once it is up, asks every loop for the sockets it
    /// holds (`LoopMsg::ReportPresence`), whose snapshots make Redis agree
    /// with them whatever happened meanwhile.
    pub(super) fn reconnect(&mut self) {
        match Link::open(&self.redis, self.names.slot(), &self.scripts, IO_TIMEOUT) {
            Ok(link) => {
                if self.verbose {
                    log::info!("Redis worker reconnected: restoring this node's presence");
                }
                self.backoff = BACKOFF_MIN;
                self.metrics.worker.up.store(true, Ordering::Relaxed);
                self.metrics
                    .worker
                    .reconnects
                    .fetch_add(1, Ordering::Relaxed);
                self.next_lease = Instant::now();
                if link_changed(&self.run_id, &link.run_id) {
                    self.unrestored.fill(true);
                }
                self.run_id = link.run_id.clone();
                self.link = Some(link);
                self.router.post_all(|| LoopMsg::ReportPresence);
            }
            Err(e) => {
                if self.backoff == BACKOFF_MIN {
                    log::warn!("Redis worker cannot connect: {e}");
                }
                self.report.error(&e);
                self.down();
            }
        }
    }

    /// A request on the link failed: the link is given up (its replies are
    /// out of step now). A timeout is a silent link: a liveness failure.
    pub(super) fn lost(&mut self, error: &redis::RedisError) {
        let silent = error.is_timeout();
        if silent {
            self.metrics
                .worker
                .liveness_failures
                .fetch_add(1, Ordering::Relaxed);
            self.report
                .error(format_args!("no answer within {IO_TIMEOUT:?}"));
        } else {
            self.report.error(error);
        }
        if self.link.take().is_some() {
            // A link that keeps failing (a flapping proxy) logs a line per
            // LINK_LOG_EVERY, with how many losses it stands for.
            self.verbose = match self.link_log.allow() {
                Some(more) => {
                    let more = match more {
                        0 => String::new(),
                        n => format!(" (+{n} more losses since the last line)"),
                    };
                    if silent {
                        log::warn!("Redis worker: no answer within {IO_TIMEOUT:?}, the link is silent: reconnecting{more}");
                    } else {
                        log::warn!("Redis worker lost its connection: {error}{more}");
                    }
                    true
                }
                None => false,
            };
        }
        self.down();
    }

    /// No link: the next reconnect waits for the backoff, which grows.
    pub(super) fn down(&mut self) {
        self.link = None;
        self.metrics.worker.up.store(false, Ordering::Relaxed);
        self.retry_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }
}

/// Whether a new link reaches a different Redis process than the last one
/// (an unknown `run_id` counts as different).
fn link_changed(last: &Option<String>, new: &Option<String>) -> bool {
    new.is_none() || last != new
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_or_unknown_run_id_is_a_different_server() {
        let id = |s: &str| Some(s.to_string());
        assert!(!link_changed(&id("a"), &id("a")));
        assert!(link_changed(&id("a"), &id("b")));
        assert!(link_changed(&id("a"), &None));
        assert!(link_changed(&None, &id("a")));
    }
}
