//! The Redis worker thread: the only place a node waits on Redis for answers.
//!
//! Event loops submit [`Job`]s; the worker takes every job
//! queued at that moment, sends them as one pipeline, and posts each answer
//! back to the loop that needs it. A connection storm therefore costs one
//! round-trip per batch, not per socket. Between batches it keeps this node's
//! presence lease alive and reaps the presence of nodes whose lease lapsed.
//!
//! # Failures
//!
//! No job is dropped silently. Every job is one command, so every reply
//! answers one job; when a pipeline fails, the jobs answered before the
//! failure keep their answers and each of the others goes where the retry
//! policy (`retry.rs`, with its table) sends it:
//! - sent again once, at once, on a fresh connection (a client waiting on
//!   its token gets one such attempt before its 503);
//! - receipts, while Redis cannot be reached at all, held (bounded) and
//!   published once a connection is back;
//! - presence jobs left to the presence snapshot that every loop sends after
//!   a reconnect (a failed pipeline always drops the connection, so a
//!   reconnect, and with it a snapshot, always follows): the node's sockets
//!   are the truth, re-asserted, never re-incremented, since every presence
//!   script is idempotent (`store/scripts.rs`);
//! - or counted failed by kind (`freeim_redis_jobs_failed_total`) and logged,
//!   rate-limited (`report.rs`).
//!
//! A silent link is noticed by the read timeout (`IO_TIMEOUT`) of the
//! next request (`freeim_redis_liveness_failures_total{role="worker"}`);
//! when no job comes, the lease refresh every `LEASE_REFRESH` is that
//! request, so a link that died silently is given up within about
//! `LEASE_REFRESH + IO_TIMEOUT` (8 s), ahead of TCP keepalive (about 11 s).
//!
//! # Layout
//!
//! | file | job |
//! |---|---|
//! | `mod.rs` | the thread: the `Worker`, `start`, the main loop taking jobs in batches |
//! | `reconnect.rs` | the connection's upkeep: the live link, reconnects with backoff, a lost link given up |
//! | `keep_lease.rs` | between batches: this node's lease renewed, lapsed nodes' presence reaped |
//! | `drain.rs` | at shutdown: held receipts given up, this node's presence reaped, its lease ended |
//! | `link.rs` | one connection: scripts loaded on connect, a pipeline exchange that stops at the first failure |
//! | `pipeline.rs` | a batch as pipelines: one command per job, replies to answers, failures to the retry policy |
//! | `retry.rs` | pure: a failure's class and what becomes of each job kind |
//! | `backlog.rs` | receipts held while Redis is unreachable, bounded |
//! | `report.rs` | retried and failed jobs counted by kind, failures logged rate-limited |

mod backlog;
mod drain;
mod keep_lease;
mod link;
mod pipeline;
mod reconnect;
mod report;
mod retry;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use self::backlog::Backlog;
use self::link::Link;
use self::pipeline::Try;
use self::reconnect::LINK_LOG_EVERY;
use self::report::Report;
use super::error::StoreError;
use super::lease::Lease;
use super::Context;
use crate::bus::{Job, Router, WorkerHandle};
use crate::metrics::Metrics;
use crate::names::Names;
use crate::throttle::Throttle;
use freeim_protocol::scripts::presence::PresenceScripts;

/// Most jobs sent in one pipeline.
const MAX_BATCH: usize = 2048;
/// Timeout for connecting to, writing to and reading from Redis.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(3);
/// First and longest wait before reconnecting to Redis.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(50);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What a process does with its node's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tenure {
    /// Holds it: renewed every `LEASE_REFRESH`.
    Held,
    /// Not yet: the process it takes the connections over from holds it.
    Awaited,
    /// That process retired: taken at the next chance, then held.
    Due,
    /// This process handed its connections over: never renewed again.
    Retired,
}

struct Worker {
    jobs: Receiver<Job>,
    names: Arc<Names>,
    router: Router,
    metrics: Arc<Metrics>,
    redis: redis_link::RedisUrl,
    scripts: PresenceScripts,
    link: Option<Link>,
    backoff: Duration,
    retry_at: Instant,
    next_lease: Instant,
    /// This node's lease on its name.
    lease: Lease,
    /// What this process does with the lease.
    tenure: Tenure,
    /// Receipts waiting for a connection.
    backlog: Backlog<Try>,
    /// A Redis Cluster connection for what goes to other nodes' slots
    /// (receipts to their channels, reaping them); made when first needed.
    cluster: Option<redis::cluster::ClusterConnection>,
    /// The `run_id` of the Redis server last connected to.
    run_id: Option<String>,
    /// Per loop: the worker reconnected to a different Redis server (a
    /// restart, maybe empty, or a failover) and the loop's presence snapshot
    /// has not been applied since, so Redis may have lost its sockets; see
    /// `SOCKET_CLOSED` in `store/scripts.rs`.
    unrestored: Vec<bool>,
    report: Report,
    /// Rate limit of the lines about a lost link.
    link_log: Throttle,
    /// The last loss was logged: so are the reconnect and the restores
    /// that follow it (else they are quiet too).
    verbose: bool,
}

