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
use std::time::Duration;

use super::chan_cache::{ChanCache, Members};
use super::pubsub::PubSubConnection;
use super::worker::{BACKOFF_MAX, BACKOFF_MIN, IO_TIMEOUT};
use super::Context;
use crate::metrics::Metrics;
use crate::node::mailbox::{Frame, LoopMsg, Router, Wakes};
use crate::protocol::{decode_command, ChanMessage, Command, Names};
use crate::throttle::Throttle;

type Ready = crossbeam_channel::Sender<io::Result<()>>;

struct Subscriber {
    redis: redis_link::RedisUrl,
    liveness: Duration,
    names: Arc<Names>,
    router: Router,
    metrics: Arc<Metrics>,
    chan_cache: ChanCache,
    /// The connection channel members are read on (a subscribed connection
    /// cannot run commands); made when first needed.
    member_reader: Option<redis::Connection>,
    misrouted: Throttle,
}

/// Subscribes on its own thread, returning once the subscription is live (or
/// with the reason it could not be made), and keeps it, reconnecting with
/// backoff, for the life of the process.
pub fn start(context: Context) -> Result<(), String> {
    let subscriber = Subscriber {
        redis: context.redis,
        liveness: context.liveness,
        names: context.names,
        router: context.router,
        metrics: context.metrics,
        chan_cache: ChanCache::default(),
        member_reader: None,
        misrouted: Throttle::new(Duration::from_secs(10)),
    };
    let (ready, first) = crossbeam_channel::bounded(1);
    std::thread::Builder::new()
        .name("redis-subscriber".into())
        .spawn(move || subscriber.run(ready))
        .map_err(|e| format!("cannot start the Redis subscriber thread: {e}"))?;
    match first.recv_timeout(IO_TIMEOUT * 2) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("cannot subscribe to Redis: {e}")),
        Err(_) => Err("cannot subscribe to Redis: no answer".into()),
    }
}

impl Subscriber {
    fn run(mut self, ready: Ready) {
        let mut backoff = BACKOFF_MIN;
        let mut first = Some(ready);
        loop {
            let error = self.listen(&mut first, &mut backoff);
            self.metrics.subscriber.up.store(false, Ordering::Relaxed);
            if let Some(ready) = first.take() {
                let _ = ready.send(Err(error));
                return;
            }
            log::warn!("Redis subscriber: {error}; reconnecting in {backoff:?}");
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Connects, subscribes, and handles messages until the connection fails;
    /// returns the failure.
    fn listen(&mut self, first: &mut Option<Ready>, backoff: &mut Duration) -> io::Error {
        let commands = self.names.server_channel(self.names.server());
        let chan_changes = self.names.chan_changed_channel();
        let channels = [commands, chan_changes.clone()];
        let mut conn =
            match PubSubConnection::open(&self.redis, &channels, IO_TIMEOUT, self.liveness) {
                Ok(conn) => conn,
                Err(e) => return e,
            };
        // Notices may have been missed while unsubscribed.
        self.chan_cache.clear();
        self.metrics.subscriber.up.store(true, Ordering::Relaxed);
        match first.take() {
            Some(ready) => {
                let _ = ready.send(Ok(()));
            }
            None => {
                log::info!("Redis subscriber reconnected");
                self.metrics
                    .subscriber
                    .reconnects
                    .fetch_add(1, Ordering::Relaxed);
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
                    self.handle(payload, &mut wakes);
                }
            });
            // Everything this read carried is queued: one wake per loop.
            self.router.wake(&mut wakes);
            if let Err(e) = read {
                return e;
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
            Command::Send(send) => {
                let mut receivers = send.receivers;
                receivers.sort_unstable();
                receivers.dedup();
                if let Some(&stray) = receivers.iter().find(|id| !self.names.owns(**id)) {
                    self.report_misrouted(stray);
                }
                let frame = Arc::new(Frame::text(&send.text));
                let (sender, receipt) = (send.sender, send.receipt);
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
                .arg(self.names.chan_key(chan))
                .query(reader)
        };
        // A failed connection is dropped; the next read makes a new one.
        let ids = match self
            .member_reader
            .take()
            .map_or_else(|| self.connect_member_reader(), Ok)
        {
            Ok(mut reader) => read(&mut reader).map(|ids| (ids, reader)),
            Err(e) => Err(e),
        };
        let ids = match ids {
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

    fn connect_member_reader(&self) -> redis::RedisResult<redis::Connection> {
        self.redis.connect(IO_TIMEOUT)
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
