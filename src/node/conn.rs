//! One client connection's state on its event loop, and its socket I/O.
//!
//! A connection owns no buffer while it is idle: the request head is kept
//! only until the upgrade completes, and its [`SendQueue`] only until the
//! kernel takes the bytes. Reads go through the loop's shared scratch buffer.

use std::io::{self, Read};
use std::net::Shutdown;
use std::sync::Arc;

use mio::net::TcpStream;

use super::send_queue::SendQueue;
use super::timer::Tick;
use crate::ws::{code as close_code, encode_frame, Event, MessageReader, OpCode};

/// Where a connection is in its life.
pub enum Phase {
    /// Reading the HTTP upgrade request head.
    Handshake {
        /// The bytes of the head read so far.
        head: Vec<u8>,
    },
    /// The head was valid; the token check is in flight. Reads pause.
    Authorizing {
        /// The `Sec-WebSocket-Accept` value to answer with.
        accept_key: String,
        /// `freeim.heartbeat.v1` is selected (offered, and heartbeats are on).
        heartbeat: bool,
        /// Bytes the client sent after the head.
        early_bytes: Vec<u8>,
    },
    /// An open WebSocket of a known client.
    Open(Session),
    /// A response or close frame is queued; once it is sent the write side is
    /// shut and the connection waits for the peer's EOF (or its deadline).
    Closing,
}

impl Phase {
    /// Whether the connection is still upgrading (counts against
    /// `--max-pending-upgrades`).
    pub fn is_upgrading(&self) -> bool {
        matches!(self, Phase::Handshake { .. } | Phase::Authorizing { .. })
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
    /// A heartbeat ping is out and unanswered.
    pub awaiting_pong: bool,
    /// The session speaks `freeim.heartbeat.v1`: every ping goes with a
    /// binary frame holding the heartbeat interval.
    pub heartbeat: bool,
    /// Echo mode (conformance testing): data messages are sent back.
    pub echo: bool,
}

/// The density budget: a connection's slab entry stays this small (idle
/// connections own no other heap memory but their registry entry and event).
const _: () = assert!(std::mem::size_of::<Conn>() <= 160);

/// A client connection.
pub struct Conn {
    /// The socket.
    pub stream: TcpStream,
    /// Incremented each time the slab slot is reused.
    pub generation: u32,
    /// Life-cycle phase.
    pub phase: Phase,
    /// What the socket has not taken yet.
    pub out: SendQueue,
    /// Queued in the loop's list of connections to flush.
    pub dirty: bool,
    /// When the connection's timer acts (handshake, heartbeat or close deadline).
    pub deadline: Tick,
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
    /// A fresh connection reading its upgrade request.
    pub fn new(stream: TcpStream, generation: u32, deadline: Tick) -> Conn {
        Conn {
            stream,
            generation,
            phase: Phase::Handshake { head: Vec::new() },
            out: SendQueue::default(),
            dirty: false,
            deadline,
        }
    }

    /// The open session, if the connection is an open WebSocket.
    pub fn session(&self) -> Option<&Session> {
        match &self.phase {
            Phase::Open(session) => Some(session),
            _ => None,
        }
    }

    /// Reads once into `buf`.
    pub fn read_into(&mut self, buf: &mut [u8]) -> IoStep {
        loop {
            return match self.stream.read(buf) {
                Ok(0) => IoStep::Closed,
                Ok(n) => IoStep::Moved(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => IoStep::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => IoStep::Closed,
            };
        }
    }

    /// Writes queued bytes (vectored) until the kernel refuses more; the
    /// queue releases its memory once everything is sent.
    pub fn flush(&mut self) -> IoStep {
        let mut sent = 0;
        while !self.out.is_empty() {
            match self.out.write_to(&mut self.stream) {
                Ok(0) => return IoStep::Closed,
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return IoStep::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return IoStep::Closed,
            }
        }
        IoStep::Moved(sent)
    }

    /// Half-closes the socket after the last response or close frame.
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
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

impl Conn {
    /// Feeds bytes received on an open session through its decoder, queueing
    /// a pong for every ping. Client data messages carry no commands in
    /// FreeIM, so they are validated and dropped (or, in echo mode, echoed).
    pub fn absorb(&mut self, mut input: &mut [u8]) -> Absorbed {
        let Phase::Open(session) = &mut self.phase else {
            return Absorbed::Open;
        };
        session.awaiting_pong = false;
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
                Some(Event::Text(Some(text))) if session.echo => self
                    .out
                    .push_with(|out| encode_frame(out, OpCode::Text, text.as_bytes())),
                Some(Event::Binary(Some(data))) if session.echo => self
                    .out
                    .push_with(|out| encode_frame(out, OpCode::Binary, &data)),
                Some(Event::Text(_) | Event::Binary(_) | Event::Pong) => {}
                None if used == 0 => break,
                None => {}
            }
        }
        Absorbed::Open
    }
}
