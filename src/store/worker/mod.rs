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
//! | `mod.rs` | the jobs, the thread, the connection's upkeep: reconnects, lease, reaping, drain |
//! | `link.rs` | one connection: scripts loaded on connect, a pipeline exchange that stops at the first failure |
//! | `pipeline.rs` | a batch as pipelines: one command per job, replies to answers, failures to the retry policy |
//! | `retry.rs` | pure: a failure's class and what becomes of each job kind |
//! | `backlog.rs` | receipts held while Redis is unreachable, bounded |
//! | `report.rs` | retried and failed jobs counted by kind, failures logged rate-limited |

mod backlog;
mod link;
mod pipeline;
mod report;
mod retry;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use self::backlog::Backlog;
use self::link::Link;
use self::pipeline::Try;
use self::report::{Reason, Report};
use super::lease::{Lease, Renewal};
use super::Context;
use crate::bus::{Job, LoopMsg, Router, WorkerHandle};
use crate::metrics::Metrics;
use crate::names::Names;
use crate::throttle::Throttle;
use freeim_protocol::scripts::presence::PresenceScripts;

/// Most jobs sent in one pipeline.
const MAX_BATCH: usize = 2048;
/// How often the lease is refreshed and other nodes' leases are checked; with
/// no jobs, also how often the connection is proven alive.
const LEASE_REFRESH: Duration = Duration::from_secs(5);
/// Timeout for connecting to, writing to and reading from Redis.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(3);
/// Shortest time between two lines about a lost link.
const LINK_LOG_EVERY: Duration = Duration::from_secs(10);
/// First and longest wait before reconnecting to Redis.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(50);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(1);

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
    /// Receipts waiting for a connection.
    backlog: Backlog<Try>,
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
/// presence hashes, and starts the worker thread.
pub fn start(context: Context) -> Result<WorkerHandle, String> {
    let (sender, jobs) = crossbeam_channel::unbounded();
    let loops = context.router.loops();
    let lease = Lease::new(context.names.keys().alive(context.names.server()));
    let mut worker = Worker {
        jobs,
        names: context.names,
        router: context.router,
        report: Report::new(context.metrics.clone()),
        metrics: context.metrics,
        redis: context.redis,
        scripts: PresenceScripts::new(),
        link: None,
        backoff: BACKOFF_MIN,
        retry_at: Instant::now(),
        next_lease: Instant::now(),
        lease,
        backlog: Backlog::new(),
        run_id: None,
        unrestored: vec![false; loops],
        link_log: Throttle::new(LINK_LOG_EVERY),
        verbose: true,
    };
    let mut link =
        Link::open(&worker.redis, &worker.scripts, IO_TIMEOUT).map_err(|e| start_error(&e))?;
    let own = worker.names.server().to_string();
    if let Some(previous) = worker
        .lease
        .claim(&mut link.conn, &own, context.take_over)?
    {
        log::info!("took --server {own} over from {previous}");
    }
    worker.run_id = link.run_id.clone();
    worker.link = Some(link);
    worker.metrics.worker.up.store(true, Ordering::Relaxed);
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

    /// The live link, reconnecting when there is none and the backoff since
    /// the last failure has passed.
    fn link(&mut self) -> Option<&mut Link> {
        if self.link.is_none() && Instant::now() >= self.retry_at {
            self.reconnect();
        }
        self.link.as_mut()
    }

    /// The live link after [`Link::probe_if_idle`]: a link that died while
    /// idle is replaced at once, before anything is written on it.
    fn probed_link(&mut self) -> Option<&mut Link> {
        let probe = self.link.as_mut()?.probe_if_idle();
        if let Err(e) = probe {
            self.lost(&e);
            self.link_now();
        }
        self.link.as_mut()
    }

    /// The live link, reconnecting at once (whatever the backoff) when there
    /// is none: for a second send, and for a client waiting on its token.
    fn link_now(&mut self) -> Option<&mut Link> {
        if self.link.is_none() {
            self.reconnect();
        }
        self.link.as_mut()
    }

    /// Opens a connection; once it is up, asks every loop for the sockets it
    /// holds (`LoopMsg::ReportPresence`), whose snapshots make Redis agree
    /// with them whatever happened meanwhile.
    fn reconnect(&mut self) {
        match Link::open(&self.redis, &self.scripts, IO_TIMEOUT) {
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
    fn lost(&mut self, error: &redis::RedisError) {
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
    fn down(&mut self) {
        self.link = None;
        self.metrics.worker.up.store(false, Ordering::Relaxed);
        self.retry_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
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

    /// Takes this node out of Redis's presence at shutdown.
    fn drain(&mut self) {
        if !self.backlog.is_empty() && self.link_now().is_some() {
            self.pipeline(Vec::new());
        }
        self.give_up_held();
        self.report.flush_now();
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
            if let Err(e) = self.lease.end(&mut link.conn) {
                self.lost(&e);
            }
        }
    }

    /// Receipts still held when the node stops: failed.
    fn give_up_held(&mut self) {
        let mut wakes = self.router.wakes();
        for held in self.backlog.take_all().collect::<Vec<_>>() {
            self.give_up(held, Reason::Stopped, &mut wakes);
        }
        self.router.wake(&mut wakes);
    }

    /// Refreshes this node's lease and reaps nodes whose lease lapsed.
    fn keep_lease(&mut self) {
        self.next_lease = Instant::now() + LEASE_REFRESH;
        self.report.flush();
        let names = self.names.clone();
        if self.link().is_none() {
            return;
        }
        let Some(link) = self.link.as_mut() else {
            return;
        };
        match self.lease.renew(&mut link.conn) {
            Ok(Renewal::Renewed) => {}
            Ok(Renewal::TakenBy(holder)) => {
                log::error!(
                    "{holder} took --server {} over (--take-over): exiting now, leaving presence \
                     to it",
                    names.server()
                );
                std::process::exit(3);
            }
            Err(e) => return self.lost(&e),
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
            .arg(names.keys().alive(server))
            .arg(names.keys().node(server))
            .arg(names.keys().online())
            .arg(if force { "1" } else { "0" })
            .arg(names.keys().offline_event())
            .arg(names.keys().prefix())
            .query(&mut link.conn)
    }
}

/// The one line a failed first connection prints.
fn start_error(error: &redis::RedisError) -> String {
    match error.code() {
        Some("NOAUTH") => "Redis requires a password and --redis gives none: write it in the \
                           URL (redis://:password@host:port/, or user:password@ with ACL users)"
            .into(),
        _ => format!("cannot reach Redis: {error}"),
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
