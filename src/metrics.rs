//! The node's counters and gauges, and what Prometheus is told about them:
//! every metric's name, type, labels and help, as a `prometheus-client`
//! [`Collector`] over the counters.
//!
//! Each event loop writes only its own [`LoopCounters`] (relaxed atomics on
//! cache lines no other thread writes), so counting costs the hot path no
//! contention; the collector sums the loops when scraped.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelValue, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::{MetricType, TypedMetric};

/// HTTP statuses an upgrade can be refused with, in the order of
/// [`LoopCounters::refused`].
pub const REFUSAL_STATUSES: [u16; 9] = [400, 401, 403, 404, 405, 426, 431, 503, 500];

/// Upper bounds (seconds) of the Redis-to-socket lag histogram buckets.
pub const LAG_BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0,
];

/// The node's long-lived Redis connections, in the order of their labels.
pub const REDIS_ROLES: [&str; 2] = ["worker", "subscriber"];

/// Outcomes of hand-overs (hot upgrades), as the `outcome` label names them,
/// in [`Handover`] order.
pub const HANDOVER_OUTCOMES: [&str; 3] = ["handed_over", "taken_over", "failed"];

/// How a hand-over (a hot upgrade) this process took part in ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// It handed its connections over (and exits).
    HandedOver,
    /// It took them over.
    TakenOver,
    /// The hand-over failed (the old process keeps its connections).
    Failed,
}

/// Kinds of Redis worker jobs, as the `kind` label names them.
pub const JOB_KINDS: [&str; 6] = [
    "claim_token",
    "socket_opened",
    "socket_closed",
    "publish",
    "presence_snapshot",
    "rename_sockets",
];

/// What one Redis connection role counts.
#[derive(Debug, Default)]
pub struct RoleMetrics {
    /// The connection is up and, for the subscriber, proven alive.
    pub up: AtomicBool,
    /// Times it was re-established after a loss.
    pub reconnects: AtomicU64,
    /// Times it was declared dead for not answering in time (a silent link).
    pub liveness_failures: AtomicU64,
}

/// What one event loop counts.
#[derive(Debug, Default)]
pub struct LoopCounters {
    /// Upgrades completed (sockets opened).
    pub upgrades_accepted: AtomicU64,
    /// Upgrades refused, by [`REFUSAL_STATUSES`] index.
    pub refused: [AtomicU64; REFUSAL_STATUSES.len()],
    /// Connections refused with 503 at the connection or pending-upgrade cap.
    pub refused_at_cap: AtomicU64,
    /// Frames queued to sockets by pushes.
    pub messages_pushed: AtomicU64,
    /// Bytes of those frames, as sent (compressed where they were).
    pub bytes_pushed: AtomicU64,
    /// Of those frames, the ones sent compressed (permessage-deflate).
    pub messages_deflated: AtomicU64,
    /// Messages this loop compressed: once per message, whatever the
    /// number of receivers (RFC 7692 without server context takeover).
    pub compressions: AtomicU64,
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
#[derive(Debug)]
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
    /// Hand-overs by [`HANDOVER_OUTCOMES`] index.
    pub handovers: [AtomicU64; HANDOVER_OUTCOMES.len()],
    /// Connections handed over or taken over.
    pub handover_connections: AtomicU64,
    /// How long the last hand-over took, in microseconds.
    pub handover_last_micros: AtomicU64,
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
            handovers: Default::default(),
            handover_connections: AtomicU64::new(0),
            handover_last_micros: AtomicU64::new(0),
            receipts_refused: AtomicU64::new(0),
            pushes_refused: AtomicU64::new(0),
        }
    }

    /// Counts a hand-over that moved `conns` connections in `took`.
    pub fn count_handover(&self, outcome: Handover, conns: usize, took: std::time::Duration) {
        self.handovers[outcome as usize].fetch_add(1, Ordering::Relaxed);
        if outcome != Handover::Failed {
            self.handover_connections
                .fetch_add(conns as u64, Ordering::Relaxed);
            self.handover_last_micros
                .store(took.as_micros() as u64, Ordering::Relaxed);
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
}

/// One sample, no labels.
fn single<M: EncodeMetric + TypedMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: M,
) -> fmt::Result {
    metric.encode(encoder.encode_descriptor(name, help, None, M::TYPE)?)
}

