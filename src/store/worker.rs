//! The Redis worker thread: the only place a node waits on Redis for answers.
//!
//! Event loops submit [`Job`]s; the worker takes every job
//! queued at that moment, sends them as one pipeline, and posts each answer
//! back to the loop that needs it. A connection storm therefore costs one
//! round-trip per batch, not per socket. Between batches it keeps this node's
//! presence lease alive and reaps the presence of nodes whose lease lapsed.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use redis::{ConnectionLike, Value};

use super::scripts::Scripts;
use super::Context;
use crate::metrics::Metrics;
use crate::node::mailbox::{ConnId, LoopMsg, Router, TokenOutcome};
use crate::protocol::{ClientTicket, Names};

/// Most jobs sent in one pipeline.
const MAX_BATCH: usize = 2048;
/// How long this node's presence lease lives without a refresh.
const LEASE_TTL_SECS: u64 = 15;
/// How often the lease is refreshed and other nodes' leases are checked.
const LEASE_REFRESH: Duration = Duration::from_secs(5);
/// Timeout for connecting to, writing to and reading from Redis.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(3);
/// First and longest wait before reconnecting to Redis.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(50);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Work for the Redis worker.
#[derive(Debug)]
pub enum Job {
    /// Consume an upgrade's token (GETDEL) and tell the loop who it admits.
    ClaimToken {
        /// The token from the query string.
        token: String,
        /// The loop holding the connection.
        loop_index: usize,
        /// The connection.
        conn: ConnId,
    },
    /// A socket of `client_id` opened: count it and publish the online event.
    SocketOpened {
        /// Whose socket.
        client_id: i64,
        /// The event payload (the token's value).
        event: Arc<str>,
        /// The socket's name in `{prefix}Node{server}` ([`socket_name`]).
        socket: String,
    },
    /// A socket closed: uncount it, publish the offline event, and leave every
    /// channel when it was the client's last socket.
    SocketClosed {
        /// Whose socket.
        client_id: i64,
        /// The event payload.
        event: Arc<str>,
        /// The socket's name in `{prefix}Node{server}`.
        socket: String,
    },
    /// Publish a payload (receipts).
    Publish {
        /// The pub/sub channel.
        channel: String,
        /// The payload.
        payload: String,
    },
    /// What one loop holds, sent after Redis came back: re-assert it.
    PresenceSnapshot {
        /// The loop that reports.
        loop_index: usize,
        /// Every open socket the loop holds.
        sockets: Vec<HeldSocket>,
    },
    /// The node is stopping: finish every job queued before this one, take
    /// this node's presence out of Redis, end the lease, then signal `done`.
    Drain {
        /// Signalled when the drain is complete.
        done: Sender<()>,
    },
}

/// An open socket, as a loop reports it after a Redis outage.
#[derive(Debug)]
pub struct HeldSocket {
    /// Its name in `{prefix}Node{server}`.
    pub socket: String,
    /// Whose socket.
    pub client_id: i64,
    /// Its event payload.
    pub event: Arc<str>,
}

/// The name of a socket in `{prefix}Node{server}`: `loop:key:generation`,
/// unique within one run of the node.
pub fn socket_name(loop_index: usize, conn: ConnId) -> String {
    format!(
        "{}{}:{}",
        socket_name_prefix(loop_index),
        conn.key,
        conn.generation
    )
}

/// The part of [`socket_name`] that names the loop.
fn socket_name_prefix(loop_index: usize) -> String {
    format!("{loop_index}:")
}

/// Submits jobs to the worker; cheap to clone.
#[derive(Clone)]
pub struct WorkerHandle {
    jobs: Sender<Job>,
}

impl WorkerHandle {
    /// A handle whose jobs go nowhere, for echo mode (which has no Redis).
    pub fn detached() -> WorkerHandle {
        let (jobs, _) = crossbeam_channel::unbounded();
        WorkerHandle { jobs }
    }

    /// Queues a job; never blocks.
    pub fn submit(&self, job: Job) {
        let _ = self.jobs.send(job);
    }
}

