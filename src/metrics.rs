//! The node's counters and gauges, and their Prometheus text rendering.
//!
//! Each event loop writes only its own [`LoopCounters`] (relaxed atomics on
//! cache lines no other thread writes), so counting costs the hot path no
//! contention; the admin endpoint sums the loops when scraped.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;

/// HTTP statuses an upgrade can be refused with, in the order of
/// [`LoopCounters::refused`].
pub const REFUSAL_STATUSES: [u16; 9] = [400, 401, 403, 404, 405, 426, 431, 503, 500];

/// Upper bounds (seconds) of the Redis-to-socket lag histogram buckets.
pub const LAG_BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0,
];

/// The node's long-lived Redis connections, in the order of their labels.
pub const REDIS_ROLES: [&str; 2] = ["worker", "subscriber"];

/// Kinds of Redis worker jobs, as the `kind` label names them.
pub const JOB_KINDS: [&str; 5] = [
    "claim_token",
    "socket_opened",
    "socket_closed",
    "publish",
    "presence_snapshot",
];

/// What one Redis connection role counts.
#[derive(Default)]
pub struct RoleMetrics {
    /// The connection is up and, for the subscriber, proven alive.
    pub up: AtomicBool,
    /// Times it was re-established after a loss.
    pub reconnects: AtomicU64,
    /// Times it was declared dead for not answering in time (a silent link).
    pub liveness_failures: AtomicU64,
}

/// What one event loop counts.
#[derive(Default)]
pub struct LoopCounters {
    /// Upgrades completed (sockets opened).
    pub upgrades_accepted: AtomicU64,
    /// Upgrades refused, by [`REFUSAL_STATUSES`] index.
    pub refused: [AtomicU64; REFUSAL_STATUSES.len()],
    /// Connections refused with 503 at the connection or pending-upgrade cap.
    pub refused_at_cap: AtomicU64,
    /// Frames queued to sockets by pushes.
    pub messages_pushed: AtomicU64,
    /// Bytes of those frames.
    pub bytes_pushed: AtomicU64,
    /// Readers closed with 1008 for falling behind.
    pub slow_consumers: AtomicU64,
    /// Sockets closed for not answering a heartbeat ping.
    pub heartbeat_timeouts: AtomicU64,
    /// Connections closed for not completing the upgrade in time.
    pub handshake_timeouts: AtomicU64,
    /// Sockets closed for a protocol violation (1002, 1007, 1009).
    pub protocol_errors: AtomicU64,
    /// Clients with at least one socket on this loop.
    pub clients: AtomicU64,
    /// Redis-to-socket lag histogram: counts per [`LAG_BUCKETS`] bound, then +Inf.
    pub lag_buckets: [AtomicU64; LAG_BUCKETS.len() + 1],
    /// Sum of observed lags, in microseconds.
    pub lag_sum_micros: AtomicU64,
}

impl LoopCounters {
    /// Adds one to a counter (only the owning loop calls this).
    pub fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }

    /// Counts a refused upgrade.
    pub fn refuse(&self, status: u16) {
        let index = REFUSAL_STATUSES
            .iter()
            .position(|&s| s == status)
            .unwrap_or(REFUSAL_STATUSES.len() - 1);
        Self::bump(&self.refused[index], 1);
    }

    /// Records how long a command took from the subscriber to its socket.
    pub fn observe_lag(&self, lag: Duration) {
        let seconds = lag.as_secs_f64();
        let bucket = LAG_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(LAG_BUCKETS.len());
        Self::bump(&self.lag_buckets[bucket], 1);
        Self::bump(&self.lag_sum_micros, lag.as_micros() as u64);
    }
}

/// Everything the node counts.
pub struct Metrics {
    /// Per event loop.
    pub loops: Vec<CachePadded<LoopCounters>>,
    /// Open client connections (shared with the loops' connection cap).
    pub open_connections: Arc<AtomicUsize>,
    /// Commands received from Redis pub/sub.
    pub commands: AtomicU64,
    /// Commands that were not FreeIM commands.
    pub bad_commands: AtomicU64,
    /// Commands naming clients that belong to another node.
    pub misrouted_commands: AtomicU64,
    /// The worker's connection (token claims, presence, receipts).
    pub worker: RoleMetrics,
    /// The subscriber's pub/sub connection (commands to this node).
    pub subscriber: RoleMetrics,
    /// Worker jobs sent to Redis again after a failure, by [`JOB_KINDS`] index.
    pub jobs_retried: [AtomicU64; JOB_KINDS.len()],
    /// Worker jobs that finally failed, by [`JOB_KINDS`] index.
    pub jobs_failed: [AtomicU64; JOB_KINDS.len()],
    /// Send commands delivered without their receipts: over `--max-receipt-bytes`.
    pub receipts_refused: AtomicU64,
    /// Commands dropped because their message is over `--max-push-bytes`.
    pub pushes_refused: AtomicU64,
    /// Times the subscription was lost while up: commands published until it
    /// was back reached nobody on this node.
    pub delivery_gaps: AtomicU64,
}

