//! The seeded simulation test: two loops' machines (every fourth seed in echo
//! mode) driven with no socket, no thread and no clock, through random interleavings of request heads (valid
//! or not, split at random points), token answers (admitted, refused,
//! unavailable; late, or for connections closed since), hand-overs delivered
//! late, frames (pings, data, close, garbage), pushes, force-offlines, peers
//! going away, sockets taking little or failing, drains, and time moving on.
//!
//! The test plays both the driver (performing every [`Action`] as the loop
//! does) and the peers, keeping its own model of the sockets. After every
//! step it checks the machines' invariants and its own: every admitted socket
//! is reported online exactly once and offline exactly once, after it was
//! online (presence counts never go negative, and all are offline at the
//! end); nothing is written to a connection after it was removed or its
//! write side shut; an answer or action for a closed connection never
//! reaches the one that took its slot; the model's sockets are exactly the
//! machines' connections.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Write};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use rand::{Rng, RngCore};

use super::{Action, HandOver, Machine};
use crate::bus::{loop_of, Audience, ConnId, Frame, PhaseState, Push, TokenOutcome};
use crate::config::{Config, Settings};
use crate::metrics::Metrics;
use crate::names::Names;
use crate::node::conn::{Conn, IoStep, Phase, Wire};
use crate::ws::{encode_frame, encode_masked_frame, OpCode};
use freeim_protocol::ClientTicket;

/// Loops of the simulated node.
const LOOPS: usize = 2;
/// Client ids are drawn from `0..CLIENTS`.
const CLIENTS: i64 = 12;
/// Seeds run by the test (`FREEIM_SIM_SEEDS` runs more).
const SEEDS: u64 = 60;
/// Steps per seed (`FREEIM_SIM_STEPS`).
const STEPS: u64 = 2_000;

/// SplitMix64: a small, fast, seeded generator (the simulation draws a lot
/// of numbers, and a debug build's ChaCha would take most of its time).
struct SplitMix(u64);

impl SplitMix {
    fn seed_from_u64(seed: u64) -> SplitMix {
        SplitMix(seed)
    }
}

impl RngCore for SplitMix {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// A simulated socket, as the peer and the driver see it.
struct Socket {
    /// The connection it belongs to.
    id: ConnId,
    /// Request bytes the peer has not sent yet.
    head: Vec<u8>,
    /// Bytes the peer sent that the loop has not read yet.
    inbox: Vec<u8>,
    /// The write side is shut.
    shut: bool,
}

/// A connection handed over, on its way to its owner's mailbox.
struct InFlight {
    socket: Socket,
    handover: HandOver,
}

/// The simulated node: its machines and the world around them.
struct Sim {
    rng: SplitMix,
    now: Instant,
    machines: Vec<Machine>,
    /// Each loop's sockets by slot key.
    sockets: Vec<BTreeMap<u32, Socket>>,
    /// Token claims not answered yet: (loop, connection).
    claims: Vec<(usize, ConnId)>,
    /// Hand-overs not delivered yet.
    mailbox: Vec<InFlight>,
    /// Sockets reported online and not offline since: (loop, connection).
    online: HashSet<(usize, ConnId)>,
    /// The admission being made: the only connection (and client) a
    /// `SocketOpened` or `HandOver` may name now.
    admitting: Option<(usize, ConnId, i64)>,
    draining: [bool; LOOPS],
    /// The node runs in echo mode (no tokens, data sent back).
    echo: bool,
    /// Counts of what happened, to see the run covered the paths.
    seen: HashMap<&'static str, usize>,
}

/// A writer that takes at most `room` bytes, then would block.
struct Limited<'a> {
    room: usize,
    taken: &'a mut usize,
}

impl Write for Limited<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        *self.taken += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The sockets of one loop, as the machine writes to them.
struct SimWire<'a> {
    loop_index: usize,
    sockets: &'a mut BTreeMap<u32, Socket>,
    rng: &'a mut SplitMix,
    written: usize,
}

