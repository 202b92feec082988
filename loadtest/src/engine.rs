//! A worker's event loop: thousands of client WebSockets on one `mio::Poll`.
//!
//! Each connection goes `Connecting → Handshaking → Open → Closing` and is
//! then removed. Sockets are registered once, edge-triggered, for reading
//! and writing; reads go through one shared scratch buffer, and a connection
//! keeps bytes of its own only while a response head or a frame is split
//! across reads. The protocol itself (request, response head, frames,
//! probes) is in [`crate::wire`].
//!
//! The loop also paces new connections, tops up the token pipeline, fires
//! handshake and close timeouts (FIFO queues: every timeout of a kind has
//! the same length) and the churn timers (a heap), and answers the
//! coordinator's commands.
//!
//! In the slow-reader mode (`--read-rate`) an open connection reads no more
//! than its token bucket allows ([`crate::pacing`]); one that runs out with
//! data still in its socket stops reading and waits in a FIFO queue of
//! resumes (every pause has the same length), so pacing costs O(1) per
//! pause and nothing per idle connection. Handshakes and close handshakes
//! are never paced. `--recv-buffer` sets `SO_RCVBUF` before each connect.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::Duration;

use crossbeam_channel::Receiver;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use slab::Slab;

use crate::control::{ChurnPlan, Command, ReaderConfig, Report, WorkerConfig};
use crate::inflate::Inflater;
use crate::pacing::{ReadPacer, RESUME_NS};
use crate::stats::ClientStats;
use crate::sys::now_ns;
use crate::tokens::TokenPool;
use crate::wire::{self, Opcode, WsUrl};

/// Token of the waker (commands and token answers).
pub const WAKER: Token = Token(usize::MAX);
/// Size of the shared read buffer.
const SCRATCH_BYTES: usize = 64 * 1024;
/// How long a close handshake may take before the socket is dropped.
const CLOSE_TIMEOUT_NS: u64 = 5_000_000_000;
/// How long `Close` waits for every connection before dropping the rest.
const CLOSE_ALL_TIMEOUT_NS: u64 = 15_000_000_000;
/// Longest poll sleep.
const MAX_SLEEP: Duration = Duration::from_millis(50);
/// Paused reads due this soon are resumed together with those due now (the
/// bucket keeps the rate; this only saves loop wake-ups).
const RESUME_SLACK_NS: u64 = 5_000_000;

/// Where a connection is.
enum State {
    /// TCP connect in progress; the expected accept key is kept for later.
    Connecting { accept: Box<str> },
    /// Request sent, reading the response head (in `inbuf`).
    Handshaking { accept: Box<str> },
    /// An open WebSocket.
    Open,
    /// This side sent a close frame and waits for the server's.
    Closing,
}

struct Conn {
    id: i64,
    gen: u32,
    stream: TcpStream,
    state: State,
    /// Bytes not yet taken by the socket.
    out: Vec<u8>,
    /// A response head or frame split across reads.
    inbuf: Vec<u8>,
    /// Fragments of a message split into several frames.
    fragments: Vec<u8>,
    /// permessage-deflate was negotiated.
    deflate: bool,
    /// The message being received is compressed (RSV1 on its first frame).
    compressed: bool,
    started_ns: u64,
    /// Churn: drop the socket once the request is sent.
    abort_after_request: bool,
    /// Read pacing: the bucket's theoretical arrival time (monotonic ns).
    read_tat: u64,
    /// Read pacing: waiting in `read_resumes`, not reading.
    read_paused: bool,
}

/// How a connection left the slab.
enum Exit {
    /// Its attempt failed before the upgrade completed.
    Failed(String),
    /// The server ended an open connection.
    Dropped(String),
    /// A close this side started completed.
    Closed,
    /// Dropped on purpose without a close handshake.
    Abrupt,
    /// Abandoned on purpose during the handshake.
    Aborted,
}

/// What the loop is doing, set by the last command.
#[derive(Clone, Copy)]
enum Phase {
    /// Waiting for a command.
    Idle,
    /// Fetching tokens for every client.
    Priming,
    /// Opening every client once.
    Connecting,
    /// Churning until `until_ns`, then settling.
    Churning { plan: ChurnPlan, until_ns: u64 },
    /// Closing every connection.
    Closing { deadline_ns: u64 },
}

