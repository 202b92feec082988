//! One client connection's protocol state on its event loop: its phase, its
//! send queue, its deadline and its place in the flush list. It owns no
//! socket and makes no system call: the loop reads the socket and hands the
//! bytes in, and [`Conn::flush`] writes the queue into whatever writer the
//! loop gives it (the socket, or a simulation's stand-in, see [`Wire`]).
//!
//! A connection owns no buffer while it is idle: the request head is kept
//! only until the upgrade completes, and its [`SendQueue`] only until the
//! kernel takes the bytes. Reads go through the loop's shared scratch buffer.
//!
//! Every [`Phase`] is a real state: a transition replaces the old phase with
//! the next one (and hands back the old one's data), so no phase ever stands
//! in for another while data is moved out.

use std::io::{self, Write};
use std::num::NonZeroU32;
use std::sync::Arc;

use super::send_queue::SendQueue;
use super::timer::Tick;
use crate::bus::Frame;
use crate::http::PerMessageDeflate;
use crate::ws::{code as close_code, encode_frame, Event, MessageReader, OpCode};

/// Where a connection is in its life.
pub enum Phase {
    /// Reading the HTTP upgrade request head.
    Handshake {
        /// The bytes of the head read so far.
        head: Vec<u8>,
    },
    /// The head was valid; the connection waits to be admitted (its token
    /// check is in flight, or it was handed over to the loop owning its
    /// client). Reads pause.
    Authorizing(Pending),
    /// An open WebSocket of a known client.
    Open(Session),
    /// Its last bytes are queued (an HTTP refusal or a close frame); once
    /// they are sent the write side is shut.
    Closing(Farewell),
    /// The write side is shut; the connection waits for the peer's EOF (or
    /// its deadline). Nothing is ever queued again.
    Shut,
}

/// What an upgrade waiting for admission keeps for its `101`.
#[derive(Debug, PartialEq, Eq)]
pub struct Pending {
    /// The `Sec-WebSocket-Accept` value to answer with.
    pub accept_key: String,
    /// `freeim.heartbeat.v1` is selected (offered, and heartbeats are on).
    pub heartbeat: bool,
    /// The permessage-deflate offer accepted (offered, and compression on).
    pub deflate: Option<PerMessageDeflate>,
    /// Bytes the client sent after the head.
    pub early_bytes: Vec<u8>,
}

/// The last bytes a closing connection sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Farewell {
    /// The upgrade was refused with this HTTP status.
    Refused(u16),
    /// The WebSocket is closed with a close frame of this code.
    CloseFrame(u16),
}

impl Phase {
    /// Whether the connection is still upgrading (counts against
    /// `--max-pending-upgrades`).
    pub fn is_upgrading(&self) -> bool {
        matches!(self, Phase::Handshake { .. } | Phase::Authorizing(_))
    }
}

/// An open WebSocket's state.
pub struct Session {
    /// The client the token admitted.
    pub client_id: i64,
    /// The online/offline event payload.
    pub event: Arc<str>,
    /// The frame decoder.
    pub reader: MessageReader,
    /// Whether a heartbeat ping is out and unanswered.
    pub ping: Ping,
    /// The session speaks `freeim.heartbeat.v1`: every ping goes with a
    /// binary frame holding the heartbeat interval.
    pub heartbeat: bool,
    /// The permessage-deflate it negotiated, if any: pushes go compressed
    /// when it takes them, and its reader inflates.
    pub deflate: Option<PerMessageDeflate>,
}

/// A session's heartbeat state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ping {
    /// No ping is out, or the peer sent something since.
    Answered,
    /// A ping is out and the peer has sent nothing since: it is closed when
    /// its deadline comes.
    Unanswered,
}

/// The density budget: a connection's slab entry stays this small (idle
/// connections own no other heap memory but their registry entry and event).
const _: () = assert!(std::mem::size_of::<Conn>() <= 160);

