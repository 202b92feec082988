//! A connection's state as it leaves one process for another (a hot upgrade,
//! see `crate::upgrade`) or comes back to a loop after a hand-over failed:
//! [`ConnState`], serialised with `postcard` in format [`FORMAT`], and the
//! [`Parcel`] a loop hands its connections over in.
//!
//! What a connection is between two events is small and explicit (see
//! `crate::node::conn`): its phase (the request head read so far; or the
//! client, its event payload, the frame decoder's partial header, frame and
//! UTF-8 state (and, for permessage-deflate, the compressed bytes of a
//! message not complete yet), the heartbeat state, the permessage-deflate it
//! negotiated; or the farewell being sent), the bytes
//! queued and not yet written, and its deadline. Connections waiting for a
//! token answer are never handed over (the hand-over waits for the answers).
//!
//! # Versions
//! [`FORMAT`] names the layout of every type here and of the frame decoder's
//! state (`MessageReader`). Any change to them (a field added, removed,
//! reordered or retyped, a variant added) must bump it: postcard carries no
//! field names, so a reader of another format would misread silently. The
//! pinned bytes in this module's test fail when the layout changes. A
//! process refuses a hand-over in a format it does not read, and the old
//! process then keeps serving. Settings (limits, intervals) are not part of
//! the state: the new process applies its own.

use mio::net::TcpStream;
use serde::{Deserialize, Serialize};

use crate::http::PerMessageDeflate;
use crate::ws::MessageReader;

/// The state format this binary writes and reads: 2 since permessage-deflate
/// (the decoder's inflate flags, the session's negotiated extension).
pub const FORMAT: u32 = 2;

/// One connection's state, without its socket.
#[derive(Debug, Serialize, Deserialize)]
pub struct ConnState {
    /// Where it is in its life.
    pub phase: PhaseState,
    /// Bytes queued and not yet written, in order (the first may be the rest
    /// of a frame half written).
    #[serde(with = "serde_bytes")]
    pub unsent: Vec<u8>,
    /// Milliseconds until its deadline (handshake, heartbeat or close);
    /// `None` when it has none.
    pub deadline_ms: Option<u64>,
}

/// [`ConnState`]'s phase.
#[derive(Debug, Serialize, Deserialize)]
pub enum PhaseState {
    /// Reading the upgrade request head: the bytes read so far.
    Handshake {
        /// The head so far.
        #[serde(with = "serde_bytes")]
        head: Vec<u8>,
    },
    /// An open WebSocket.
    Open {
        /// Its name in `{prefix}Node{server}` in the process it comes from.
        socket: String,
        /// Whose socket.
        client_id: i64,
        /// The online/offline event payload.
        event: String,
        /// The frame decoder (its limits are the receiving process's).
        reader: MessageReader,
        /// A heartbeat ping is out, unanswered.
        ping_out: bool,
        /// The session speaks `freeim.heartbeat.v1`.
        heartbeat: bool,
        /// The permessage-deflate it negotiated, if any.
        deflate: Option<PerMessageDeflate>,
    },
    /// Sending its last bytes: an HTTP refusal (`refused`) or a close frame
    /// with this status.
    Closing {
        /// The upgrade was refused (an HTTP status), not closed.
        refused: bool,
        /// The HTTP status or close code.
        code: u16,
    },
    /// The write side is shut; waiting for the peer's EOF.
    Shut,
}

/// A loop's connections on their way out: each one's state and socket
/// (deregistered from the loop's poll; nothing reads or writes it until it
/// is imported somewhere).
#[derive(Debug, Default)]
pub struct Parcel {
    /// The connections.
    pub conns: Vec<(ConnState, TcpStream)>,
}

/// Encodes states in [`FORMAT`] (as a sequence of [`ConnState`]).
pub fn encode_states(states: &[&ConnState]) -> Vec<u8> {
    postcard::to_stdvec(states).expect("serialising to memory cannot fail")
}

/// Decodes what [`encode_states`] made.
///
/// # Errors
/// The bytes are not states of [`FORMAT`].
pub fn decode_states(bytes: &[u8]) -> Result<Vec<ConnState>, postcard::Error> {
    postcard::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::ReaderConfig;

    fn sample() -> Vec<ConnState> {
        vec![
            ConnState {
                phase: PhaseState::Handshake {
                    head: b"GET /ws".to_vec(),
                },
                unsent: Vec::new(),
                deadline_ms: Some(900),
            },
            ConnState {
                phase: PhaseState::Open {
                    socket: "1:2:3".into(),
                    client_id: -7,
                    event: "{}".into(),
                    reader: MessageReader::new(ReaderConfig::default()).inflating(),
                    ping_out: true,
                    heartbeat: false,
                    deflate: Some(PerMessageDeflate {
                        server_max_window_bits: 10,
                        echo_window_bits: true,
                    }),
                },
                unsent: vec![0x81, 0x01, b'x'],
                deadline_ms: None,
            },
            ConnState {
                phase: PhaseState::Closing {
                    refused: false,
                    code: 1001,
                },
                unsent: Vec::new(),
                deadline_ms: Some(0),
            },
            ConnState {
                phase: PhaseState::Shut,
                unsent: Vec::new(),
                deadline_ms: Some(1),
            },
        ]
    }

    /// The layout of format 2, pinned: if this fails, the layout changed and
    /// [`FORMAT`] must be bumped (then pin the new bytes).
    #[test]
    fn format_2_is_pinned() {
        let sample = sample();
        let bytes = encode_states(&sample.iter().collect::<Vec<_>>());
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(FORMAT, 2);
        assert_eq!(hex, PINNED, "state layout changed: bump FORMAT");
        let back = decode_states(&bytes).unwrap();
        assert_eq!(encode_states(&back.iter().collect::<Vec<_>>()), bytes);
    }

    const PINNED: &str = "040007474554202f7773000184070105313a323a330d027b7d000000000000000000000000000000000000000000000001000100010a0103810178000200e90700010003000101";

    #[test]
    fn garbage_is_refused_not_misread() {
        assert!(decode_states(&[4, 9, 9]).is_err());
    }
}
