//! A batch of jobs as pipelines. Every job is one command, so reply `i`
//! answers job `i`; a failed exchange leaves the jobs from the first missing
//! reply on without an answer, and [`retry`] says what becomes of each: a
//! second pipeline on a fresh connection (at most one), the receipt backlog,
//! the next presence snapshot, or a final failure.

use redis::Value;

use super::link::Exchange;
use super::report::Reason;
use super::retry::{self, Action, Failure, Kind};
use super::Worker;
use crate::bus::{socket_loop, socket_name_prefix, Job};
use crate::bus::{LoopMsg, TokenOutcome, Wakes};
use freeim_protocol::{key_slot, ClientTicket, Layout};

/// A job on its way to Redis.
#[derive(Debug)]
pub(super) struct Try {
    job: Job,
    kind: Kind,
    /// Times it was written to a connection.
    sends: u8,
    /// An earlier send may have run it: its answer was lost.
    uncertain: bool,
}

impl Try {
    /// A job not sent yet; `None` for a drain, which is not pipelined.
    pub(super) fn new(job: Job) -> Option<Try> {
        let kind = match &job {
            Job::ClaimToken { .. } => Kind::ClaimToken,
            Job::SocketOpened { .. } => Kind::SocketOpened,
            Job::SocketClosed { .. } => Kind::SocketClosed,
            Job::Publish { .. } => Kind::Publish,
            Job::PresenceSnapshot { .. } => Kind::PresenceSnapshot,
            Job::RenameSockets { .. } => Kind::RenameSockets,
            Job::Drain { .. }
            | Job::PrimaryChanged
            | Job::Retire { .. }
            | Job::AssumeLease { .. } => return None,
        };
        Some(Try {
            job,
            kind,
            sends: 0,
            uncertain: false,
        })
    }

    /// Whether it goes out as a `MULTI … EXEC` transaction: a socket's
    /// first open announcement. `HSET`, `HINCRBY` and `PUBLISH` cost Redis
    /// about a third of what the `SOCKET_OPENED` script does, and a
    /// transaction runs whole or not at all, so a send whose outcome is
    /// lost is repeated with the script, which then finds the socket known
    /// (and does nothing) or not (and does it all). A first send never
    /// finds the socket known: a loop's snapshot that lists it is queued
    /// after its open, and jobs run in order.
    fn as_transaction(&self) -> bool {
        self.kind == Kind::SocketOpened && self.sends == 0
    }

    /// Replies its commands produce: five for a transaction (`+OK`, three
    /// `+QUEUED`, the `EXEC` array), one otherwise.
    fn replies(&self) -> usize {
        if self.as_transaction() {
            5
        } else {
            1
        }
    }

    /// Bytes it holds while it waits in the backlog.
    fn held_bytes(&self) -> usize {
        match &self.job {
            Job::Publish { channel, payload } => channel.len() + payload.len(),
            _ => 0,
        }
    }
}

impl Worker {
    /// Sends `jobs` (after the receipts held, if a connection is up) as one
    /// pipeline, then those that need another send as a second one, on a
    /// fresh connection; answers every job.
    pub(super) fn pipeline(&mut self, jobs: Vec<Try>) {
        let (elsewhere, mut round): (Vec<Try>, Vec<Try>) =
            jobs.into_iter().partition(|t| self.for_another_slot(t));
        if !elsewhere.is_empty() {
            self.publish_elsewhere(elsewhere);
        }
        let mut first = true;
        while !round.is_empty() || (first && !self.backlog.is_empty()) {
            // A waiting client's claim, or a second send, is worth a connect
            // now; the rest wait out the backoff.
            let now = !first || round.iter().any(|t| t.kind == Kind::ClaimToken);
            let mut up = if now { self.link_now() } else { self.link() }.is_some();
            if up {
                up = self.probed_link().is_some();
            }
            if up && first && !self.backlog.is_empty() {
                let held: Vec<Try> = self.backlog.take_all().collect();
                for t in &held {
                    self.report.retried(t.kind);
                }
                round.splice(0..0, held);
            }
            let Some(exchange) = self.send(&round) else {
                self.unsent(round);
                break;
            };
            round = self.settle(round, exchange);
            first = false;
        }
        self.report.flush();
    }