/// A client connection.
pub struct Conn {
    /// Incremented each time the slab slot is reused.
    generation: u32,
    /// Life-cycle phase.
    phase: Phase,
    /// What the socket has not taken yet.
    out: SendQueue,
    /// Its place in the loop's list of connections to flush, plus one, if
    /// listed (so that the field takes 4 bytes).
    dirty_at: Option<NonZeroU32>,
    /// When the connection's timer acts (handshake, heartbeat or close deadline).
    deadline: Tick,
}

/// Where connections' queued bytes go, by slot key: the loop's sockets, or
/// a simulation's stand-in. Connections hold no socket of their own.
pub trait Wire {
    /// Writes what `conn` (in slot `key`) has queued, see [`Conn::flush`].
    fn flush(&mut self, key: u32, conn: &mut Conn) -> IoStep;
}

/// What one socket read or write came to.
#[derive(Debug, PartialEq, Eq)]
pub enum IoStep {
    /// Moved this many bytes.
    Moved(usize),
    /// The kernel has no data or no room now.
    WouldBlock,
    /// The peer is gone (EOF, reset, broken pipe).
    Closed,
}

impl Conn {
    /// A connection in `phase` (a fresh one reads its upgrade request).
    pub fn new(generation: u32, phase: Phase, deadline: Tick) -> Conn {
        Conn {
            generation,
            phase,
            out: SendQueue::default(),
            dirty_at: None,
            deadline,
        }
    }

    /// The generation of its slab slot.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Its phase.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// Moves to `phase`; returns the phase it left (the loop's
    /// [`Connections::set_phase`](super::connections::Connections::set_phase)
    /// keeps its count of upgrading connections with it).
    pub(super) fn replace_phase(&mut self, phase: Phase) -> Phase {
        std::mem::replace(&mut self.phase, phase)
    }

    /// The phase, once the connection left its loop.
    pub fn into_phase(self) -> Phase {
        self.phase
    }

    /// The open session, if the connection is an open WebSocket.
    pub fn session(&self) -> Option<&Session> {
        match &self.phase {
            Phase::Open(session) => Some(session),
            _ => None,
        }
    }

    /// The request head read so far, while the connection reads it.
    pub fn head_mut(&mut self) -> Option<&mut Vec<u8>> {
        match &mut self.phase {
            Phase::Handshake { head } => Some(head),
            _ => None,
        }
    }

    /// The open session, to update its heartbeat state.
    pub fn session_mut(&mut self) -> Option<&mut Session> {
        match &mut self.phase {
            Phase::Open(session) => Some(session),
            _ => None,
        }
    }

    /// When its timer acts.
    pub fn deadline(&self) -> Tick {
        self.deadline
    }

    /// Moves its deadline without touching the loop's wheel: the pending
    /// reminder re-files itself when it comes due, so a later deadline costs
    /// nothing, and an earlier one is acted on only when that reminder comes
    /// due ([`Connections::set_deadline`](super::connections::Connections::set_deadline)
    /// files a reminder for an earlier one).
    pub(super) fn set_deadline(&mut self, deadline: Tick) {
        self.deadline = deadline;
    }

    /// Its place in the loop's list of connections to flush, if listed.
    pub fn dirty_at(&self) -> Option<u32> {
        self.dirty_at.map(|at| at.get() - 1)
    }

    /// Records its place in the loop's list of connections to flush.
    pub(super) fn set_dirty_at(&mut self, at: Option<u32>) {
        self.dirty_at = at.and_then(|at| NonZeroU32::new(at.wrapping_add(1)));
    }

    /// Whether bytes wait to be sent.
    pub fn has_unsent(&self) -> bool {
        !self.out.is_empty()
    }

    /// Unsent bytes queued behind the message in flight once `extra` more
    /// are queued (see [`SendQueue::lag_with`]).
    pub fn lag_with(&self, extra: usize) -> usize {
        self.out.lag_with(extra)
    }

    /// Queues the bytes `write` appends, behind everything else.
    pub fn send(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        self.out.push_with(write);
    }

