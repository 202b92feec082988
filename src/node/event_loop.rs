//! One event-loop thread: a `mio::Poll` over its own listener (SO_REUSEPORT), its own
//! connections, a waker for its mailbox, and a timing wheel.
//!
//! An iteration polls (sleeping at most until the next wheel tick), handles
//! readiness, drains the mailbox, fires due timers, and finally flushes every
//! connection that had bytes queued: a burst of pushes to one socket becomes
//! one write. Sockets are registered once, edge-triggered, for both reading
//! and writing, so queueing a push never costs an `epoll_ctl`.
//!
//! The loop is one object whose fields only this module and its children
//! see: `lifecycle` (a connection from upgrade to close), `deliver` (pushes)
//! and the tests. In debug builds every iteration ends with
//! [`EventLoop::check_invariants`].

mod deliver;
mod lifecycle;
#[cfg(test)]
mod tests;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};

use super::conn::{Absorbed, Conn, Phase};
use super::connections::Connections;
use super::echo;
use super::registry::Registry;
use super::sockets::Sockets;
use super::timer::Tick;
use crate::bus::{socket_name, HeldSocket, Job, WorkerHandle};
use crate::bus::{ConnId, LoopMsg, Router};
use crate::config::Settings;
use crate::http::{rejection_response, Rejection};
use crate::metrics::{LoopCounters, Metrics};
use crate::names::Names;
use crate::throttle::Throttle;
use crate::ws::{encode_frame, OpCode, ReaderConfig};

/// Token of the mailbox waker.
pub const WAKER: Token = Token(usize::MAX);
/// Token of the listener.
const LISTENER: Token = Token(usize::MAX - 1);
/// Size of the loop's shared read buffer.
const SCRATCH_BYTES: usize = 64 * 1024;
/// Most reads of one socket per readiness event before other sockets get a turn.
pub(super) const READS_PER_TURN: usize = 16;
/// Most mailbox messages handled per iteration before sockets get a turn.
const MESSAGES_PER_TURN: usize = 1024;
/// Most frames queued to sockets before they are flushed, mid-iteration if
/// need be: bounds the queues a burst of fan-outs builds in one iteration
/// (16 B each) while still coalescing many messages into one write per socket.
const FRAMES_PER_FLUSH: usize = 1 << 20;
/// How long accepting pauses when the process is out of file descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(200);

/// What every loop of a node shares.
pub struct Shared {
    /// Key and channel names.
    pub names: Arc<Names>,
    /// Node settings.
    pub settings: Arc<Settings>,
    /// The loops' mailboxes.
    pub router: Router,
    /// The Redis worker.
    pub worker: WorkerHandle,
    /// Open client connections across all loops (the connection cap).
    pub open_connections: Arc<AtomicUsize>,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// What a loop's connections are for, fixed when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The push node: upgrades are admitted by token, client data is dropped.
    Push,
    /// Conformance testing ([`echo`]): admitted at once, data echoed.
    Echo,
}

/// Whether a loop takes new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accepting {
    /// Whenever its listener is ready.
    Open,
    /// Not until this tick: the process ran out of file descriptors.
    Paused {
        /// When accepting resumes.
        until: Tick,
    },
    /// Never again: shutting down, the loop ends when its last connection
    /// closes (connections handed over to it are dropped).
    Draining,
}

/// One event loop and everything it owns.
pub struct EventLoop {
    index: usize,
    shared: Arc<Shared>,
    poll: Poll,
    listener: TcpListener,
    inbox: Receiver<LoopMsg>,
    conns: Connections,
    /// The connections' sockets, by the same slot keys.
    sockets: Sockets,
    registry: Registry,
    scratch: Vec<u8>,
    mode: Mode,
    reader_config: ReaderConfig,
    /// What received bytes go through: [`Conn::absorb`], or [`echo::absorb`].
    absorb: fn(&mut Conn, &mut [u8]) -> Absorbed,
    /// The binary frame a `freeim.heartbeat.v1` session gets after the 101
    /// and with every ping: the heartbeat interval in milliseconds, ASCII
    /// decimal. `None` with heartbeats off, when the subprotocol is never
    /// selected.
    heartbeat_frame: Option<Vec<u8>>,
    /// Sockets whose reads were cut short for fairness, to read again soon.
    read_again: Vec<ConnId>,
    inbox_backlog: bool,
    accepting: Accepting,
    /// Limits log lines peers can trigger (refusals, timeouts).
    peer_log: Throttle,
}