/// Churn timers, ordered by due time.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// Close connection `(key, gen)`.
    Close(usize, u32),
    /// Reconnect client `id`.
    Reconnect(i64),
}

/// One worker's event loop and everything it owns.
pub struct Engine {
    cfg: WorkerConfig,
    poll: Poll,
    conns: Slab<Conn>,
    next_gen: u32,
    scratch: Vec<u8>,
    /// Inflates compressed messages (permessage-deflate), into `inflated`.
    inflater: Inflater,
    inflated: Vec<u8>,
    commands: Receiver<Command>,
    tokens: TokenPool,
    /// Clients waiting for a token request.
    pending: VecDeque<i64>,
    /// Token requests not answered yet.
    outstanding: usize,
    /// Tokens ready to use.
    ready: VecDeque<(i64, WsUrl)>,
    /// Server addresses by `host:port`.
    addrs: HashMap<String, SocketAddr>,
    phase: Phase,
    phase_start_ns: u64,
    started_in_phase: u64,
    /// Clients of `Connect` not yet opened or failed.
    unresolved: usize,
    in_flight: usize,
    closing: usize,
    handshake_timeouts: VecDeque<(u64, usize, u32)>,
    close_timeouts: VecDeque<(u64, usize, u32)>,
    timers: BinaryHeap<Reverse<(u64, Timer)>>,
    counters: ClientStats,
    rng: SmallRng,
    report: Box<dyn FnMut(&Report)>,
    primed_failures: u64,
    /// Per-connection read pacing (`None`: unlimited).
    pacer: Option<ReadPacer>,
    /// Paused connections, by due time (all pauses are `RESUME_NS` long).
    read_resumes: VecDeque<(u64, usize, u32)>,
}

