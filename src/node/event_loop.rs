//! One event-loop thread: a `mio::Poll` over its own listener (SO_REUSEPORT), its own
//! connections, a waker for its mailbox, and a timing wheel.
//!
//! An iteration polls (sleeping at most until the next wheel tick), handles
//! readiness, drains the mailbox, fires due timers, and finally flushes every
//! connection that had bytes queued: a burst of pushes to one socket becomes
//! one write. Sockets are registered once, edge-triggered, for both reading
//! and writing, so queueing a push never costs an `epoll_ctl`.
//!
//! The loop is the driver of its connections' sans-io state machine
//! ([`Machine`]): it owns the poll, the listener, the mailbox, the sockets
//! ([`Sockets`], by the machine's slot keys) and the shared read buffer,
//! makes every system call, turns readiness and read results into the
//! machine's inputs and performs the [`Action`]s it leaves (worker jobs,
//! hand-overs, reads, closing sockets, the node-wide connection count). It
//! also keeps the read fairness budget and whether it accepts. Its fields
//! only this module and its tests see. In debug builds every iteration ends
//! with [`EventLoop::check_invariants`].

#[cfg(test)]
mod tests;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};

use super::conn::{IoStep, Pending, Phase};
use super::machine::{Action, HandOver, Machine};
use super::sockets::Sockets;
use super::timer::Tick;
use crate::bus::{socket_name, Imports, Job, Parcel, WorkerHandle};
use crate::bus::{Adoption, ConnId, LoopMsg, Push, Router, TokenOutcome};
use crate::config::Settings;
use crate::http::{rejection_response, Rejection};
use crate::metrics::{LoopCounters, Metrics};
use crate::names::Names;

/// Token of the mailbox waker.
pub const WAKER: Token = Token(usize::MAX);
/// Token of the loop's first listener; the others count down from it.
const LISTENER: usize = usize::MAX - 1;
/// Most listeners one loop holds (a process that took over from one with
/// more loops holds several).
const MAX_LISTENERS: usize = 1024;
/// Size of the loop's shared read buffer.
const SCRATCH_BYTES: usize = 64 * 1024;
/// Most reads of one socket per readiness event before other sockets get a turn.
const READS_PER_TURN: usize = 16;
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
    /// Not while a hand-over to another process runs (upgrade requests are
    /// not read either).
    HandingOver,
    /// Never again: shutting down, the loop ends when its last connection
    /// closes (connections handed over to it are dropped).
    Draining,
}

/// One event loop and everything it owns.
pub struct EventLoop {
    index: usize,
    shared: Arc<Shared>,
    poll: Poll,
    listeners: Vec<TcpListener>,
    inbox: Receiver<LoopMsg>,
    /// The connections' state.
    machine: Machine,
    /// The connections' sockets, by the machine's slot keys.
    sockets: Sockets,
    scratch: Vec<u8>,
    /// Sockets whose reads were cut short for fairness, to read again soon.
    read_again: Vec<ConnId>,
    inbox_backlog: bool,
    accepting: Accepting,
    /// Answered once no connection waits for a token answer, while a
    /// hand-over quiesces the loop.
    quiet: Option<Sender<usize>>,
}

impl EventLoop {
    /// Builds loop `index` on `poll` (whose waker is already registered),
    /// accepting on `listeners` (one, or several after taking over from a
    /// process with more loops; at most [`MAX_LISTENERS`]).
    pub fn new(
        index: usize,
        shared: Arc<Shared>,
        poll: Poll,
        mut listeners: Vec<TcpListener>,
        inbox: Receiver<LoopMsg>,
    ) -> io::Result<EventLoop> {
        listeners.truncate(MAX_LISTENERS);
        for (at, listener) in listeners.iter_mut().enumerate() {
            poll.registry()
                .register(listener, Token(LISTENER - at), Interest::READABLE)?;
        }
        let machine = Machine::new(
            index,
            shared.router.loops(),
            shared.settings.clone(),
            shared.names.clone(),
            shared.metrics.clone(),
            Instant::now(),
        );
        Ok(EventLoop {
            index,
            poll,
            listeners,
            inbox,
            machine,
            sockets: Sockets::default(),
            scratch: vec![0; SCRATCH_BYTES],
            read_again: Vec::new(),
            inbox_backlog: false,
            accepting: Accepting::Open,
            quiet: None,
            shared,
        })
    }