    /// Whether `t` publishes on another node's channel in the sharded
    /// layout: a slot this link's master may not serve.
    fn for_another_slot(&self, t: &Try) -> bool {
        match &t.job {
            Job::Publish { channel, .. } => {
                self.names.layout() == Layout::Sharded && key_slot(channel) != self.names.slot()
            }
            _ => false,
        }
    }

    /// Publishes receipts to other nodes' channels through the cluster
    /// connection, as one cluster pipeline (it sends each master the
    /// commands for its slots together). A failure is final for every one
    /// of them: a publish whose outcome is unknown is never sent twice.
    fn publish_elsewhere(&mut self, jobs: Vec<Try>) {
        let publish = self.names.layout().publish();
        let mut pipe = redis::cluster::cluster_pipe();
        for t in &jobs {
            if let Job::Publish { channel, payload } = &t.job {
                pipe.cmd(publish).arg(channel).arg(payload).ignore();
            }
        }
        let sent = self
            .cluster_connection()
            .and_then(|cluster| pipe.query::<()>(cluster));
        if let Err(e) = sent {
            self.cluster = None;
            self.report.error(format!("publishing to other nodes: {e}"));
            let mut wakes = self.router.wakes();
            for t in jobs {
                self.give_up(t, Reason::OutcomeUnknown, &mut wakes);
            }
            self.router.wake(&mut wakes);
        }
        self.report.flush();
    }

    /// The cluster connection, made if need be.
    pub(super) fn cluster_connection(
        &mut self,
    ) -> redis::RedisResult<&mut redis::cluster::ClusterConnection> {
        if self.cluster.is_none() {
            self.cluster = Some(self.redis.connect_cluster(super::IO_TIMEOUT)?);
        }
        Ok(self.cluster.as_mut().expect("just made"))
    }

    /// Writes `round` as one pipeline on the live link and reads its
    /// replies; `None` when there is no link.
    fn send(&mut self, round: &[Try]) -> Option<Exchange> {
        let Worker {
            link,
            names,
            unrestored,
            ..
        } = self;
        let link = link.as_mut()?;
        let mut pipe = redis::pipe();
        for t in round {
            match &t.job {
                Job::ClaimToken { token, .. } => {
                    pipe.cmd("GETDEL").arg(names.keys().token(token));
                }
                Job::SocketOpened {
                    client_id,
                    event,
                    socket,
                } if t.as_transaction() => {
                    pipe.cmd("MULTI");
                    pipe.cmd("HSET")
                        .arg(names.keys().node(names.server()))
                        .arg(socket)
                        .arg(format!("{client_id}|{event}"));
                    pipe.cmd("HINCRBY")
                        .arg(names.keys().online())
                        .arg(client_id)
                        .arg(1);
                    pipe.cmd(names.layout().publish())
                        .arg(names.keys().online_event())
                        .arg(event.as_ref());
                    pipe.cmd("EXEC");
                }
                Job::SocketOpened {
                    client_id,
                    event,
                    socket,
                } => {
                    pipe.cmd("EVALSHA")
                        .arg(&link.socket_opened)
                        .arg(2)
                        .arg(names.keys().node(names.server()))
                        .arg(names.keys().online())
                        .arg(socket)
                        .arg(client_id)
                        .arg(event.as_ref())
                        .arg(names.keys().online_event());
                }
                Job::SocketClosed {
                    client_id,
                    event,
                    socket,
                } => {
                    // See SOCKET_CLOSED: only a first send in the window
                    // where Redis may have lost the socket announces anyway.
                    let unrestored = socket_loop(socket)
                        .and_then(|index| unrestored.get(index).copied())
                        .unwrap_or(false);
                    let announce = unrestored && !t.uncertain;
                    pipe.cmd("EVALSHA")
                        .arg(&link.socket_closed)
                        .arg(2)
                        .arg(names.keys().online())
                        .arg(names.keys().node(names.server()))
                        .arg(client_id)
                        .arg(event.as_ref())
                        .arg(names.keys().offline_event())
                        .arg(names.keys().prefix())
                        .arg(socket)
                        .arg(if announce { "1" } else { "0" });
                }
                Job::Publish { channel, payload } => {
                    pipe.cmd(names.layout().publish()).arg(channel).arg(payload);
                }
                Job::PresenceSnapshot {
                    loop_index,
                    sockets,
                } => {
                    let script = pipe
                        .cmd("EVALSHA")
                        .arg(&link.restore_presence)
                        .arg(2)
                        .arg(names.keys().node(names.server()))
                        .arg(names.keys().online())
                        .arg(names.keys().prefix())
                        .arg(names.keys().online_event())
                        .arg(names.keys().offline_event())
                        .arg(socket_name_prefix(*loop_index));
                    for held in sockets {
                        script
                            .arg(&held.socket)
                            .arg(held.client_id)
                            .arg(held.event.as_ref());
                    }
                }
                Job::RenameSockets { pairs } => {
                    let script = pipe
                        .cmd("EVALSHA")
                        .arg(&link.rename_sockets)
                        .arg(1)
                        .arg(names.keys().node(names.server()));
                    for (old, new) in pairs {
                        script.arg(old).arg(new);
                    }
                }
                Job::Drain { .. }
                | Job::PrimaryChanged
                | Job::Retire { .. }
                | Job::AssumeLease { .. } => {} // never a Try
            }
        }
        let replies = round.iter().map(Try::replies).sum();
        Some(link.exchange(&pipe.get_packed_pipeline(), replies))
    }

