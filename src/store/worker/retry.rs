//! What becomes of a job whose pipeline failed: the failure's class, and a
//! decision per job kind. Pure (no I/O), so every case is tested here.
//!
//! | kind | not sent (no connection) | unknown (connection dropped, timeout, other) | refused (`NOSCRIPT`, `READONLY`, `LOADING`, `MASTERDOWN`) | other error reply |
//! |---|---|---|---|---|
//! | claim token | 503 (a fresh connect was just tried) | re-send once, fresh connection | re-send once, fresh connection | 503 |
//! | socket opened / closed, presence snapshot | reconciled: the snapshot after the reconnect | re-send once, then reconciled | re-send once, then failed | failed |
//! | publish (receipts) | held (bounded) until a connection is back | failed: outcome unknown | re-send once, then failed | failed |
//!
//! A connection that died while idle (`CLIENT KILL`, a proxy's idle
//! timeout) is found by the `PING` the worker sends before using a link
//! idle for a while (`IDLE_PROBE_AFTER`), and replaced before anything is
//! written: its jobs are simply sent on the fresh one. A connection dropped
//! *during* an exchange proves nothing (Redis may have run the commands and
//! lost the replies), so it counts as an unknown outcome.
//!
//! A job whose second send finds no connection (the fresh connect failed)
//! goes by the first column. A claim re-sent after a lost outcome that finds
//! no token answers 503, not 401: the lost send may be what consumed it.
//! "Reconciled" relies on a failed pipeline always dropping the connection:
//! the reconnect that follows asks every loop for a presence snapshot.

use crate::metrics::JOB_KINDS;

/// Sends a job gets at most: the first, and one on a fresh connection.
pub(super) const MAX_SENDS: u8 = 2;

/// A job's kind, in the order of [`JOB_KINDS`] (its metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    ClaimToken,
    SocketOpened,
    SocketClosed,
    Publish,
    PresenceSnapshot,
    RenameSockets,
}

impl Kind {
    /// Every kind, in [`JOB_KINDS`] order.
    pub(super) const ALL: [Kind; JOB_KINDS.len()] = [
        Kind::ClaimToken,
        Kind::SocketOpened,
        Kind::SocketClosed,
        Kind::Publish,
        Kind::PresenceSnapshot,
        Kind::RenameSockets,
    ];

    /// Its index in [`JOB_KINDS`] and the metrics arrays.
    pub(super) fn index(self) -> usize {
        self as usize
    }

    /// Its `kind` label.
    pub(super) fn label(self) -> &'static str {
        JOB_KINDS[self.index()]
    }

    /// Whether sending it twice does what sending it once does (the presence
    /// scripts; see `store/scripts.rs`).
    pub(super) fn idempotent(self) -> bool {
        matches!(
            self,
            Kind::SocketOpened | Kind::SocketClosed | Kind::PresenceSnapshot | Kind::RenameSockets
        )
    }
}

/// How a pipeline failed, for the jobs that got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// Nothing reached Redis: there was no connection and none could be made.
    NotSent,
    /// The connection dropped, no answer came in time (a silent link), or
    /// any other failure: the jobs without an answer may or may not have run.
    Unknown,
}

/// What an error reply to one command means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The command did not run, and a fresh connection may run it: the
    /// scripts are not loaded here (`NOSCRIPT`, after a `SCRIPT FLUSH`), the
    /// server is a replica now (`READONLY`, after a failover: reconnecting
    /// asks Sentinel again), or it is loading or without its primary.
    Reconnect,
    /// Redis refused the command for good (`OOM`, `WRONGTYPE`, `NOPERM`, …).
    Final,
}

/// The [`Refusal`] an error reply's code (its first word) stands for.
pub(super) fn refusal(code: &str) -> Refusal {
    match code {
        "NOSCRIPT" | "READONLY" | "LOADING" | "MASTERDOWN" => Refusal::Reconnect,
        // Redis Cluster: the slot moved or fails over; a fresh connection
        // asks the cluster which master serves it now.
        "MOVED" | "ASK" | "CLUSTERDOWN" | "TRYAGAIN" => Refusal::Reconnect,
        _ => Refusal::Final,
    }
}

