//! A connection's life on its loop: upgrade request (and whether it selects
//! the `freeim.heartbeat.v1` subprotocol), token check, hand-over to the
//! owning loop, open session, heartbeats (pings, and for `freeim.heartbeat.v1`
//! sessions the binary frame of the interval with each), and the close paths.
//!
//! Each step moves the connection from one [`Phase`] to the next with
//! [`Connections::set_phase`](crate::node::connections::Connections::set_phase),
//! which hands back the phase left and the data it held. What a step needs
//! of the world (a token claimed, a socket reported online or offline, a
//! hand-over, a socket read or closed) it leaves as an [`Action`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::{Action, HandOver, Machine, Mode};
use crate::bus::{loop_of, ConnId, TokenOutcome};
use crate::http::{
    accept_response, parse_upgrade, rejection_response, Rejection, UpgradeRequest,
    HEARTBEAT_SUBPROTOCOL,
};
use crate::metrics::LoopCounters;
use crate::node::conn::{Absorbed, Farewell, IoStep, Pending, Phase, Ping, Session, Wire};
use crate::node::timer::Tick;
use crate::ws::{code, encode_close, encode_frame, MessageReader, OpCode};
use freeim_protocol::ClientTicket;

/// How long a closing connection may take to send its last bytes and see EOF.
pub(super) const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

impl Machine {
    /// Bytes read from a connection reading its upgrade request: true while
    /// the head is incomplete (read on), false once it was answered,
    /// admitted or the connection is past its handshake (the bytes are then
    /// dropped).
    pub fn on_head_bytes(&mut self, key: u32, bytes: &[u8]) -> bool {
        let settings = self.settings.clone();
        let Some(head) = self.conns.get_mut(key).and_then(|conn| conn.head_mut()) else {
            return false;
        };
        head.extend_from_slice(bytes);
        match parse_upgrade(head, &settings.path, settings.max_header_bytes) {
            Ok(None) => true,
            Err(rejection) => {
                self.reject(key, rejection);
                false
            }
            Ok(Some((request, used))) => {
                let early_bytes = head.get(used..).unwrap_or_default().to_vec();
                self.authorize(key, request, early_bytes);
                false
            }
        }
    }

    fn authorize(&mut self, key: u32, request: UpgradeRequest, early_bytes: Vec<u8>) {
        let origins = &self.settings.origins;
        if let Err(refusal) = origins.check(request.origin.as_deref()) {
            return self.reject(key, refusal);
        }
        let pending = Pending {
            accept_key: request.accept_key,
            heartbeat: request.offers_heartbeat && self.heartbeat_frame.is_some(),
            deflate: request.deflate.filter(|_| self.settings.compression),
            early_bytes,
        };
        match self.mode {
            Mode::Push => self.claim_token(key, request.token, pending),
            Mode::Echo => self.admit_echo(key, pending),
        }
    }

    /// Asks the worker to claim the upgrade's token; the connection waits.
    fn claim_token(&mut self, key: u32, token: Option<String>, pending: Pending) {
        let Some(token) = token else {
            return self.reject(key, Rejection::Unauthorized("missing token"));
        };
        let Some(id) = self.conns.id(key) else {
            return;
        };
        self.conns.set_phase(key, Phase::Authorizing(pending));
        self.actions.push(Action::ClaimToken { token, conn: id });
    }

    /// Echo mode's admission: at once, as the client named by the slot key.
    fn admit_echo(&mut self, key: u32, pending: Pending) {
        self.conns.set_phase(key, Phase::Authorizing(pending));
        let ticket = ClientTicket {
            client_id: i64::from(key),
            client_meta: None,
        };
        if self.activate(key, ticket) {
            if let Some(id) = self.conns.id(key) {
                self.actions.push(Action::Read(id));
            }
        }
    }

    /// The answer to connection `id`'s token claim (ignored when that
    /// connection closed since, even if its slot holds another one now).
    pub fn on_token(&mut self, id: ConnId, outcome: TokenOutcome) {
        let Some(conn) = self.conns.live(id) else {
            return; // closed while its token was checked
        };
        let ticket = match outcome {
            TokenOutcome::Admitted(ticket) => ticket,
            TokenOutcome::Refused => {
                return self.reject(
                    id.key,
                    Rejection::Unauthorized("unknown, expired or used token"),
                )
            }
            TokenOutcome::Unavailable => {
                return self.reject(
                    id.key,
                    Rejection::ServiceUnavailable("Redis is unavailable"),
                )
            }
        };
        if !matches!(conn.phase(), Phase::Authorizing(_)) {
            return;
        }
        let owner = loop_of(ticket.client_id, self.loops);
        if owner == self.index {
            // Data that arrived while the token was checked raised no new
            // edge: read it now.
            if self.activate(id.key, ticket) {
                self.actions.push(Action::Read(id));
            }
            return;
        }
        let Some(pending) = self.conns.take_pending(id.key) else {
            return;
        };
        self.actions.push(Action::HandOver(HandOver {
            owner,
            conn: id,
            pending,
            ticket,
        }));
    }