    /// Answers the jobs that got a reply, and decides about the others;
    /// returns the jobs to send again.
    fn settle(&mut self, round: Vec<Try>, exchange: Exchange) -> Vec<Try> {
        let Exchange { replies, error } = exchange;
        if let Some(error) = &error {
            self.lost(error);
        }
        let mut again = Vec::new();
        let mut wakes = self.router.wakes();
        let mut reconnect = false;
        let mut replies = replies.into_iter();
        for mut t in round {
            let reply = take_reply(&mut replies, t.replies());
            t.sends += 1;
            let (action, reason) = match reply {
                Some(Value::ServerError(refused)) => {
                    let action = retry::decide_refused(refused.code(), t.sends);
                    if action == Action::Resend {
                        reconnect = true;
                    } else {
                        self.report.error(format!("{refused:?}"));
                    }
                    (action, Reason::Refused)
                }
                Some(reply) => {
                    self.answer(t, reply, &mut wakes);
                    continue;
                }
                // No answer: the exchange failed after this job was written.
                None => {
                    let action = retry::decide(t.kind, Failure::Unknown, t.sends);
                    t.uncertain = true;
                    let reason = if t.kind == Kind::Publish {
                        Reason::OutcomeUnknown
                    } else {
                        Reason::Unreachable
                    };
                    (action, reason)
                }
            };
            match action {
                Action::Resend => {
                    self.report.retried(t.kind);
                    again.push(t);
                }
                Action::Hold => self.hold(t, &mut wakes),
                Action::Reconcile => self.report.reconciled(),
                Action::Fail => self.give_up(t, reason, &mut wakes),
            }
        }
        if reconnect && self.link.take().is_some() {
            // Replies were all read, so the link is in step; but the refused
            // commands need a fresh one (scripts reloaded, primary re-resolved).
            self.metrics
                .worker
                .up
                .store(false, std::sync::atomic::Ordering::Relaxed);
        }
        self.router.wake(&mut wakes);
        again
    }

    /// Decides about jobs that could not be sent: no connection.
    fn unsent(&mut self, round: Vec<Try>) {
        let mut wakes = self.router.wakes();
        for t in round {
            match retry::decide(t.kind, Failure::NotSent, t.sends) {
                Action::Hold => self.hold(t, &mut wakes),
                Action::Reconcile => self.report.reconciled(),
                Action::Resend | Action::Fail => self.give_up(t, Reason::Unreachable, &mut wakes),
            }
        }
        self.router.wake(&mut wakes);
    }

    /// Keeps a receipt for the next connection, or fails it past the bound.
    fn hold(&mut self, t: Try, wakes: &mut Wakes) {
        let bytes = t.held_bytes();
        if let Err(t) = self.backlog.push(t, bytes) {
            self.give_up(t, Reason::BacklogFull, wakes);
        }
    }

