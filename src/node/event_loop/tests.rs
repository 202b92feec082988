//! The loop driven by hand, without `run`: real loopback sockets, the worker's
//! jobs and the other loops' mailboxes caught in channels, time moved by
//! advancing the wheel. Each test checks the loop's invariants on the way.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use clap::Parser;
use crossbeam_channel::Receiver;
use mio::{Poll, Waker};

use super::*;
use crate::bus::{Adoption, Mailbox, TokenOutcome};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::node::conn::{Farewell, Phase, Ping};
use crate::node::timer::TICK;
use crate::ws::{code, encode_close, encode_frame, encode_masked_frame, OpCode};
use freeim_protocol::ClientTicket;

/// Every loop of a node, and what they send the Redis worker.
struct TestNode {
    loops: Vec<EventLoop>,
    jobs: Receiver<Job>,
}

impl TestNode {
    fn new(args: &[&str], loops: usize) -> TestNode {
        let mut argv = vec!["freeim-server"];
        argv.extend_from_slice(args);
        let settings = Config::try_parse_from(argv).unwrap().validate().unwrap();
        let (jobs_in, jobs) = crossbeam_channel::unbounded();
        let mut polls = Vec::new();
        let mut mailboxes = Vec::new();
        let mut inboxes = Vec::new();
        for _ in 0..loops {
            let poll = Poll::new().unwrap();
            let (mailbox, inbox) = Mailbox::new(Waker::new(poll.registry(), WAKER).unwrap());
            polls.push(poll);
            mailboxes.push(mailbox);
            inboxes.push(inbox);
        }
        let open_connections = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared {
            names: Arc::new(Names::new(
                &settings.path,
                &settings.server,
                &settings.servers,
                settings.layout(),
            )),
            settings: Arc::new(settings),
            router: Router::new(mailboxes.into()),
            worker: WorkerHandle::new(jobs_in),
            metrics: Arc::new(Metrics::new(loops, open_connections.clone())),
            open_connections,
        });
        let loops = polls.into_iter().zip(inboxes).enumerate();
        let loops = loops
            .map(|(index, (poll, inbox))| {
                let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
                EventLoop::new(index, shared.clone(), poll, vec![listener], inbox).unwrap()
            })
            .collect();
        TestNode { loops, jobs }
    }

    fn job(&self) -> Job {
        self.jobs.try_recv().expect("a job for the worker")
    }

    fn check(&self) {
        for event_loop in &self.loops {
            event_loop.check_invariants().unwrap();
        }
    }
}