/// One sample per value of one label.
fn labelled<V: EncodeLabelValue, M: EncodeMetric + TypedMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    samples: impl IntoIterator<Item = (V, M)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, M::TYPE)?;
    for (value, metric) in samples {
        metric.encode(family.encode_family(&[(label, value)])?)?;
    }
    Ok(())
}

/// Read at scrape time: every metric, the loops' counters summed. Counter
/// names are given without `_total`, which the encoder appends.
impl Collector for Metrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let encoder = &mut encoder;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let counter = |value: u64| ConstCounter::new(value);
        single(
            encoder,
            "freeim_connections_open",
            "Open client connections.",
            ConstGauge::new(self.open_connections.load(Ordering::Relaxed) as u64),
        )?;
        single(
            encoder,
            "freeim_clients_online",
            "Clients with at least one socket on this node.",
            ConstGauge::new(self.sum(|c| &c.clients)),
        )?;
        single(
            encoder,
            "freeim_upgrades_accepted",
            "WebSocket upgrades completed.",
            counter(self.sum(|c| &c.upgrades_accepted)),
        )?;
        single(
            encoder,
            "freeim_connections_refused_at_cap",
            "Connections refused with 503 at the connection or pending-upgrade cap.",
            counter(self.sum(|c| &c.refused_at_cap)),
        )?;
        single(
            encoder,
            "freeim_messages_pushed",
            "Message frames queued to sockets.",
            counter(self.sum(|c| &c.messages_pushed)),
        )?;
        single(
            encoder,
            "freeim_bytes_pushed",
            "Bytes of message frames queued to sockets, as sent (compressed where they were).",
            counter(self.sum(|c| &c.bytes_pushed)),
        )?;
        single(
            encoder,
            "freeim_messages_deflated",
            "Message frames queued to sockets compressed (permessage-deflate).",
            counter(self.sum(|c| &c.messages_deflated)),
        )?;
        single(
            encoder,
            "freeim_compressions",
            "Messages compressed: once per message, whatever the number of receivers.",
            counter(self.sum(|c| &c.compressions)),
        )?;
        single(
            encoder,
            "freeim_slow_consumers_closed",
            "Readers closed with 1008 for falling behind.",
            counter(self.sum(|c| &c.slow_consumers)),
        )?;
        single(
            encoder,
            "freeim_heartbeat_timeouts",
            "Sockets closed for not answering a ping.",
            counter(self.sum(|c| &c.heartbeat_timeouts)),
        )?;
        single(
            encoder,
            "freeim_handshake_timeouts",
            "Connections closed for not completing the upgrade in time.",
            counter(self.sum(|c| &c.handshake_timeouts)),
        )?;
        single(
            encoder,
            "freeim_protocol_errors",
            "Sockets closed for a WebSocket protocol violation.",
            counter(self.sum(|c| &c.protocol_errors)),
        )?;
        single(
            encoder,
            "freeim_commands",
            "Commands received from Redis.",
            counter(load(&self.commands)),
        )?;
        single(
            encoder,
            "freeim_bad_commands",
            "Published payloads that were not FreeIM commands.",
            counter(load(&self.bad_commands)),
        )?;
        single(
            encoder,
            "freeim_misrouted_commands",
            "Commands for clients another node owns.",
            counter(load(&self.misrouted_commands)),
        )?;
        single(
            encoder,
            "freeim_receipts_refused",
            "Send commands delivered without receipts: over --max-receipt-bytes.",
            counter(load(&self.receipts_refused)),
        )?;
        single(
            encoder,
            "freeim_pushes_refused",
            "Commands dropped: their message is over --max-push-bytes.",
            counter(load(&self.pushes_refused)),
        )?;
        single(
            encoder,
            "freeim_redis_delivery_gaps",
            "Subscriptions lost while up: commands published meanwhile reached nobody here.",
            counter(load(&self.delivery_gaps)),
        )?;
        labelled(
            encoder,
            "freeim_handovers",
            "Hand-overs of every connection to a new process (hot upgrades), by outcome.",
            "outcome",
            HANDOVER_OUTCOMES
                .into_iter()
                .zip(&self.handovers)
                .map(|(k, v)| (k, counter(load(v)))),
        )?;
        single(
            encoder,
            "freeim_handover_connections",
            "Connections handed over to, or taken over from, another process.",
            counter(load(&self.handover_connections)),
        )?;
        single(
            encoder,
            "freeim_handover_last_seconds",
            "How long the last hand-over took, from its start to the new process holding every connection.",
            ConstGauge::new(load(&self.handover_last_micros) as f64 / 1e6),
        )?;
        labelled(
            encoder,
            "freeim_redis_up",
            "1 while the Redis connection of this role is up (the subscriber's proven alive).",
            "role",
            self.roles()
                .map(|(r, m)| (r, ConstGauge::new(u64::from(m.up.load(Ordering::Relaxed))))),
        )?;
        labelled(
            encoder,
            "freeim_redis_reconnects",
            "Redis connections re-established after a loss.",
            "role",
            self.roles().map(|(r, m)| (r, counter(load(&m.reconnects)))),
        )?;
        labelled(
            encoder,
            "freeim_redis_liveness_failures",
            "Redis connections declared dead for not answering in time.",
            "role",
            self.roles()
                .map(|(r, m)| (r, counter(load(&m.liveness_failures)))),
        )?;
        labelled(
            encoder,
            "freeim_redis_jobs_retried",
            "Redis worker jobs sent again after a failure.",
            "kind",
            JOB_KINDS
                .into_iter()
                .zip(&self.jobs_retried)
                .map(|(k, v)| (k, counter(load(v)))),
        )?;
        labelled(
            encoder,
            "freeim_redis_jobs_failed",
            "Redis worker jobs that finally failed.",
            "kind",
            JOB_KINDS
                .into_iter()
                .zip(&self.jobs_failed)
                .map(|(k, v)| (k, counter(load(v)))),
        )?;
        labelled(
            encoder,
            "freeim_upgrades_refused",
            "Upgrades refused, by HTTP status.",
            "status",
            REFUSAL_STATUSES
                .into_iter()
                .enumerate()
                .map(|(index, status)| (status, counter(self.sum(|c| &c.refused[index])))),
        )?;

        let buckets: Vec<(f64, u64)> = LAG_BUCKETS
            .iter()
            .enumerate()
            .map(|(index, &bound)| (bound, self.sum(|c| &c.lag_buckets[index])))
            .collect();
        let count = (0..=LAG_BUCKETS.len())
            .map(|index| self.sum(|c| &c.lag_buckets[index]))
            .sum();
        let sum = self.sum(|c| &c.lag_sum_micros) as f64 / 1e6;
        encoder
            .encode_descriptor(
                "freeim_command_lag_seconds",
                "Time from a command's arrival from Redis to its frames being queued to sockets.",
                None,
                MetricType::Histogram,
            )?
            .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::prometheus_text;
    use prometheus_client::registry::Registry;

    #[test]
    fn renders_sums_of_every_loop() {
        let metrics = Metrics::new(2, Arc::new(AtomicUsize::new(3)));
        LoopCounters::bump(&metrics.loops[0].messages_pushed, 2);
        LoopCounters::bump(&metrics.loops[1].messages_pushed, 5);
        metrics.loops[1].refuse(401);
        metrics.loops[0].observe_lag(Duration::from_micros(300));
        metrics.loops[1].observe_lag(Duration::from_secs(5));
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Arc::new(metrics)));
        let mut text = String::new();
        prometheus_text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("freeim_connections_open 3\n"));
        assert!(text.contains("freeim_messages_pushed_total 7\n"));
        assert!(text.contains("freeim_upgrades_refused_total{status=\"401\"} 1\n"));
        assert!(text.contains("freeim_command_lag_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(text.contains("freeim_command_lag_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("freeim_redis_up{role=\"worker\"} 0\n"));
        assert!(text.contains("freeim_redis_up{role=\"subscriber\"} 0\n"));
        assert!(text.contains("freeim_redis_jobs_failed_total{kind=\"claim_token\"} 0\n"));
        // The Prometheus text format 0.0.4: families named as their samples, no `# EOF`.
        assert!(text.starts_with(
            "# HELP freeim_connections_open Open client connections.\n\
             # TYPE freeim_connections_open gauge\n\
             freeim_connections_open 3\n"
        ));
        assert!(text.contains(
            "# HELP freeim_messages_pushed_total Message frames queued to sockets.\n\
             # TYPE freeim_messages_pushed_total counter\n"
        ));
        assert!(text.contains("# TYPE freeim_command_lag_seconds histogram\n"));
        assert!(!text.contains("# EOF"));
    }
}
