//! The subscriber threads behind [`EventBus`](crate::EventBus) and
//! [`EventStream`](crate::EventStream).
//!
//! One thread per link. With one Redis: one link, a pub/sub connection
//! subscribed to `evt_{prefix}Online` and `evt_{prefix}Offline`. With a
//! Redis Cluster: one link per node, a sharded subscription (`SSUBSCRIBE`,
//! [`RedisUrl::subscribe_to_slot`](redis_link::RedisUrl::subscribe_to_slot))
//! to that node's two presence channels on the master serving their slot. The links hand their events to one sink, one event at a time.
//! Reads wait at most [`POLL`] so each thread notices a stop request
//! quickly. When a connection fails (Redis killed, restarted, unreachable; a
//! cluster slot moved) its thread reconnects and resubscribes (asking the
//! cluster again where the slot is), waiting 50 ms, then twice as long after
//! each failed attempt, up to 1 s; a successful subscription resets the
//! wait. Events published while no subscription exists are lost: that is
//! Redis pub/sub.
//!
//! # Liveness and failovers
//!
//! The subscription is a [`redis_link::Subscription`]: after `liveness / 3`
//! without a byte it sends `PING`, and when another `liveness / 3` passes
//! without an answer the link is declared dead: it is dropped, counted in
//! [`LinkHealth`]'s liveness failures, and the thread reconnects as above.
//! A deaf link is thus replaced within about `liveness` plus the backoff.
//! With a Sentinel URL, a `+switch-master` announcement (followed by the
//! helper's `redis_link::FailoverWatch`) ends the session too, and the
//! thread resubscribes on the new primary.
//!
//! Every link's first subscription happens before `spawn` returns, so
//! events published after `event_bus()` / `events()` return are delivered,
//! and a Redis that is down at that moment is reported as an error instead
//! of a silent, retrying thread.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use freeim_protocol::{key_slot, ClientTicket};
use parking_lot::Mutex;
use redis::{ErrorKind, Msg, RedisError, RedisResult};
use redis_link::Subscription;

use crate::error::{Error, Result};
use crate::events::{ClientEvent, PresenceEvent};
use crate::pool::Connector;

/// First wait before a reconnect attempt.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// Longest wait between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Longest a read blocks before the stop flag is checked again.
const POLL: Duration = Duration::from_millis(100);

/// Receives each event; returns `false` to end the thread (nobody listens).
pub(crate) type Sink = Box<dyn FnMut(PresenceEvent) -> bool + Send>;

/// What the threads subscribe to, and how they connect.
pub(crate) struct ListenerConfig {
    pub(crate) connector: Connector,
    pub(crate) liveness: Duration,
    /// One thread and connection each.
    pub(crate) links: Vec<LinkConfig>,
    /// Bumped when Sentinel announces a new primary: resubscribe there.
    pub(crate) primary_epoch: Arc<AtomicU64>,
}

/// One link's channels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LinkConfig {
    /// The node whose events the link carries alone (a Redis Cluster's),
    /// for the logs.
    pub(crate) node: Option<String>,
    pub(crate) online_channel: String,
    pub(crate) offline_channel: String,
}

/// The links' state and counters, shared by the threads and their handle.
#[derive(Debug, Default)]
pub(crate) struct LinkHealth {
    /// Links not subscribed now: each counts itself in from `spawn` until
    /// subscribed, and again from losing its subscription until it has a
    /// new one.
    down: AtomicUsize,
    reconnects: AtomicU64,
    liveness_failures: AtomicU64,
    callback_panics: AtomicU64,
}

impl LinkHealth {
    /// Every link subscribed now, and none (yet) found deaf.
    pub(crate) fn is_connected(&self) -> bool {
        self.down.load(Ordering::Acquire) == 0
    }

    /// Subscriptions made again after a link failed.
    pub(crate) fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// Links dropped because a `PING` went unanswered.
    pub(crate) fn liveness_failures(&self) -> u64 {
        self.liveness_failures.load(Ordering::Relaxed)
    }

    /// Callbacks that panicked.
    pub(crate) fn callback_panics(&self) -> u64 {
        self.callback_panics.load(Ordering::Relaxed)
    }

    pub(crate) fn count_callback_panic(&self) {
        self.callback_panics.fetch_add(1, Ordering::Relaxed);
    }
}