impl Wire for SimWire<'_> {
    fn flush(&mut self, key: u32, conn: &mut Conn) -> IoStep {
        let l = self.loop_index;
        let Some(socket) = self.sockets.get(&key) else {
            panic!("loop {l}: a write to slot {key}, which holds no connection");
        };
        assert_eq!(
            socket.id.generation,
            conn.generation(),
            "loop {l}: a write to slot {key} for another connection"
        );
        assert!(
            !socket.shut,
            "loop {l}: a write to {key} after its shutdown"
        );
        match self.rng.random_range(0..20) {
            0 => IoStep::Closed,
            1..=6 => {
                let room = self.rng.random_range(0..64);
                conn.flush(&mut Limited {
                    room,
                    taken: &mut self.written,
                })
            }
            _ => conn.flush(&mut Limited {
                room: usize::MAX,
                taken: &mut self.written,
            }),
        }
    }
}

/// The settings of a simulated node (`--echo`'s when `echo`).
fn settings(echo: bool) -> Settings {
    let mut argv = vec![
        "freeim-server",
        "--heartbeat-interval",
        "1s",
        "--heartbeat-timeout",
        "2s",
        "--handshake-timeout",
        "3s",
        "--max-header-bytes",
        "512",
        "--max-message-bytes",
        "200",
        "--max-push-bytes",
        "600",
        "--max-send-buffer",
        "1200",
    ];
    if echo {
        argv.push("--echo");
    }
    Config::try_parse_from(argv).unwrap().validate().unwrap()
}

/// A request head: mostly valid with a token, sometimes without one, at a
/// wrong path, too long or garbage; sometimes followed by a frame.
fn request(rng: &mut SplitMix) -> Vec<u8> {
    let token = format!("t{}", rng.random_range(0..1000));
    let (path, query) = match rng.random_range(0..20) {
        0 => ("/ws", String::new()),
        1 => ("/elsewhere", format!("?token={token}")),
        _ => ("/ws", format!("?token={token}")),
    };
    let subprotocol = if rng.random_bool(0.3) {
        "Sec-WebSocket-Protocol: freeim.heartbeat.v1\r\n"
    } else {
        ""
    };
    let padding = if rng.random_range(0..20) == 0 {
        format!("X-Pad: {}\r\n", "p".repeat(600))
    } else {
        String::new()
    };
    let mut bytes = match rng.random_range(0..20) {
        0 => b"NOT HTTP AT ALL\r\n\r\n".to_vec(),
        _ => format!(
            "GET {path}{query} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n{subprotocol}{padding}\r\n"
        )
        .into_bytes(),
    };
    if rng.random_bool(0.2) {
        bytes.extend_from_slice(&frames(rng));
    }
    bytes
}

/// A few frames a client might send: pings, pongs, data, a close, or
/// garbage (unmasked, oversized or random bytes).
fn frames(rng: &mut SplitMix) -> Vec<u8> {
    let mut bytes = Vec::new();
    for _ in 0..rng.random_range(1..4) {
        let mask = [1, 2, 3, 4];
        match rng.random_range(0..20) {
            0..=5 => encode_masked_frame(&mut bytes, OpCode::Ping, true, b"hi", mask),
            6..=7 => encode_masked_frame(&mut bytes, OpCode::Pong, true, b"", mask),
            8..=13 => encode_masked_frame(&mut bytes, OpCode::Text, true, b"hello", mask),
            14 => encode_masked_frame(&mut bytes, OpCode::Binary, true, &[0; 300], mask),
            15 => encode_masked_frame(&mut bytes, OpCode::Close, true, &[3, 232], mask),
            16 => encode_frame(&mut bytes, OpCode::Text, b"unmasked"),
            17 => encode_masked_frame(&mut bytes, OpCode::Text, true, &[0xff, 0xfe], mask),
            _ => bytes.extend((0..rng.random_range(1..8)).map(|_| rng.random::<u8>())),
        }
    }
    bytes
}

