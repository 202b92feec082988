//! A loop's connections as a sans-io state machine: what each connection's
//! protocol state does with the bytes it is given, a token check's answer, a
//! push, a force-offline or the passing of time, and what it asks of the
//! world in return.
//!
//! The [`Machine`] owns the connections' state ([`Connections`]: phases,
//! send queues, deadlines and the timing wheel with the loop's clock) and the
//! [`Registry`]. It owns no socket, reads no clock and posts to no thread:
//! its entry points ([`on_head_bytes`](Machine::on_head_bytes),
//! [`on_frame_bytes`](Machine::on_frame_bytes), [`on_token`](Machine::on_token),
//! [`on_push`](Machine::on_push), [`on_tick`](Machine::on_tick), ...) leave
//! [`Action`]s for the driver (the [`EventLoop`](super::EventLoop), or the
//! simulation test) to perform. Queued bytes are not actions: a connection
//! with bytes to send is marked dirty (no allocation per delivery), and the
//! driver flushes it through [`Machine::flush`], giving it the [`Wire`](super::conn::Wire)
//! to write to. Two kinds of side effect are still the machine's own, not
//! actions: it bumps the loop's counters (atomics) and writes its
//! rate-limited log lines (refusals, timeouts, slow readers). The push lag,
//! which reads the clock, the driver observes.
//!
//! | file | what it owns |
//! |---|---|
//! | `machine.rs` | the machine, its [`Action`]s, accessors, invariants |
//! | `machine/lifecycle.rs` | a connection from upgrade request to close |
//! | `machine/deliver.rs` | a push: routing, receipts, slow readers |
//! | `machine/handover.rs` | connections leaving for, or coming from, another process |
//! | `machine/simulation.rs` | the seeded simulation test (tests only) |

mod deliver;
mod handover;
mod lifecycle;
#[cfg(test)]
mod simulation;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::conn::{Absorbed, Conn, Pending, Phase};
use super::connections::Connections;
use super::echo;
use super::registry::Registry;
use crate::bus::{socket_name, ConnId, HeldSocket};
use crate::config::Settings;
use crate::metrics::{LoopCounters, Metrics};
use crate::names::Names;
use crate::throttle::Throttle;
use crate::ws::{encode_frame, OpCode, ReaderConfig};
use freeim_protocol::ClientTicket;
pub use handover::Imported;

/// What the machine asks its driver to do, in order.
#[derive(Debug)]
pub enum Action {
    /// Ask the Redis worker to claim `token` for connection `conn` (the
    /// answer comes back through [`Machine::on_token`]).
    ClaimToken {
        /// The token from the query string.
        token: String,
        /// The connection waiting for it.
        conn: ConnId,
    },
    /// A session opened: report the socket online.
    SocketOpened {
        /// Whose socket.
        client_id: i64,
        /// The event payload.
        event: Arc<str>,
        /// The connection.
        conn: ConnId,
    },
    /// A session ended: report the socket offline.
    SocketClosed {
        /// Whose socket.
        client_id: i64,
        /// The event payload.
        event: Arc<str>,
        /// The connection (gone from the machine, or closing).
        conn: ConnId,
    },
    /// Hand an admitted connection, already taken out of the machine, with
    /// its socket to the loop owning its client.
    HandOver(HandOver),
    /// Read the connection's socket now: data that arrived while reads were
    /// paused raised no new readiness.
    Read(ConnId),
    /// The connection is gone from the machine: close its socket and
    /// uncount it.
    Remove(ConnId),
    /// Publish `payload` on `channel` (a receipt).
    Publish {
        /// The pub/sub channel.
        channel: String,
        /// The payload.
        payload: String,
    },
}

/// An admitted connection leaving for the loop that owns its client.
#[derive(Debug)]
pub struct HandOver {
    /// The loop owning the client.
    pub owner: usize,
    /// The connection (its slot is free now).
    pub conn: ConnId,
    /// What its `101` needs.
    pub pending: Pending,
    /// Who it belongs to.
    pub ticket: ClientTicket,
}

/// What a loop's connections are for, fixed when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The push node: upgrades are admitted by token, client data is dropped.
    Push,
    /// Conformance testing ([`echo`]): admitted at once, data echoed.
    Echo,
}

/// The state of one loop's connections.
pub struct Machine {
    index: usize,
    loops: usize,
    settings: Arc<Settings>,
    names: Arc<Names>,
    metrics: Arc<Metrics>,
    conns: Connections,
    registry: Registry,
    mode: Mode,
    reader_config: ReaderConfig,
    /// What received bytes go through: [`Conn::absorb`], or [`echo::absorb`].
    absorb: fn(&mut Conn, &mut [u8]) -> Absorbed,
    /// The binary frame a `freeim.heartbeat.v1` session gets after the 101
    /// and with every ping: the heartbeat interval in milliseconds, ASCII
    /// decimal. `None` with heartbeats off, when the subprotocol is never
    /// selected.
    heartbeat_frame: Option<Vec<u8>>,
    /// Limits log lines peers can trigger (refusals, timeouts).
    peer_log: Throttle,
    /// Reminders come due, reused.
    due: Vec<ConnId>,
    /// What the driver is to do, in order.
    actions: Vec<Action>,
}