    /// Admits a connection handed over by another loop, inserted in
    /// [`Phase::Authorizing`] (its socket's registration reports data
    /// already waiting, so no read is asked for).
    pub fn on_adopted(&mut self, key: u32, ticket: ClientTicket) {
        self.activate(key, ticket);
    }

    /// Completes the upgrade of an admitted connection (in
    /// [`Phase::Authorizing`]) on its owning loop (when its client chose
    /// `freeim.heartbeat.v1`, the 101 selects it and the interval's binary
    /// frame follows); false when it is not waiting for admission or is
    /// already closing (its early bytes broke the protocol).
    fn activate(&mut self, key: u32, ticket: ClientTicket) -> bool {
        let event: Arc<str> = ticket.to_json().into();
        let client_id = ticket.client_id;
        let deadline = self.heartbeat_deadline();
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        let Phase::Authorizing(pending) = conn.phase() else {
            return false;
        };
        let (heartbeat, deflate) = (pending.heartbeat, pending.deflate);
        let subprotocol = heartbeat.then_some(HEARTBEAT_SUBPROTOCOL);
        let response = accept_response(&pending.accept_key, subprotocol, deflate.as_ref());
        let heartbeat_frame = self.heartbeat_frame.as_deref().filter(|_| heartbeat);
        conn.send(|out| {
            out.extend_from_slice(&response);
            out.extend_from_slice(heartbeat_frame.unwrap_or_default());
        });
        let reader = MessageReader::new(self.reader_config);
        let session = Session {
            client_id,
            event: event.clone(),
            reader: match deflate {
                Some(_) => reader.inflating(),
                None => reader,
            },
            ping: Ping::Answered,
            heartbeat,
            deflate,
        };
        let mut early_bytes = match self.conns.set_phase(key, Phase::Open(session)) {
            Some(Phase::Authorizing(pending)) => pending.early_bytes,
            _ => Vec::new(),
        };
        self.conns.mark_dirty(key);
        self.conns.set_deadline(key, deadline);
        self.registry.add(client_id, key);
        let counters = &self.metrics.loops[self.index];
        LoopCounters::bump(&counters.upgrades_accepted, 1);
        counters
            .clients
            .store(self.registry.len() as u64, Ordering::Relaxed);
        if let Some(conn) = self.conns.id(key) {
            self.actions.push(Action::SocketOpened {
                client_id,
                event,
                conn,
            });
        }
        early_bytes.is_empty() || self.on_frame_bytes(key, &mut early_bytes)
    }

    /// Bytes read from an open session, through its decoder: true while it
    /// stays open (read on), false once it is closing.
    pub fn on_frame_bytes(&mut self, key: u32, input: &mut [u8]) -> bool {
        // Usually later than the pending reminder, which then re-files
        // itself; earlier (a pong answering a ping whose timeout is longer
        // than the interval) it gets a reminder of its own.
        let deadline = self.heartbeat_deadline();
        self.conns.set_deadline(key, deadline);
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        let outcome = (self.absorb)(conn, input);
        if conn.has_unsent() {
            self.conns.mark_dirty(key);
        }
        match outcome {
            Absorbed::Open => true,
            Absorbed::PeerClosed(status) => {
                self.begin_close(key, status, "");
                false
            }
            Absorbed::Violation(status, reason) => {
                LoopCounters::bump(&self.counters().protocol_errors, 1);
                log::debug!("closing a connection with {status}: {reason}");
                self.begin_close(key, status, &reason);
                false
            }
        }
    }