impl Engine {
    /// Builds the loop: `poll` already has `WAKER` registered for the
    /// commands and the token answers.
    pub fn new(
        cfg: WorkerConfig,
        poll: Poll,
        commands: Receiver<Command>,
        tokens: TokenPool,
        report: Box<dyn FnMut(&Report)>,
    ) -> Engine {
        let seed = now_ns() ^ (cfg.index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let pacer = ReadPacer::new(cfg.reader.read_rate);
        Engine {
            cfg,
            poll,
            conns: Slab::new(),
            next_gen: 0,
            scratch: vec![0; SCRATCH_BYTES],
            inflater: Inflater::default(),
            inflated: Vec::new(),
            commands,
            tokens,
            pending: VecDeque::new(),
            outstanding: 0,
            ready: VecDeque::new(),
            addrs: HashMap::new(),
            phase: Phase::Idle,
            phase_start_ns: 0,
            started_in_phase: 0,
            unresolved: 0,
            in_flight: 0,
            closing: 0,
            handshake_timeouts: VecDeque::new(),
            close_timeouts: VecDeque::new(),
            timers: BinaryHeap::new(),
            counters: ClientStats::default(),
            rng: SmallRng::seed_from_u64(seed),
            report,
            primed_failures: 0,
            pacer,
            read_resumes: VecDeque::new(),
        }
    }

    /// Runs commands until `Exit` (or the coordinator goes away).
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.sleep_time();
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in events.iter() {
                if event.token() == WAKER {
                    continue;
                }
                let key = event.token().0;
                let readable = event.is_readable() || event.is_read_closed() || event.is_error();
                if matches!(
                    self.conns.get(key).map(|c| &c.state),
                    Some(State::Connecting { .. })
                ) {
                    if event.is_writable() || event.is_error() || event.is_write_closed() {
                        self.finish_connect(key);
                    }
                    continue;
                }
                if event.is_writable() {
                    self.flush(key);
                }
                if readable {
                    self.read(key);
                }
            }
            while let Ok(command) = self.commands.try_recv() {
                if !self.on_command(command) {
                    return Ok(());
                }
            }
            self.take_tokens();
            let now = now_ns();
            self.expire(now);
            self.resume_reads(now);
            self.fire_timers(now);
            self.start_connections(now);
            self.request_tokens();
            self.check_phase(now);
        }
    }

    fn sleep_time(&self) -> Duration {
        let now = now_ns();
        let mut wake = now + MAX_SLEEP.as_nanos() as u64;
        if !self.ready.is_empty() && self.may_connect() && self.in_flight < self.cfg.concurrency {
            wake = wake.min(self.next_slot_ns());
        }
        if let Some(Reverse((due, _))) = self.timers.peek() {
            wake = wake.min(*due);
        }
        if let Some(&(due, _, _)) = self.handshake_timeouts.front() {
            wake = wake.min(due);
        }
        if let Some(&(due, _, _)) = self.read_resumes.front() {
            wake = wake.min(due);
        }
        if let Phase::Churning { until_ns, .. } = self.phase {
            wake = wake.min(until_ns.max(now));
        }
        Duration::from_nanos(wake.saturating_sub(now))
    }

    /// Handles a command; false on `Exit`.
    fn on_command(&mut self, command: Command) -> bool {
        match command {
            Command::Prime => {
                self.enter(Phase::Priming);
                self.pending = self.all_ids().collect();
            }
            Command::Connect => {
                self.enter(Phase::Connecting);
                self.unresolved = self.cfg.count;
                let primed: std::collections::HashSet<i64> =
                    self.ready.iter().map(|(id, _)| *id).collect();
                let ids: Vec<i64> = self.all_ids().filter(|id| !primed.contains(id)).collect();
                self.pending.extend(ids);
            }
            Command::Churn(plan) => {
                let now = now_ns();
                self.enter(Phase::Churning {
                    plan,
                    until_ns: now + plan.duration_ms * 1_000_000,
                });
                let mut live = std::collections::HashSet::new();
                let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                for key in keys {
                    let (id, gen, open) = {
                        let conn = &self.conns[key];
                        (conn.id, conn.gen, matches!(conn.state, State::Open))
                    };
                    live.insert(id);
                    if open {
                        let due = now + self.life_ns(&plan);
                        self.timers.push(Reverse((due, Timer::Close(key, gen))));
                    }
                }
                let idle: Vec<i64> = self.all_ids().filter(|id| !live.contains(id)).collect();
                self.pending.extend(idle);
            }
            Command::Stats { full } => {
                let stats = self.stats(full);
                (self.report)(&Report::Stats(stats));
            }
            Command::Close => {
                self.enter(Phase::Closing {
                    deadline_ns: now_ns() + CLOSE_ALL_TIMEOUT_NS,
                });
                self.pending.clear();
                self.ready.clear();
                self.timers.clear();
                let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                for key in keys {
                    match self.conns[key].state {
                        State::Open => self.begin_close(key),
                        State::Closing => {}
                        State::Connecting { .. } | State::Handshaking { .. } => {
                            self.remove(key, Exit::Aborted)
                        }
                    }
                }
            }
            Command::Exit => return false,
        }
        true
    }

    fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.phase_start_ns = now_ns();
        self.started_in_phase = 0;
    }

    fn all_ids(&self) -> impl Iterator<Item = i64> {
        let first = self.cfg.first_id;
        (0..self.cfg.count as i64).map(move |i| first + i)
    }

    fn life_ns(&mut self, plan: &ChurnPlan) -> u64 {
        let life = plan.life_ms.max(1) as f64 * 1e6;
        (life * self.rng.random_range(0.5..1.5)) as u64
    }

    fn may_connect(&self) -> bool {
        match self.phase {
            Phase::Connecting => true,
            Phase::Churning { until_ns, .. } => now_ns() < until_ns,
            _ => false,
        }
    }

    fn churn_over(&self, now: u64) -> bool {
        matches!(self.phase, Phase::Churning { until_ns, .. } if now >= until_ns)
    }

    /// When the pacing allows the next connection.
    fn next_slot_ns(&self) -> u64 {
        if self.cfg.rate <= 0.0 || matches!(self.phase, Phase::Churning { .. }) {
            return 0;
        }
        self.phase_start_ns + (self.started_in_phase as f64 * 1e9 / self.cfg.rate) as u64
    }

    /// Keeps enough token requests going: about one second of connections
    /// ahead (all of them when priming), so tokens are fresh when used.
    fn request_tokens(&mut self) {
        let window = match self.phase {
            Phase::Priming => usize::MAX,
            Phase::Connecting if self.cfg.rate <= 0.0 => self.cfg.concurrency.max(256) * 2,
            Phase::Connecting => (self.cfg.rate as usize).clamp(64, 20_000),
            Phase::Churning { .. } => self.cfg.concurrency.clamp(64, 2048),
            Phase::Idle | Phase::Closing { .. } => 0,
        };
        while self.outstanding + self.ready.len() < window {
            let Some(id) = self.pending.pop_front() else {
                break;
            };
            self.tokens.request(id);
            self.outstanding += 1;
        }
    }

    fn take_tokens(&mut self) {
        while let Ok((id, answer)) = self.tokens.answers().try_recv() {
            self.outstanding = self.outstanding.saturating_sub(1);
            let accepting = match self.phase {
                Phase::Priming | Phase::Connecting => true,
                Phase::Churning { .. } => !self.churn_over(now_ns()),
                Phase::Idle | Phase::Closing { .. } => false,
            };
            if !accepting {
                continue;
            }
            match answer.and_then(|url| WsUrl::parse(&url).map_err(|_| "token_bad_url".to_string()))
            {
                Ok(url) => self.ready.push_back((id, url)),
                Err(reason) => {
                    if matches!(self.phase, Phase::Priming) {
                        self.primed_failures += 1;
                    }
                    self.count_failure(id, reason);
                }
            }
        }
    }

    fn count_failure(&mut self, id: i64, reason: String) {
        *self.counters.failures.entry(reason).or_insert(0) += 1;
        match self.phase {
            Phase::Priming => {} // retried by `Connect`
            Phase::Connecting => {
                self.counters.failed_ids.push(id);
                self.unresolved = self.unresolved.saturating_sub(1);
            }
            Phase::Churning { plan, .. } => self.schedule_reconnect(id, &plan),
            Phase::Idle | Phase::Closing { .. } => {}
        }
    }

    fn schedule_reconnect(&mut self, id: i64, plan: &ChurnPlan) {
        let now = now_ns();
        if self.churn_over(now) {
            return;
        }
        let pause = self.rng.random_range(0..=plan.pause_ms) * 1_000_000;
        self.timers
            .push(Reverse((now + pause, Timer::Reconnect(id))));
    }

    fn start_connections(&mut self, now: u64) {
        if !self.may_connect() {
            return;
        }
        while self.in_flight < self.cfg.concurrency && now >= self.next_slot_ns() {
            let Some((id, url)) = self.ready.pop_front() else {
                return;
            };
            self.started_in_phase += 1;
            self.start(id, &url, now);
        }
    }

    fn resolve(&mut self, authority: &str) -> Option<SocketAddr> {
        if let Some(addr) = self.addrs.get(authority) {
            return Some(*addr);
        }
        let addr = authority
            .to_socket_addrs()
            .ok()?
            .find(SocketAddr::is_ipv4)?;
        self.addrs.insert(authority.to_string(), addr);
        Some(addr)
    }

    fn src_for(&self, id: i64) -> Ipv4Addr {
        let addrs = &self.cfg.src_addrs;
        if addrs.is_empty() {
            return Ipv4Addr::LOCALHOST;
        }
        let index = (id - self.cfg.first_id) as usize + self.cfg.src_offset;
        addrs[index % addrs.len()]
    }

    /// Starts a non-blocking connect for `id` from its source address.
    fn start(&mut self, id: i64, url: &WsUrl, now: u64) {
        self.counters.attempts += 1;
        if self.counters.first_connect_ns == 0 {
            self.counters.first_connect_ns = now;
        }
        let Some(addr) = self.resolve(&url.authority) else {
            return self.count_failure(id, "bad_server_address".into());
        };
        let stream = match open_socket(self.src_for(id), addr, &self.cfg.reader) {
            Ok(stream) => stream,
            Err(e) => return self.count_failure(id, errno_reason("connect", &e)),
        };
        let mut stream = TcpStream::from_std(stream);
        let key = self.conns.vacant_key();
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            return self.count_failure(id, errno_reason("register", &e));
        }
        let key_text = wire::new_key(self.rng.random());
        let accept: Box<str> = wire::accept_for(&key_text).into();
        let mut out = wire::upgrade_request(url, &key_text, self.cfg.deflate);
        out.shrink_to_fit();
        self.next_gen = self.next_gen.wrapping_add(1);
        let abort_after_request = match self.phase {
            Phase::Churning { plan, .. } => self.rng.random_bool(plan.abort_ratio.clamp(0.0, 1.0)),
            _ => false,
        };
        let inserted = self.conns.insert(Conn {
            id,
            gen: self.next_gen,
            stream,
            state: State::Connecting { accept },
            out,
            inbuf: Vec::new(),
            fragments: Vec::new(),
            deflate: false,
            compressed: false,
            started_ns: now,
            abort_after_request,
            read_tat: 0,
            read_paused: false,
        });
        debug_assert_eq!(inserted, key);
        self.in_flight += 1;
        let deadline = now + self.cfg.connect_timeout_ms * 1_000_000;
        self.handshake_timeouts
            .push_back((deadline, key, self.next_gen));
    }

    fn finish_connect(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        match conn.stream.take_error() {
            Ok(Some(e)) | Err(e) => {
                return self.remove(key, Exit::Failed(errno_reason("connect", &e)))
            }
            Ok(None) => {}
        }
        match conn.stream.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return, // not yet
            Err(e) => return self.remove(key, Exit::Failed(errno_reason("connect", &e))),
        }
        let State::Connecting { accept } = std::mem::replace(&mut conn.state, State::Open) else {
            return;
        };
        conn.state = State::Handshaking { accept };
        self.flush(key);
        self.read(key);
    }

    fn flush(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if matches!(conn.state, State::Connecting { .. }) {
            return;
        }
        let mut sent = 0;
        let mut broken = None;
        while sent < conn.out.len() {
            match conn.stream.write(&conn.out[sent..]) {
                Ok(0) => {
                    broken = Some(io::Error::from(io::ErrorKind::WriteZero));
                    break;
                }
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            }
        }
        if sent == conn.out.len() {
            conn.out = Vec::new();
        } else {
            conn.out.drain(..sent);
        }
        if let Some(e) = broken {
            let exit = match conn.state {
                State::Handshaking { .. } => Exit::Failed(errno_reason("write", &e)),
                State::Closing => Exit::Closed,
                _ => Exit::Dropped(errno_reason("write", &e)),
            };
            return self.remove(key, exit);
        }
        if conn.abort_after_request && conn.out.is_empty() {
            if let State::Handshaking { .. } = conn.state {
                self.remove(key, Exit::Aborted);
            }
        }
    }

    /// Reads until the socket has nothing more (or, when paced, until the
    /// connection's allowance is spent: then it pauses), feeding the state
    /// machine.
    fn read(&mut self, key: usize) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let now = now_ns();
        while let Some(conn) = self.conns.get_mut(key) {
            if matches!(conn.state, State::Connecting { .. }) {
                break;
            }
            let pacer = match conn.state {
                State::Open => self.pacer,
                _ => None,
            };
            let limit = match pacer {
                None => scratch.len(),
                Some(_) if conn.read_paused => break,
                Some(pacer) => match pacer.allowance(conn.read_tat, now).min(scratch.len()) {
                    0 => {
                        conn.read_paused = true;
                        self.read_resumes
                            .push_back((now + RESUME_NS, key, conn.gen));
                        break;
                    }
                    allowed => allowed,
                },
            };
            match conn.stream.read(&mut scratch[..limit]) {
                Ok(0) => {
                    self.on_eof(key);
                    break;
                }
                Ok(n) => {
                    if let Some(pacer) = pacer {
                        conn.read_tat = pacer.consume(conn.read_tat, now, n);
                    }
                    if !self.absorb(key, &scratch[..n]) {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let exit = match self.conns[key].state {
                        State::Handshaking { .. } => Exit::Failed(errno_reason("read", &e)),
                        State::Closing => Exit::Closed,
                        _ => Exit::Dropped(errno_reason("read", &e)),
                    };
                    self.remove(key, exit);
                    break;
                }
            }
        }
        self.scratch = scratch;
    }

    fn on_eof(&mut self, key: usize) {
        let exit = match self.conns[key].state {
            State::Connecting { .. } | State::Handshaking { .. } => {
                Exit::Failed("closed_during_handshake".into())
            }
            State::Open => Exit::Dropped("eof".into()),
            State::Closing => Exit::Closed,
        };
        self.remove(key, exit);
    }

    /// Feeds received bytes to connection `key`; false once it is gone.
    fn absorb(&mut self, key: usize, data: &[u8]) -> bool {
        let conn = &mut self.conns[key];
        if let State::Handshaking { accept } = &conn.state {
            conn.inbuf.extend_from_slice(data);
            let head = match wire::parse_response(&conn.inbuf) {
                Ok(None) => return true,
                Ok(Some(head)) => head,
                Err(_) => {
                    self.remove(key, Exit::Failed("bad_response".into()));
                    return false;
                }
            };
            if head.status != 101 {
                self.remove(key, Exit::Failed(format!("http_{}", head.status)));
                return false;
            }
            if head.accept.as_deref() != Some(&**accept) {
                self.remove(key, Exit::Failed("bad_accept".into()));
                return false;
            }
            let rest = conn.inbuf.split_off(head.len);
            conn.inbuf = Vec::new();
            conn.state = State::Open;
            conn.deflate = self.cfg.deflate && head.deflate;
            let now = now_ns();
            self.counters.handshake.record_ns(now - conn.started_ns);
            self.in_flight -= 1;
            self.counters.handshakes += 1;
            self.counters.open += 1;
            self.counters.last_handshake_ns = now;
            self.on_open(key);
            if !self.conns.contains(key) {
                return false;
            }
            return rest.is_empty() || self.frames(key, &rest);
        }
        self.frames(key, data)
    }

    fn on_open(&mut self, key: usize) {
        let gen = self.conns[key].gen;
        match self.phase {
            Phase::Connecting => self.unresolved = self.unresolved.saturating_sub(1),
            Phase::Churning { plan, .. } => {
                let due = now_ns() + self.life_ns(&plan);
                self.timers.push(Reverse((due, Timer::Close(key, gen))));
            }
            Phase::Closing { .. } => self.begin_close(key),
            Phase::Idle | Phase::Priming => {}
        }
    }

    /// Parses frames from `data` (after any bytes kept from earlier reads).
    fn frames(&mut self, key: usize, data: &[u8]) -> bool {
        let mut buf = std::mem::take(&mut self.conns[key].inbuf);
        let owned = !buf.is_empty();
        if owned {
            buf.extend_from_slice(data);
        }
        let input: &[u8] = if owned { &buf } else { data };
        let mut pos = 0;
        let mut alive = true;
        while pos < input.len() {
            match wire::parse_frame(&input[pos..], self.conns[key].deflate) {
                Ok(None) => break,
                Ok(Some((frame, used))) => {
                    pos += used;
                    if !self.on_frame(key, frame, used) {
                        alive = false;
                        break;
                    }
                }
                Err(e) => {
                    let exit = match self.conns[key].state {
                        State::Closing => Exit::Closed,
                        _ => Exit::Dropped(format!("protocol: {e}")),
                    };
                    self.remove(key, exit);
                    alive = false;
                    break;
                }
            }
        }
        if alive {
            let rest = &input[pos..];
            let conn = &mut self.conns[key];
            if owned {
                buf.drain(..pos);
                conn.inbuf = buf;
            } else if !rest.is_empty() {
                conn.inbuf = rest.to_vec();
            }
        }
        alive
    }

    /// Acts on one frame (`used` bytes on the wire); false once the
    /// connection is gone.
    fn on_frame(&mut self, key: usize, frame: wire::Frame<'_>, used: usize) -> bool {
        match frame.opcode {
            Opcode::Text | Opcode::Binary | Opcode::Continuation => {
                self.counters.wire_bytes += used as u64;
                let conn = &mut self.conns[key];
                if frame.opcode != Opcode::Continuation {
                    conn.compressed = frame.compressed;
                }
                let compressed = conn.compressed;
                if frame.fin && conn.fragments.is_empty() {
                    self.on_data(key, frame.opcode, frame.payload, compressed)
                } else {
                    conn.fragments.extend_from_slice(frame.payload);
                    if !frame.fin {
                        return true;
                    }
                    let message = std::mem::take(&mut conn.fragments);
                    self.on_data(key, Opcode::Text, &message, compressed)
                }
            }
            Opcode::Ping => {
                self.counters.pings += 1;
                let mask = self.rng.random();
                let conn = &mut self.conns[key];
                wire::encode_masked(&mut conn.out, Opcode::Pong, frame.payload, mask);
                self.flush(key);
                self.conns.contains(key)
            }
            Opcode::Pong => true,
            Opcode::Close => {
                let code = match frame.payload {
                    [a, b, ..] => u16::from_be_bytes([*a, *b]),
                    _ => 1005,
                };
                if matches!(self.conns[key].state, State::Closing) {
                    self.remove(key, Exit::Closed);
                } else {
                    let mask = self.rng.random();
                    let conn = &mut self.conns[key];
                    wire::encode_close(&mut conn.out, code, mask);
                    let _ = conn.stream.write(&conn.out);
                    self.remove(key, Exit::Dropped(format!("server_close_{code}")));
                }
                false
            }
        }
    }

    /// A complete data message, inflated first when `compressed`; false
    /// (and the connection gone) when it does not inflate.
    fn on_data(&mut self, key: usize, opcode: Opcode, payload: &[u8], compressed: bool) -> bool {
        if !compressed {
            self.on_message(opcode, payload);
            return true;
        }
        let mut inflated = std::mem::take(&mut self.inflated);
        let outcome = self.inflater.inflate(payload, &mut inflated);
        if outcome.is_ok() {
            self.counters.deflated += 1;
            self.on_message(opcode, &inflated);
        }
        self.inflated = inflated;
        if let Err(e) = outcome {
            self.remove(key, Exit::Dropped(format!("protocol: {e}")));
            return false;
        }
        true
    }

    fn on_message(&mut self, opcode: Opcode, payload: &[u8]) {
        self.counters.received_bytes += payload.len() as u64;
        let probe = match opcode {
            Opcode::Text => wire::parse_probe(payload),
            _ => None,
        };
        let Some(probe) = probe else {
            self.counters.other_messages += 1;
            return;
        };
        let now = now_ns();
        self.counters.latency.record_ns(now.saturating_sub(probe.t));
        self.counters.received += 1;
        if self.counters.first_recv_ns == 0 {
            self.counters.first_recv_ns = now;
        }
        self.counters.last_recv_ns = now;
    }

    /// Sends a close frame; the connection leaves when the server answers.
    fn begin_close(&mut self, key: usize) {
        let mask = self.rng.random();
        let conn = &mut self.conns[key];
        if !matches!(conn.state, State::Open) {
            return;
        }
        conn.state = State::Closing;
        self.counters.open -= 1;
        self.closing += 1;
        wire::encode_close(&mut conn.out, 1000, mask);
        let gen = conn.gen;
        self.close_timeouts
            .push_back((now_ns() + CLOSE_TIMEOUT_NS, key, gen));
        self.flush(key);
    }

    /// Takes connection `key` out (closing its socket) and counts why.
    fn remove(&mut self, key: usize, exit: Exit) {
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        match conn.state {
            State::Connecting { .. } | State::Handshaking { .. } => self.in_flight -= 1,
            State::Open => self.counters.open -= 1,
            State::Closing => self.closing -= 1,
        }
        match exit {
            Exit::Failed(reason) => {
                let id = conn.id;
                drop(conn);
                return self.count_failure(id, reason);
            }
            Exit::Dropped(reason) => *self.counters.dropped.entry(reason).or_insert(0) += 1,
            Exit::Closed => self.counters.closed += 1,
            Exit::Abrupt => self.counters.abrupt_closes += 1,
            Exit::Aborted => self.counters.aborted += 1,
        }
        if let Phase::Churning { plan, .. } = self.phase {
            self.schedule_reconnect(conn.id, &plan);
        }
    }

    fn expire(&mut self, now: u64) {
        while let Some(&(due, key, gen)) = self.handshake_timeouts.front() {
            if due > now {
                break;
            }
            self.handshake_timeouts.pop_front();
            if let Some(conn) = self.conns.get(key) {
                if conn.gen == gen
                    && matches!(
                        conn.state,
                        State::Connecting { .. } | State::Handshaking { .. }
                    )
                {
                    self.remove(key, Exit::Failed("timeout".into()));
                }
            }
        }
        while let Some(&(due, key, gen)) = self.close_timeouts.front() {
            if due > now {
                break;
            }
            self.close_timeouts.pop_front();
            if let Some(conn) = self.conns.get(key) {
                if conn.gen == gen && matches!(conn.state, State::Closing) {
                    self.remove(key, Exit::Dropped("close_timeout".into()));
                }
            }
        }
    }

    /// Lets paused connections read again once their pause is over.
    fn resume_reads(&mut self, now: u64) {
        while let Some(&(due, key, gen)) = self.read_resumes.front() {
            if due > now + RESUME_SLACK_NS {
                break;
            }
            self.read_resumes.pop_front();
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            if conn.gen != gen || !conn.read_paused {
                continue;
            }
            conn.read_paused = false;
            self.read(key);
        }
    }

    fn fire_timers(&mut self, now: u64) {
        let Phase::Churning { plan, until_ns } = self.phase else {
            return;
        };
        while let Some(&Reverse((due, timer))) = self.timers.peek() {
            if due > now {
                break;
            }
            self.timers.pop();
            if now >= until_ns {
                continue;
            }
            match timer {
                Timer::Close(key, gen) => {
                    let is_open = self
                        .conns
                        .get(key)
                        .is_some_and(|c| c.gen == gen && matches!(c.state, State::Open));
                    if !is_open {
                        continue;
                    }
                    if self.rng.random_bool(plan.abrupt_ratio.clamp(0.0, 1.0)) {
                        self.remove(key, Exit::Abrupt);
                    } else {
                        self.begin_close(key);
                    }
                }
                Timer::Reconnect(id) => self.pending.push_back(id),
            }
        }
        if now >= until_ns {
            self.timers.clear();
            self.pending.clear();
            self.ready.clear();
        }
    }

    /// Sends the report that ends the current command, once it is done.
    fn check_phase(&mut self, now: u64) {
        match self.phase {
            Phase::Priming if self.pending.is_empty() && self.outstanding == 0 => {
                let tokens = self.ready.len() as u64;
                let failures = self.primed_failures;
                (self.report)(&Report::Primed { tokens, failures });
                self.phase = Phase::Idle;
            }
            Phase::Connecting if self.unresolved == 0 && self.in_flight == 0 => {
                let stats = self.stats(true);
                (self.report)(&Report::Connected(stats));
                self.phase = Phase::Idle;
            }
            Phase::Churning { until_ns, .. }
                if now >= until_ns && self.in_flight == 0 && self.closing == 0 =>
            {
                let mut open: BTreeMap<i64, u32> = BTreeMap::new();
                for (_, conn) in self.conns.iter() {
                    if matches!(conn.state, State::Open) {
                        *open.entry(conn.id).or_insert(0) += 1;
                    }
                }
                let stats = self.stats(true);
                let open = open.into_iter().collect();
                (self.report)(&Report::ChurnDone { stats, open });
                self.phase = Phase::Idle;
            }
            Phase::Closing { deadline_ns } if self.conns.is_empty() || now >= deadline_ns => {
                let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                for key in keys {
                    self.remove(key, Exit::Dropped("close_timeout".into()));
                }
                let stats = self.stats(true);
                (self.report)(&Report::Closed(stats));
                self.phase = Phase::Idle;
            }
            _ => {}
        }
    }

    /// The counters to report: all of them when `full`, else without the
    /// histograms and failed ids.
    fn stats(&self, full: bool) -> ClientStats {
        if full {
            self.counters.clone()
        } else {
            self.counters.counters_only()
        }
    }
}

