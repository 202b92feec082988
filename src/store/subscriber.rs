//! The Redis subscriber thread: listens on this node's command channel,
//! decodes each command and hands it to the loop(s) that own its receivers.
//! It never blocks an event loop; a channel message whose members must be read
//! from Redis goes through the worker.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::chan_cache::ChanCache;
use super::worker::{Job, WorkerHandle, BACKOFF_MAX, BACKOFF_MIN, IO_TIMEOUT};
use super::Context;
use crate::metrics::Metrics;
use crate::node::mailbox::{Frame, LoopMsg, Router};
use crate::protocol::{decode_command, Command, Names};
use crate::throttle::Throttle;

struct Subscriber {
    client: redis::Client,
    names: Arc<Names>,
    router: Router,
    worker: WorkerHandle,
    chan_cache: Arc<ChanCache>,
    metrics: Arc<Metrics>,
    misrouted: Mutex<Throttle>,
}

/// Subscribes to this node's command channel on its own thread, returning once
/// the subscription is live (or with the reason it could not be made), and
/// keeps it, reconnecting with backoff, for the life of the process.
pub fn start(context: Context, worker: WorkerHandle) -> Result<(), String> {
    let subscriber = Subscriber {
        client: context.client,
        names: context.names,
        router: context.router,
        worker,
        chan_cache: context.chan_cache,
        metrics: context.metrics,
        misrouted: Mutex::new(Throttle::new(Duration::from_secs(10))),
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
    fn run(self, ready: crossbeam_channel::Sender<redis::RedisResult<()>>) {
        let mut backoff = BACKOFF_MIN;
        let mut first = Some(ready);
        loop {
            let error = self.listen(&mut first, &mut backoff);
            if let Some(ready) = first.take() {
                let _ = ready.send(Err(error));
                return;
            }
            log::warn!("Redis subscriber: {error}; reconnecting in {backoff:?}");
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Connects, subscribes, and handles commands until the connection fails;
    /// returns the failure.
    fn listen(
        &self,
        first: &mut Option<crossbeam_channel::Sender<redis::RedisResult<()>>>,
        backoff: &mut Duration,
    ) -> redis::RedisError {
        let mut conn = match self.client.get_connection_with_timeout(IO_TIMEOUT) {
            Ok(conn) => conn,
            Err(e) => return e,
        };
        if let Err(e) = conn.set_write_timeout(Some(IO_TIMEOUT)) {
            return e;
        }
        let mut pubsub = conn.as_pubsub();
        let commands = self.names.server_channel(self.names.server());
        let chan_changes = self.names.chan_changed_channel();
        if let Err(e) = pubsub.subscribe(&[&commands, &chan_changes]) {
            return e;
        }
        // Notices may have been missed while unsubscribed.
        self.chan_cache.clear();
        self.metrics
            .subscriber_redis_up
            .store(true, Ordering::Relaxed);
        match first.take() {
            Some(ready) => {
                let _ = ready.send(Ok(()));
            }
            None => {
                log::info!("Redis subscriber reconnected");
                self.metrics
                    .redis_reconnects
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        *backoff = BACKOFF_MIN;
        loop {
            match pubsub.get_message() {
                Ok(message) if message.get_channel_name() == chan_changes => {
                    let chan = String::from_utf8_lossy(message.get_payload_bytes());
                    self.chan_cache.invalidate(&chan);
                }
                Ok(message) => self.handle(message.get_payload_bytes()),
                Err(e) => {
                    self.metrics
                        .subscriber_redis_up
                        .store(false, Ordering::Relaxed);
                    return e;
                }
            }
        }
    }

    fn handle(&self, payload: &[u8]) {
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
                self.router
                    .push_to_clients(send.sender, receivers, frame, send.receipt);
            }
            Command::Chan(message) => {
                let frame = Arc::new(Frame::text(&message.text));
                match message.channel() {
                    None => self.router.push_to_everyone(message.sender, frame),
                    Some(chan) => match self.chan_cache.get(chan).filter(|_| message.cacheable) {
                        Some(members) => {
                            self.router.push_to_members(message.sender, members, frame)
                        }
                        None => self.worker.submit(Job::ChanMessage {
                            chan: chan.to_string(),
                            sender: message.sender,
                            frame,
                            epoch: self.chan_cache.epoch(),
                        }),
                    },
                }
            }
            Command::ForceOffline(client_id) => {
                if !self.names.owns(client_id) {
                    self.report_misrouted(client_id);
                }
                let owner = self.router.loop_of(client_id);
                self.router
                    .mailbox(owner)
                    .post(LoopMsg::ForceOffline(client_id));
            }
        }
    }

    /// A command named a client this node does not own: the sender's
    /// `servers` list differs from this node's. Logged at most every 10 s.
    fn report_misrouted(&self, client_id: i64) {
        self.metrics
            .misrouted_commands
            .fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = self.misrouted.lock().allow() {
            log::warn!(
                "command for client {client_id}, which belongs to {} not {} (+{suppressed} more): \
                 is the servers list identical on every node and business service?",
                self.names.select_server(client_id),
                self.names.server()
            );
        }
    }
}
