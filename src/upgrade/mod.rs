//! Hot upgrade: a running node hands its listening sockets and every
//! connection to a new process (of a possibly newer binary) without closing
//! a WebSocket, losing or repeating a command, or firing a presence event.
//!
//! The old node serves hand-over requests on `--upgrade-socket` ([`serve`]);
//! the new process, started with `--upgrade`, connects there
//! ([`take_over`]). In order:
//!
//! 1. **Hello.** The old process names the state format, its binary version
//!    and the node (`--server`, `--servers`, `--path`); the new one refuses a
//!    format it cannot read or another node, or answers `Ready` once its
//!    subscription to the node's command channel is live.
//! 2. **Cut.** The old process publishes a `cut` marker on that channel
//!    (`freeim_protocol::handover`); both processes see it at the same place
//!    in the stream ([`crate::store::cutover`]): the old one delivers what
//!    came before it, the new one holds what comes after.
//! 3. **Quiesce and collect.** Each old loop stops accepting and reading
//!    upgrade requests, waits for its token answers, then gives up every
//!    connection as state ([`crate::bus::ConnState`]) plus socket.
//! 4. **Send.** Listening sockets, states and connection sockets go over the
//!    Unix socket ([`transport`], `SCM_RIGHTS`). The new process answers
//!    `Took` once it decoded everything and saw the cut itself.
//! 5. **Release.** The old process stops delivering for good, lets its Redis
//!    worker finish its queue (receipts, presence of sockets that closed
//!    meanwhile) and stop renewing the lease, answers `Released`, and exits
//!    0 without closing a connection or touching presence. Only then does the
//!    new process touch a socket: its loops take the connections in
//!    (renaming their sockets in `{prefix}Node{server}`), it takes the lease
//!    and publishes `go`, where its subscriber releases the commands it held.
//!
//! Any failure before `Took` reaches the old process (a refusal, a timeout,
//! the new process dying) aborts: the old process takes its connections back
//! and resumes accepting, publishes `abort`, where its subscriber releases
//! what it held, and keeps serving. The new process exits with an error.
//!
//! Test hooks, read by the binary: `FREEIM_UPGRADE_FAULT=stall-before-took`
//! makes a new process stop (for a test to kill it) once it holds every
//! state, before it answers `Took`; `FREEIM_UPGRADE_FORMAT=<n>` makes an old
//! process announce state format `n`.

mod hand_over;
mod take_over;
pub mod transport;

pub use hand_over::{serve, OldNode};
pub use take_over::{take_over, TakenOver, UpgradeError};

use mio::net::TcpStream;

use crate::bus::{loop_of, ConnState, PhaseState};

/// The highest generation in the socket names of the open sessions among
/// `conns` (names are `loop:key:generation`, see `crate::bus::socket_name`).
pub fn highest_generation(conns: &[(ConnState, TcpStream)]) -> u32 {
    conns
        .iter()
        .filter_map(|(state, _)| match &state.phase {
            PhaseState::Open { socket, .. } => socket.rsplit(':').next()?.parse().ok(),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// Splits connections between `loops` loops: an open session to the loop
/// owning its client (as the router sends its pushes), the others round
/// robin.
pub fn distribute(
    conns: Vec<(ConnState, TcpStream)>,
    loops: usize,
) -> Vec<Vec<(ConnState, TcpStream)>> {
    let mut shares: Vec<Vec<_>> = (0..loops).map(|_| Vec::new()).collect();
    for (n, (state, stream)) in conns.into_iter().enumerate() {
        let at = match &state.phase {
            PhaseState::Open { client_id, .. } => loop_of(*client_id, loops),
            _ => n % loops,
        };
        shares[at].push((state, stream));
    }
    shares
}