impl Sim {
    fn new(seed: u64, settings: &Arc<Settings>) -> Sim {
        let names = Arc::new(Names::new(
            &settings.path,
            &settings.server,
            &settings.servers,
            settings.layout(),
        ));
        let metrics = Arc::new(Metrics::new(LOOPS, Arc::new(AtomicUsize::new(0))));
        let now = Instant::now();
        let machines = (0..LOOPS)
            .map(|index| {
                let (settings, names, metrics) = (settings.clone(), names.clone(), metrics.clone());
                Machine::new(index, LOOPS, settings, names, metrics, now)
            })
            .collect();
        Sim {
            rng: SplitMix::seed_from_u64(seed),
            now,
            machines,
            sockets: (0..LOOPS).map(|_| BTreeMap::new()).collect(),
            claims: Vec::new(),
            mailbox: Vec::new(),
            online: HashSet::new(),
            admitting: None,
            draining: [false; LOOPS],
            echo: settings.echo,
            seen: HashMap::new(),
        }
    }

    fn saw(&mut self, what: &'static str) {
        *self.seen.entry(what).or_default() += 1;
    }

    /// A random socket of loop `l`, by slot key.
    fn any_socket(&mut self, l: usize) -> Option<u32> {
        let sockets = &self.sockets[l];
        if sockets.is_empty() {
            return None;
        }
        let at = self.rng.random_range(0..sockets.len());
        sockets.keys().nth(at).copied()
    }

    /// One random step (a drain only `late` in the run).
    fn step(&mut self, late: bool) {
        let l = self.rng.random_range(0..LOOPS);
        match self.rng.random_range(0..100) {
            0..=7 => self.connect(l),
            8..=29 => self.send_head(l),
            30..=39 => self.answer_claim(),
            40..=44 => self.deliver_hand_over(),
            45..=54 => self.send_frames(l),
            55..=64 => self.push(l),
            65..=66 => self.force_offline(l),
            67..=76 => self.flush_dirty(l),
            77..=84 => self.tick(),
            85..=86 => self.peer_gone(l),
            87..=88 => self.check_presence(l),
            89 if late && self.rng.random_range(0..20) == 0 => self.drain(l),
            90 if self.rng.random_range(0..10) == 0 => self.upgrade(),
            _ => self.flush_dirty(l),
        }
    }

    /// A hot upgrade, at a moment no token answer and no hand-over between
    /// loops is pending (the real one waits for that): every connection
    /// leaves its machine as state and enters a fresh machine (an open
    /// session on the loop owning its client, the others on the same loop),
    /// silently, keeping its bytes, deadline and decoder state.
    fn upgrade(&mut self) {
        if !self.claims.is_empty() || !self.mailbox.is_empty() || self.draining.contains(&true) {
            return;
        }
        let (settings, names) = (&self.machines[0].settings, &self.machines[0].names);
        // A new process: its own counters.
        let metrics = Arc::new(Metrics::new(LOOPS, Arc::new(AtomicUsize::new(0))));
        let mut fresh: Vec<Machine> = (0..LOOPS)
            .map(|i| {
                Machine::new(
                    i,
                    LOOPS,
                    settings.clone(),
                    names.clone(),
                    metrics.clone(),
                    self.now,
                )
            })
            .collect();
        let mut sockets: Vec<BTreeMap<u32, Socket>> = (0..LOOPS).map(|_| BTreeMap::new()).collect();
        let mut online = HashSet::new();
        for l in 0..LOOPS {
            for key in self.machines[l].conns().keys() {
                let state = self.machines[l]
                    .export(key)
                    .expect("nothing waits for a token");
                let mut socket = self.sockets[l].remove(&key).expect("its socket");
                let was_online = self.online.remove(&(l, socket.id));
                let to = match &state.phase {
                    PhaseState::Open { client_id, .. } => loop_of(*client_id, LOOPS),
                    _ => l,
                };
                let imported = fresh[to].import(state);
                assert_eq!(
                    imported.rename.is_some(),
                    was_online,
                    "only sessions are renamed"
                );
                if let Some((from, into)) = &imported.rename {
                    assert_eq!(*from, crate::bus::socket_name(l, socket.id));
                    assert_eq!(*into, crate::bus::socket_name(to, imported.id));
                    online.insert((to, imported.id));
                }
                socket.id = imported.id;
                sockets[to].insert(imported.id.key, socket);
            }
            assert!(!self.machines[l].has_actions(), "loop {l}: an export acted");
        }
        assert!(fresh.iter().all(|m| !m.has_actions()), "an import acted");
        self.machines = fresh;
        self.sockets = sockets;
        self.online = online;
        self.saw("upgrade");
    }

