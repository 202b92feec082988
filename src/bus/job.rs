//! Work the event loops (and the Sentinel watch, and the drain) give the
//! Redis worker: [`Job`], submitted through a [`WorkerHandle`].

use std::sync::Arc;

use crossbeam_channel::Sender;

use super::ConnId;

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
    /// A socket of `client_id` opened: count it and publish the online event
    /// (once: a repeat finds the socket known and does nothing).
    SocketOpened {
        /// Whose socket.
        client_id: i64,
        /// The event payload (the token's value).
        event: Arc<str>,
        /// The socket's name in `{prefix}Node{server}` ([`socket_name`]).
        socket: String,
    },
    /// A socket closed: uncount it, publish the offline event, and leave every
    /// channel when it was the client's last socket (once: a repeat finds the
    /// socket gone and does nothing).
    SocketClosed {
        /// Whose socket.
        client_id: i64,
        /// The event payload.
        event: Arc<str>,
        /// The socket's name in `{prefix}Node{server}`.
        socket: String,
    },
    /// Publish a payload (receipts). Not idempotent: never sent twice when
    /// the first send's outcome is unknown.
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
    /// Sentinel announced a new primary: finish the jobs queued before this
    /// one, then drop the link; the next job reconnects (to the new
    /// primary) and the loops' presence snapshots re-assert what they hold.
    PrimaryChanged,
    /// A hand-over moved sockets to new slots (of this process after an
    /// abort, or of the new one): rename them in `{prefix}Node{server}`,
    /// `(old name, new name)`, without counting or announcing anything.
    RenameSockets {
        /// `(old, new)` socket names.
        pairs: Vec<(String, String)>,
    },
    /// This process handed its connections over: finish every job queued
    /// before this one, never renew the lease again (the new process takes
    /// it), and answer.
    Retire {
        /// Answered once done.
        done: Sender<()>,
    },
    /// The process this one took the connections from has retired: take the
    /// lease on the node's name and keep it from now on, then answer.
    AssumeLease {
        /// Answered once done (or failed: the renewals retry).
        done: Sender<()>,
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

/// Submits jobs to the worker; cheap to clone.
#[derive(Clone)]
pub struct WorkerHandle {
    jobs: Sender<Job>,
}

impl WorkerHandle {
    /// A handle submitting to `jobs` (the worker holds the receiver).
    pub fn new(jobs: Sender<Job>) -> WorkerHandle {
        WorkerHandle { jobs }
    }

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
