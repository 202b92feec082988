//! The Redis subscriber thread: listens on this node's command channel and on
//! `{prefix}ChanChanged`, decodes each command and hands it to the loop(s)
//! that own its receivers.
//!
//! Commands are handled strictly in the order Redis published them. A channel
//! message whose members are not cached is resolved here, with one `HKEYS` on
//! a second connection (as FreeIM does for every channel message), before the
//! next command is looked at. The event loops never wait on Redis.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::chan_cache::ChanCache;
use super::cutover::{CutOver, Verdict};
use super::error::StoreError;
use crate::bus::Members;
use parking_lot::Mutex;
use redis_link::Shutdown;

use super::pubsub::{Liveness, PubSubConnection};
use super::worker::{BACKOFF_MAX, BACKOFF_MIN, IO_TIMEOUT};
use super::Context;
use freeim_protocol::{decode_command, receipts_fit, ChanMessage, Command};

use crate::bus::{Frame, LoopMsg, Router, Wakes};
use crate::metrics::Metrics;
use crate::names::Names;
use crate::throttle::Throttle;

type Ready = crossbeam_channel::Sender<io::Result<()>>;

struct Subscriber {
    redis: redis_link::RedisUrl,
    liveness: Duration,
    max_receipt_bytes: usize,
    max_push_bytes: usize,
    names: Arc<Names>,
    router: Router,
    metrics: Arc<Metrics>,
    chan_cache: ChanCache,
    /// The connection channel members are read on (a subscribed connection
    /// cannot run commands); made when first needed.
    member_reader: Option<redis::Connection>,
    misrouted: Throttle,
    receipts_refused: Throttle,
    pushes_refused: Throttle,
    /// The subscription is (or was, until the current failure) live.
    subscribed: bool,
    /// Ends the current subscription's blocked read from another thread.
    shutdown: Arc<Mutex<Option<Shutdown>>>,
    /// The cut of the stream during a hand-over.
    cutover: Arc<CutOver>,
    /// Longer than any hand-over lasts: what the cut-over held this long is
    /// released (its release marker was lost).
    release_after: Duration,
}

/// Makes the subscriber thread drop its subscription and subscribe again
/// (resolving the primary anew); cheap to clone.
#[derive(Clone)]
pub struct SubscriberHandle {
    shutdown: Arc<Mutex<Option<Shutdown>>>,
}

impl SubscriberHandle {
    /// Ends the current subscription now (Sentinel announced a new
    /// primary); the thread reconnects as after any loss.
    pub fn resubscribe(&self) {
        if let Some(shutdown) = self.shutdown.lock().as_ref() {
            shutdown.shutdown();
        }
    }
}

/// Subscribes on its own thread, returning once the subscription is live (or
/// with the reason it could not be made), and keeps it, reconnecting with
/// backoff, for the life of the process.
pub fn start(context: Context) -> Result<SubscriberHandle, StoreError> {
    let shutdown = Arc::new(Mutex::new(None));
    let handle = SubscriberHandle {
        shutdown: Arc::clone(&shutdown),
    };
    let subscriber = Subscriber {
        redis: context.redis,
        liveness: context.liveness,
        max_receipt_bytes: context.max_receipt_bytes,
        max_push_bytes: context.max_push_bytes,
        names: context.names,
        router: context.router,
        metrics: context.metrics,
        chan_cache: ChanCache::default(),
        member_reader: None,
        misrouted: Throttle::new(Duration::from_secs(10)),
        receipts_refused: Throttle::new(Duration::from_secs(10)),
        pushes_refused: Throttle::new(Duration::from_secs(10)),
        subscribed: false,
        shutdown,
        cutover: context.cutover,
        release_after: context.upgrade_timeout * 3 + Duration::from_secs(10),
    };
    let (ready, first) = crossbeam_channel::bounded(1);
    std::thread::Builder::new()
        .name("redis-subscriber".into())
        .spawn(move || subscriber.run(ready))
        .map_err(|source| StoreError::Thread {
            thread: "subscriber",
            source,
        })?;
    match first.recv_timeout(IO_TIMEOUT * 2) {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => Err(StoreError::Subscribe(e)),
        Err(_) => Err(StoreError::SubscribeTimeout),
    }
}