/// Connects to Redis, takes back what a previous run of this node left in the
/// presence hashes, and starts the worker thread. A process taking the
/// connections over from a running node (`context.upgrade`) does neither:
/// the presence hashes are true, and the lease waits for
/// [`Job::AssumeLease`].
pub fn start(context: Context) -> Result<WorkerHandle, StoreError> {
    let (sender, jobs) = crossbeam_channel::unbounded();
    let loops = context.router.loops();
    let lease = Lease::new(context.names.keys().alive(context.names.server()));
    let scripts = PresenceScripts::for_layout(context.names.layout());
    let mut worker = Worker {
        jobs,
        names: context.names,
        router: context.router,
        report: Report::new(context.metrics.clone()),
        metrics: context.metrics,
        redis: context.redis,
        scripts,
        link: None,
        backoff: BACKOFF_MIN,
        retry_at: Instant::now(),
        next_lease: Instant::now(),
        lease,
        tenure: if context.upgrade {
            Tenure::Awaited
        } else {
            Tenure::Held
        },
        backlog: Backlog::new(),
        run_id: None,
        cluster: None,
        unrestored: vec![false; loops],
        link_log: Throttle::new(LINK_LOG_EVERY),
        verbose: true,
    };
    let mut link = Link::open(
        &worker.redis,
        worker.names.slot(),
        &worker.scripts,
        IO_TIMEOUT,
    )
    .map_err(StoreError::connecting)?;
    let own = worker.names.server().to_string();
    if !context.upgrade {
        if let Some(previous) = worker
            .lease
            .claim(&mut link.conn, &own, context.take_over)?
        {
            log::info!("took --server {own} over from {previous}");
        }
    }
    worker.run_id = link.run_id.clone();
    worker.link = Some(link);
    worker.metrics.worker.up.store(true, Ordering::Relaxed);
    if !context.upgrade {
        let reaped = worker.reap(&own, true).map_err(StoreError::Reap)?;
        if reaped > 0 {
            log::info!("took back {reaped} sockets a previous run of {own} left counted online");
        }
    }
    std::thread::Builder::new()
        .name("redis-worker".into())
        .spawn(move || worker.run())
        .map_err(|source| StoreError::Thread {
            thread: "worker",
            source,
        })?;
    Ok(WorkerHandle::new(sender))
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
                Err(RecvTimeoutError::Disconnected) => {
                    self.give_up_held();
                    return self.report.flush_now();
                }
            }
            if self.link.is_some() && !self.backlog.is_empty() {
                self.pipeline(Vec::new());
            }
            if Instant::now() >= self.next_lease {
                self.keep_lease();
            }
        }
    }

    /// Runs a batch in order: jobs as pipelines, with drains (which need
    /// several round-trips) between them.
    fn execute(&mut self, batch: Vec<Job>) {
        let mut plain = Vec::with_capacity(batch.len());
        for job in batch {
            match job {
                Job::Drain { done } => {
                    self.pipeline(std::mem::take(&mut plain));
                    self.drain();
                    let _ = done.send(());
                }
                Job::Retire { done } => {
                    self.pipeline(std::mem::take(&mut plain));
                    self.tenure = Tenure::Retired;
                    self.report.flush_now();
                    let _ = done.send(());
                }
                Job::AssumeLease { done } => {
                    self.pipeline(std::mem::take(&mut plain));
                    self.tenure = Tenure::Due;
                    self.keep_lease();
                    let _ = done.send(());
                }
                Job::PrimaryChanged => {
                    self.pipeline(std::mem::take(&mut plain));
                    if self.link.take().is_some() {
                        log::warn!("Redis worker: Sentinel announced a new primary: reconnecting");
                    }
                    self.metrics.worker.up.store(false, Ordering::Relaxed);
                    self.retry_at = Instant::now();
                    self.link();
                }
                job => plain.extend(Try::new(job)),
            }
        }
        self.pipeline(plain);
    }
}