/// A live Redis connection with the script hashes loaded on it.
struct Link {
    conn: redis::Connection,
    socket_closed: String,
    reap_node: String,
    restore_presence: String,
}

struct Worker {
    jobs: Receiver<Job>,
    names: Arc<Names>,
    router: Router,
    metrics: Arc<Metrics>,
    redis: redis_link::RedisUrl,
    scripts: Scripts,
    link: Option<Link>,
    backoff: Duration,
    retry_at: Instant,
    next_lease: Instant,
}

/// Connects to Redis, takes back what a previous run of this node left in the
/// presence hashes, and starts the worker thread.
pub fn start(context: Context) -> Result<WorkerHandle, String> {
    let (sender, jobs) = crossbeam_channel::unbounded();
    let mut worker = Worker {
        jobs,
        names: context.names,
        router: context.router,
        metrics: context.metrics,
        redis: context.redis,
        scripts: Scripts::new(),
        link: None,
        backoff: BACKOFF_MIN,
        retry_at: Instant::now(),
        next_lease: Instant::now(),
    };
    let link = worker
        .connect()
        .map_err(|e| format!("cannot reach Redis: {e}"))?;
    worker.link = Some(link);
    worker.metrics.worker.up.store(true, Ordering::Relaxed);
    let own = worker.names.server().to_string();
    let reaped = worker
        .reap(&own, true)
        .map_err(|e| format!("cannot clear this node's old presence in Redis: {e}"))?;
    if reaped > 0 {
        log::info!("took back {reaped} sockets a previous run of {own} left counted online");
    }
    std::thread::Builder::new()
        .name("redis-worker".into())
        .spawn(move || worker.run())
        .map_err(|e| format!("cannot start the Redis worker thread: {e}"))?;
    Ok(WorkerHandle { jobs: sender })
}

