//! Redis connections: a bounded pool of connections opened with timeouts,
//! checked before reuse after a long idle spell, dropped after I/O errors so
//! the next call reconnects.
//!
//! # Slots
//!
//! Every call names the hash slot its keys and channels share (see
//! `shards.rs`), and runs on a connection to the master serving that slot:
//! with a Redis Cluster URL the connection is opened by asking the cluster
//! (`RedisUrl::connect_to_slot`), with any other URL the slot does not
//! matter (every call names the same one). Idle connections are kept with
//! their slot and reused for it only; when the pool is full and no idle
//! connection has the call's slot, the oldest idle one is closed for it.
//!
//! # Bound
//!
//! At most `max_connections` connections are open at any moment, counting
//! idle ones, ones in use and ones being opened. A call takes an idle
//! connection, or opens one while fewer than the cap are open, or else waits
//! in line (first come, first served: a call that arrives later never
//! overtakes a waiting one) for at most `pool_wait`; then it fails with
//! `Error::PoolExhausted` without having sent anything. Connections go back
//! to the pool after the call, so a steady load reuses the same few.
//!
//! # Failures
//!
//! Opening and every command are bounded by the I/O timeout, so while Redis
//! is down calls fail fast with `Error::Redis`, and they work again as soon
//! as Redis is back.
//!
//! An idle connection unused for longer than [`IDLE_CHECK_AFTER`] may have
//! died silently meanwhile (a NAT or proxy forgot the flow, a firewall
//! dropped it): before reuse it must answer `PING` within
//! [`CHECK_TIMEOUT`] (or the I/O timeout, if shorter), else it is dropped
//! and the call opens a fresh connection instead, on the same place in the
//! pool.
//!
//! A `MOVED` reply (the slot is served elsewhere now: a cluster failover or
//! resharding) means Redis ran nothing: the connection is dropped and the
//! call, publishes included, runs once more on a fresh connection to the
//! slot's master as the cluster names it now.
//!
//! One retry, for calls that are safe to repeat ([`Pool::run`]: reads,
//! `SET`, the idempotent channel scripts): after Redis restarts, every idle
//! connection is dead, and the first command on one fails with a
//! dropped-connection error (EOF, reset, broken pipe). Such a failure on a
//! *reused* connection drops every idle connection and runs the call once
//! more on a fresh connection. A dropped connection does not prove that
//! Redis never ran the commands (it may have run them and lost the
//! replies), so publishes ([`Pool::run_once`]) are never repeated: the
//! `PING` check above catches connections that died while idle, and a
//! connection dropped during the call is the caller's error. Any other
//! error (a timeout, a refused connect, a Redis error reply) is returned as
//! is.
//!
//! So a call takes at most: `pool_wait` + the check (≤ 1 s) + a connect +
//! its round trips, and with the retry one more connect and its round
//! trips, each connect and read bounded by the I/O timeout (with a Redis
//! Cluster, a connect first asks the seeds in turn which master serves the
//! slot, each ask bounded by the I/O timeout too).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use redis::{Connection, ConnectionLike, ErrorKind, RedisError, RedisResult, ServerErrorKind};
use redis_link::RedisUrl;

use crate::error::{Error, Result};

/// An idle connection unused for longer than this is checked with `PING`
/// before it serves a call (1 s).
pub(crate) const IDLE_CHECK_AFTER: Duration = Duration::from_secs(1);

/// The longest that check waits for `PONG` (1 s, or the I/O timeout if
/// shorter); a slower answer counts as a dead connection.
pub(crate) const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// Opens connections with the connect/read/write timeout applied.
#[derive(Clone, Debug)]
pub(crate) struct Connector {
    url: RedisUrl,
    io_timeout: Duration,
}

impl Connector {
    pub(crate) fn new(url: RedisUrl, io_timeout: Duration) -> Connector {
        Connector { url, io_timeout }
    }

    pub(crate) fn io_timeout(&self) -> Duration {
        self.io_timeout
    }

    pub(crate) fn url(&self) -> &RedisUrl {
        &self.url
    }