    /// Queues a control frame ahead of the pushes not started yet.
    pub fn send_control(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        self.out.push_control(write);
    }

    /// Queues a shared push frame behind everything else, as its
    /// compressed variant when `deflated`.
    pub fn send_frame(&mut self, frame: Arc<Frame>, deflated: bool) {
        self.out.push_frame(frame, deflated);
    }

    /// Drops every queued message not started yet (see
    /// [`SendQueue::discard_unstarted`]).
    pub fn discard_unstarted(&mut self) {
        self.out.discard_unstarted();
    }

    /// Writes queued bytes (vectored) into `socket` until it refuses more;
    /// the queue releases its memory once everything is sent.
    pub fn flush(&mut self, socket: &mut impl Write) -> IoStep {
        let mut sent = 0;
        while !self.out.is_empty() {
            match self.out.write_to(socket) {
                Ok(0) => return IoStep::Closed,
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return IoStep::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return IoStep::Closed,
            }
        }
        IoStep::Moved(sent)
    }

    /// Takes every queued byte out of the queue (for a hand-over): the
    /// queue is empty afterwards.
    pub fn take_unsent(&mut self) -> Vec<u8> {
        let mut unsent = Vec::with_capacity(self.out.len());
        while !self.out.is_empty() {
            // Writing into memory always takes everything offered.
            let _ = self.out.write_to(&mut unsent);
        }
        unsent
    }

    /// Moves a closing connection whose last bytes are sent to
    /// [`Phase::Shut`]: true when it did, and the loop then shuts the
    /// socket's write side; false (and nothing done) unless it is closing
    /// with nothing left to send.
    pub fn finish_closing(&mut self) -> bool {
        if !matches!(self.phase, Phase::Closing(_)) || !self.out.is_empty() {
            return false;
        }
        self.phase = Phase::Shut;
        true
    }
}

/// What feeding received bytes to an open session came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Absorbed {
    /// All bytes consumed; the session stays open.
    Open,
    /// The peer sent a close frame with this status code to echo.
    PeerClosed(u16),
    /// The peer broke the protocol: close with this code and reason.
    Violation(u16, String),
}

/// What a session does with a complete data message (a text or binary
/// event), given the permessage-deflate it negotiated: chosen once for the
/// loop, see [`Conn::absorb`].
pub type DataHandler = fn(&mut SendQueue, Option<PerMessageDeflate>, Event);

impl Conn {
    /// Feeds bytes received on an open session through its decoder, queueing
    /// a pong for every ping. Client data messages carry no commands in
    /// FreeIM, so they are validated and dropped.
    pub fn absorb(&mut self, input: &mut [u8]) -> Absorbed {
        self.absorb_with(input, |_, _, _| {})
    }