    /// A job finally failed: counted, and a waiting client answered 503.
    pub(super) fn give_up(&mut self, t: Try, reason: Reason, wakes: &mut Wakes) {
        self.report.failed(t.kind, reason);
        if let Job::ClaimToken {
            loop_index, conn, ..
        } = t.job
        {
            let outcome = TokenOutcome::Unavailable;
            let msg = LoopMsg::TokenChecked { conn, outcome };
            self.router.send(loop_index, msg, wakes);
        }
    }

    /// A job's reply (not an error reply) came.
    fn answer(&mut self, t: Try, reply: Value, wakes: &mut Wakes) {
        match t.job {
            Job::ClaimToken {
                loop_index, conn, ..
            } => {
                let outcome = match reply {
                    Value::BulkString(json) => match ClientTicket::parse(&json) {
                        Ok(ticket) => TokenOutcome::Admitted(ticket),
                        Err(e) => {
                            log::warn!("token value is not FreeIM's {{Item1, Item2}} JSON: {e}");
                            TokenOutcome::Refused
                        }
                    },
                    Value::Nil if t.uncertain => {
                        self.report
                            .failed(Kind::ClaimToken, Reason::TokenMaybeConsumed);
                        TokenOutcome::Unavailable
                    }
                    _ => TokenOutcome::Refused,
                };
                let msg = LoopMsg::TokenChecked { conn, outcome };
                self.router.send(loop_index, msg, wakes);
            }
            Job::PresenceSnapshot {
                loop_index,
                sockets,
            } => {
                if let Some(unrestored) = self.unrestored.get_mut(loop_index) {
                    *unrestored = false;
                }
                let level = if self.verbose {
                    log::Level::Info
                } else {
                    log::Level::Debug
                };
                log::log!(
                    level,
                    "restored the presence of loop {loop_index}: {} sockets held",
                    sockets.len()
                );
            }
            Job::RenameSockets { pairs } => {
                let renamed = match reply {
                    Value::Int(n) => n,
                    _ => 0,
                };
                log::info!(
                    "renamed {renamed} of {} sockets handed over in the presence hash",
                    pairs.len()
                );
            }
            Job::SocketOpened { .. } | Job::SocketClosed { .. } | Job::Publish { .. } => {}
            Job::Drain { .. }
            | Job::PrimaryChanged
            | Job::Retire { .. }
            | Job::AssumeLease { .. } => {}
        }
    }
}

/// The reply that answers a job whose commands produce `count` replies: the
/// only one, or a transaction's `EXEC` result, unless one of them is an
/// error (a command refused while queued makes `EXEC` abort); `None` when
/// not all of them arrived.
fn take_reply(replies: &mut impl Iterator<Item = Value>, count: usize) -> Option<Value> {
    let mut last = None;
    let mut refused = None;
    for _ in 0..count {
        match replies.next()? {
            Value::ServerError(error) => {
                refused.get_or_insert(Value::ServerError(error));
            }
            reply => last = Some(reply),
        }
    }
    refused.or(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Value {
        Value::SimpleString(text.into())
    }

    #[test]
    fn a_transaction_is_answered_by_its_exec_reply_or_its_first_refusal() {
        let exec = Value::Array(vec![Value::Int(1), Value::Int(1), Value::Int(0)]);
        let mut replies = vec![
            ok("OK"),
            ok("QUEUED"),
            ok("QUEUED"),
            ok("QUEUED"),
            exec.clone(),
            Value::Nil,
        ]
        .into_iter();
        assert_eq!(take_reply(&mut replies, 5), Some(exec));
        assert_eq!(take_reply(&mut replies, 1), Some(Value::Nil));
        assert_eq!(take_reply(&mut replies, 1), None);

        // A command refused while queued: EXEC aborts, and the refusal (not
        // the abort) answers the job.
        let error = |resp: &[u8]| redis::parse_redis_value(resp).unwrap();
        let mut replies = vec![
            ok("OK"),
            error(b"-READONLY You can't write against a read only replica.\r\n"),
            ok("QUEUED"),
            ok("QUEUED"),
            error(b"-EXECABORT Transaction discarded because of previous errors.\r\n"),
        ]
        .into_iter();
        let Some(Value::ServerError(refused)) = take_reply(&mut replies, 5) else {
            panic!("a refusal answers the transaction");
        };
        assert_eq!(refused.code(), "READONLY");
    }
}