impl Machine {
    /// The machine of loop `index` of `loops`, its clock starting at `start`.
    pub fn new(
        index: usize,
        loops: usize,
        settings: Arc<Settings>,
        names: Arc<Names>,
        metrics: Arc<Metrics>,
        start: Instant,
    ) -> Machine {
        let max_message = settings.max_message_bytes;
        let reader_config = ReaderConfig {
            max_frame_size: max_message,
            max_message_size: max_message,
            keep_data: false,
        };
        let mode = if settings.echo {
            Mode::Echo
        } else {
            Mode::Push
        };
        Machine {
            index,
            loops,
            reader_config: match mode {
                Mode::Push => reader_config,
                Mode::Echo => echo::reader_config(reader_config),
            },
            absorb: match mode {
                Mode::Push => Conn::absorb,
                Mode::Echo => echo::absorb,
            },
            heartbeat_frame: settings.heartbeat_interval.map(|interval| {
                let mut frame = Vec::new();
                let millis = interval.as_millis().to_string();
                encode_frame(&mut frame, OpCode::Binary, millis.as_bytes());
                frame
            }),
            mode,
            settings,
            names,
            metrics,
            conns: Connections::new(start),
            registry: Registry::default(),
            peer_log: Throttle::new(Duration::from_secs(10)),
            due: Vec::new(),
            actions: Vec::new(),
        }
    }

    /// The connections.
    pub fn conns(&self) -> &Connections {
        &self.conns
    }

    /// The connections, for the driver's bookkeeping (the clock, the flush
    /// list, looking one up).
    pub fn conns_mut(&mut self) -> &mut Connections {
        &mut self.conns
    }

    /// Which client holds which sockets.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The registry, for tests that break it on purpose.
    #[cfg(test)]
    pub(crate) fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// This loop's counters.
    pub fn counters(&self) -> &LoopCounters {
        &self.metrics.loops[self.index]
    }

    /// The throttle of log lines peers can trigger (the driver's refusals
    /// at the caps share it).
    pub fn peer_log(&mut self) -> &mut Throttle {
        &mut self.peer_log
    }

    /// Whether actions wait for the driver.
    pub fn has_actions(&self) -> bool {
        !self.actions.is_empty()
    }

    /// The actions to perform, in order (hand the list back with
    /// [`return_actions`](Self::return_actions), so its allocation is reused).
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// Hands back the (emptied) list taken by [`take_actions`](Self::take_actions).
    pub fn return_actions(&mut self, mut list: Vec<Action>) {
        if self.actions.is_empty() {
            list.clear();
            self.actions = list;
        }
    }

    /// Stores a new connection in `phase` (a fresh one reads its upgrade
    /// request, an adopted one waits for admission) with a first deadline
    /// `deadline_in` from the clock's time; it gets the key
    /// [`Connections::next_key`] named.
    pub fn insert(&mut self, phase: Phase, deadline_in: Duration) -> ConnId {
        let deadline = self.conns.after(deadline_in);
        self.conns.insert_in(phase, deadline)
    }

    /// Sets the clock to `now` (never backwards) and acts on every deadline
    /// that has come: handshake and close timeouts, pings and their timeouts.
    pub fn on_tick(&mut self, now: Instant) {
        self.conns.advance(now);
        self.fire_due();
    }

    /// Acts on every deadline that has come by the clock's time.
    pub fn fire_due(&mut self) {
        let mut due = std::mem::take(&mut self.due);
        self.conns.expire(&mut due);
        for id in due.drain(..) {
            self.on_timer(id);
        }
        self.due = due;
    }

    /// Every socket this loop holds, for the worker's presence snapshot.
    pub fn presence(&self) -> Vec<HeldSocket> {
        let mut sockets = Vec::new();
        for (client_id, keys) in self.registry.iter() {
            for &key in keys {
                if let (Some(id), Some(session)) = (self.conns.id(key), self.conns.session(key)) {
                    sockets.push(HeldSocket {
                        socket: socket_name(self.index, id),
                        client_id,
                        event: session.event.clone(),
                    });
                }
            }
        }
        sockets
    }

    /// Checks what the machine keeps consistent between its parts (see also
    /// [`Connections::check_invariants`]): every open session is in the
    /// registry under its client id, once, and the registry holds open
    /// sessions only; the loop's `clients` gauge is the registry's size.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.conns.check_invariants()?;
        self.check_sessions()
    }

    /// [`check_invariants`](Self::check_invariants) but the wheel's
    /// reminders (see [`Connections::check_slots`]): cheap enough for every
    /// step of the simulation.
    pub fn check_invariants_but_reminders(&self) -> Result<(), String> {
        self.conns.check_slots()?;
        self.check_sessions()
    }

    /// The registry, the open sessions and the `clients` gauge agree.
    fn check_sessions(&self) -> Result<(), String> {
        let mut open = 0;
        for (key, conn) in self.conns.iter() {
            let Some(session) = conn.session() else {
                continue;
            };
            open += 1;
            if !self.registry.sockets(session.client_id).contains(&key) {
                let client = session.client_id;
                return Err(format!("open session {key} of {client} is not registered"));
            }
        }
        let mut registered = 0;
        for (client_id, keys) in self.registry.iter() {
            if keys.is_empty() {
                return Err(format!("client {client_id} is registered with no socket"));
            }
            for &key in keys {
                registered += 1;
                match self.conns.session(key) {
                    Some(session) if session.client_id == client_id => {}
                    _ => return Err(format!("registry: {key} is no open session of {client_id}")),
                }
            }
        }
        if registered != open {
            return Err(format!(
                "{registered} registered sockets, {open} open sessions"
            ));
        }
        let clients = self.counters().clients.load(Ordering::Relaxed);
        if clients != self.registry.len() as u64 {
            let held = self.registry.len();
            return Err(format!(
                "clients gauge says {clients}, registry holds {held}"
            ));
        }
        Ok(())
    }
}
