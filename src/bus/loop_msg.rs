//! Everything an event loop can be told by other threads ([`LoopMsg`]):
//! token answers from the Redis worker, pushes and force-offlines from the
//! subscriber, connections handed over by another loop, drain and presence
//! requests, and the steps of a hand-over to another process.

use mio::net::TcpStream;

use freeim_protocol::ClientTicket;

use crossbeam_channel::Sender;

use super::{ConnId, ConnState, Parcel, Push};
use crate::http::PerMessageDeflate;

/// What the Redis worker learned about an upgrade's token.
#[derive(Debug)]
pub enum TokenOutcome {
    /// The token was valid (and is now consumed).
    Admitted(ClientTicket),
    /// Unknown, expired, already used or malformed.
    Refused,
    /// Redis could not be asked.
    Unavailable,
}

/// Everything a loop can be told.
#[derive(Debug)]
pub enum LoopMsg {
    /// Result of the token check for a connection of this loop.
    TokenChecked {
        /// The connection that asked.
        conn: ConnId,
        /// The answer.
        outcome: TokenOutcome,
    },
    /// An admitted connection handed over by the loop that accepted it.
    Adopt(Box<Adoption>),
    /// Deliver a message.
    Push(Push),
    /// Close every socket of a client.
    ForceOffline(i64),
    /// Redis is back after an outage: report every held client to the worker.
    ReportPresence,
    /// Stop accepting, close every connection with 1001, then exit.
    Shutdown,
    /// A hand-over begins: stop accepting and reading upgrade requests, and
    /// answer with the loop's index once no connection waits for a token
    /// answer.
    Quiesce(Sender<usize>),
    /// Take every connection out of the loop, silently (no close, no
    /// offline event), and send them.
    Collect(Sender<Parcel>),
    /// The hand-over failed before [`Collect`](Self::Collect): accept and
    /// read upgrade requests again.
    Resume,
    /// Take these connections in (from another process, or back after a
    /// failed hand-over), silently (no online event).
    Import(Imports),
}

/// Connections a loop takes in.
#[derive(Debug)]
pub struct Imports {
    /// Each one's state and socket.
    pub conns: Vec<(ConnState, TcpStream)>,
    /// Generations the loop's new connections must start above: the
    /// highest generation in the socket names the connections had in the
    /// process they come from, so that no new socket name (`loop:key:gen`)
    /// equals an old one still waiting to be renamed in
    /// `{prefix}Node{server}` (0 when they come back to their own loop).
    pub generations_above: u32,
}

/// An admitted connection moving to the loop that owns its client.
#[derive(Debug)]
pub struct Adoption {
    /// The socket, already deregistered from the accepting loop.
    pub stream: TcpStream,
    /// Who it belongs to.
    pub ticket: ClientTicket,
    /// The `Sec-WebSocket-Accept` value for the 101 response.
    pub accept_key: String,
    /// `freeim.heartbeat.v1` is selected.
    pub heartbeat: bool,
    /// The permessage-deflate offer accepted, if any.
    pub deflate: Option<PerMessageDeflate>,
    /// Bytes the client sent after its request head (a pipelined frame).
    pub early_bytes: Vec<u8>,
}
