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
//! # Liveness
//!
//! A subscribed connection carries nothing while nobody publishes, so
//! silence proves nothing, and a link that is open but passes nothing on (a
//! hung proxy, a NAT that forgot the flow, a frozen Redis) would leave the
//! thread deaf for good: no error ever comes. So after `liveness / 3`
//! without a byte the thread sends `PING` (allowed in subscribed mode; RESP2
//! answers `["pong", ""]`), and when another `liveness / 3` passes without a
//! byte the link is declared dead: it is dropped, counted in
//! [`LinkHealth`]'s liveness failures, and the thread reconnects as above.
//! A deaf link is thus replaced within about `liveness` plus the backoff.
//!
//! The connection is a raw [`redis_link::Stream`] rather than a
//! `redis::Connection`: the `redis` crate's sync `PubSub` can only `PING`
//! by blocking until the answer (no stop checks meanwhile), and after a
//! read timeout on `recv_response` it skips the next reply, which in RESP2
//! subscribed mode would be an event. Commands are still encoded by
//! `redis::cmd` and replies parsed by `redis::Parser`, which keeps a
//! partly read reply across read timeouts.
//!
//! The first subscription happens before `spawn` returns, so events
//! published after `event_bus()` / `events()` return are delivered, and a
//! Redis that is down at that moment is reported as an error instead of a
//! silent, retrying thread.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use redis::{Cmd, ErrorKind, Msg, Parser, RedisError, RedisResult, Value};
use redis_link::Stream;

use crate::error::{Error, Result};
use crate::events::PresenceEvent;
use crate::payload;
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
/// stopped (`Ok`) or the connection fails or goes deaf (`Err`).
fn session(
    config: &ListenerConfig,
    stop: &AtomicBool,
    health: &LinkHealth,
    sink: &mut Sink,
    on_subscribed: &mut dyn FnMut(),
) -> RedisResult<()> {
    let mut link = Subscriber::open(config)?;
    let probe_after = config.liveness / 3;
    link.stream.set_timeout(Some(POLL.min(probe_after)))?;
    on_subscribed();
    let mut last_heard = Instant::now();
    let mut ping_sent: Option<Instant> = None;
    loop {
        if stop.load(Ordering::Acquire) {
            return Ok(());
        }
        let value = match link.read() {
            Ok(value) => value,
            Err(err) if err.is_timeout() => {
                match ping_sent {
                    None if last_heard.elapsed() >= probe_after => {
                        link.send(&redis::cmd("PING"))?;
                        ping_sent = Some(Instant::now());
                    }
                    Some(sent) if sent.elapsed() >= probe_after => {
                        health.liveness_failures.fetch_add(1, Ordering::Relaxed);
                        return Err(RedisError::from(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!(
                                "no answer to PING within {probe_after:?}: the link to Redis is deaf"
                            ),
                        )));
                    }
                    _ => {}
                }
                continue;
            }
            Err(err) => return Err(err),
        };
        // Any reply proves the link alive: an event, the PING's `pong`.
        last_heard = Instant::now();
        ping_sent = None;
        if let Value::ServerError(err) = value {
            return Err(err.into());
        }
        let Some(message) = Msg::from_owned_value(value) else {
            continue; // `pong`
        };
        if let Some(event) = decode(config, &message) {
            if !sink(event) {
                return Ok(());
            }
        }
    }
}

/// A subscribed connection: a raw stream, `redis::cmd` to encode,
/// `redis::Parser` to decode.
struct Subscriber {
    stream: Stream,
    parser: Parser,
}

impl Subscriber {
    /// Connects (authenticating when the URL has a password; pub/sub is not
    /// per database, so no `SELECT`), subscribes to both channels, and
    /// waits for both confirmations, each step bounded by the I/O timeout.
    fn open(config: &ListenerConfig) -> RedisResult<Subscriber> {
        let url = config.connector.url();
        let mut link = Subscriber {
            stream: url.connect_stream(config.connector.io_timeout())?,
            parser: Parser::new(),
        };
        if let Some((username, password)) = url.auth() {
            let mut auth = redis::cmd("AUTH");
            if let Some(username) = username {
                auth.arg(username);
            }
            auth.arg(password);
            link.send(&auth)?;
            link.reply()?;
        }
        let mut subscribe = redis::cmd("SUBSCRIBE");
        subscribe
            .arg(&config.online_channel)
            .arg(&config.offline_channel);
        link.send(&subscribe)?;
        for _ in 0..2 {
            match link.reply()? {
                Value::Array(items) if matches!(items.first(), Some(Value::BulkString(kind)) if kind == b"subscribe") =>
                    {}
                other => {
                    return Err(RedisError::from((
                        ErrorKind::Client,
                        "unexpected answer to SUBSCRIBE",
                        format!("{other:?}"),
                    )))
                }
            }
        }
        Ok(link)
    }

    fn send(&mut self, command: &Cmd) -> RedisResult<()> {
        self.stream.write_all(&command.get_packed_command())?;
        self.stream.flush()?;
        Ok(())
    }

    /// The next reply or message, within the stream's read timeout.
    fn read(&mut self) -> RedisResult<Value> {
        self.parser.parse_value(&mut self.stream)
    }

    /// The next reply, an error reply turned into an error.
    fn reply(&mut self) -> RedisResult<Value> {
        match self.read()? {
            Value::ServerError(err) => Err(err.into()),
            value => Ok(value),
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
    let event = payload::parse_client_event(message.get_payload_bytes()).ok()?;
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