/// What becomes of a job that got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// Send it again, now, on a fresh connection.
    Resend,
    /// Keep it until a connection is back.
    Hold,
    /// Leave it to the presence snapshot every loop sends after a reconnect:
    /// the node's own sockets are the truth, re-asserted as a whole.
    Reconcile,
    /// It finally failed: answer (a claim: 503), count and log it.
    Fail,
}

/// What to do with a job of `kind` that failed with `failure` after `sends`
/// sends (`sends` counts the failed one when it was written).
pub(super) fn decide(kind: Kind, failure: Failure, sends: u8) -> Action {
    let exhausted = sends >= MAX_SENDS;
    match (failure, kind) {
        // A claim's batch always tries a fresh connect first: that was it.
        (Failure::NotSent, Kind::ClaimToken) => Action::Fail,
        (Failure::NotSent, Kind::Publish) => Action::Hold,
        (Failure::NotSent, _) => Action::Reconcile,
        (_, kind) if exhausted && kind.idempotent() => Action::Reconcile,
        (_, _) if exhausted => Action::Fail,
        (Failure::Unknown, Kind::Publish) => Action::Fail,
        (Failure::Unknown, _) => Action::Resend,
    }
}

/// What to do with a job (of any kind) that got the error reply `code` on
/// its `sends`-th send: the command did not run, so a job that a fresh
/// connection may cure is re-sent once, whatever its kind.
pub(super) fn decide_refused(code: &str, sends: u8) -> Action {
    match refusal(code) {
        Refusal::Reconnect if sends < MAX_SENDS => Action::Resend,
        _ => Action::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_metric_labels() {
        for (index, kind) in Kind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), index);
        }
        assert_eq!(Kind::ClaimToken.label(), "claim_token");
        assert_eq!(Kind::Publish.label(), "publish");
        assert_eq!(Kind::PresenceSnapshot.label(), "presence_snapshot");
    }

    #[test]
    fn error_replies_that_a_fresh_connection_may_cure() {
        for code in ["NOSCRIPT", "READONLY", "LOADING", "MASTERDOWN"] {
            assert_eq!(refusal(code), Refusal::Reconnect, "{code}");
        }
        for code in ["ERR", "OOM", "WRONGTYPE", "NOPERM", "BUSY"] {
            assert_eq!(refusal(code), Refusal::Final, "{code}");
        }
        assert_eq!(decide_refused("NOSCRIPT", 1), Action::Resend);
        assert_eq!(decide_refused("READONLY", 2), Action::Fail);
        assert_eq!(decide_refused("OOM", 1), Action::Fail);
    }

    #[test]
    fn nothing_sent_holds_receipts_reconciles_presence_and_refuses_claims() {
        use Kind::*;
        let not_sent = |kind| decide(kind, Failure::NotSent, 0);
        assert_eq!(not_sent(ClaimToken), Action::Fail);
        assert_eq!(not_sent(Publish), Action::Hold);
        for kind in [SocketOpened, SocketClosed, PresenceSnapshot] {
            assert_eq!(not_sent(kind), Action::Reconcile, "{kind:?}");
        }
        // A retry that finds no connection either.
        assert_eq!(decide(Publish, Failure::NotSent, 1), Action::Hold);
        assert_eq!(decide(ClaimToken, Failure::NotSent, 1), Action::Fail);
    }

    #[test]
    fn a_first_send_is_repeated_once_unless_a_duplicate_could_harm() {
        use Kind::*;
        for kind in [ClaimToken, SocketOpened, SocketClosed, PresenceSnapshot] {
            assert_eq!(
                decide(kind, Failure::Unknown, 1),
                Action::Resend,
                "{kind:?}"
            );
        }
        // A receipt that may have gone out is not published twice.
        assert_eq!(decide(Publish, Failure::Unknown, 1), Action::Fail);
    }

    #[test]
    fn a_second_failure_is_final_or_left_to_the_snapshot() {
        use Kind::*;
        let failure = Failure::Unknown;
        assert_eq!(decide(ClaimToken, failure, 2), Action::Fail);
        assert_eq!(decide(Publish, failure, 2), Action::Fail);
        for kind in [SocketOpened, SocketClosed, PresenceSnapshot] {
            assert_eq!(decide(kind, failure, 2), Action::Reconcile, "{kind:?}");
        }
    }
}