    fn connect(&mut self, l: usize) {
        if self.draining[l] {
            return;
        }
        let timeout = self.machines[l].settings.handshake_timeout;
        let id = self.machines[l].insert(Phase::Handshake { head: Vec::new() }, timeout);
        let head = request(&mut self.rng);
        let socket = Socket {
            id,
            head,
            inbox: Vec::new(),
            shut: false,
        };
        assert!(
            self.sockets[l].insert(id.key, socket).is_none(),
            "slot {} given twice",
            id.key
        );
        self.saw("connect");
    }

    /// The peer sends a random piece of its request head.
    fn send_head(&mut self, l: usize) {
        let Some(key) = self.any_socket(l) else {
            return;
        };
        let socket = self.sockets[l].get_mut(&key).unwrap();
        if socket.head.is_empty() {
            return;
        }
        let n = match self.rng.random_bool(0.5) {
            true => socket.head.len(),
            false => self.rng.random_range(1..=socket.head.len()),
        };
        let piece: Vec<u8> = socket.head.drain(..n).collect();
        socket.inbox.extend_from_slice(&piece);
        self.readable(l, key);
    }

    /// The peer sends frames (whatever its phase: some clients pipeline).
    fn send_frames(&mut self, l: usize) {
        let Some(key) = self.any_socket(l) else {
            return;
        };
        let bytes = frames(&mut self.rng);
        let socket = self.sockets[l].get_mut(&key).unwrap();
        if !socket.head.is_empty() {
            return; // it sends its request first
        }
        socket.inbox.extend_from_slice(&bytes);
        self.readable(l, key);
    }

    /// Readiness of slot `key`: the driver reads as the phase wants, in
    /// pieces of random size.
    fn readable(&mut self, l: usize, key: u32) {
        loop {
            let Some(socket) = self.sockets[l].get_mut(&key) else {
                return;
            };
            if socket.inbox.is_empty() {
                return;
            }
            let n = self.rng.random_range(1..=socket.inbox.len());
            let mut piece: Vec<u8> = socket.inbox.drain(..n).collect();
            let more = match self.machines[l].conns().phase(key) {
                Some(Phase::Handshake { .. }) if self.echo => {
                    // Echo mode admits at once, as the client named by the key.
                    let id = self.sockets[l][&key].id;
                    let before = self.admitting.replace((l, id, i64::from(key)));
                    let more = self.machines[l].on_head_bytes(key, &piece);
                    self.perform(l);
                    self.admitting = before;
                    more
                }
                Some(Phase::Handshake { .. }) => self.machines[l].on_head_bytes(key, &piece),
                Some(Phase::Open(_)) => self.machines[l].on_frame_bytes(key, &mut piece),
                Some(Phase::Closing(_) | Phase::Shut) => true, // read and dropped
                Some(Phase::Authorizing(_)) | None => {
                    // Not read: the bytes stay in the kernel.
                    let socket = self.sockets[l].get_mut(&key).unwrap();
                    piece.append(&mut socket.inbox);
                    socket.inbox = piece;
                    false
                }
            };
            self.perform(l);
            if !more {
                return;
            }
        }
    }