impl Worker {
    fn run(mut self) {
        loop {
            let wake_at = match self.link {
                Some(_) => self.next_lease,
                None => self.retry_at.min(self.next_lease),
            };
            match self
                .jobs
                .recv_timeout(wake_at.saturating_duration_since(Instant::now()))
            {
                Ok(first) => {
                    let mut batch = Vec::with_capacity(64);
                    batch.push(first);
                    batch.extend(self.jobs.try_iter().take(MAX_BATCH - 1));
                    self.execute(batch);
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.link();
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if Instant::now() >= self.next_lease {
                self.keep_lease();
            }
        }
    }

    fn connect(&self) -> redis::RedisResult<Link> {
        let mut conn = self.redis.connect(IO_TIMEOUT)?;
        let mut load = |source: &str| -> redis::RedisResult<String> {
            redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(source)
                .query(&mut conn)
        };
        let socket_closed = load(&self.scripts.socket_closed)?;
        let reap_node = load(&self.scripts.reap_node)?;
        let restore_presence = load(&self.scripts.restore_presence)?;
        Ok(Link {
            conn,
            socket_closed,
            reap_node,
            restore_presence,
        })
    }

    /// The live link, reconnecting (with backoff) when there is none.
    fn link(&mut self) -> Option<&mut Link> {
        if self.link.is_none() && Instant::now() >= self.retry_at {
            match self.connect() {
                Ok(link) => {
                    log::info!("Redis worker reconnected: restoring this node's presence");
                    self.backoff = BACKOFF_MIN;
                    self.link = Some(link);
                    self.metrics.worker.up.store(true, Ordering::Relaxed);
                    self.metrics
                        .worker
                        .reconnects
                        .fetch_add(1, Ordering::Relaxed);
                    self.next_lease = Instant::now();
                    self.router.post_all(|| LoopMsg::ReportPresence);
                }
                Err(e) => self.lost(&e),
            }
        }
        self.link.as_mut()
    }

    fn lost(&mut self, error: &redis::RedisError) {
        self.metrics.worker.up.store(false, Ordering::Relaxed);
        if self.link.take().is_some() || self.backoff == BACKOFF_MIN {
            log::warn!("Redis worker lost its connection: {error}");
        }
        self.retry_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// Runs a batch in order: plain jobs as pipelines, with snapshots and
    /// drains (which need several round-trips) between them.
    fn execute(&mut self, batch: Vec<Job>) {
        let mut plain = Vec::with_capacity(batch.len());
        for job in batch {
            match job {
                Job::PresenceSnapshot {
                    loop_index,
                    sockets,
                } => {
                    self.pipeline(std::mem::take(&mut plain));
                    if let Err(e) = self.restore(loop_index, &sockets) {
                        self.lost(&e);
                    }
                }
                Job::Drain { done } => {
                    self.pipeline(std::mem::take(&mut plain));
                    self.drain();
                    let _ = done.send(());
                }
                job => plain.push(job),
            }
        }
        self.pipeline(plain);
    }

    fn pipeline(&mut self, batch: Vec<Job>) {
        if batch.is_empty() {
            return;
        }
        let names = self.names.clone();
        let Some(link) = self.link() else {
            return self.fail(batch);
        };
        let mut pipe = redis::pipe();
        let mut replies = 0;
        for job in &batch {
            replies += add_commands(&mut pipe, job, &names, link);
        }
        match link
            .conn
            .req_packed_commands(&pipe.get_packed_pipeline(), 0, replies)
        {
            Ok(values) => self.dispatch(batch, values),
            Err(e) => {
                self.lost(&e);
                self.fail(batch);
            }
        }
    }

    /// Makes Redis agree with the sockets loop `loop_index` holds.
    fn restore(&mut self, loop_index: usize, sockets: &[HeldSocket]) -> redis::RedisResult<()> {
        let names = self.names.clone();
        let Some(link) = self.link() else {
            return Ok(());
        };
        let node = names.server();
        let mut script = redis::cmd("EVALSHA");
        script
            .arg(&link.restore_presence)
            .arg(2)
            .arg(names.node_key(node))
            .arg(names.online_key())
            .arg(names.prefix())
            .arg(names.online_event_channel())
            .arg(names.offline_event_channel())
            .arg(socket_name_prefix(loop_index));
        for held in sockets {
            script
                .arg(&held.socket)
                .arg(held.client_id)
                .arg(held.event.as_ref());
        }
        script.query::<()>(&mut link.conn)?;
        log::info!(
            "restored the presence of loop {loop_index}: {} sockets held",
            sockets.len()
        );
        Ok(())
    }

    /// Takes this node out of Redis's presence at shutdown.
    fn drain(&mut self) {
        let names = self.names.clone();
        if self.link().is_none() {
            return log::warn!(
                "Redis unavailable during drain: other nodes will reap this node's presence"
            );
        }
        match self.reap(names.server(), true) {
            Ok(0) => {}
            Ok(n) => {
                log::info!("drain: took {n} sockets that did not close in time out of presence")
            }
            Err(e) => return self.lost(&e),
        }
        if let Some(link) = self.link.as_mut() {
            let ended: redis::RedisResult<()> = redis::cmd("DEL")
                .arg(names.alive_key(names.server()))
                .query(&mut link.conn);
            if let Err(e) = ended {
                self.lost(&e);
            }
        }
    }

    fn dispatch(&mut self, batch: Vec<Job>, values: Vec<Value>) {
        let mut values = values.into_iter();
        let mut wakes = self.router.wakes();
        for job in batch {
            match job {
                Job::ClaimToken {
                    loop_index, conn, ..
                } => {
                    let outcome = match values.next() {
                        Some(Value::BulkString(json)) => match ClientTicket::parse(&json) {
                            Ok(ticket) => TokenOutcome::Admitted(ticket),
                            Err(e) => {
                                log::warn!(
                                    "token value is not FreeIM's {{Item1, Item2}} JSON: {e}"
                                );
                                TokenOutcome::Refused
                            }
                        },
                        _ => TokenOutcome::Refused,
                    };
                    let msg = LoopMsg::TokenChecked { conn, outcome };
                    self.router.send(loop_index, msg, &mut wakes);
                }
                Job::SocketOpened { .. } => check_replies(values.by_ref().take(3)),
                Job::SocketClosed { .. } | Job::Publish { .. } => {
                    check_replies(values.by_ref().take(1))
                }
                // Run outside pipelines by `execute`; they add no replies.
                Job::PresenceSnapshot { .. } | Job::Drain { .. } => {}
            }
        }
        self.router.wake(&mut wakes);
    }

    /// Answers a batch that could not reach Redis.
    fn fail(&mut self, batch: Vec<Job>) {
        let mut dropped = 0usize;
        let mut wakes = self.router.wakes();
        for job in batch {
            match job {
                Job::ClaimToken {
                    loop_index, conn, ..
                } => {
                    let outcome = TokenOutcome::Unavailable;
                    let msg = LoopMsg::TokenChecked { conn, outcome };
                    self.router.send(loop_index, msg, &mut wakes);
                }
                _ => dropped += 1,
            }
        }
        self.router.wake(&mut wakes);
        if dropped > 0 {
            log::warn!("Redis unavailable: dropped {dropped} presence or publish jobs");
        }
    }

    /// Refreshes this node's lease and reaps nodes whose lease lapsed.
    fn keep_lease(&mut self) {
        self.next_lease = Instant::now() + LEASE_REFRESH;
        let names = self.names.clone();
        let Some(link) = self.link() else { return };
        let lease: redis::RedisResult<()> = redis::cmd("SET")
            .arg(names.alive_key(names.server()))
            .arg(std::process::id())
            .arg("EX")
            .arg(LEASE_TTL_SECS)
            .query(&mut link.conn);
        if let Err(e) = lease {
            return self.lost(&e);
        }
        for server in names.servers().iter().filter(|s| *s != names.server()) {
            match self.reap(server, false) {
                Ok(0) => {}
                Ok(n) => log::warn!(
                    "node {server} stopped renewing its lease: took back {n} of its sockets"
                ),
                Err(e) => return self.lost(&e),
            }
        }
    }

    /// Runs the reap script for `server`; `force` ignores a live lease.
    fn reap(&mut self, server: &str, force: bool) -> redis::RedisResult<i64> {
        let names = self.names.clone();
        let Some(link) = self.link.as_mut() else {
            return Ok(0);
        };
        redis::cmd("EVALSHA")
            .arg(&link.reap_node)
            .arg(3)
            .arg(names.alive_key(server))
            .arg(names.node_key(server))
            .arg(names.online_key())
            .arg(if force { "1" } else { "0" })
            .arg(names.offline_event_channel())
            .arg(names.prefix())
            .query(&mut link.conn)
    }
}

/// Appends `job`'s commands to `pipe`; returns how many replies they produce.
fn add_commands(pipe: &mut redis::Pipeline, job: &Job, names: &Names, link: &Link) -> usize {
    match job {
        Job::ClaimToken { token, .. } => {
            pipe.cmd("GETDEL").arg(names.token_key(token));
            1
        }
        Job::SocketOpened {
            client_id,
            event,
            socket,
        } => {
            pipe.cmd("HSET")
                .arg(names.node_key(names.server()))
                .arg(socket)
                .arg(format!("{client_id}|{event}"));
            pipe.cmd("HINCRBY")
                .arg(names.online_key())
                .arg(client_id)
                .arg(1);
            pipe.cmd("PUBLISH")
                .arg(names.online_event_channel())
                .arg(event.as_ref());
            3
        }
        Job::SocketClosed {
            client_id,
            event,
            socket,
        } => {
            pipe.cmd("EVALSHA")
                .arg(&link.socket_closed)
                .arg(2)
                .arg(names.online_key())
                .arg(names.node_key(names.server()))
                .arg(client_id)
                .arg(event.as_ref())
                .arg(names.offline_event_channel())
                .arg(names.prefix())
                .arg(socket);
            1
        }
        Job::Publish { channel, payload } => {
            pipe.cmd("PUBLISH").arg(channel).arg(payload);
            1
        }
        Job::PresenceSnapshot { .. } | Job::Drain { .. } => 0,
    }
}

fn check_replies(values: impl Iterator<Item = Value>) {
    for value in values {
        if let Value::ServerError(e) = value {
            log::warn!("Redis refused a presence or publish command: {e:?}");
        }
    }
}