    /// Runs the loop until its poll fails.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let busy = self.inbox_backlog || !self.read_again.is_empty();
            let timeout = if busy {
                Duration::ZERO
            } else {
                self.machine.conns().until_next_tick(Instant::now())
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let now = self.machine.conns_mut().advance(Instant::now());
            for event in events.iter() {
                match event.token() {
                    WAKER => self.drain_inbox(),
                    Token(token) if token > LISTENER - MAX_LISTENERS => self.accept_all(),
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
                if self.machine.conns_mut().live(id).is_some() {
                    self.on_readable(id.key);
                }
            }
            self.machine.fire_due();
            self.perform();
            if matches!(self.accepting, Accepting::Paused { until } if now >= until) {
                self.accepting = Accepting::Open;
                self.accept_all();
            }
            self.flush_dirty();
            #[cfg(debug_assertions)]
            if let Err(broken) = self.check_invariants() {
                panic!("event loop {}: {broken}", self.index);
            }
            if self.accepting == Accepting::Draining && self.machine.conns().is_empty() {
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
                    if self.machine.conns().queued() >= FRAMES_PER_FLUSH {
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
            LoopMsg::Quiesce(quiet) => self.quiesce(quiet),
            LoopMsg::Collect(parcel) => {
                let _ = parcel.send(self.collect());
            }
            LoopMsg::Resume => self.resume(),
            LoopMsg::Import(imports) => self.import(imports),
        }
        if self.quiet.is_some() && self.machine.authorizing() == 0 {
            if let Some(quiet) = self.quiet.take() {
                let _ = quiet.send(self.index);
            }
        }
    }

    /// A hand-over begins: stops accepting and reading upgrade requests; the
    /// loop answers `quiet` once no connection waits for a token answer
    /// (connections handed to another loop are posted before it answers).
    fn quiesce(&mut self, quiet: Sender<usize>) {
        if self.accepting == Accepting::Draining {
            return; // never answers: the hand-over times out
        }
        self.accepting = Accepting::HandingOver;
        for listener in &mut self.listeners {
            let _ = self.poll.registry().deregister(listener);
        }
        self.quiet = Some(quiet);
    }

    /// Takes every connection out, silently, with its socket deregistered.
    fn collect(&mut self) -> Parcel {
        let mut parcel = Parcel::default();
        for key in self.machine.conns().keys() {
            let Some(state) = self.machine.export(key) else {
                continue;
            };
            let Some(mut stream) = self.sockets.take(key) else {
                continue;
            };
            let _ = self.poll.registry().deregister(&mut stream);
            self.shared.open_connections.fetch_sub(1, Ordering::AcqRel);
            parcel.conns.push((state, stream));
        }
        parcel
    }

    /// The hand-over failed: accepts again, and reads the upgrade requests
    /// whose reads were skipped.
    fn resume(&mut self) {
        if self.accepting != Accepting::HandingOver {
            return;
        }
        self.accepting = Accepting::Open;
        self.quiet = None;
        for (at, listener) in self.listeners.iter_mut().enumerate() {
            let token = Token(LISTENER - at);
            if let Err(e) = self
                .poll
                .registry()
                .register(listener, token, Interest::READABLE)
            {
                log::error!("cannot listen again after a failed hand-over: {e}");
            }
        }
        for (key, conn) in self.machine.conns().iter() {
            if matches!(conn.phase(), Phase::Handshake { .. }) {
                self.read_again.extend(self.machine.conns().id(key));
            }
        }
        self.accept_all();
    }

    /// Takes connections in, silently; open sessions are renamed in Redis
    /// (their socket names change with their slots).
    fn import(&mut self, imports: Imports) {
        let Imports {
            conns,
            generations_above,
        } = imports;
        self.machine.conns_mut().raise_generation(generations_above);
        let mut pairs = Vec::new();
        for (state, mut stream) in conns {
            let key = self.machine.conns().next_key();
            let interest = Interest::READABLE | Interest::WRITABLE;
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut stream, Token(key as usize), interest)
            {
                log::error!("cannot register a connection handed over: {e}");
                continue;
            }
            self.shared.open_connections.fetch_add(1, Ordering::AcqRel);
            let imported = self.machine.import(state);
            debug_assert_eq!(imported.id.key, key);
            self.sockets.put(key, stream);
            pairs.extend(imported.rename);
        }
        if !pairs.is_empty() {
            self.shared.worker.submit(Job::RenameSockets { pairs });
        }
    }

    fn on_token_checked(&mut self, id: ConnId, outcome: TokenOutcome) {
        self.machine.on_token(id, outcome);
        self.perform();
    }

    fn deliver(&mut self, push: Push) {
        let received = push.frame.received();
        self.machine.on_push(push, &mut self.sockets);
        self.counters().observe_lag(received.elapsed());
        self.perform();
    }

    fn force_offline(&mut self, client_id: i64) {
        self.machine.force_offline(client_id);
        self.perform();
    }

    /// Registers a connection handed over by another loop, waiting for
    /// admission, and admits it.
    fn adopt(&mut self, adoption: Adoption) {
        if self.accepting == Accepting::Draining {
            // Dropping the stream closes it; the client reconnects elsewhere.
            self.shared.open_connections.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let deadline = self.shared.settings.handshake_timeout;
        let pending = Pending {
            accept_key: adoption.accept_key,
            heartbeat: adoption.heartbeat,
            deflate: adoption.deflate,
            early_bytes: adoption.early_bytes,
        };
        // Registering reports data already waiting as an event of its own,
        // so no read is needed here.
        let waiting = Phase::Authorizing(pending);
        if let Some(id) = self.register(adoption.stream, waiting, deadline) {
            self.machine.on_adopted(id.key, adoption.ticket);
            self.perform();
        }
    }

    /// Stops accepting and starts closing every connection (graceful drain).
    fn begin_drain(&mut self) {
        self.accepting = Accepting::Draining;
        for listener in &mut self.listeners {
            let _ = self.poll.registry().deregister(listener);
        }
        self.machine.shut_down_all();
        self.perform();
    }

    /// Sends the worker every socket this loop holds (after a Redis outage).
    fn report_presence(&mut self) {
        let sockets = self.machine.presence();
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
        for at in 0..self.listeners.len() {
            self.accept_from(at, &settings);
        }
    }

    fn accept_from(&mut self, at: usize, settings: &Settings) {
        loop {
            let (stream, _) = match self.listeners[at].accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS: the listener stays ready, so
                    // retrying now would spin. Pause, then try again.
                    log::warn!("accept failed ({e}); pausing accepts for {ACCEPT_PAUSE:?}");
                    let until = self.machine.conns().after(ACCEPT_PAUSE);
                    self.accepting = Accepting::Paused { until };
                    return;
                }
            };
            let upgrading_cap = settings.max_pending_upgrades.div_ceil(settings.threads);
            if self.machine.conns().upgrading() >= upgrading_cap {
                refuse(stream, &mut self.scratch, "too many pending upgrades");
                LoopCounters::bump(&self.counters().refused_at_cap, 1);
                continue;
            }
            let open = &self.shared.open_connections;
            if open.fetch_add(1, Ordering::AcqRel) >= settings.max_connections {
                open.fetch_sub(1, Ordering::AcqRel);
                refuse(stream, &mut self.scratch, "connection limit reached");
                LoopCounters::bump(&self.counters().refused_at_cap, 1);
                if let Some(suppressed) = self.machine.peer_log().allow() {
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
        self.machine.counters()
    }

    /// Adds a socket in `phase` to the slab and the poll, with a first
    /// deadline.
    fn register(
        &mut self,
        mut stream: mio::net::TcpStream,
        phase: Phase,
        deadline_in: Duration,
    ) -> Option<ConnId> {
        let key = self.machine.conns().next_key();
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
        let id = self.machine.insert(phase, deadline_in);
        debug_assert_eq!(id.key, key);
        self.sockets.put(key, stream);
        Some(id)
    }

    fn flush_dirty(&mut self) {
        let mut dirty = self.machine.conns_mut().take_dirty();
        for &key in &dirty {
            self.flush(key);
        }
        dirty.clear();
        self.machine.conns_mut().return_dirty(dirty);
    }

    /// Writes what connection `key` has queued; shuts the write side once a
    /// closing connection's last bytes are out.
    fn flush(&mut self, key: u32) {
        if self.machine.flush(key, &mut self.sockets) {
            self.sockets.shut_write(key);
        }
        self.perform();
    }

    /// The socket of connection `key` is readable (or closed): reads it as
    /// its phase wants.
    fn on_readable(&mut self, key: u32) {
        match self.machine.conns().phase(key) {
            Some(Phase::Handshake { .. }) if self.accepting == Accepting::HandingOver => {}
            Some(Phase::Handshake { .. }) => self.read_head(key),
            Some(Phase::Open(_)) => self.read_frames(key),
            Some(Phase::Closing(_) | Phase::Shut) => self.read_until_eof(key),
            Some(Phase::Authorizing(_)) | None => {} // read again once admitted
        }
    }

    fn read_head(&mut self, key: u32) {
        while self.machine.conns().phase(key).is_some() {
            let n = match self.sockets.read(key, &mut self.scratch) {
                IoStep::Moved(n) => n,
                IoStep::WouldBlock => return,
                IoStep::Closed => return self.close_now(key),
            };
            let more = self.machine.on_head_bytes(key, &self.scratch[..n]);
            self.perform();
            if !more {
                return;
            }
        }
    }

    fn read_frames(&mut self, key: u32) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut budget_spent = true;
        for _ in 0..READS_PER_TURN {
            if self.machine.conns().phase(key).is_none() {
                budget_spent = false;
                break;
            }
            let keep_reading = match self.sockets.read(key, &mut scratch) {
                IoStep::Moved(n) => self.machine.on_frame_bytes(key, &mut scratch[..n]),
                IoStep::WouldBlock => false,
                IoStep::Closed => {
                    self.machine.close_now(key);
                    false
                }
            };
            if !keep_reading {
                budget_spent = false;
                break;
            }
        }
        self.scratch = scratch;
        // Reading leaves no action but closing the socket and reporting it
        // offline, performed once the shared buffer is back.
        self.perform();
        if budget_spent {
            // The socket may still hold data but no new edge will come: read
            // it again next turn, after the other sockets had theirs.
            if let Some(id) = self.machine.conns().id(key) {
                self.read_again.push(id);
            }
        }
    }

    fn read_until_eof(&mut self, key: u32) {
        while self.machine.conns().phase(key).is_some() {
            match self.sockets.read(key, &mut self.scratch) {
                IoStep::Moved(_) => {}
                IoStep::WouldBlock => return,
                IoStep::Closed => return self.close_now(key),
            }
        }
    }

    /// Closes connection `key` now (its peer is gone).
    fn close_now(&mut self, key: u32) {
        self.machine.close_now(key);
        self.perform();
    }

    /// Deregisters a handed-over connection's socket and posts it to the
    /// loop owning its client.
    fn hand_over(&mut self, handover: HandOver) {
        let HandOver {
            owner,
            conn,
            pending,
            ticket,
        } = handover;
        let Some(mut stream) = self.sockets.take(conn.key) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut stream);
        let adoption = Adoption {
            stream,
            ticket,
            accept_key: pending.accept_key,
            heartbeat: pending.heartbeat,
            deflate: pending.deflate,
            early_bytes: pending.early_bytes,
        };
        self.shared
            .router
            .mailbox(owner)
            .post(LoopMsg::Adopt(Box::new(adoption)));
    }

    /// Performs what the machine asked for, in order.
    fn perform(&mut self) {
        if !self.machine.has_actions() {
            return;
        }
        let mut actions = self.machine.take_actions();
        for action in actions.drain(..) {
            self.act(action);
        }
        self.machine.return_actions(actions);
    }

    fn act(&mut self, action: Action) {
        let worker = &self.shared.worker;
        let index = self.index;
        match action {
            Action::ClaimToken { token, conn } => worker.submit(Job::ClaimToken {
                token,
                loop_index: index,
                conn,
            }),
            Action::SocketOpened {
                client_id,
                event,
                conn,
            } => worker.submit(Job::SocketOpened {
                client_id,
                event,
                socket: socket_name(index, conn),
            }),
            Action::SocketClosed {
                client_id,
                event,
                conn,
            } => worker.submit(Job::SocketClosed {
                client_id,
                event,
                socket: socket_name(index, conn),
            }),
            Action::Publish { channel, payload } => {
                worker.submit(Job::Publish { channel, payload })
            }
            Action::HandOver(handover) => self.hand_over(handover),
            Action::Read(id) => {
                if self.machine.conns_mut().live(id).is_some() {
                    self.read_frames(id.key);
                }
            }
            Action::Remove(id) => {
                // Dropping the socket closes it.
                drop(self.sockets.take(id.key));
                self.shared.open_connections.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

#[cfg(any(test, debug_assertions))]
impl EventLoop {
    /// Checks what the loop keeps consistent between its parts: the
    /// machine's invariants ([`Machine::check_invariants`]); every connection
    /// has a socket, and no socket outlives its connection; the node-wide
    /// count of open connections covers this loop's.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.machine.check_invariants()?;
        let conns = self.machine.conns();
        if let Some((key, _)) = conns.iter().find(|(key, _)| !self.sockets.holds(*key)) {
            return Err(format!("connection {key} has no socket"));
        }
        if self.sockets.count() != conns.len() {
            let (sockets, conns) = (self.sockets.count(), conns.len());
            return Err(format!("{sockets} sockets kept for {conns} connections"));
        }
        let node_wide = self.shared.open_connections.load(Ordering::Acquire);
        if node_wide < conns.len() {
            let here = conns.len();
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