    /// [`absorb`](Self::absorb), handing every data message to `on_data`.
    pub fn absorb_with(&mut self, mut input: &mut [u8], on_data: DataHandler) -> Absorbed {
        let Phase::Open(session) = &mut self.phase else {
            return Absorbed::Open;
        };
        session.ping = Ping::Answered;
        while !input.is_empty() {
            let (used, event) = match session.reader.read(input) {
                Ok(step) => step,
                Err(violation) => {
                    return Absorbed::Violation(violation.close_code(), violation.to_string())
                }
            };
            let used = used.min(input.len());
            input = &mut input[used..];
            match event {
                Some(Event::Ping(payload)) => self
                    .out
                    .push_control(|out| encode_frame(out, OpCode::Pong, &payload)),
                Some(Event::Close(frame)) => {
                    return Absorbed::PeerClosed(frame.map_or(close_code::NORMAL, |f| f.code))
                }
                Some(data @ (Event::Text(_) | Event::Binary(_))) => {
                    on_data(&mut self.out, session.deflate, data)
                }
                Some(Event::Pong) => {}
                None if used == 0 => break,
                None => {}
            }
        }
        Absorbed::Open
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::echo;
    use crate::ws::{encode_masked_frame, ReaderConfig};

    /// A connection in `phase`.
    fn conn(phase: Phase) -> Conn {
        Conn::new(1, phase, Tick::MAX)
    }

    fn open(config: ReaderConfig) -> Phase {
        Phase::Open(Session {
            client_id: 7,
            event: "{}".into(),
            reader: MessageReader::new(config),
            ping: Ping::Unanswered,
            heartbeat: false,
            deflate: None,
        })
    }

    fn from_client(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode_masked_frame(&mut bytes, opcode, true, payload, [1, 2, 3, 4]);
        bytes
    }

    #[test]
    fn stays_within_its_size_budget() {
        assert!(std::mem::size_of::<Conn>() <= 120);
    }

    #[test]
    fn production_absorb_drops_data_and_answers_pings() {
        let mut conn = conn(open(ReaderConfig::default()));
        let mut input = from_client(OpCode::Text, b"hello");
        assert_eq!(conn.absorb(&mut input), Absorbed::Open);
        assert!(!conn.has_unsent(), "data is validated and dropped");
        assert!(
            conn.session().unwrap().ping == Ping::Answered,
            "any bytes count as an answer"
        );
        let mut input = from_client(OpCode::Ping, b"p");
        assert_eq!(conn.absorb(&mut input), Absorbed::Open);
        let mut pong = Vec::new();
        encode_frame(&mut pong, OpCode::Pong, b"p");
        assert!(conn.has_unsent());
        let mut sent = Vec::new();
        assert_eq!(conn.flush(&mut sent), IoStep::Moved(pong.len()));
        assert_eq!(sent, pong);
    }

    #[test]
    fn echo_absorb_sends_data_back() {
        let config = echo::reader_config(ReaderConfig::default());
        let mut conn = conn(open(config));
        let mut input = from_client(OpCode::Binary, b"abc");
        input.extend_from_slice(&from_client(OpCode::Close, &[]));
        assert_eq!(
            echo::absorb(&mut conn, &mut input),
            Absorbed::PeerClosed(1000)
        );
        let mut expected = Vec::new();
        encode_frame(&mut expected, OpCode::Binary, b"abc");
        let mut sent = Vec::new();
        assert_eq!(conn.flush(&mut sent), IoStep::Moved(expected.len()));
        assert_eq!(sent, expected);
    }

    #[test]
    fn violations_name_their_close_code() {
        let mut conn = conn(open(ReaderConfig::default()));
        let mut unmasked = Vec::new();
        encode_frame(&mut unmasked, OpCode::Text, b"x");
        let outcome = conn.absorb(&mut unmasked);
        assert!(
            matches!(outcome, Absorbed::Violation(1002, _)),
            "{outcome:?}"
        );
    }

    #[test]
    fn only_a_closing_connection_with_nothing_left_is_shut() {
        let mut conn = conn(open(ReaderConfig::default()));
        assert!(!conn.finish_closing(), "an open session is not closing");
        conn.replace_phase(Phase::Closing(Farewell::CloseFrame(1000)));
        conn.send(|out| out.extend_from_slice(b"bye"));
        assert!(!conn.finish_closing(), "its last bytes are not sent yet");
        let mut sent = Vec::new();
        assert_eq!(conn.flush(&mut sent), IoStep::Moved(3));
        assert!(conn.finish_closing());
        assert!(matches!(conn.phase(), Phase::Shut));
        assert_eq!(sent, b"bye");
    }

    #[test]
    fn dirty_place_round_trips() {
        let mut conn = conn(Phase::Shut);
        assert_eq!(conn.dirty_at(), None);
        conn.set_dirty_at(Some(0));
        assert_eq!(conn.dirty_at(), Some(0));
        conn.set_dirty_at(Some(41));
        assert_eq!(conn.dirty_at(), Some(41));
        conn.set_dirty_at(None);
        assert_eq!(conn.dirty_at(), None);
    }
}