fn request(query: &str) -> Vec<u8> {
    format!(
        "GET /ws{query} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// A client that sent `bytes` and the connection loop `el` accepted and read.
fn connect(el: &mut EventLoop, bytes: &[u8]) -> (ConnId, TcpStream) {
    let mut client = TcpStream::connect(el.listeners[0].local_addr().unwrap()).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.write_all(bytes).unwrap();
    let key = el.machine.conns().next_key();
    el.accept_all();
    let id = el.machine.conns().id(key).expect("accepted");
    el.on_readable(key);
    (id, client)
}

fn phase(el: &mut EventLoop, id: ConnId) -> &Phase {
    el.machine
        .conns_mut()
        .live(id)
        .expect("a live connection")
        .phase()
}

fn admitted(client_id: i64) -> TokenOutcome {
    TokenOutcome::Admitted(ClientTicket {
        client_id,
        client_meta: None,
    })
}

/// Reads the response head (through its blank line).
fn read_head(client: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0];
    while !head.ends_with(b"\r\n\r\n") {
        client.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Moves the loop's time on by `by` and fires what is due.
fn advance(el: &mut EventLoop, to: Instant) {
    el.machine.on_tick(to);
    el.perform();
}

#[test]
fn an_admitted_upgrade_opens_a_registered_session_until_forced_offline() {
    let mut node = TestNode::new(&[], 1);
    let (id, mut client) = connect(&mut node.loops[0], &request("?token=t1"));
    assert!(matches!(
        phase(&mut node.loops[0], id),
        Phase::Authorizing(_)
    ));
    match node.job() {
        Job::ClaimToken { token, conn, .. } => assert_eq!((token.as_str(), conn), ("t1", id)),
        other => panic!("{other:?}"),
    }
    node.check();

    let el = &mut node.loops[0];
    el.on_token_checked(id, admitted(5));
    assert_eq!(el.machine.conns().session(id.key).unwrap().client_id, 5);
    assert_eq!(el.machine.registry().sockets(5), &[id.key]);
    assert_eq!(el.machine.conns().upgrading(), 0);
    assert!(matches!(node.job(), Job::SocketOpened { client_id: 5, .. }));
    node.check();

    let el = &mut node.loops[0];
    el.flush_dirty();
    assert!(read_head(&mut client).starts_with("HTTP/1.1 101"));
    el.force_offline(5);
    let closing = Farewell::CloseFrame(code::FORCED_OFFLINE);
    assert!(matches!(phase(el, id), Phase::Closing(why) if *why == closing));
    assert!(el.machine.registry().is_empty());
    assert!(matches!(node.job(), Job::SocketClosed { client_id: 5, .. }));
    node.check();

    let el = &mut node.loops[0];
    el.flush_dirty();
    assert!(matches!(phase(el, id), Phase::Shut));
    node.check();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    let mut close = Vec::new();
    encode_close(&mut close, code::FORCED_OFFLINE, "forced offline");
    assert_eq!(rest, close, "the close frame, then EOF");
    drop(client);

    // The peer's EOF ends it.
    let el = &mut node.loops[0];
    el.on_readable(id.key);
    assert!(el.machine.conns().is_empty());
    assert_eq!(el.shared.open_connections.load(Ordering::Acquire), 0);
    node.check();
    assert!(node.jobs.try_recv().is_err(), "offline once");
}

#[test]
fn a_refused_token_is_answered_401_and_the_write_side_shut() {
    let mut node = TestNode::new(&[], 1);
    let (id, mut client) = connect(&mut node.loops[0], &request("?token=bad"));
    let _claim = node.job();
    let el = &mut node.loops[0];
    el.on_token_checked(id, TokenOutcome::Refused);
    assert!(matches!(
        phase(el, id),
        Phase::Closing(Farewell::Refused(401))
    ));
    el.flush_dirty();
    assert!(matches!(phase(el, id), Phase::Shut));
    node.check();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    // No EOF from the peer: the close deadline ends it.
    let el = &mut node.loops[0];
    advance(el, Instant::now() + Duration::from_secs(3));
    assert!(el.machine.conns().is_empty());
    node.check();
    assert!(node.jobs.try_recv().is_err(), "it was never online");
}

#[test]
fn a_missing_token_is_refused_without_asking_the_worker() {
    let mut node = TestNode::new(&[], 1);
    let (id, _client) = connect(&mut node.loops[0], &request(""));
    let el = &mut node.loops[0];
    assert!(matches!(
        phase(el, id),
        Phase::Closing(Farewell::Refused(401))
    ));
    assert!(node.jobs.try_recv().is_err());
    node.check();
}

#[test]
fn a_connection_of_another_loops_client_is_handed_over() {
    let mut node = TestNode::new(&["--heartbeat-interval", "0s"], 2);
    let mut bytes = request("?token=t");
    // A pipelined ping travels with the socket.
    encode_masked_frame(&mut bytes, OpCode::Ping, true, b"hi", [9, 8, 7, 6]);
    let (id, mut client) = connect(&mut node.loops[0], &bytes);
    let _claim = node.job();
    node.loops[0].on_token_checked(id, admitted(1));
    assert!(node.loops[0].machine.conns().is_empty());
    assert_eq!(node.loops[0].machine.conns().upgrading(), 0);
    node.check();

    let adopt = node.loops[1].inbox.try_recv().expect("the hand-over");
    assert!(matches!(adopt, LoopMsg::Adopt(_)));
    let el = &mut node.loops[1];
    el.on_message(adopt);
    let key = el.machine.registry().sockets(1)[0];
    assert!(el.machine.conns().session(key).is_some());
    assert!(matches!(node.job(), Job::SocketOpened { client_id: 1, .. }));
    node.check();
    node.loops[1].flush_dirty();
    expect_upgrade_then(&mut client, OpCode::Pong, b"hi");
}

/// Reads a `101` and then a frame of `opcode` with `payload`.
fn expect_upgrade_then(client: &mut TcpStream, opcode: OpCode, payload: &[u8]) {
    let head = read_head(client);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let mut frame = Vec::new();
    encode_frame(&mut frame, opcode, payload);
    let mut got = vec![0; frame.len()];
    client.read_exact(&mut got).unwrap();
    assert_eq!(got, frame);
}

#[test]
fn echo_mode_admits_at_once_and_sends_data_back() {
    let mut node = TestNode::new(&["--echo"], 1);
    let mut bytes = request("");
    encode_masked_frame(&mut bytes, OpCode::Text, true, b"again", [1, 2, 3, 4]);
    let (id, mut client) = connect(&mut node.loops[0], &bytes);
    let el = &mut node.loops[0];
    let session = el.machine.conns().session(id.key).expect("open at once");
    assert_eq!(session.client_id, i64::from(id.key));
    node.check();
    node.loops[0].flush_dirty();
    expect_upgrade_then(&mut client, OpCode::Text, b"again");
}

#[test]
fn a_silent_session_is_pinged_then_closed() {
    let args = ["--heartbeat-interval", "1s", "--heartbeat-timeout", "1s"];
    let mut node = TestNode::new(&args, 1);
    let (id, _client) = connect(&mut node.loops[0], &request("?token=t"));
    let start = Instant::now();
    node.loops[0].on_token_checked(id, admitted(3));
    let el = &mut node.loops[0];
    advance(el, start + Duration::from_millis(1500));
    assert_eq!(
        el.machine.conns().session(id.key).unwrap().ping,
        Ping::Unanswered
    );
    assert!(el
        .machine
        .conns_mut()
        .get_mut(id.key)
        .unwrap()
        .dirty_at()
        .is_some());
    el.flush_dirty();
    node.check();
    let el = &mut node.loops[0];
    advance(el, start + Duration::from_millis(2500) + TICK);
    assert!(
        el.machine.conns().is_empty(),
        "no answer within the timeout"
    );
    assert!(el.machine.registry().is_empty());
    node.check();
}

#[test]
fn invariants_catch_a_registry_out_of_step_with_the_sessions() {
    let mut node = TestNode::new(&[], 1);
    let (id, _client) = connect(&mut node.loops[0], &request("?token=t"));
    let el = &mut node.loops[0];
    el.on_token_checked(id, admitted(4));
    el.check_invariants().unwrap();

    el.machine.registry_mut().add(9, id.key);
    let broken = el.check_invariants().unwrap_err();
    assert!(broken.contains("no open session of 9"), "{broken}");
    el.machine.registry_mut().remove(9, id.key);

    el.machine.registry_mut().add(4, id.key);
    assert!(el.check_invariants().is_err(), "registered twice");
    el.machine.registry_mut().remove(4, id.key);
    let broken = el.check_invariants().unwrap_err();
    assert!(broken.contains("not registered"), "{broken}");
    el.machine.registry_mut().add(4, id.key);
    el.check_invariants().unwrap();

    el.counters().clients.store(7, Ordering::Relaxed);
    assert!(el.check_invariants().unwrap_err().contains("gauge"));
    el.counters().clients.store(1, Ordering::Relaxed);
    el.shared.open_connections.store(0, Ordering::Release);
    assert!(el
        .check_invariants()
        .unwrap_err()
        .contains("open connections"));
}

#[test]
fn draining_closes_sessions_with_1001_and_drops_hand_overs() {
    let mut node = TestNode::new(&[], 1);
    let (open, _first) = connect(&mut node.loops[0], &request("?token=a"));
    node.loops[0].on_token_checked(open, admitted(2));
    let (upgrading, _second) = connect(&mut node.loops[0], &request("?token=b"));
    let el = &mut node.loops[0];
    el.begin_drain();
    let going_away = Farewell::CloseFrame(code::GOING_AWAY);
    assert!(matches!(phase(el, open), Phase::Closing(why) if *why == going_away));
    assert!(
        el.machine.conns_mut().live(upgrading).is_none(),
        "closed at once"
    );
    assert_eq!(el.accepting, Accepting::Draining);
    node.check();

    let el = &mut node.loops[0];
    let counted = el.shared.open_connections.load(Ordering::Acquire);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (stream, _) = listener.accept().unwrap();
    el.shared.open_connections.fetch_add(1, Ordering::AcqRel);
    el.adopt(Adoption {
        stream: mio::net::TcpStream::from_std(stream),
        ticket: ClientTicket {
            client_id: 2,
            client_meta: None,
        },
        accept_key: "k".into(),
        heartbeat: false,
        deflate: None,
        early_bytes: Vec::new(),
    });
    assert_eq!(el.machine.conns().len(), 1, "only the closing session");
    assert_eq!(el.shared.open_connections.load(Ordering::Acquire), counted);
    node.check();
}
