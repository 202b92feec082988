//! The subscriber thread behind [`EventBus`](crate::EventBus) and
//! [`EventStream`](crate::EventStream).
//!
//! One thread, one pub/sub connection subscribed to `evt_{prefix}Online` and
//! `evt_{prefix}Offline`. Reads wait at most [`POLL`] so the thread notices a
//! stop request quickly. When the connection fails (Redis killed, restarted,
//! unreachable) the thread reconnects and resubscribes, waiting 50 ms, then
//! twice as long after each failed attempt, up to 1 s; a successful
//! subscription resets the wait. Events published while no subscription
//! exists are lost: that is Redis pub/sub.
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
//! The first subscription happens before `spawn` returns, so events
//! published after `event_bus()` / `events()` return are delivered, and a
//! Redis that is down at that moment is reported as an error instead of a
//! silent, retrying thread.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use freeim_protocol::ClientTicket;
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

/// What the thread subscribes to, and how it connects.
pub(crate) struct ListenerConfig {
    pub(crate) connector: Connector,
    pub(crate) liveness: Duration,
    pub(crate) online_channel: String,
    pub(crate) offline_channel: String,
    /// Bumped when Sentinel announces a new primary: resubscribe there.
    pub(crate) primary_epoch: Arc<AtomicU64>,
}

/// The link's state and counters, shared by the thread and its handle.
#[derive(Debug, Default)]
pub(crate) struct LinkHealth {
    connected: AtomicBool,
    reconnects: AtomicU64,
    liveness_failures: AtomicU64,
    callback_panics: AtomicU64,
}

impl LinkHealth {
    /// Subscribed now, and not (yet) found deaf.
    pub(crate) fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Subscriptions made again after the link failed.
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

/// A running subscriber thread; stopping (or dropping) it ends the thread
/// and waits for it, so no event is handed on afterwards.
pub(crate) struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// Starts the thread and waits until it has subscribed once (bounded by
    /// the I/O timeout). Fails with `Error::Redis` when that first attempt
    /// fails; the thread is gone then.
    pub(crate) fn spawn(
        config: ListenerConfig,
        sink: Sink,
        health: Arc<LinkHealth>,
    ) -> Result<Listener> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let thread_stop = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("imhelper-events".into())
            .spawn(move || run(&config, &thread_stop, &health, sink, ready_tx))
            .map_err(|e| Error::Redis(e.into()))?;
        let mut listener = Listener {
            stop,
            thread: Some(thread),
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(listener),
            Ok(Err(err)) => {
                listener.stop();
                Err(Error::Redis(err))
            }
            Err(_) => {
                listener.stop();
                Err(Error::Redis(RedisError::from((
                    ErrorKind::Client,
                    "the event thread ended before it subscribed",
                ))))
            }
        }
    }

    /// Asks the thread to end and waits for it (at most about [`POLL`] plus
    /// a running callback, or the I/O timeout while it is connecting).
    /// Called from the thread itself (a callback that drops its own bus) it
    /// only asks.
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() != thread::current().id() {
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

/// The thread: subscribe, pump, and on failure reconnect with backoff.
fn run(
    config: &ListenerConfig,
    stop: &AtomicBool,
    health: &LinkHealth,
    mut sink: Sink,
    ready: Sender<RedisResult<()>>,
) {
    let mut ready = Some(ready);
    let mut backoff = MIN_BACKOFF;
    let url = config.connector.url();
    loop {
        let mut subscribed = false;
        let outcome = session(config, stop, health, &mut sink, &mut || {
            subscribed = true;
            health.connected.store(true, Ordering::Release);
            match ready.take() {
                Some(ready) => {
                    let _ = ready.send(Ok(()));
                }
                None => {
                    health.reconnects.fetch_add(1, Ordering::Relaxed);
                    log::info!("imhelper: event link to {url} is subscribed again");
                }
            }
        });
        health.connected.store(false, Ordering::Release);
        let Err(err) = outcome else {
            return; // stopped, or nobody listens any more
        };
        if let Some(ready) = ready.take() {
            let _ = ready.send(Err(err));
            return;
        }
        if subscribed {
            // Once per lost link, not per failed attempt while Redis is down.
            log::warn!("imhelper: event link to {url} lost ({err}); reconnecting, events published meanwhile are lost");
            backoff = MIN_BACKOFF;
        }
        if !sleep_unless_stopped(backoff, stop) {
            return;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: connect, subscribe, hand events to `sink` until
/// stopped (`Ok`) or the connection fails, goes deaf, or the primary moves
/// (`Err`).
fn session(
    config: &ListenerConfig,
    stop: &AtomicBool,
    health: &LinkHealth,
    sink: &mut Sink,
    on_subscribed: &mut dyn FnMut(),
) -> RedisResult<()> {
    let epoch = config.primary_epoch.load(Ordering::Acquire);
    let mut link = config.connector.url().subscribe(
        &[&config.online_channel, &config.offline_channel],
        config.connector.io_timeout(),
        POLL,
        config.liveness,
    )?;
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
        let message = match link.next_message() {
            Ok(Some(message)) => message,
            Ok(None) => continue,
            Err(err) => {
                if Subscription::is_liveness_failure(&err) {
                    health.liveness_failures.fetch_add(1, Ordering::Relaxed);
                }
                return Err(err);
            }
        };
        if let Some(event) = decode(config, &message) {
            if !sink(event) {
                return Ok(());
            }
        }
    }
}

/// The event a message carries; `None` for other channels and for payloads
/// that are not `{"Item1":id,"Item2":"meta"}` (skipped, never fatal).
fn decode(config: &ListenerConfig, message: &Msg) -> Option<PresenceEvent> {
    let channel = message.get_channel_name();
    let online = if channel == config.online_channel {
        true
    } else if channel == config.offline_channel {
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