    /// Writes what connection `key` has queued through `wire`; true when
    /// its last bytes are sent and the driver is to shut the socket's write
    /// side (it moved to [`Phase::Shut`]). A socket that failed is closed.
    pub fn flush(&mut self, key: u32, wire: &mut impl Wire) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        if !conn.has_unsent() {
            return false;
        }
        match wire.flush(key, conn) {
            IoStep::Closed => {
                self.close_now(key);
                false
            }
            // All sent: a closing connection shuts its write side.
            IoStep::Moved(_) => conn.finish_closing(),
            IoStep::WouldBlock => false,
        }
    }

    /// Answers an upgrade with an HTTP error and closes.
    pub fn reject(&mut self, key: u32, rejection: Rejection) {
        self.counters().refuse(rejection.status());
        if let Some(suppressed) = self.peer_log.allow() {
            let (status, reason) = (rejection.status(), rejection.reason());
            log::info!(
                "refused an upgrade: {status} {reason} (+{suppressed} more refusals or timeouts)"
            );
        }
        let farewell = Farewell::Refused(rejection.status());
        self.start_closing(key, farewell, &rejection_response(&rejection));
    }

    /// Sends a close frame (after anything already queued) and closes.
    pub fn begin_close(&mut self, key: u32, status: u16, reason: &str) {
        let mut frame = Vec::new();
        encode_close(&mut frame, status, truncate(reason, 123));
        self.start_closing(key, Farewell::CloseFrame(status), &frame);
    }

    /// Moves a connection to [`Phase::Closing`] (retiring its session if it
    /// was open) and queues its last bytes.
    fn start_closing(&mut self, key: u32, farewell: Farewell, last_bytes: &[u8]) {
        let deadline = self.conns.after(CLOSE_TIMEOUT);
        let Some(id) = self.conns.id(key) else {
            return;
        };
        if let Some(Phase::Open(session)) = self.conns.set_phase(key, Phase::Closing(farewell)) {
            self.retire(id, session);
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.send(|out| out.extend_from_slice(last_bytes));
        self.conns.mark_dirty(key);
        self.conns.set_deadline(key, deadline);
    }

    /// Closes the connection now (retiring its session if it was open): the
    /// peer is gone (EOF, reset), or its deadline came.
    pub fn close_now(&mut self, key: u32) {
        let Some(id) = self.conns.id(key) else {
            return;
        };
        let Some(conn) = self.conns.remove(key) else {
            return;
        };
        if let Phase::Open(session) = conn.into_phase() {
            self.retire(id, session);
        }
        self.actions.push(Action::Remove(id));
    }

    /// Ends the presence of the session connection `id` held: the registry
    /// forgets the socket and the worker counts it offline.
    fn retire(&mut self, id: ConnId, session: Session) {
        let key = id.key;
        self.registry.remove(session.client_id, key);
        let clients = self.registry.len() as u64;
        self.counters().clients.store(clients, Ordering::Relaxed);
        self.actions.push(Action::SocketClosed {
            client_id: session.client_id,
            event: session.event,
            conn: id,
        });
    }

    /// Acts on a reminder: a connection whose deadline has come times out,
    /// or an open session is pinged.
    pub(super) fn on_timer(&mut self, id: ConnId) {
        let Some(conn) = self.conns.due(id) else {
            return;
        };
        match conn.phase() {
            Phase::Handshake { .. } | Phase::Authorizing(_) => {
                LoopCounters::bump(&self.metrics.loops[self.index].handshake_timeouts, 1);
                if let Some(suppressed) = self.peer_log.allow() {
                    log::info!("closed a connection that did not finish its upgrade in time (+{suppressed} more)");
                }
                self.close_now(id.key);
            }
            Phase::Closing(_) | Phase::Shut => self.close_now(id.key),
            Phase::Open(session) if session.ping == Ping::Unanswered => {
                log::debug!(
                    "client {} did not answer a ping: closing",
                    session.client_id
                );
                LoopCounters::bump(&self.metrics.loops[self.index].heartbeat_timeouts, 1);
                self.close_now(id.key);
            }
            Phase::Open(_) => self.ping(id),
        }
    }

    /// Pings an open session (with the heartbeat frame if it chose
    /// `freeim.heartbeat.v1`) and gives it `--heartbeat-timeout` to answer.
    fn ping(&mut self, id: ConnId) {
        let deadline = self.conns.after(self.settings.heartbeat_timeout);
        let Some(conn) = self.conns.live(id) else {
            return;
        };
        let Some(session) = conn.session_mut() else {
            return;
        };
        session.ping = Ping::Unanswered;
        let heartbeat = session.heartbeat;
        let heartbeat_frame = self.heartbeat_frame.as_deref().filter(|_| heartbeat);
        conn.send_control(|out| {
            encode_frame(out, OpCode::Ping, b"");
            out.extend_from_slice(heartbeat_frame.unwrap_or_default());
        });
        self.conns.mark_dirty(id.key);
        self.conns.rearm(id, deadline);
    }

    /// When an open session next needs a ping (never, with heartbeats off).
    fn heartbeat_deadline(&self) -> Tick {
        match self.settings.heartbeat_interval {
            Some(interval) => self.conns.after(interval),
            None => Tick::MAX,
        }
    }

    /// Closes every connection for shutdown: open sessions with 1001 (after
    /// what was queued), the others at once.
    pub fn shut_down_all(&mut self) {
        for key in self.conns.keys() {
            self.shut_down_connection(key);
        }
    }

    /// Closes a connection for shutdown: 1001 for open sockets, at once otherwise.
    fn shut_down_connection(&mut self, key: u32) {
        match self.conns.get_mut(key).map(|conn| conn.phase()) {
            Some(Phase::Open(_)) => self.begin_close(key, code::GOING_AWAY, "server shutting down"),
            Some(Phase::Closing(_) | Phase::Shut) | None => {}
            Some(Phase::Handshake { .. } | Phase::Authorizing(_)) => self.close_now(key),
        }
    }

    /// Closes every socket of `client_id` with 4001 (after what was queued).
    pub fn force_offline(&mut self, client_id: i64) {
        for key in self.registry.sockets(client_id).to_vec() {
            self.begin_close(key, code::FORCED_OFFLINE, "forced offline");
        }
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