    /// The worker answers a claim, maybe long after it was asked, maybe
    /// after the connection closed.
    fn answer_claim(&mut self) {
        if self.claims.is_empty() {
            return;
        }
        let at = self.rng.random_range(0..self.claims.len());
        let (l, id) = self.claims.swap_remove(at);
        let client_id = self.rng.random_range(0..CLIENTS);
        let outcome = match self.rng.random_range(0..10) {
            0 => TokenOutcome::Refused,
            1 => TokenOutcome::Unavailable,
            _ => TokenOutcome::Admitted(ClientTicket {
                client_id,
                client_meta: None,
            }),
        };
        let live = self.sockets[l].get(&id.key).is_some_and(|s| s.id == id);
        self.saw(if live { "answer" } else { "late answer" });
        self.admitting = Some((l, id, client_id));
        self.machines[l].on_token(id, outcome);
        self.perform(l);
        self.admitting = None;
    }

    /// The owner's mailbox delivers a hand-over.
    fn deliver_hand_over(&mut self) {
        if self.mailbox.is_empty() {
            return;
        }
        let at = self.rng.random_range(0..self.mailbox.len());
        let InFlight {
            mut socket,
            handover,
        } = self.mailbox.swap_remove(at);
        let (owner, ticket) = (handover.owner, handover.ticket);
        if self.draining[owner] {
            self.saw("hand-over dropped");
            return; // the socket is dropped
        }
        let timeout = self.machines[owner].settings.handshake_timeout;
        let id = self.machines[owner].insert(Phase::Authorizing(handover.pending), timeout);
        socket.id = id;
        assert!(self.sockets[owner].insert(id.key, socket).is_none());
        self.admitting = Some((owner, id, ticket.client_id));
        self.machines[owner].on_adopted(id.key, ticket);
        self.perform(owner);
        self.admitting = None;
        self.saw("adopted");
        // Registering reports the data already waiting.
        self.readable(owner, id.key);
    }

    fn push(&mut self, l: usize) {
        // Mostly short, sometimes long enough to overflow a slow reader.
        let len = match self.rng.random_range(0..8) {
            0 => self.rng.random_range(100..600),
            _ => self.rng.random_range(1..40),
        };
        let text = "m".repeat(len);
        let audience = match self.rng.random_range(0..10) {
            0 => Audience::Everyone,
            _ => Audience::Clients(
                (0..self.rng.random_range(1..4))
                    .map(|_| self.rng.random_range(0..CLIENTS))
                    .filter(|&client| loop_of(client, LOOPS) == l)
                    .collect(),
            ),
        };
        let push = Push {
            sender: self.rng.random_range(0..CLIENTS),
            audience,
            frame: Arc::new(Frame::text(&text)),
            receipt: self.rng.random_bool(0.1),
        };
        let mut wire = SimWire {
            loop_index: l,
            sockets: &mut self.sockets[l],
            rng: &mut self.rng,
            written: 0,
        };
        self.machines[l].on_push(push, &mut wire);
        self.perform(l);
        self.saw("push");
    }

    fn force_offline(&mut self, l: usize) {
        let client = self.rng.random_range(0..CLIENTS);
        self.machines[l].force_offline(client);
        self.perform(l);
    }

    /// The driver's end of an iteration: every dirty connection is flushed.
    fn flush_dirty(&mut self, l: usize) {
        let mut dirty = self.machines[l].conns_mut().take_dirty();
        for &key in &dirty {
            let mut wire = SimWire {
                loop_index: l,
                sockets: &mut self.sockets[l],
                rng: &mut self.rng,
                written: 0,
            };
            if self.machines[l].flush(key, &mut wire) {
                self.sockets[l]
                    .get_mut(&key)
                    .expect("a socket to shut")
                    .shut = true;
                self.saw("shut");
            }
            self.perform(l);
        }
        dirty.clear();
        self.machines[l].conns_mut().return_dirty(dirty);
    }