/// Running subscriber threads; stopping (or dropping) them ends the threads
/// and waits for them, so no event is handed on afterwards.
pub(crate) struct Listener {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// What the threads share.
struct Shared {
    config: ListenerConfig,
    stop: Arc<AtomicBool>,
    health: Arc<LinkHealth>,
    /// Locked while an event is handed on: one at a time.
    sink: Mutex<Sink>,
}

impl Listener {
    /// Starts a thread per link and waits until each has subscribed once
    /// (bounded by the I/O timeout). Fails with `Error::Redis` when a first
    /// attempt fails; the threads are gone then.
    pub(crate) fn spawn(
        config: ListenerConfig,
        sink: Sink,
        health: Arc<LinkHealth>,
    ) -> Result<Listener> {
        let links = config.links.len();
        health.down.fetch_add(links, Ordering::AcqRel);
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            config,
            stop: Arc::clone(&stop),
            health,
            sink: Mutex::new(sink),
        });
        let mut listener = Listener {
            stop,
            threads: Vec::with_capacity(links),
        };
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(links);
        for link in 0..links {
            let (shared, ready) = (Arc::clone(&shared), ready_tx.clone());
            let thread = thread::Builder::new()
                .name("imhelper-events".into())
                .spawn(move || run(&shared, &shared.config.links[link], ready));
            match thread {
                Ok(thread) => listener.threads.push(thread),
                Err(e) => {
                    listener.stop();
                    return Err(Error::Redis(e.into()));
                }
            }
        }
        drop(ready_tx);
        for _ in 0..links {
            let failure = match ready_rx.recv() {
                Ok(Ok(())) => continue,
                Ok(Err(err)) => err,
                Err(_) => RedisError::from((
                    ErrorKind::Client,
                    "the event thread ended before it subscribed",
                )),
            };
            listener.stop();
            return Err(Error::Redis(failure));
        }
        Ok(listener)
    }

    /// Asks the threads to end and waits for them (at most about [`POLL`]
    /// plus a running callback, or the I/O timeout while one is connecting).
    /// Called from one of the threads (a callback that drops its own bus) it
    /// only asks.
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let threads = std::mem::take(&mut self.threads);
        let current = thread::current().id();
        if threads.iter().all(|thread| thread.thread().id() != current) {
            for thread in threads {
                // Callbacks' panics are caught; there is nothing to report.
                let _ = thread.join();
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One link's thread: subscribe, pump, and on failure reconnect with
/// backoff.
fn run(shared: &Shared, link: &LinkConfig, ready: Sender<RedisResult<()>>) {
    let (stop, health) = (&*shared.stop, &*shared.health);
    let mut ready = Some(ready);
    let mut backoff = MIN_BACKOFF;
    let url = shared.config.connector.url();
    let name = match &link.node {
        Some(node) => format!("{url} for {node}"),
        None => url.to_string(),
    };
    loop {
        let mut subscribed = false;
        let outcome = session(shared, link, &mut || {
            subscribed = true;
            health.down.fetch_sub(1, Ordering::AcqRel);
            match ready.take() {
                Some(ready) => {
                    let _ = ready.send(Ok(()));
                }
                None => {
                    health.reconnects.fetch_add(1, Ordering::Relaxed);
                    log::info!("imhelper: event link to {name} is subscribed again");
                }
            }
        });
        if subscribed {
            health.down.fetch_add(1, Ordering::AcqRel);
        }
        let Err(err) = outcome else {
            return; // stopped, or nobody listens any more
        };
        if let Some(ready) = ready.take() {
            let _ = ready.send(Err(err));
            return;
        }
        if subscribed {
            // Once per lost link, not per failed attempt while Redis is down.
            log::warn!("imhelper: event link to {name} lost ({err}); reconnecting, events published meanwhile are lost");
            backoff = MIN_BACKOFF;
        }
        if !sleep_unless_stopped(backoff, stop) {
            return;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: connect, subscribe, hand events to the sink until
/// stopped (`Ok`) or the connection fails, goes deaf, or the primary or the
/// slot moves (`Err`).
fn session(shared: &Shared, link: &LinkConfig, on_subscribed: &mut dyn FnMut()) -> RedisResult<()> {
    let Shared {
        config,
        stop,
        health,
        sink,
    } = shared;
    let epoch = config.primary_epoch.load(Ordering::Acquire);
    let (url, timeout) = (config.connector.url(), config.connector.io_timeout());
    let channels = [link.online_channel.as_str(), &link.offline_channel];
    // One slot: in a Redis Cluster a node's channels share its hash tag.
    let slot = key_slot(&link.online_channel);
    let mut subscription =
        url.subscribe_to_slot(slot, &channels, timeout, POLL, config.liveness)?;
    on_subscribed();
    loop {
        if stop.load(Ordering::Acquire) {
            return Ok(());
        }
        if config.primary_epoch.load(Ordering::Acquire) != epoch {
            return Err(RedisError::from((
                ErrorKind::Client,
                "Sentinel announced a new primary",
            )));
        }
        let message = match subscription.next_message() {
            Ok(Some(message)) => message,
            Ok(None) => continue,
            Err(err) => {
                if Subscription::is_liveness_failure(&err) {
                    health.liveness_failures.fetch_add(1, Ordering::Relaxed);
                }
                return Err(err);
            }
        };
        let Some(event) = decode(link, &message) else {
            continue;
        };
        let mut sink = sink.lock();
        // Another link's callback may have stopped the listener meanwhile.
        if stop.load(Ordering::Acquire) {
            return Ok(());
        }
        if !sink(event) {
            stop.store(true, Ordering::Release);
            return Ok(());
        }
    }
}

/// The event a message carries; `None` for other channels and for payloads
/// that are not `{"Item1":id,"Item2":"meta"}` (skipped, never fatal).
fn decode(link: &LinkConfig, message: &Msg) -> Option<PresenceEvent> {
    let channel = message.get_channel_name();
    let online = if channel == link.online_channel {
        true
    } else if channel == link.offline_channel {
        false
    } else {
        return None;
    };
    let payload = message.get_payload_bytes();
    let ticket = match ClientTicket::parse(payload) {
        Ok(ticket) => ticket,
        Err(why) => {
            let payload = String::from_utf8_lossy(payload);
            log::warn!("imhelper: skipping a malformed event on {channel} ({why}): {payload:?}");
            return None;
        }
    };
    let event = ClientEvent {
        client_id: ticket.client_id,
        client_meta: ticket.client_meta.unwrap_or_default(),
    };
    Some(if online {
        PresenceEvent::Online(event)
    } else {
        PresenceEvent::Offline(event)
    })
}

/// Sleeps `duration` in short slices; `false` when stopped meanwhile.
fn sleep_unless_stopped(duration: Duration, stop: &AtomicBool) -> bool {
    let deadline = Instant::now() + duration;
    loop {
        if stop.load(Ordering::Acquire) {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        thread::sleep((deadline - now).min(Duration::from_millis(20)));
    }
}