    /// A fresh connection to the master serving `slot` (resolved anew:
    /// DNS, Sentinel, the cluster's slot map; any server for other URLs).
    /// Connecting is bounded by the timeout; so is every later read and write.
    pub(crate) fn connect(&self, slot: u16) -> RedisResult<Connection> {
        self.url.connect_to_slot(slot, self.io_timeout)
    }
}

/// The pool's counters, as [`ImHelper::stats`](crate::ImHelper::stats)
/// reports them.
///
/// # Example
///
/// ```
/// use imhelper::{ImHelper, ImHelperOptions};
///
/// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
/// let stats = helper.stats();
/// assert_eq!((stats.open, stats.idle, stats.opened), (0, 0, 0)); // nothing opened yet
/// assert!(stats.open <= stats.max_connections);
/// # Ok::<(), imhelper::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// The cap: [`ImHelperOptions::max_connections`](crate::ImHelperOptions::max_connections).
    pub max_connections: usize,
    /// Connections open now: idle, in use, or being opened. Never above
    /// `max_connections`.
    pub open: usize,
    /// Of those, idle ones waiting for a call.
    pub idle: usize,
    /// Calls waiting for a connection now.
    pub waiting: usize,
    /// Connections opened since the helper was created. Growing while
    /// `open` stays put means connections keep failing (Redis restarts, a
    /// flaky network).
    pub opened: u64,
    /// Calls that ran a second time, on a fresh connection, because the
    /// reused one had been dropped, or a Redis Cluster node answered that
    /// the call's slot moved (see "Failures" in the pool docs).
    pub retried: u64,
    /// Idle connections that failed the check before reuse and were
    /// replaced.
    pub stale_replaced: u64,
    /// Calls that failed with [`Error::PoolExhausted`].
    pub pool_exhausted: u64,
}

/// A connector plus the connections it opened, at most `max_connections`.
pub(crate) struct Pool {
    connector: Connector,
    max_connections: usize,
    wait: Duration,
    /// [`IDLE_CHECK_AFTER`]; shorter in tests.
    idle_check_after: Duration,
    state: Mutex<State>,
    /// Bumped when Sentinel announces a new primary: connections from an
    /// earlier epoch go to the old primary and are closed, never reused.
    epoch: Arc<AtomicU64>,
    /// Signalled whenever a connection is freed, a place opens up, or the
    /// head of the line changes.
    changed: Condvar,
    opened: AtomicU64,
    retried: AtomicU64,
    stale_replaced: AtomicU64,
    exhausted: AtomicU64,
}

struct State {
    /// Most recently returned last (reused first).
    idle: Vec<Idle>,
    /// Idle + in use + being opened.
    open: usize,
    /// Tickets of the waiting calls, in arrival order.
    line: VecDeque<u64>,
    next_ticket: u64,
}

impl State {
    /// The most recent idle connection of `epoch` to `slot`
    /// (`Some(Some(_))`), or a place to open one (`Some(None)`, already
    /// counted in `open`: a free one, or the place of the oldest idle
    /// connection, closed for it), or nothing. Idle connections of an
    /// earlier epoch are closed on the way.
    fn take(&mut self, max_connections: usize, epoch: u64, slot: u16) -> Option<Option<Idle>> {
        let before = self.idle.len();
        self.idle.retain(|idle| idle.epoch == epoch);
        self.open -= before - self.idle.len();
        if let Some(index) = self.idle.iter().rposition(|idle| idle.slot == slot) {
            return Some(Some(self.idle.remove(index)));
        }
        if self.open < max_connections {
            self.open += 1;
            return Some(None);
        }
        if !self.idle.is_empty() {
            self.idle.remove(0);
            return Some(None);
        }
        None
    }
}

struct Idle {
    connection: Connection,
    since: Instant,
    /// The pool's epoch when the connection's call began.
    epoch: u64,
    /// The hash slot whose master it is connected to.
    slot: u16,
}