impl Subscriber {
    fn run(mut self, ready: Ready) {
        let mut backoff = BACKOFF_MIN;
        let mut first = Some(ready);
        // Since when commands published to this node reach nobody.
        let mut gap_since = None;
        loop {
            let error = self.listen(&mut first, &mut backoff, &mut gap_since);
            self.metrics.subscriber.up.store(false, Ordering::Relaxed);
            let was_up = std::mem::take(&mut self.subscribed);
            if let Some(ready) = first.take() {
                let _ = ready.send(Err(error));
                return;
            }
            if was_up {
                self.report_lost(&error);
                gap_since = Some(Instant::now());
            } else {
                log::warn!("Redis subscriber: {error}; reconnecting in {backoff:?}");
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// The subscription was lost while up: a delivery gap opens (Redis
    /// pub/sub keeps nothing for a subscriber that is not there).
    fn report_lost(&self, error: &io::Error) {
        let metrics = &self.metrics;
        if error.kind() == io::ErrorKind::TimedOut {
            metrics
                .subscriber
                .liveness_failures
                .fetch_add(1, Ordering::Relaxed);
        }
        metrics.delivery_gaps.fetch_add(1, Ordering::Relaxed);
        log::warn!(
            "delivery gap: lost the Redis subscription ({error}); commands published to this \
             node until it is back reach nobody here"
        );
    }

    /// Connects, subscribes, and handles messages until the connection fails;
    /// returns the failure.
    fn listen(
        &mut self,
        first: &mut Option<Ready>,
        backoff: &mut Duration,
        gap_since: &mut Option<Instant>,
    ) -> io::Error {
        let commands = self.names.keys().server(self.names.server());
        let chan_changes = self.names.keys().chan_changed();
        let channels = [commands, chan_changes.clone()];
        let mut conn = match PubSubConnection::open(
            &self.redis,
            (self.names.slot(), self.names.layout().subscribe()),
            &channels,
            IO_TIMEOUT,
            self.liveness,
        ) {
            Ok(conn) => conn,
            Err(e) => return e,
        };
        *self.shutdown.lock() = conn.shutdown_handle().ok();
        // Notices may have been missed while unsubscribed.
        self.chan_cache.clear();
        self.metrics.subscriber.up.store(true, Ordering::Relaxed);
        self.subscribed = true;
        match first.take() {
            Some(ready) => {
                let _ = ready.send(Ok(()));
            }
            None => {
                match gap_since.take() {
                    Some(since) => log::warn!(
                        "Redis subscriber back: the delivery gap lasted {:?}",
                        since.elapsed()
                    ),
                    None => log::info!("Redis subscriber reconnected"),
                }
                self.metrics
                    .subscriber
                    .reconnects
                    .fetch_add(1, Ordering::Relaxed);
                // Redis may be another server now (a failover, a restart):
                // make its presence agree with the sockets held.
                self.router.post_all(|| LoopMsg::ReportPresence);
                let mut wakes = self.router.wakes();
                for held in self.cutover.on_resubscribed() {
                    self.handle(&held, &mut wakes);
                }
                self.router.wake(&mut wakes);
            }
        }
        *backoff = BACKOFF_MIN;
        let mut wakes = self.router.wakes();
        loop {
            let read = conn.read(|channel, payload| {
                if channel == chan_changes.as_bytes() {
                    self.chan_cache
                        .invalidate(&String::from_utf8_lossy(payload));
                } else {
                    self.on_command(payload, &mut wakes);
                }
            });
            for held in self.cutover.release_overdue(self.release_after) {
                self.handle(&held, &mut wakes);
            }
            // Everything this read carried is queued: one wake per loop.
            self.router.wake(&mut wakes);
            match read {
                Ok(liveness) => {
                    let confirmed = liveness == Liveness::Confirmed;
                    self.metrics
                        .subscriber
                        .up
                        .store(confirmed, Ordering::Relaxed);
                }
                Err(e) => return e,
            }
        }
    }

    /// A message on the command channel, through the hand-over's cut.
    fn on_command(&mut self, payload: &[u8], wakes: &mut Wakes) {
        match self.cutover.on_message(payload) {
            Verdict::Deliver => self.handle(payload, wakes),
            Verdict::Skip => {}
            Verdict::Release(held) => {
                for payload in held {
                    self.handle(&payload, wakes);
                }
            }
        }
    }

    fn handle(&mut self, payload: &[u8], wakes: &mut Wakes) {
        self.metrics.commands.fetch_add(1, Ordering::Relaxed);
        let command = match decode_command(payload) {
            Ok(command) => command,
            Err(e) => {
                self.metrics.bad_commands.fetch_add(1, Ordering::Relaxed);
                log::warn!("ignored a command that is not FreeIM's: {e}");
                return;
            }
        };
        match command {
            Command::Send(send) if !self.push_fits(send.sender, &send.text) => {}
            Command::Chan(message) if !self.push_fits(message.sender, &message.text) => {}
            Command::Send(send) => {
                let mut receivers = send.receivers;
                receivers.sort_unstable();
                receivers.dedup();
                if let Some(&stray) = receivers.iter().find(|id| !self.names.owns(**id)) {
                    self.report_misrouted(stray);
                }
                let receipt =
                    send.receipt && self.receipts_fit(send.sender, &receivers, &send.text);
                let frame = Arc::new(Frame::text(&send.text));
                let sender = send.sender;
                self.router
                    .push_to_clients(sender, receivers, frame, receipt, wakes);
            }
            Command::Chan(message) => self.handle_chan_message(message, wakes),
            Command::ForceOffline(client_id) => {
                if !self.names.owns(client_id) {
                    self.report_misrouted(client_id);
                }
                let owner = self.router.loop_of(client_id);
                self.router
                    .send(owner, LoopMsg::ForceOffline(client_id), wakes);
            }
        }
    }

    fn handle_chan_message(&mut self, message: ChanMessage, wakes: &mut Wakes) {
        let frame = Arc::new(Frame::text(&message.text));
        let Some(chan) = message.channel() else {
            return self.router.push_to_everyone(message.sender, frame, wakes);
        };
        let cached = self.chan_cache.get(chan).filter(|_| message.cacheable);
        let members = match cached {
            Some(members) => members,
            None => match self.read_members(chan) {
                Some(members) => {
                    self.chan_cache.store(chan, members.clone());
                    members
                }
                None => return,
            },
        };
        self.router
            .push_to_members(message.sender, members, frame, wakes);
    }

    /// This node's members of `chan`, read from Redis and split by loop.
    fn read_members(&mut self, chan: &str) -> Option<Members> {
        let read = |reader: &mut redis::Connection| -> redis::RedisResult<Vec<String>> {
            redis::cmd("HKEYS")
                .arg(self.names.keys().chan(chan))
                .query(reader)
        };
        // A failed connection is dropped and the read tried once more on a
        // fresh one (HKEYS is read-only, so repeating it is safe).
        let mut attempt = || match self.member_reader.take().map_or_else(
            || self.redis.connect_to_slot(self.names.slot(), IO_TIMEOUT),
            Ok,
        ) {
            Ok(mut reader) => read(&mut reader).map(|ids| (ids, reader)),
            Err(e) => Err(e),
        };
        let ids = match attempt().or_else(|_| attempt()) {
            Ok((ids, reader)) => {
                self.member_reader = Some(reader);
                ids
            }
            Err(e) => {
                log::warn!("dropped a message to channel {chan:?}: cannot read its members: {e}");
                return None;
            }
        };
        let names = &self.names;
        let local = ids
            .iter()
            .filter_map(|id| id.parse().ok())
            .filter(|id| names.owns(*id));
        Some(self.router.partition(local))
    }

    /// Whether the receipts a Send asks for fit `--max-receipt-bytes`:
    /// one per receiver other than the sender, each as long as the longest
    /// receipt command this text can make (the text is JSON-escaped twice
    /// in it, so quotes and backslashes count fourfold). Over budget is
    /// counted and logged.
    fn receipts_fit(&mut self, sender: i64, receivers: &[i64], text: &str) -> bool {
        let count = receivers.iter().filter(|&&r| r != sender).count();
        if count == 0 {
            return true;
        }
        let Err(bytes) = receipts_fit(count, text, self.max_receipt_bytes) else {
            return true;
        };
        self.metrics
            .receipts_refused
            .fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = self.receipts_refused.allow() {
            log::warn!(
                "delivered a message from {sender} to {count} receivers without receipts: they \
                 would publish ~{bytes} bytes, over --max-receipt-bytes {} (+{suppressed} more)",
                self.max_receipt_bytes
            );
        }
        false
    }

    /// Whether a message fits `--max-push-bytes`; one over it is counted and
    /// logged, and its command dropped.
    fn push_fits(&mut self, sender: i64, text: &str) -> bool {
        if text.len() <= self.max_push_bytes {
            return true;
        }
        self.metrics.pushes_refused.fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = self.pushes_refused.allow() {
            log::error!(
                "dropped a {}-byte message from {sender}: over --max-push-bytes {} \
                 (+{suppressed} more); is a business service publishing without imhelper's check?",
                text.len(),
                self.max_push_bytes
            );
        }
        false
    }

    /// A command named a client this node does not own: the sender's
    /// `servers` list differs from this node's. Logged at most every 10 s.
    fn report_misrouted(&mut self, client_id: i64) {
        self.metrics
            .misrouted_commands
            .fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = self.misrouted.allow() {
            log::warn!(
                "command for client {client_id}, which belongs to {} not {} (+{suppressed} more): \
                 is the servers list identical on every node and business service?",
                self.names.select_server(client_id),
                self.names.server()
            );
        }
    }
}
