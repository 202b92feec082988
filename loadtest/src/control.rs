//! The coordinator ↔ worker protocol: one JSON value per line, commands on
//! the worker's stdin, reports on its stdout.
//!
//! A worker reads its [`WorkerConfig`] as the first line, answers
//! [`Report::Ready`], then runs one [`Command`] after another; every command
//! but `Stats` and `Exit` ends with exactly one report naming it.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::stats::ClientStats;

/// What one worker process is given: its clients and how to open them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerConfig {
    /// Worker number (0-based).
    pub index: usize,
    /// Redis URL for `imhelper`.
    pub redis_url: String,
    /// The cluster's servers, in order.
    pub servers: Vec<String>,
    /// WebSocket path.
    pub path: String,
    /// The worker's first client id; it owns `first_id .. first_id + count`.
    pub first_id: i64,
    /// How many clients the worker owns.
    pub count: usize,
    /// Source addresses to bind client sockets to.
    pub src_addrs: Vec<Ipv4Addr>,
    /// Global index of the worker's first client: client `i` of this worker
    /// binds to `src_addrs[(src_offset + i) % len]`.
    pub src_offset: usize,
    /// New connections per second for this worker; 0 = unlimited.
    pub rate: f64,
    /// Most handshakes in flight at once.
    pub concurrency: usize,
    /// Milliseconds a connect + upgrade may take.
    pub connect_timeout_ms: u64,
    /// Threads calling `prev_connect_server`.
    pub token_threads: usize,
    /// Client metadata stored with each token.
    pub meta: String,
    /// How the client sockets read (the slow-reader mode).
    #[serde(default)]
    pub reader: ReaderConfig,
    /// Offer permessage-deflate in the upgrade (`--deflate`).
    #[serde(default)]
    pub deflate: bool,
}

/// How client sockets read: unlimited and with the kernel's buffer by
/// default; `--read-rate` and `--recv-buffer` of the message scenarios.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReaderConfig {
    /// Most bytes per second each open connection reads from its socket
    /// (frame headers included); 0 = as fast as data comes. See
    /// [`crate::pacing`].
    pub read_rate: u64,
    /// `SO_RCVBUF` in bytes, set on each socket before it connects (the
    /// kernel doubles it and caps it at `net.core.rmem_max`); `None` = the
    /// kernel's default (autotuned).
    pub recv_buffer: Option<usize>,
}

/// What the coordinator tells a worker to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Command {
    /// Fetch a token for every client now (answered by [`Report::Primed`]).
    Prime,
    /// Open every client once, paced by the configured rate (answered by
    /// [`Report::Connected`] once every client opened or failed).
    Connect,
    /// Close and reopen clients until the plan's end, then let everything in
    /// flight settle (answered by [`Report::ChurnDone`]).
    Churn(ChurnPlan),
    /// Report the counters now (answered by [`Report::Stats`]).
    Stats {
        /// Include the histograms and the failed ids.
        full: bool,
    },
    /// Close every connection with a close handshake (answered by [`Report::Closed`]).
    Close,
    /// Exit the process.
    Exit,
}

/// How clients come and go during churn.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ChurnPlan {
    /// Milliseconds of churn.
    pub duration_ms: u64,
    /// Mean life of a connection (uniform in 0.5×..1.5×), milliseconds.
    pub life_ms: u64,
    /// Most milliseconds between a close and the reconnect (uniform from 0).
    pub pause_ms: u64,
    /// Share of closes done by dropping the socket without a close frame.
    pub abrupt_ratio: f64,
    /// Share of connects abandoned right after the upgrade request is sent.
    pub abort_ratio: f64,
}

/// What a worker tells the coordinator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Report {
    /// Configured, token threads running.
    Ready {
        /// The worker's pid.
        pid: u32,
    },
    /// Tokens fetched for `Prime`.
    Primed {
        /// Tokens ready.
        tokens: u64,
        /// Failed token requests.
        failures: u64,
    },
    /// Every client of `Connect` opened or failed.
    Connected(ClientStats),
    /// Churn ended and settled; the sockets left open, per client.
    ChurnDone {
        /// Counters.
        stats: ClientStats,
        /// `(client id, open sockets)` of every client with an open socket.
        open: Vec<(i64, u32)>,
    },
    /// Answer to `Stats`.
    Stats(ClientStats),
    /// Every connection closed.
    Closed(ClientStats),
}
