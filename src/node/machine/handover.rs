//! Connections leaving the machine for another process, or entering it from
//! one, silently: a connection handed over is neither closed nor reported
//! offline, and one taken in is not reported online (see `crate::upgrade`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::Machine;
use crate::bus::{socket_name, ConnId, ConnState, PhaseState};
use crate::node::conn::{Farewell, Phase, Ping, Session};
use crate::node::timer::{Tick, TICK};

/// A connection taken in: its id here and, for an open session, the names it
/// had in the process it comes from and has now, for `{prefix}Node{server}`.
pub struct Imported {
    /// Its id on this loop.
    pub id: ConnId,
    /// `(old, new)` socket names of an open session.
    pub rename: Option<(String, String)>,
}

impl Machine {
    /// Connections waiting for a token answer (a hand-over waits until none
    /// is left).
    pub fn authorizing(&self) -> usize {
        self.conns
            .iter()
            .filter(|(_, conn)| matches!(conn.phase(), Phase::Authorizing(_)))
            .count()
    }

    /// Takes connection `key` out without closing or reporting it: its state
    /// for another process. `None` if there is no such connection, or it
    /// waits for a token answer (never handed over).
    pub fn export(&mut self, key: u32) -> Option<ConnState> {
        if matches!(self.conns.phase(key)?, Phase::Authorizing(_)) {
            return None;
        }
        let id = self.conns.id(key)?;
        let mut conn = self.conns.remove(key)?;
        let now = self.conns.now();
        let deadline_ms = match conn.deadline() {
            Tick::MAX => None,
            at => Some(at.saturating_sub(now) * TICK.as_millis() as u64),
        };
        let unsent = conn.take_unsent();
        let phase = match conn.into_phase() {
            Phase::Handshake { head } => PhaseState::Handshake { head },
            Phase::Open(session) => {
                self.registry.remove(session.client_id, key);
                let clients = self.registry.len() as u64;
                self.counters().clients.store(clients, Ordering::Relaxed);
                PhaseState::Open {
                    socket: socket_name(self.index, id),
                    client_id: session.client_id,
                    event: session.event.to_string(),
                    reader: session.reader,
                    ping_out: session.ping == Ping::Unanswered,
                    heartbeat: session.heartbeat,
                    deflate: session.deflate,
                }
            }
            Phase::Closing(farewell) => {
                let (refused, code) = match farewell {
                    Farewell::Refused(status) => (true, status),
                    Farewell::CloseFrame(code) => (false, code),
                };
                PhaseState::Closing { refused, code }
            }
            Phase::Shut => PhaseState::Shut,
            Phase::Authorizing(_) => unreachable!("checked above"),
        };
        Some(ConnState {
            phase,
            unsent,
            deadline_ms,
        })
    }

    /// Takes a connection in (it gets the key [`next_key`] names), silently:
    /// an open session is registered but not reported online.
    ///
    /// [`next_key`]: crate::node::connections::Connections::next_key
    pub fn import(&mut self, state: ConnState) -> Imported {
        let ConnState {
            phase,
            unsent,
            deadline_ms,
        } = state;
        let deadline = match deadline_ms {
            Some(ms) => self.conns.after(Duration::from_millis(ms)),
            None => Tick::MAX,
        };
        let mut old_socket = None;
        let phase = match phase {
            PhaseState::Handshake { head } => Phase::Handshake { head },
            PhaseState::Open {
                socket,
                client_id,
                event,
                reader,
                ping_out,
                heartbeat,
                deflate,
            } => {
                old_socket = Some(socket);
                Phase::Open(Session {
                    client_id,
                    event: Arc::from(event),
                    reader: reader.with_config(self.reader_config),
                    ping: if ping_out {
                        Ping::Unanswered
                    } else {
                        Ping::Answered
                    },
                    heartbeat,
                    deflate,
                })
            }
            PhaseState::Closing { refused, code } => Phase::Closing(if refused {
                Farewell::Refused(code)
            } else {
                Farewell::CloseFrame(code)
            }),
            PhaseState::Shut => Phase::Shut,
        };
        let client_id = match &phase {
            Phase::Open(session) => Some(session.client_id),
            _ => None,
        };
        let id = self.conns.insert_in(phase, deadline);
        if !unsent.is_empty() {
            if let Some(conn) = self.conns.get_mut(id.key) {
                conn.send(|out| out.extend_from_slice(&unsent));
            }
            self.conns.mark_dirty(id.key);
        }
        if let Some(client_id) = client_id {
            self.registry.add(client_id, id.key);
            let clients = self.registry.len() as u64;
            self.counters().clients.store(clients, Ordering::Relaxed);
        }
        Imported {
            id,
            rename: old_socket.map(|old| (old, socket_name(self.index, id))),
        }
    }
}