    fn tick(&mut self) {
        self.now += Duration::from_millis(self.rng.random_range(0..1500));
        for l in 0..LOOPS {
            self.machines[l].on_tick(self.now);
            self.perform(l);
        }
    }

    /// The peer closes or resets: the driver's read sees it.
    fn peer_gone(&mut self, l: usize) {
        if let Some(key) = self.any_socket(l) {
            self.machines[l].close_now(key);
            self.perform(l);
            self.saw("peer gone");
        }
    }

    fn drain(&mut self, l: usize) {
        self.draining[l] = true;
        self.machines[l].shut_down_all();
        self.perform(l);
        self.saw("drain");
    }

    /// The presence snapshot names exactly the sockets reported online.
    fn check_presence(&mut self, l: usize) {
        let mut held: Vec<String> = self.machines[l]
            .presence()
            .into_iter()
            .map(|socket| socket.socket)
            .collect();
        let mut online: Vec<String> = self
            .online
            .iter()
            .filter(|(at, _)| *at == l)
            .map(|(_, id)| crate::bus::socket_name(l, *id))
            .collect();
        held.sort();
        online.sort();
        assert_eq!(held, online, "loop {l}: presence snapshot");
    }

    /// Performs loop `l`'s actions as the driver does.
    fn perform(&mut self, l: usize) {
        let actions = self.machines[l].take_actions();
        for action in actions {
            self.act(l, action);
        }
    }

    fn act(&mut self, l: usize, action: Action) {
        let current = |sim: &Sim, id: ConnId| sim.sockets[l].get(&id.key).map(|s| s.id) == Some(id);
        match action {
            Action::ClaimToken { conn, .. } => {
                assert!(current(self, conn), "loop {l}: a claim for {conn:?}");
                self.claims.push((l, conn));
                self.saw("claim");
            }
            Action::SocketOpened {
                client_id, conn, ..
            } => {
                assert!(current(self, conn), "loop {l}: {conn:?} opened, not live");
                assert_eq!(
                    self.admitting,
                    Some((l, conn, client_id)),
                    "loop {l}: {conn:?} of {client_id} opened by another answer"
                );
                assert!(self.online.insert((l, conn)), "{conn:?} online twice");
                self.saw(if self.echo { "online (echo)" } else { "online" });
            }
            Action::SocketClosed { conn, .. } => {
                assert!(
                    self.online.remove(&(l, conn)),
                    "loop {l}: {conn:?} offline but not online"
                );
                self.saw("offline");
            }
            Action::HandOver(handover) => {
                let (owner, conn) = (handover.owner, handover.conn);
                let client_id = handover.ticket.client_id;
                assert_ne!(owner, l, "handed over to itself");
                assert_eq!(owner, loop_of(client_id, LOOPS));
                assert_eq!(
                    self.admitting,
                    Some((l, conn, client_id)),
                    "loop {l}: {conn:?} handed over by another answer"
                );
                let socket = self.sockets[l].remove(&conn.key).expect("its socket");
                assert_eq!(socket.id, conn, "loop {l}: a stale hand-over");
                self.mailbox.push(InFlight { socket, handover });
                self.saw("hand-over");
            }
            Action::Read(id) => {
                if current(self, id) {
                    self.readable(l, id.key);
                }
            }
            Action::Remove(id) => {
                let socket = self.sockets[l].remove(&id.key).expect("a socket to close");
                assert_eq!(
                    socket.id, id,
                    "loop {l}: closed another connection's socket"
                );
                self.saw("removed");
            }
            Action::Publish { .. } => self.saw("receipt"),
        }
    }