impl Metrics {
    /// Metrics for a node with `loops` event loops.
    pub fn new(loops: usize, open_connections: Arc<AtomicUsize>) -> Metrics {
        Metrics {
            loops: (0..loops)
                .map(|_| CachePadded::new(LoopCounters::default()))
                .collect(),
            open_connections,
            commands: AtomicU64::new(0),
            bad_commands: AtomicU64::new(0),
            misrouted_commands: AtomicU64::new(0),
            worker: RoleMetrics::default(),
            subscriber: RoleMetrics::default(),
            jobs_retried: Default::default(),
            jobs_failed: Default::default(),
            delivery_gaps: AtomicU64::new(0),
            receipts_refused: AtomicU64::new(0),
            pushes_refused: AtomicU64::new(0),
        }
    }

    /// Whether both Redis connections are up (the subscriber proven alive).
    pub fn redis_up(&self) -> bool {
        self.roles()
            .all(|(_, role)| role.up.load(Ordering::Relaxed))
    }

    /// Each role with its label.
    fn roles(&self) -> impl Iterator<Item = (&'static str, &RoleMetrics)> {
        REDIS_ROLES
            .into_iter()
            .zip([&self.worker, &self.subscriber])
    }

    fn sum(&self, counter: impl Fn(&LoopCounters) -> &AtomicU64) -> u64 {
        self.loops
            .iter()
            .map(|counters| counter(counters).load(Ordering::Relaxed))
            .sum()
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        let open = self.open_connections.load(Ordering::Relaxed) as u64;
        metric(
            "freeim_connections_open",
            "gauge",
            "Open client connections.",
            open,
        );
        metric(
            "freeim_clients_online",
            "gauge",
            "Clients with at least one socket on this node.",
            self.sum(|c| &c.clients),
        );
        metric(
            "freeim_upgrades_accepted_total",
            "counter",
            "WebSocket upgrades completed.",
            self.sum(|c| &c.upgrades_accepted),
        );
        metric(
            "freeim_connections_refused_at_cap_total",
            "counter",
            "Connections refused with 503 at the connection or pending-upgrade cap.",
            self.sum(|c| &c.refused_at_cap),
        );
        metric(
            "freeim_messages_pushed_total",
            "counter",
            "Message frames queued to sockets.",
            self.sum(|c| &c.messages_pushed),
        );
        metric(
            "freeim_bytes_pushed_total",
            "counter",
            "Bytes of message frames queued to sockets.",
            self.sum(|c| &c.bytes_pushed),
        );
        metric(
            "freeim_slow_consumers_closed_total",
            "counter",
            "Readers closed with 1008 for falling behind.",
            self.sum(|c| &c.slow_consumers),
        );
        metric(
            "freeim_heartbeat_timeouts_total",
            "counter",
            "Sockets closed for not answering a ping.",
            self.sum(|c| &c.heartbeat_timeouts),
        );
        metric(
            "freeim_handshake_timeouts_total",
            "counter",
            "Connections closed for not completing the upgrade in time.",
            self.sum(|c| &c.handshake_timeouts),
        );
        metric(
            "freeim_protocol_errors_total",
            "counter",
            "Sockets closed for a WebSocket protocol violation.",
            self.sum(|c| &c.protocol_errors),
        );
        metric(
            "freeim_commands_total",
            "counter",
            "Commands received from Redis.",
            self.commands.load(Ordering::Relaxed),
        );
        metric(
            "freeim_bad_commands_total",
            "counter",
            "Published payloads that were not FreeIM commands.",
            self.bad_commands.load(Ordering::Relaxed),
        );
        metric(
            "freeim_misrouted_commands_total",
            "counter",
            "Commands for clients another node owns.",
            self.misrouted_commands.load(Ordering::Relaxed),
        );
        metric(
            "freeim_receipts_refused_total",
            "counter",
            "Send commands delivered without receipts: over --max-receipt-bytes.",
            self.receipts_refused.load(Ordering::Relaxed),
        );
        metric(
            "freeim_pushes_refused_total",
            "counter",
            "Commands dropped: their message is over --max-push-bytes.",
            self.pushes_refused.load(Ordering::Relaxed),
        );
        metric(
            "freeim_redis_delivery_gaps_total",
            "counter",
            "Subscriptions lost while up: commands published meanwhile reached nobody here.",
            self.delivery_gaps.load(Ordering::Relaxed),
        );
        let mut labelled =
            |name: &str,
             kind: &str,
             help: &str,
             values: &mut dyn Iterator<Item = (&str, &str, u64)>| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for (label, value_name, value) in values {
                    let _ = writeln!(out, "{name}{{{label}=\"{value_name}\"}} {value}");
                }
            };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        labelled(
            "freeim_redis_up",
            "gauge",
            "1 while the Redis connection of this role is up (the subscriber's proven alive).",
            &mut self
                .roles()
                .map(|(r, m)| ("role", r, u64::from(m.up.load(Ordering::Relaxed)))),
        );
        labelled(
            "freeim_redis_reconnects_total",
            "counter",
            "Redis connections re-established after a loss.",
            &mut self.roles().map(|(r, m)| ("role", r, load(&m.reconnects))),
        );
        labelled(
            "freeim_redis_liveness_failures_total",
            "counter",
            "Redis connections declared dead for not answering in time.",
            &mut self
                .roles()
                .map(|(r, m)| ("role", r, load(&m.liveness_failures))),
        );
        labelled(
            "freeim_redis_jobs_retried_total",
            "counter",
            "Redis worker jobs sent again after a failure.",
            &mut JOB_KINDS
                .iter()
                .zip(&self.jobs_retried)
                .map(|(k, v)| ("kind", *k, load(v))),
        );
        labelled(
            "freeim_redis_jobs_failed_total",
            "counter",
            "Redis worker jobs that finally failed.",
            &mut JOB_KINDS
                .iter()
                .zip(&self.jobs_failed)
                .map(|(k, v)| ("kind", *k, load(v))),
        );