/// A non-blocking TCP socket bound to `src` (port chosen at connect time,
/// so each (source, destination) pair has the whole ephemeral range),
/// connecting to `dst`. `reader`'s `SO_RCVBUF` is set before the connect,
/// so the SYN already offers the small window (and window scale).
fn open_socket(
    src: Ipv4Addr,
    dst: SocketAddr,
    reader: &ReaderConfig,
) -> io::Result<std::net::TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    if let Some(bytes) = reader.recv_buffer {
        socket.set_recv_buffer_size(bytes)?;
    }
    let one: libc::c_int = 1;
    // SAFETY: a valid socket fd and a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(src, 0)).into())?;
    match socket.connect(&dst.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(socket.into())
}

/// A short reason such as `connect_refused` for an I/O error.
pub fn errno_reason(stage: &str, error: &io::Error) -> String {
    let what = match error.raw_os_error() {
        Some(libc::ECONNREFUSED) => "refused".to_string(),
        Some(libc::ECONNRESET) => "reset".to_string(),
        Some(libc::EADDRNOTAVAIL) => "no_free_port".to_string(),
        Some(libc::EADDRINUSE) => "addr_in_use".to_string(),
        Some(libc::EMFILE) | Some(libc::ENFILE) => "out_of_fds".to_string(),
        Some(libc::ETIMEDOUT) => "timed_out".to_string(),
        Some(libc::EPIPE) => "broken_pipe".to_string(),
        Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH) => "unreachable".to_string(),
        Some(n) => format!("errno_{n}"),
        None => format!("{:?}", error.kind()).to_lowercase(),
    };
    format!("{stage}_{what}")
}