    /// The machines and the model agree; the machines' own invariants hold
    /// (with the wheel's reminders when `reminders`).
    fn check(&self, reminders: bool) {
        let mut open_sessions = 0;
        for (l, machine) in self.machines.iter().enumerate() {
            let checked = if reminders {
                machine.check_invariants()
            } else {
                machine.check_invariants_but_reminders()
            };
            if let Err(broken) = checked {
                panic!("loop {l}: {broken}");
            }
            let conns = machine.conns();
            assert_eq!(conns.len(), self.sockets[l].len(), "loop {l}: sockets");
            for (key, socket) in &self.sockets[l] {
                assert_eq!(conns.id(*key), Some(socket.id), "loop {l}: slot {key}");
                let open = conns.session(*key).is_some();
                let online = self.online.contains(&(l, socket.id));
                assert_eq!(open, online, "loop {l}: {:?} open, online", socket.id);
                open_sessions += usize::from(open);
            }
        }
        // Every open session is online, and nothing else is.
        assert_eq!(open_sessions, self.online.len(), "online but gone");
    }

    /// Ends the run: everything drains, answers and hand-overs arrive, the
    /// peers go away; nothing is left online or open.
    fn finish(&mut self) {
        for l in 0..LOOPS {
            self.drain(l);
        }
        while !self.claims.is_empty() || !self.mailbox.is_empty() {
            self.answer_claim();
            self.deliver_hand_over();
            self.check(true);
        }
        for l in 0..LOOPS {
            self.flush_dirty(l);
            while let Some(key) = self.any_socket(l) {
                self.machines[l].close_now(key);
                self.perform(l);
            }
            self.check(true);
            assert!(self.machines[l].conns().is_empty());
            assert!(self.machines[l].registry().is_empty());
        }
        assert!(self.online.is_empty(), "still online: {:?}", self.online);
    }
}

fn run(seed: u64, steps: usize, settings: &Arc<Settings>) -> HashMap<&'static str, usize> {
    let mut sim = Sim::new(seed, settings);
    for step in 0..steps {
        sim.step(step * 10 >= steps * 9);
        sim.check(step % 128 == 0);
    }
    sim.finish();
    sim.seen
}

/// A count from the environment, or `default`.
fn from_env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Runs seeds `0..FREEIM_SIM_SEEDS` (or only `FREEIM_SIM_SEED`) of
/// `FREEIM_SIM_STEPS` steps each; a failure names its seed.
#[test]
fn random_interleavings_keep_presence_writes_and_ids_straight() {
    let started = Instant::now();
    // Every fourth seed runs a node in echo mode.
    let modes = [Arc::new(settings(false)), Arc::new(settings(true))];
    let steps = from_env("FREEIM_SIM_STEPS", STEPS) as usize;
    let seeds = match std::env::var("FREEIM_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => seed..seed + 1,
        None => 0..from_env("FREEIM_SIM_SEEDS", SEEDS),
    };
    let mut seen: HashMap<&'static str, usize> = HashMap::new();
    for seed in seeds.clone() {
        let settings = &modes[usize::from(seed % 4 == 3)];
        let outcome = std::panic::catch_unwind(|| run(seed, steps, settings));
        let Ok(counts) = outcome else {
            panic!("seed {seed} failed: rerun it alone with FREEIM_SIM_SEED={seed}");
        };
        for (what, count) in counts {
            *seen.entry(what).or_default() += count;
        }
    }
    for path in [
        "connect",
        "claim",
        "answer",
        "late answer",
        "online",
        "online (echo)",
        "offline",
        "hand-over",
        "adopted",
        "hand-over dropped",
        "push",
        "receipt",
        "shut",
        "removed",
        "peer gone",
        "drain",
        "upgrade",
    ] {
        assert!(seen.get(path).is_some_and(|&n| n > 0), "never: {path}");
    }
    let mut seen: Vec<_> = seen.into_iter().collect();
    seen.sort_unstable();
    eprintln!(
        "seeds {seeds:?} x {steps} steps in {:?}: {seen:?}",
        started.elapsed()
    );
}