impl EventLoop {
    /// Builds loop `index` on `poll` (whose waker is already registered).
    pub fn new(
        index: usize,
        shared: Arc<Shared>,
        poll: Poll,
        mut listener: TcpListener,
        inbox: Receiver<LoopMsg>,
    ) -> io::Result<EventLoop> {
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let max_message = shared.settings.max_message_bytes;
        let reader_config = ReaderConfig {
            max_frame_size: max_message,
            max_message_size: max_message,
            keep_data: false,
        };
        let mode = if shared.settings.echo {
            Mode::Echo
        } else {
            Mode::Push
        };
        Ok(EventLoop {
            index,
            poll,
            listener,
            inbox,
            conns: Connections::default(),
            sockets: Sockets::default(),
            registry: Registry::default(),
            scratch: vec![0; SCRATCH_BYTES],
            mode,
            reader_config: match mode {
                Mode::Push => reader_config,
                Mode::Echo => echo::reader_config(reader_config),
            },
            absorb: match mode {
                Mode::Push => Conn::absorb,
                Mode::Echo => echo::absorb,
            },
            heartbeat_frame: shared.settings.heartbeat_interval.map(|interval| {
                let mut frame = Vec::new();
                let millis = interval.as_millis().to_string();
                encode_frame(&mut frame, OpCode::Binary, millis.as_bytes());
                frame
            }),
            read_again: Vec::new(),
            inbox_backlog: false,
            accepting: Accepting::Open,
            peer_log: Throttle::new(Duration::from_secs(10)),
            shared,
        })
    }

    /// Runs the loop until its poll fails.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut due = Vec::new();
        loop {
            let busy = self.inbox_backlog || !self.read_again.is_empty();
            let timeout = if busy {
                Duration::ZERO
            } else {
                self.conns.until_next_tick(Instant::now())
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let now = self.conns.advance(Instant::now());
            for event in events.iter() {
                match event.token() {
                    WAKER => self.drain_inbox(),
                    LISTENER => self.accept_all(),
                    Token(key) => {
                        let key = key as u32;
                        if event.is_writable() {
                            self.flush(key);
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.on_readable(key);
                        }
                    }
                }
            }
            if self.inbox_backlog {
                self.drain_inbox();
            }
            for id in std::mem::take(&mut self.read_again) {
                if self.conns.live(id).is_some() {
                    self.on_readable(id.key);
                }
            }
            self.conns.expire(&mut due);
            for id in due.drain(..) {
                self.on_timer(id);
            }
            if matches!(self.accepting, Accepting::Paused { until } if now >= until) {
                self.accepting = Accepting::Open;
                self.accept_all();
            }
            self.flush_dirty();
            #[cfg(debug_assertions)]
            if let Err(broken) = self.check_invariants() {
                panic!("event loop {}: {broken}", self.index);
            }
            if self.accepting == Accepting::Draining && self.conns.is_empty() {
                return Ok(());
            }
        }
    }

    fn drain_inbox(&mut self) {
        self.shared.router.mailbox(self.index).clear_wake();
        for _ in 0..MESSAGES_PER_TURN {
            match self.inbox.try_recv() {
                Ok(msg) => {
                    self.on_message(msg);
                    if self.conns.queued() >= FRAMES_PER_FLUSH {
                        self.flush_dirty();
                    }
                }
                Err(_) => {
                    self.inbox_backlog = false;
                    return;
                }
            }
        }
        self.inbox_backlog = true;
    }

    fn on_message(&mut self, msg: LoopMsg) {
        match msg {
            LoopMsg::TokenChecked { conn, outcome } => self.on_token_checked(conn, outcome),
            LoopMsg::Adopt(adoption) => self.adopt(*adoption),
            LoopMsg::Push(push) => self.deliver(push),
            LoopMsg::ForceOffline(client_id) => self.force_offline(client_id),
            LoopMsg::ReportPresence => self.report_presence(),
            LoopMsg::Shutdown => self.begin_drain(),
        }
    }

    /// Stops accepting and starts closing every connection (graceful drain).
    fn begin_drain(&mut self) {
        self.accepting = Accepting::Draining;
        let _ = self.poll.registry().deregister(&mut self.listener);
        for key in self.conns.keys() {
            self.shut_down_connection(key);
        }
    }