        let _ = writeln!(
            out,
            "# HELP freeim_upgrades_refused_total Upgrades refused, by HTTP status."
        );
        let _ = writeln!(out, "# TYPE freeim_upgrades_refused_total counter");
        for (index, status) in REFUSAL_STATUSES.iter().enumerate() {
            let count = self.sum(|c| &c.refused[index]);
            let _ = writeln!(
                out,
                "freeim_upgrades_refused_total{{status=\"{status}\"}} {count}"
            );
        }

        let name = "freeim_command_lag_seconds";
        let _ = writeln!(out, "# HELP {name} Time from a command's arrival from Redis to its frames being queued to sockets.");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (index, bound) in LAG_BUCKETS.iter().enumerate() {
            cumulative += self.sum(|c| &c.lag_buckets[index]);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.sum(|c| &c.lag_buckets[LAG_BUCKETS.len()]);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.sum(|c| &c.lag_sum_micros) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_sums_of_every_loop() {
        let metrics = Metrics::new(2, Arc::new(AtomicUsize::new(3)));
        LoopCounters::bump(&metrics.loops[0].messages_pushed, 2);
        LoopCounters::bump(&metrics.loops[1].messages_pushed, 5);
        metrics.loops[1].refuse(401);
        metrics.loops[0].observe_lag(Duration::from_micros(300));
        metrics.loops[1].observe_lag(Duration::from_secs(5));
        let text = metrics.render();
        assert!(text.contains("freeim_connections_open 3\n"));
        assert!(text.contains("freeim_messages_pushed_total 7\n"));
        assert!(text.contains("freeim_upgrades_refused_total{status=\"401\"} 1\n"));
        assert!(text.contains("freeim_command_lag_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(text.contains("freeim_command_lag_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("freeim_redis_up{role=\"worker\"} 0\n"));
        assert!(text.contains("freeim_redis_up{role=\"subscriber\"} 0\n"));
        assert!(text.contains("freeim_redis_jobs_failed_total{kind=\"claim_token\"} 0\n"));
    }
}
