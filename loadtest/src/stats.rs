//! The client-side counters: what one worker's engine counts, what it reports
//! to the coordinator, and — merged with [`ClientStats::merge`] — the totals
//! over every worker. One type serves all three, so a new counter is added in
//! one place and summed in one place.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hist::Latency;

/// Client counters: one worker's (cumulative since it started), or the sum
/// of several workers'.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientStats {
    /// Connection attempts started.
    pub attempts: u64,
    /// Upgrades completed (101 with the right accept key).
    pub handshakes: u64,
    /// Attempts that failed, by reason (`http_503`, `connect_refused`, `timeout`, …).
    pub failures: BTreeMap<String, u64>,
    /// Connections open now.
    pub open: u64,
    /// Open connections the server ended, by how (`server_close_1000`, `eof`, …).
    pub dropped: BTreeMap<String, u64>,
    /// Closes the clients started that completed.
    pub closed: u64,
    /// Closes that dropped the socket without a close frame (churn).
    pub abrupt_closes: u64,
    /// Connects abandoned on purpose after sending the request (churn).
    pub aborted: u64,
    /// When the first attempt started (monotonic ns; 0 = none).
    pub first_connect_ns: u64,
    /// When the last upgrade completed (monotonic ns).
    pub last_handshake_ns: u64,
    /// Time from connect to 101 (empty in counters-only reports).
    pub handshake: Latency,
    /// Probe messages received.
    pub received: u64,
    /// Payload bytes of all data messages received (inflated).
    pub received_bytes: u64,
    /// Bytes of the data frames received as they came on the wire:
    /// headers included, compressed where they were.
    pub wire_bytes: u64,
    /// Data messages that came compressed (permessage-deflate).
    pub deflated: u64,
    /// Data messages that carried no probe.
    pub other_messages: u64,
    /// First probe arrival (monotonic ns; 0 = none).
    pub first_recv_ns: u64,
    /// Last probe arrival (monotonic ns).
    pub last_recv_ns: u64,
    /// Send-to-delivery latency (empty in counters-only reports).
    pub latency: Latency,
    /// Pings answered.
    pub pings: u64,
    /// Clients whose single `Connect` attempt failed (empty in counters-only reports).
    pub failed_ids: Vec<i64>,
}

impl ClientStats {
    /// Merges every item into one total.
    pub fn sum(stats: impl IntoIterator<Item = ClientStats>) -> ClientStats {
        let mut total = ClientStats::default();
        for s in stats {
            total.merge(s);
        }
        total
    }

    /// Adds `other` into `self`: counts add up, first times take the
    /// earliest, last times the latest, histograms and lists combine.
    pub fn merge(&mut self, other: ClientStats) {
        self.attempts += other.attempts;
        self.handshakes += other.handshakes;
        merge_counts(&mut self.failures, other.failures);
        self.open += other.open;
        merge_counts(&mut self.dropped, other.dropped);
        self.closed += other.closed;
        self.abrupt_closes += other.abrupt_closes;
        self.aborted += other.aborted;
        self.first_connect_ns = min_nonzero(self.first_connect_ns, other.first_connect_ns);
        self.last_handshake_ns = self.last_handshake_ns.max(other.last_handshake_ns);
        self.handshake.add(&other.handshake);
        self.received += other.received;
        self.received_bytes += other.received_bytes;
        self.wire_bytes += other.wire_bytes;
        self.deflated += other.deflated;
        self.other_messages += other.other_messages;
        self.first_recv_ns = min_nonzero(self.first_recv_ns, other.first_recv_ns);
        self.last_recv_ns = self.last_recv_ns.max(other.last_recv_ns);
        self.latency.add(&other.latency);
        self.pings += other.pings;
        self.failed_ids.extend(other.failed_ids);
    }

    /// A copy without the histograms and the failed ids: the cheap report
    /// for frequent polling.
    pub fn counters_only(&self) -> ClientStats {
        ClientStats {
            failures: self.failures.clone(),
            dropped: self.dropped.clone(),
            handshake: Latency::new(),
            latency: Latency::new(),
            failed_ids: Vec::new(),
            ..*self
        }
    }

    /// Completed upgrades per second, first attempt to last upgrade.
    pub fn handshakes_per_s(&self) -> f64 {
        let span = self.last_handshake_ns.saturating_sub(self.first_connect_ns);
        if span == 0 {
            return 0.0;
        }
        self.handshakes as f64 * 1e9 / span as f64
    }

    /// Failed attempts, all reasons.
    pub fn failure_count(&self) -> u64 {
        self.failures.values().sum()
    }
}

fn merge_counts(into: &mut BTreeMap<String, u64>, from: BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k).or_insert(0) += v;
    }
}

fn min_nonzero(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (a, b) => a.min(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(attempts: u64, first_ns: u64, last_ns: u64, reason: &str) -> ClientStats {
        let mut s = ClientStats {
            attempts,
            handshakes: attempts - 1,
            first_connect_ns: first_ns,
            last_handshake_ns: last_ns,
            failed_ids: vec![attempts as i64],
            ..ClientStats::default()
        };
        s.failures.insert(reason.to_string(), 1);
        s.handshake.record_ns(first_ns);
        s
    }

    #[test]
    fn sum_adds_counts_and_keeps_time_bounds() {
        let total = ClientStats::sum([
            worker(10, 0, 0, "timeout"),
            worker(5, 3_000, 9_000, "timeout"),
            worker(7, 2_000, 8_000, "http_503"),
        ]);
        assert_eq!(total.attempts, 22);
        assert_eq!(total.handshakes, 19);
        assert_eq!(total.failure_count(), 3);
        assert_eq!(total.failures["timeout"], 2);
        assert_eq!(total.first_connect_ns, 2_000);
        assert_eq!(total.last_handshake_ns, 9_000);
        assert_eq!(total.handshake.count(), 3);
        assert_eq!(total.failed_ids, vec![10, 5, 7]);
    }

    #[test]
    fn counters_only_drops_the_heavy_parts() {
        let s = worker(4, 1_000, 2_000, "eof").counters_only();
        assert_eq!(s.attempts, 4);
        assert_eq!(s.failures["eof"], 1);
        assert_eq!(s.handshake.count(), 0);
        assert!(s.failed_ids.is_empty());
    }

    #[test]
    fn wire_round_trip_keeps_everything() {
        let s = worker(3, 1_000_000, 5_000_000, "eof");
        let back: ClientStats = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back.attempts, 3);
        assert_eq!(back.failures, s.failures);
        assert_eq!(back.failed_ids, s.failed_ids);
        assert_eq!(back.handshake.summary(), s.handshake.summary());
    }
}
