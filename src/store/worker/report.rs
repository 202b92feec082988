//! Jobs that were retried, reconciled or finally failed: counted by kind
//! (`freeim_redis_jobs_retried_total`, `freeim_redis_jobs_failed_total`) and
//! logged at most once per [`LOG_EVERY`], each line with the counts since
//! the one before, so an outage under load costs a few lines, not one per job.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::retry::Kind;
use crate::metrics::{Metrics, JOB_KINDS};
use crate::throttle::Throttle;

/// Shortest time between two report lines.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Why a job finally failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reason {
    /// Redis could not be reached, or dropped the connection again on the
    /// second send.
    Unreachable,
    /// A receipt got no answer in time: it may have been published, and is
    /// not published again, since a duplicate receipt would be wrong.
    OutcomeUnknown,
    /// A claim re-sent after a lost outcome found no token: the lost send may
    /// be what consumed it, so the client gets 503, not 401.
    TokenMaybeConsumed,
    /// A receipt past the bound of the receipts held during an outage.
    BacklogFull,
    /// Redis answered with an error.
    Refused,
    /// The node stopped with receipts still held.
    Stopped,
}

impl Reason {
    const ALL: [Reason; 6] = [
        Reason::Unreachable,
        Reason::OutcomeUnknown,
        Reason::TokenMaybeConsumed,
        Reason::BacklogFull,
        Reason::Refused,
        Reason::Stopped,
    ];

    fn describe(self) -> &'static str {
        match self {
            Reason::Unreachable => "Redis unreachable",
            Reason::OutcomeUnknown => {
                "no answer in time: the receipt's outcome is unknown, so it is not published twice"
            }
            Reason::TokenMaybeConsumed => {
                "token gone after a lost first claim, which may have used it: answered 503"
            }
            Reason::BacklogFull => "too many receipts held while Redis is unreachable",
            Reason::Refused => "refused by Redis",
            Reason::Stopped => "node stopped while Redis was unreachable",
        }
    }
}

/// Counts and rate-limited log lines of what happened to failed jobs.
pub(super) struct Report {
    metrics: Arc<Metrics>,
    throttle: Throttle,
    /// Failures since the last line, by kind then reason.
    failed: [[u64; Reason::ALL.len()]; JOB_KINDS.len()],
    /// Presence jobs left to the snapshot since the last line.
    reconciled: u64,
    /// The last Redis error behind a failure, for the next line.
    last_error: Option<String>,
}

impl Report {
    pub(super) fn new(metrics: Arc<Metrics>) -> Report {
        Report {
            metrics,
            throttle: Throttle::new(LOG_EVERY),
            failed: Default::default(),
            reconciled: 0,
            last_error: None,
        }
    }

    /// A job is sent again.
    pub(super) fn retried(&self, kind: Kind) {
        self.metrics.jobs_retried[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// A job finally failed.
    pub(super) fn failed(&mut self, kind: Kind, reason: Reason) {
        self.metrics.jobs_failed[kind.index()].fetch_add(1, Ordering::Relaxed);
        self.failed[kind.index()][reason as usize] += 1;
    }

    /// A presence job is left to the presence snapshot of the next connection.
    pub(super) fn reconciled(&mut self) {
        self.reconciled += 1;
    }

    /// Remembers the error behind the failures being counted.
    pub(super) fn error(&mut self, error: impl ToString) {
        self.last_error = Some(error.to_string());
    }

    /// Logs what was counted since the last line, if anything was and the
    /// last line is old enough.
    pub(super) fn flush(&mut self) {
        if self.summary().is_some() && self.throttle.allow().is_some() {
            self.flush_now();
        }
    }

    /// Logs what was counted since the last line, if anything was (at
    /// shutdown: nothing is left unsaid).
    pub(super) fn flush_now(&mut self) {
        let Some(line) = self.summary() else {
            return;
        };
        if self.failed.iter().flatten().any(|&n| n > 0) {
            log::warn!("{line}");
        } else {
            log::info!("{line}");
        }
        self.failed = Default::default();
        self.reconciled = 0;
        self.last_error = None;
    }

    /// The line for what was counted since the last one.
    fn summary(&self) -> Option<String> {
        let mut line = String::new();
        for kind in Kind::ALL {
            for reason in Reason::ALL {
                let n = self.failed[kind.index()][reason as usize];
                if n > 0 {
                    let sep = if line.is_empty() { "" } else { "; " };
                    let _ = write!(line, "{sep}{n} {} ({})", kind.label(), reason.describe());
                }
            }
        }
        if !line.is_empty() {
            line.insert_str(0, "Redis worker jobs failed: ");
        }
        if self.reconciled > 0 {
            let sep = if line.is_empty() { "" } else { ". " };
            let _ = write!(
                line,
                "{sep}{} presence jobs left to the presence snapshot after reconnecting",
                self.reconciled
            );
        }
        if line.is_empty() {
            return None;
        }
        if let Some(error) = &self.last_error {
            let _ = write!(line, " (last error: {error})");
        }
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn counts_by_kind_and_sums_reasons_in_one_line() {
        let metrics = Arc::new(Metrics::new(1, Arc::new(AtomicUsize::new(0))));
        let mut report = Report::new(metrics.clone());
        assert_eq!(report.summary(), None);
        report.retried(Kind::ClaimToken);
        report.failed(Kind::Publish, Reason::OutcomeUnknown);
        report.failed(Kind::Publish, Reason::OutcomeUnknown);
        report.failed(Kind::ClaimToken, Reason::Unreachable);
        report.reconciled();
        report.error("broken pipe");
        let load = |counters: &[std::sync::atomic::AtomicU64], kind: Kind| {
            counters[kind.index()].load(Ordering::Relaxed)
        };
        assert_eq!(load(&metrics.jobs_retried, Kind::ClaimToken), 1);
        assert_eq!(load(&metrics.jobs_failed, Kind::Publish), 2);
        assert_eq!(load(&metrics.jobs_failed, Kind::ClaimToken), 1);
        let line = report.summary().unwrap();
        assert!(line.starts_with("Redis worker jobs failed: 1 claim_token (Redis unreachable); 2 publish (no answer in time"), "{line}");
        assert!(
            line.contains(". 1 presence jobs left to the presence snapshot"),
            "{line}"
        );
        assert!(line.ends_with("(last error: broken pipe)"), "{line}");
        report.flush();
        assert_eq!(report.summary(), None, "a line resets the counts");
    }
}