    /// Sends the worker every socket this loop holds (after a Redis outage).
    fn report_presence(&mut self) {
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
        let loop_index = self.index;
        self.shared.worker.submit(Job::PresenceSnapshot {
            loop_index,
            sockets,
        });
    }

    fn accept_all(&mut self) {
        if self.accepting != Accepting::Open {
            return;
        }
        let settings = self.shared.settings.clone();
        loop {
            let (stream, _) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS: the listener stays ready, so
                    // retrying now would spin. Pause, then try again.
                    log::warn!("accept failed ({e}); pausing accepts for {ACCEPT_PAUSE:?}");
                    let until = self.conns.after(ACCEPT_PAUSE);
                    self.accepting = Accepting::Paused { until };
                    return;
                }
            };
            let upgrading_cap = settings.max_pending_upgrades.div_ceil(settings.threads);
            if self.conns.upgrading() >= upgrading_cap {
                refuse(stream, &mut self.scratch, "too many pending upgrades");
                LoopCounters::bump(&self.counters().refused_at_cap, 1);
                continue;
            }
            let open = &self.shared.open_connections;
            if open.fetch_add(1, Ordering::AcqRel) >= settings.max_connections {
                open.fetch_sub(1, Ordering::AcqRel);
                refuse(stream, &mut self.scratch, "connection limit reached");
                LoopCounters::bump(&self.counters().refused_at_cap, 1);
                if let Some(suppressed) = self.peer_log.allow() {
                    let cap = settings.max_connections;
                    log::warn!("refused a connection: at the cap of {cap} connections (+{suppressed} more)");
                }
                continue;
            }
            let reading = Phase::Handshake { head: Vec::new() };
            self.register(stream, reading, settings.handshake_timeout);
        }
    }

    /// This loop's counters.
    fn counters(&self) -> &LoopCounters {
        &self.shared.metrics.loops[self.index]
    }

    /// Adds a socket in `phase` to the slab and the poll, with a first
    /// deadline.
    fn register(
        &mut self,
        mut stream: mio::net::TcpStream,
        phase: Phase,
        deadline_in: Duration,
    ) -> Option<ConnId> {
        let key = self.conns.next_key();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(key as usize), interest)
        {
            log::warn!("cannot register a connection with epoll: {e}");
            self.shared.open_connections.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let deadline = self.conns.after(deadline_in);
        let id = self.conns.insert_in(phase, deadline);
        debug_assert_eq!(id.key, key);
        self.sockets.put(key, stream);
        Some(id)
    }

    fn flush_dirty(&mut self) {
        let mut dirty = self.conns.take_dirty();
        for &key in &dirty {
            self.flush(key);
        }
        dirty.clear();
        self.conns.return_dirty(dirty);
    }
}

#[cfg(any(test, debug_assertions))]
impl EventLoop {
    /// Checks what the loop keeps consistent between its parts (see also
    /// [`Connections::check_invariants`]): every open session is in the
    /// registry under its client id, once, and the registry holds open
    /// sessions only; the loop's `clients` gauge is the registry's size; the
    /// node-wide count of open connections covers this loop's; every
    /// connection has a socket, and no socket outlives its connection.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.conns.check_invariants()?;
        if let Some((key, _)) = self.conns.iter().find(|(key, _)| !self.sockets.holds(*key)) {
            return Err(format!("connection {key} has no socket"));
        }
        if self.sockets.count() != self.conns.len() {
            let (sockets, conns) = (self.sockets.count(), self.conns.len());
            return Err(format!("{sockets} sockets kept for {conns} connections"));
        }
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
        let node_wide = self.shared.open_connections.load(Ordering::Acquire);
        if node_wide < self.conns.len() {
            let here = self.conns.len();
            return Err(format!(
                "{node_wide} open connections counted, {here} on this loop"
            ));
        }
        Ok(())
    }
}

/// Answers a connection over a cap with 503 and closes it. The request is
/// read first (it is normally there already), so closing sends FIN, not RST.
fn refuse(mut stream: mio::net::TcpStream, scratch: &mut [u8], why: &'static str) {
    use std::io::{Read, Write};
    let _ = stream.read(scratch);
    let reason = Rejection::ServiceUnavailable(why);
    let _ = stream.write_all(&rejection_response(&reason));
    let _ = stream.shutdown(std::net::Shutdown::Write);
}