impl Pool {
    /// A pool of at most `max_connections`, waiting at most `wait` for one;
    /// `epoch` is bumped by whoever follows failovers.
    pub(crate) fn new(
        connector: Connector,
        max_connections: usize,
        wait: Duration,
        epoch: Arc<AtomicU64>,
    ) -> Pool {
        Pool {
            connector,
            max_connections: max_connections.max(1),
            wait,
            idle_check_after: IDLE_CHECK_AFTER,
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
                line: VecDeque::new(),
                next_ticket: 0,
            }),
            epoch,
            changed: Condvar::new(),
            opened: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            stale_replaced: AtomicU64::new(0),
            exhausted: AtomicU64::new(0),
        }
    }

    pub(crate) fn connector(&self) -> &Connector {
        &self.connector
    }

    pub(crate) fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// The counters now.
    pub(crate) fn stats(&self) -> PoolStats {
        let (open, idle, waiting) = {
            let state = self.state.lock();
            (state.open, state.idle.len(), state.line.len())
        };
        PoolStats {
            max_connections: self.max_connections,
            open,
            idle,
            waiting,
            opened: self.opened.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            stale_replaced: self.stale_replaced.load(Ordering::Relaxed),
            pool_exhausted: self.exhausted.load(Ordering::Relaxed),
        }
    }

    /// Runs `op` on a pooled connection to the master of `slot`, once more
    /// on a fresh one when a reused connection turns out dropped or the slot
    /// moved (see the module docs). `op` must be safe to run twice.
    pub(crate) fn run<T>(
        &self,
        slot: u16,
        op: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> Result<T> {
        self.run_with(true, slot, op)
    }

    /// Runs `op` on a pooled connection to the master of `slot`, never
    /// twice unless Redis answered that the slot moved (then it ran
    /// nothing): for publishes, which a repeat would deliver twice.
    pub(crate) fn run_once<T>(
        &self,
        slot: u16,
        op: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> Result<T> {
        self.run_with(false, slot, op)
    }

    fn run_with<T>(
        &self,
        retry: bool,
        slot: u16,
        mut op: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> Result<T> {
        let (mut place, idle) = self.acquire(slot)?;
        let reusable = idle.and_then(|idle| self.checked(idle));
        let reused = reusable.is_some();
        let mut connection = match reusable {
            Some(connection) => connection,
            None => self.open(slot)?,
        };
        match op(&mut connection) {
            Err(err) if slot_moved(&err) || (retry && reused && err.is_connection_dropped()) => {
                drop(connection);
                self.drop_idle(slot);
                self.retried.fetch_add(1, Ordering::Relaxed);
                let mut fresh = self.open(slot)?;
                let outcome = op(&mut fresh);
                place.finish(slot, fresh, outcome)
            }
            outcome => place.finish(slot, connection, outcome),
        }
    }

    /// A place in the pool, with an idle connection to `slot`'s master when
    /// there is one; waits in line for at most `wait`.
    fn acquire(&self, slot: u16) -> Result<(Place<'_>, Option<Idle>)> {
        let started = Instant::now();
        let mut state = self.state.lock();
        if state.line.is_empty() {
            if let Some(idle) = state.take(self.max_connections, self.epoch(), slot) {
                return Ok((self.place(), idle));
            }
        }
        let deadline = started + self.wait;
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.line.push_back(ticket);
        loop {
            if state.line.front() == Some(&ticket) {
                if let Some(idle) = state.take(self.max_connections, self.epoch(), slot) {
                    state.line.pop_front();
                    drop(state);
                    // The next in line may find a connection too.
                    self.changed.notify_all();
                    return Ok((self.place(), idle));
                }
            }
            if Instant::now() >= deadline {
                state.line.retain(|&waiting| waiting != ticket);
                drop(state);
                self.changed.notify_all();
                self.exhausted.fetch_add(1, Ordering::Relaxed);
                return Err(Error::PoolExhausted {
                    max_connections: self.max_connections,
                    waited: started.elapsed(),
                });
            }
            self.changed.wait_until(&mut state, deadline);
        }
    }

    fn place(&self) -> Place<'_> {
        Place {
            pool: self,
            keep: None,
            epoch: self.epoch(),
        }
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// A fresh connection to `slot`'s master (for a place already counted
    /// in `open`).
    fn open(&self, slot: u16) -> RedisResult<Connection> {
        let connection = self.connector.connect(slot)?;
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(connection)
    }

    /// The idle connection, if it was used recently or answers `PING` in
    /// time now; `None` (and it is closed) otherwise.
    fn checked(&self, idle: Idle) -> Option<Connection> {
        if idle.since.elapsed() <= self.idle_check_after {
            return Some(idle.connection);
        }
        let mut connection = idle.connection;
        let io_timeout = self.connector.io_timeout();
        let alive = connection
            .set_read_timeout(Some(CHECK_TIMEOUT.min(io_timeout)))
            .and_then(|()| redis::cmd("PING").query::<String>(&mut connection))
            .and_then(|_| connection.set_read_timeout(Some(io_timeout)))
            .is_ok();
        if alive {
            Some(connection)
        } else {
            self.stale_replaced.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    /// Closes every idle connection to `slot`'s master (after one turned
    /// out dead or moved, the others, from the same time, likely are too).
    fn drop_idle(&self, slot: u16) {
        let stale: Vec<Idle> = {
            let mut state = self.state.lock();
            let (stale, kept) = std::mem::take(&mut state.idle)
                .into_iter()
                .partition(|idle| idle.slot == slot);
            state.idle = kept;
            state.open -= stale.len();
            stale
        };
        if !stale.is_empty() {
            self.changed.notify_all();
        }
        drop(stale);
    }
}

/// One call's place among the `max_connections`: counted in `open` until
/// dropped, when the connection kept by [`finish`](Place::finish) goes back
/// to the idle list, or the place frees up (also when the call fails or
/// panics half-way).
struct Place<'a> {
    pool: &'a Pool,
    /// The connection to keep, and the slot it serves.
    keep: Option<(Connection, u16)>,
    epoch: u64,
}

impl Place<'_> {
    /// Keeps the connection (to `slot`'s master) for the next call unless
    /// the outcome says it is broken; returns the outcome.
    fn finish<T>(
        &mut self,
        slot: u16,
        connection: Connection,
        outcome: RedisResult<T>,
    ) -> Result<T> {
        let keep = match &outcome {
            Ok(_) => true,
            Err(err) => still_in_sync(err),
        };
        if keep && connection.is_open() {
            self.keep = Some((connection, slot));
        }
        outcome.map_err(Error::from)
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        {
            let mut state = self.pool.state.lock();
            match self.keep.take() {
                Some((connection, slot)) if self.epoch == self.pool.epoch() => {
                    state.idle.push(Idle {
                        connection,
                        since: Instant::now(),
                        epoch: self.epoch,
                        slot,
                    })
                }
                _ => state.open -= 1,
            }
        }
        self.pool.changed.notify_all();
    }
}

/// Whether a connection that produced `err` can serve the next call: only
/// when Redis answered (an error reply, or a reply of an unexpected type).
/// I/O errors and timeouts may leave a reply in flight, so the connection is
/// dropped; so are connections to a server that is no longer (or not yet)
/// the primary (`READONLY`, `LOADING`, `MASTERDOWN`) or no longer serves the
/// slot (`MOVED`): the next connect asks again where the primary is.
fn still_in_sync(err: &RedisError) -> bool {
    !slot_moved(err)
        && !matches!(
            err.kind(),
            ErrorKind::Io
                | ErrorKind::Parse
                | ErrorKind::Client
                | ErrorKind::Server(
                    ServerErrorKind::ReadOnly
                        | ServerErrorKind::BusyLoading
                        | ServerErrorKind::MasterDown
                )
        )
}

/// Whether Redis answered `MOVED`: a cluster node that does not serve the
/// slot (any more), which ran nothing.
fn slot_moved(err: &RedisError) -> bool {
    err.kind() == ErrorKind::Server(ServerErrorKind::Moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use testkit::{Forwarder, RedisServer};

    /// The slot of the tests' calls (a single Redis serves every slot).
    const SLOT: u16 = 7;

    fn pool(url: &str, max_connections: usize, io_timeout: Duration) -> Pool {
        let url = url.parse().unwrap();
        Pool::new(
            Connector::new(url, io_timeout),
            max_connections,
            io_timeout,
            Arc::default(),
        )
    }

    fn ping(pool: &Pool) -> Result<String> {
        pool.run(SLOT, |c| redis::cmd("PING").query::<String>(c))
    }

    #[test]
    fn io_errors_drop_the_connection() {
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(!still_in_sync(&io));
        let timeout = RedisError::from(std::io::Error::from(std::io::ErrorKind::WouldBlock));
        assert!(!still_in_sync(&timeout));
    }

    #[test]
    fn replies_from_a_server_that_is_not_the_primary_drop_the_connection() {
        for kind in [
            ServerErrorKind::ReadOnly,
            ServerErrorKind::BusyLoading,
            ServerErrorKind::MasterDown,
        ] {
            let reply = RedisError::from((ErrorKind::Server(kind), "not the primary"));
            assert!(!still_in_sync(&reply), "{kind:?}");
        }
    }

    #[test]
    fn error_replies_keep_the_connection() {
        let reply = RedisError::from((
            ErrorKind::Server(redis::ServerErrorKind::ResponseError),
            "WRONGTYPE",
        ));
        assert!(still_in_sync(&reply));
        let conversion = RedisError::from((ErrorKind::UnexpectedReturnType, "not an int"));
        assert!(still_in_sync(&conversion));
    }

    #[test]
    fn a_moved_reply_drops_the_connection() {
        let moved = RedisError::from((
            ErrorKind::Server(ServerErrorKind::Moved),
            "moved",
            "3999 127.0.0.1:7001".to_string(),
        ));
        assert!(slot_moved(&moved));
        assert!(!still_in_sync(&moved));
    }

    #[test]
    fn a_moved_reply_runs_the_call_once_more_on_a_fresh_connection_even_a_publish() {
        let redis = RedisServer::start();
        let pool = pool(&redis.url(), 2, Duration::from_secs(2));
        let mut calls = 0;
        let answer = pool.run_once(SLOT, |c| {
            calls += 1;
            if calls == 1 {
                redis::cmd("EVAL")
                    .arg("return redis.error_reply('MOVED 7 127.0.0.1:7001')")
                    .arg(0)
                    .query::<String>(c)
            } else {
                redis::cmd("PING").query::<String>(c)
            }
        });
        assert_eq!(answer.unwrap(), "PONG");
        let stats = pool.stats();
        assert_eq!((stats.retried, stats.opened, stats.open), (1, 2, 1));
    }

    #[test]
    fn idle_connections_serve_their_own_slot_and_give_way_when_the_pool_is_full() {
        let redis = RedisServer::start();
        let ping_on = |pool: &Pool, slot| {
            pool.run(slot, |c| redis::cmd("PING").query::<String>(c))
                .unwrap()
        };
        let two = pool(&redis.url(), 2, Duration::from_secs(2));
        for slot in [1, 2, 1, 2] {
            ping_on(&two, slot);
        }
        let stats = two.stats();
        assert_eq!((stats.open, stats.idle, stats.opened), (2, 2, 2));
        let one = pool(&redis.url(), 1, Duration::from_secs(2));
        for slot in [1, 2, 2, 1] {
            ping_on(&one, slot);
        }
        let stats = one.stats();
        assert_eq!((stats.open, stats.idle, stats.opened), (1, 1, 3));
    }

    #[test]
    fn refused_connect_frees_its_place() {
        let port = testkit::free_port();
        let pool = pool(
            &format!("redis://127.0.0.1:{port}/"),
            1,
            Duration::from_millis(200),
        );
        for _ in 0..3 {
            // With one place, a leaked place would make the next call wait
            // and fail with PoolExhausted instead.
            assert!(matches!(ping(&pool), Err(Error::Redis(_))));
        }
        let stats = pool.stats();
        assert_eq!((stats.open, stats.idle, stats.opened), (0, 0, 0));
    }

    #[test]
    fn a_connection_is_reused() {
        let redis = RedisServer::start();
        let pool = pool(&redis.url(), 4, Duration::from_secs(2));
        for _ in 0..10 {
            assert_eq!(ping(&pool).unwrap(), "PONG");
        }
        let stats = pool.stats();
        assert_eq!((stats.open, stats.idle, stats.opened), (1, 1, 1));
    }

    #[test]
    fn waiting_calls_are_served_in_arrival_order() {
        let redis = RedisServer::start();
        let pool = Arc::new(pool(&redis.url(), 1, Duration::from_secs(5)));
        ping(&pool).unwrap();
        let (held_tx, held_rx) = crossbeam_channel::bounded(0);
        let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
        let holder = {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || {
                pool.run(SLOT, |c| {
                    held_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                    redis::cmd("PING").query::<String>(c)
                })
            })
        };
        held_rx.recv().unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for i in 0..4 {
            let shared = Arc::clone(&pool);
            let order = Arc::clone(&order);
            waiters.push(std::thread::spawn(move || {
                shared.run(SLOT, |c| {
                    order.lock().push(i);
                    redis::cmd("PING").query::<String>(c)
                })
            }));
            assert!(testkit::wait_until(Duration::from_secs(5), || {
                pool.stats().waiting == i + 1
            }));
        }
        release_tx.send(()).unwrap();
        holder.join().unwrap().unwrap();
        for waiter in waiters {
            waiter.join().unwrap().unwrap();
        }
        assert_eq!(*order.lock(), [0, 1, 2, 3]);
        assert_eq!(pool.stats().opened, 1);
    }

    #[test]
    fn a_stale_idle_connection_closed_by_redis_is_replaced_before_use() {
        let redis = RedisServer::start();
        let mut pool = pool(&redis.url(), 2, Duration::from_secs(2));
        pool.idle_check_after = Duration::ZERO;
        ping(&pool).unwrap();
        // SKIPME is on by default: only the pool's connection goes.
        assert_eq!(
            redis.raw_command(&["CLIENT", "KILL", "TYPE", "normal"]),
            ":1"
        );
        assert_eq!(ping(&pool).unwrap(), "PONG");
        let stats = pool.stats();
        assert_eq!(stats.stale_replaced, 1);
        assert_eq!(stats.retried, 0, "the check caught it, not the retry");
        assert_eq!((stats.open, stats.opened), (1, 2));
    }

    #[test]
    fn a_deaf_idle_connection_is_replaced_within_the_check_timeout() {
        let redis = RedisServer::start();
        let forwarder = Forwarder::start(redis.port());
        let io_timeout = Duration::from_secs(5);
        let mut pool = pool(&forwarder.url(), 2, io_timeout);
        pool.idle_check_after = Duration::ZERO;
        ping(&pool).unwrap();
        forwarder.freeze();
        let started = Instant::now();
        // Without the check this would time out after io_timeout and fail.
        assert_eq!(ping(&pool).unwrap(), "PONG");
        let took = started.elapsed();
        assert!(
            took < CHECK_TIMEOUT + Duration::from_millis(1500),
            "{took:?}"
        );
        assert!(took >= CHECK_TIMEOUT, "{took:?}");
        assert_eq!(pool.stats().stale_replaced, 1);
        assert_eq!(forwarder.accepted(), 2);
    }

    #[test]
    fn recent_idle_connections_are_not_checked() {
        let redis = RedisServer::start();
        let pool = pool(&redis.url(), 2, Duration::from_secs(2));
        assert_eq!(redis.raw_command(&["CONFIG", "RESETSTAT"]), "+OK");
        ping(&pool).unwrap();
        ping(&pool).unwrap();
        let calls: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(
                &mut redis::Client::open(redis.url())
                    .unwrap()
                    .get_connection()
                    .unwrap(),
            )
            .unwrap();
        let pings = calls
            .lines()
            .find_map(|l| l.strip_prefix("cmdstat_ping:calls="))
            .and_then(|rest| rest.split(',').next())
            .unwrap();
        assert_eq!(pings, "2", "only the calls' own PINGs: {calls}");
    }
}
