//! The Redis worker's jobs when its connection fails under it: killed
//! (`CLIENT KILL`: dropped), or silent (a relay that stops passing bytes:
//! timed out, outcome unknown). No job may vanish: a claim is retried once
//! on a fresh connection, presence is re-sent idempotently or re-asserted,
//! and a receipt arrives once or is counted failed
//! (`freeim_redis_jobs_failed_total{kind="publish"}`).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use imhelper::{ImHelper, ImHelperOptions};

/// The worker's read timeout (`IO_TIMEOUT` in `store/worker`).
const IO_TIMEOUT: Duration = Duration::from_secs(3);
/// The worker's lease refresh (`LEASE_REFRESH`): its idle liveness probe.
const LEASE_REFRESH: Duration = Duration::from_secs(5);
/// Longer than a silent first send plus the retry on a fresh connection.
const AFTER_A_TIMEOUT: Duration = Duration::from_secs(8);

// ----- a node on any Redis URL, with its admin port ---------------------------

/// A `freeim-server` process, killed on drop.
struct Server {
    child: Child,
    server: String,
    /// Its Redis names.
    keys: freeim_protocol::Keys,
    admin: u16,
}

impl Server {
    /// A one-node cluster on `redis`, two loops, `/metrics` on `admin`.
    fn start(redis: &TestRedis) -> Server {
        let node = Server::start_on(&redis.url());
        redis.set_servers(std::slice::from_ref(&node.server));
        node
    }

    /// A one-node cluster on `redis_url` (a relay to one server).
    fn start_on(redis_url: &str) -> Server {
        let port = free_port();
        let admin = free_port();
        let server = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_freeim-server"))
            .args(["--listen", &server, "--redis", redis_url])
            .args(["--server", &server, "--servers", &server])
            .args(["--threads", "2", "--admin", &format!("127.0.0.1:{admin}")])
            .env("FREEIM_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start freeim-server");
        let keys = node_keys(redis_url, "/ws", std::slice::from_ref(&server), &server);
        let mut node = Server {
            child,
            server,
            keys,
            admin,
        };
        let up = wait_until(PROMPTLY, || {
            assert!(
                matches!(node.child.try_wait(), Ok(None)),
                "freeim-server exited"
            );
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "freeim-server did not start");
        node
    }

    /// The whole `/metrics` text.
    fn metrics(&self) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.admin)).unwrap();
        stream.set_read_timeout(Some(PROMPTLY)).unwrap();
        write!(stream, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default()
    }

    /// One sample, named with its labels (`x{kind="publish"}`).
    fn metric(&self, name: &str) -> u64 {
        let body = self.metrics();
        body.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in\n{body}"))
            .parse()
            .unwrap()
    }

    fn retried(&self, kind: &str) -> u64 {
        self.metric(&format!(
            "freeim_redis_jobs_retried_total{{kind=\"{kind}\"}}"
        ))
    }

    fn failed(&self, kind: &str) -> u64 {
        self.metric(&format!(
            "freeim_redis_jobs_failed_total{{kind=\"{kind}\"}}"
        ))
    }

    fn liveness_failures(&self) -> u64 {
        self.metric("freeim_redis_liveness_failures_total{role=\"worker\"}")
    }

    /// Every `jobs_failed` sample, for messages.
    fn failures(&self) -> String {
        self.metrics()
            .lines()
            .filter(|l| l.starts_with("freeim_redis_jobs_failed_total{"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `{prefix}Server{server}`.
    fn channel(&self) -> String {
        self.keys.server(&self.server)
    }

    /// Its online and offline event channels.
    fn events(&self) -> [String; 2] {
        [self.keys.online_event(), self.keys.offline_event()]
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn im(redis: &TestRedis, node: &Server) -> ImHelper {
    ImHelper::new(ImHelperOptions::new(redis.url(), vec![node.server.clone()])).unwrap()
}

/// A token for `id` stored straight in Redis; returns the URL to upgrade with.
fn token(redis: &TestRedis, node: &Server, id: i64) -> String {
    let token = format!("t{id}x{}", rand::random::<u64>());
    let value = format!(r#"{{"Item1":{id},"Item2":"m{id}"}}"#);
    let key = node.keys.token(&token);
    assert_eq!(redis.raw_command(&["SET", &key, &value, "EX", "30"]), "+OK");
    format!("ws://{}/ws?token={token}", node.server)
}

/// The Redis key of the token in an upgrade URL to `node`.
fn token_key(node: &Server, url: &str) -> String {
    node.keys.token(url.split("token=").nth(1).unwrap())
}

/// Upgrades, waiting as long as the node may take (a silent first claim and
/// its retry); `Err(status)` when refused (0: not an HTTP refusal).
fn upgrade(url: &str) -> Result<Client, u16> {
    use tungstenite::HandshakeError;
    let authority = url.trim_start_matches("ws://").split('/').next().unwrap();
    let stream = TcpStream::connect(authority).map_err(|_| 0u16)?;
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(12);
    let mut result = tungstenite::client(url, stream);
    loop {
        match result {
            Ok((ws, _)) => return Ok(Client { ws }),
            Err(HandshakeError::Interrupted(mid)) if Instant::now() < deadline => {
                result = mid.handshake();
            }
            Err(HandshakeError::Failure(tungstenite::Error::Http(response))) => {
                return Err(response.status().as_u16())
            }
            Err(_) => return Err(0),
        }
    }
}

/// Sends `text` to `id` from the system, straight through Redis.
fn push(redis: &TestRedis, node: &Server, id: i64, text: &str) {
    let command = format!(r#"{{"Item1":0,"Item2":[{id}],"Item3":"\"{text}\"","Item4":false}}"#);
    assert_eq!(publish(redis, &node.channel(), &command), 1);
}

/// The receipt a sender gets for `text` delivered.
fn receipt_for(text: &str) -> String {
    format!(r#"{{"content":"\"{text}\"","receipt":"发送成功"}}"#)
}

/// Kills every normal client connection (not pub/sub ones, not the
/// caller's), on every master.
fn kill_normal_clients(redis: &TestRedis) {
    for reply in redis.on_every_master(&["CLIENT", "KILL", "TYPE", "normal"]) {
        assert!(reply.starts_with(':'), "CLIENT KILL answered {reply:?}");
    }
}

/// Online events minus offline events per client id, as the spy saw them
/// (`online`: the online event channel).
fn event_balance(events: &[(String, String)], online: &str) -> BTreeMap<i64, (u32, u32)> {
    let mut balance = BTreeMap::new();
    for (channel, payload) in events {
        let value: serde_json::Value = serde_json::from_str(payload).unwrap();
        let id = value["Item1"].as_i64().unwrap();
        let entry = balance.entry(id).or_insert((0, 0));
        if channel == online {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }
    balance
}

// ----- the scripts themselves --------------------------------------------------

#[test]
fn presence_scripts_count_and_announce_once_however_often_they_run() {
    let redis = TestRedis::start();
    // One node's names: FreeIM's, or tagged into one slot on a cluster.
    let server = "n".to_string();
    let keys = node_keys(&redis.url(), "/ws", std::slice::from_ref(&server), &server);
    redis.set_servers(std::slice::from_ref(&server));
    let (node_key, online) = (keys.node(&server), keys.online());
    let (node, online) = (node_key.as_str(), online.as_str());
    let events = [keys.online_event(), keys.offline_event()];
    let [online_event, offline_event] = [events[0].as_str(), events[1].as_str()];
    let spy = Spy::start(&redis, &events);
    let scripts =
        freeim_protocol::scripts::presence::PresenceScripts::for_layout(layout_of(&redis.url()));
    let mut conn = redis_conn(&redis, node);
    let event = r#"{"Item1":7,"Item2":"m"}"#;
    let opened = |conn: &mut redis::Connection| -> i64 {
        redis::cmd("EVAL")
            .arg(&scripts.socket_opened)
            .arg(2)
            .arg(node)
            .arg(online)
            .arg("0:1:1")
            .arg(7)
            .arg(event)
            .arg(online_event)
            .query(conn)
            .unwrap()
    };
    let closed = |conn: &mut redis::Connection, socket: &str, announce: &str| -> i64 {
        redis::cmd("EVAL")
            .arg(&scripts.socket_closed)
            .arg(2)
            .arg(online)
            .arg(node)
            .arg(7)
            .arg(event)
            .arg(offline_event)
            .arg(keys.prefix())
            .arg(socket)
            .arg(announce)
            .query(conn)
            .unwrap()
    };

    assert_eq!(opened(&mut conn), 1, "a new socket");
    assert_eq!(opened(&mut conn), 0, "a repeat finds it known");
    assert_eq!(online_count(&redis, 7).as_deref(), Some("1"));
    assert_eq!(closed(&mut conn, "0:1:1", "0"), 1, "a known socket");
    assert_eq!(closed(&mut conn, "0:1:1", "0"), 0, "a repeat finds it gone");
    assert_eq!(online_count(&redis, 7), None);
    // Redis lost the socket (restarted empty): announced only when asked.
    assert_eq!(closed(&mut conn, "0:2:1", "1"), 0);
    assert_eq!(hgetall(&redis, online), HashMap::new(), "never below zero");

    let seen = spy.collect(QUIET);
    let channels: Vec<&str> = seen.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(channels, [online_event, offline_event, offline_event]);
}

// ----- dropped connections (CLIENT KILL) ---------------------------------------

#[test]
fn an_upgrade_after_client_kill_is_admitted_and_counted_once() {
    let redis = TestRedis::start();
    let node = Server::start(&redis);
    let spy = Spy::start(&redis, &node.events());
    let _before = upgrade(&token(&redis, &node, 1)).expect("first client");
    wait_online(&redis, 1, Some(1));
    let [online_event, _] = node.events();
    assert_eq!(
        spy.next(PROMPTLY).map(|(c, _)| c),
        Some(online_event.clone())
    );

    kill_normal_clients(&redis);
    let mut after = upgrade(&token(&redis, &node, 2)).expect("upgraded after the kill: 101");
    push(&redis, &node, 2, "after the kill");
    assert_eq!(
        after.recv_text(PROMPTLY).as_deref(),
        Some("\"after the kill\"")
    );

    wait_online(&redis, 2, Some(1));
    // The reconnect's presence snapshots re-assert the sockets: nothing new.
    let events = spy.collect(Duration::from_millis(700));
    assert_eq!(
        events,
        [(online_event, r#"{"Item1":2,"Item2":"m2"}"#.to_string())],
        "one online event, for the new client only"
    );
    assert_eq!(
        hgetall(&redis, &node.keys.online()),
        [("1".to_string(), "1".to_string()), ("2".into(), "1".into())].into()
    );
    assert_eq!(hgetall(&redis, &node.keys.node(&node.server)).len(), 2);
    // The worker's idle probe (or a lease refresh) found the killed link
    // before the claim was written; only a kill within the probe's few ms
    // of the last use would make the claim a retry.
    assert!(node.retried("claim_token") <= 1);
    assert!(node.metric("freeim_redis_reconnects_total{role=\"worker\"}") >= 1);
    assert_eq!(node.failed("claim_token"), 0, "{}", node.failures());
}

#[test]
fn a_receipt_made_after_client_kill_arrives_once() {
    let redis = TestRedis::start();
    let node = Server::start(&redis);
    let im = im(&redis, &node);
    let mut alice = upgrade(&token(&redis, &node, 1)).unwrap();
    let mut bob = upgrade(&token(&redis, &node, 2)).unwrap();
    wait_online(&redis, 2, Some(1));

    // The worker's link sits idle, is killed, and the next pipeline (the
    // receipt) finds it dead with its idle probe, before writing anything.
    std::thread::sleep(Duration::from_millis(50));
    kill_normal_clients(&redis);
    im.send_message(1, &[2], "after the kill", true).unwrap();
    assert_eq!(
        bob.recv_text(PROMPTLY).as_deref(),
        Some("\"after the kill\"")
    );
    assert_eq!(
        alice.recv_text(PROMPTLY),
        Some(receipt_for("after the kill")),
        "the receipt was sent on a fresh connection"
    );
    assert!(alice.receives_nothing(QUIET), "and only once");
    assert!(node.retried("publish") <= 1);
    assert_eq!(node.failed("publish"), 0);
}

#[test]
fn receipts_under_repeated_kills_arrive_or_are_counted() {
    const MESSAGES: usize = 200;
    const KILLS: usize = 25;
    let redis = TestRedis::start();
    let node = Server::start(&redis);
    let im = im(&redis, &node);
    let mut alice = upgrade(&token(&redis, &node, 1)).unwrap();
    let mut bob = upgrade(&token(&redis, &node, 2)).unwrap();
    wait_online(&redis, 2, Some(1));

    let sending = AtomicBool::new(true);
    let (delivered, receipts) = std::thread::scope(|scope| {
        scope.spawn(|| {
            for _ in 0..KILLS {
                std::thread::sleep(Duration::from_millis(15));
                kill_normal_clients(&redis);
            }
        });
        // Each reads until two quiet seconds after the last send.
        let sending = &sending;
        let read_all = move |client: &mut Client| {
            let mut seen = Vec::new();
            loop {
                match client.recv_text(Duration::from_secs(2)) {
                    Some(text) => seen.push(text),
                    None if sending.load(Ordering::Relaxed) => {}
                    None => return seen,
                }
            }
        };
        let bob = scope.spawn(move || read_all(&mut bob));
        let alice = scope.spawn(move || read_all(&mut alice));
        for n in 0..MESSAGES {
            // A send the helper could not complete is not counted: the
            // receiver's deliveries are the truth of what was sent.
            let _ = im.send_message(1, &[2], &format!("m{n}"), true);
            std::thread::sleep(Duration::from_millis(2));
        }
        sending.store(false, Ordering::Relaxed);
        (bob.join().unwrap(), alice.join().unwrap())
    });

    let delivered: std::collections::BTreeSet<String> = delivered
        .iter()
        .map(|t| t.trim_matches('"').to_string())
        .collect();
    let mut receipted = std::collections::BTreeSet::new();
    for receipt in &receipts {
        let value: serde_json::Value = serde_json::from_str(receipt).unwrap();
        let content = value["content"].as_str().unwrap();
        receipted.insert(content.trim_matches('"').to_string());
    }
    let missing: Vec<&String> = delivered.difference(&receipted).collect();
    let failed = node.failed("publish") as usize;
    assert!(
        delivered.len() > MESSAGES / 2,
        "{} delivered",
        delivered.len()
    );
    assert!(
        receipted.is_subset(&delivered),
        "a receipt for nothing sent"
    );
    assert!(
        missing.len() <= failed,
        "{} receipts missing ({missing:?}) but {failed} counted failed",
        missing.len()
    );
    // A connection dropped after Redis ran a receipt but before its answer
    // came back is taken as "not reached" and re-sent: at most one
    // duplicate per kill.
    let duplicates = receipts.len() - receipted.len();
    assert!(duplicates <= KILLS, "{duplicates} duplicate receipts");
    eprintln!(
        "{} delivered, {} receipted, {} duplicates, {failed} failed, {} receipts retried",
        delivered.len(),
        receipted.len(),
        duplicates,
        node.retried("publish")
    );
}

#[test]
fn presence_matches_the_sockets_held_after_repeated_kills() {
    let redis = TestRedis::start();
    let node = Server::start(&redis);
    let spy = Spy::start(&redis, &node.events());
    let mut held: Vec<(i64, Client)> = Vec::new();
    let mut refused = 0;
    let mut rng_state = 0x9e37_79b9_u64;
    let mut random = |n: u64| {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state % n
    };
    for step in 0..60 {
        match random(5) {
            0 => kill_normal_clients(&redis),
            1 if !held.is_empty() => {
                let (_, client) = held.swap_remove(random(held.len() as u64) as usize);
                if step % 2 == 0 {
                    client.close();
                } else {
                    drop(client); // abrupt
                }
            }
            _ => {
                let id = 1 + random(6) as i64;
                match upgrade(&token(&redis, &node, id)) {
                    Ok(client) => held.push((id, client)),
                    Err(503) => refused += 1,
                    Err(status) => panic!("a valid token refused with {status}"),
                }
            }
        }
        if step % 7 == 0 {
            kill_normal_clients(&redis);
        }
    }

    let mut expected: HashMap<String, String> = HashMap::new();
    for (id, _) in &held {
        let count = expected.entry(id.to_string()).or_insert("0".into());
        *count = (count.parse::<u32>().unwrap() + 1).to_string();
    }
    let node_key = node.keys.node(&node.server);
    let by_client = |redis: &TestRedis| {
        let mut counts: HashMap<String, String> = HashMap::new();
        for entry in hgetall(redis, &node_key).values() {
            let id = entry.split('|').next().unwrap().to_string();
            let count = counts.entry(id).or_insert("0".into());
            *count = (count.parse::<u32>().unwrap() + 1).to_string();
        }
        counts
    };
    let agree = wait_until(Duration::from_secs(10), || {
        hgetall(&redis, &node.keys.online()) == expected && by_client(&redis) == expected
    });
    assert!(
        agree,
        "held {expected:?}, Online {:?}, Node {:?} ({refused} refused with 503)",
        hgetall(&redis, &node.keys.online()),
        by_client(&redis)
    );

    for (_, client) in held.drain(..) {
        client.close();
    }
    assert!(wait_until(PROMPTLY, || hgetall(
        &redis,
        &node.keys.online()
    )
    .is_empty()
        && hgetall(&redis, &node_key).is_empty()));
    let events = spy.collect(Duration::from_millis(700));
    for (id, (online, offline)) in event_balance(&events, &node.keys.online_event()) {
        assert_eq!(
            online, offline,
            "client {id}: {online} online, {offline} offline events"
        );
    }
    assert_eq!(
        node.failed("socket_opened") + node.failed("socket_closed"),
        0
    );
    eprintln!(
        "{} events, {refused} upgrades refused with 503; retried: {} claims, {} opens, {} closes, {} snapshots",
        events.len(),
        node.retried("claim_token"),
        node.retried("socket_opened"),
        node.retried("socket_closed"),
        node.retried("presence_snapshot"),
    );
}

// ----- silent connections (a relay that stops passing bytes) -------------------

/// What a [`Relay`] does with the bytes of a worker connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    /// Passes everything.
    Forward,
    /// Passes nothing either way: Redis never sees the requests.
    Swallow,
    /// Passes requests but no replies: Redis runs them, the node never knows.
    Mute,
    /// Closes the connection.
    Cut,
}

/// One relayed connection.
#[derive(Default)]
struct Pipe {
    /// Its first request was `SCRIPT LOAD`: the node's worker connects so.
    worker: AtomicBool,
    mode: AtomicU8,
    /// A mode that takes effect once the worker's idle probe (`PING`) has
    /// been answered: the next pipeline, not the probe, meets it.
    after_probe: Mutex<Option<Mode>>,
    closed: AtomicBool,
}

/// A TCP relay in front of Redis whose worker connections can go silent.
struct Relay {
    port: u16,
    pipes: Arc<Mutex<Vec<Arc<Pipe>>>>,
    /// New worker connections are closed at their first request.
    refuse_workers: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn start(target: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let pipes: Arc<Mutex<Vec<Arc<Pipe>>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let refuse_workers = Arc::new(AtomicBool::new(false));
        let (all, stopped, refuse) = (pipes.clone(), stop.clone(), refuse_workers.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let client = match listener.accept() {
                    Ok((client, _)) => client,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    Err(_) => return,
                };
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let pipe = Arc::new(Pipe::default());
                all.lock().unwrap().push(pipe.clone());
                for (from, to, upstream) in [
                    (
                        client.try_clone().unwrap(),
                        server.try_clone().unwrap(),
                        true,
                    ),
                    (server, client, false),
                ] {
                    let (pipe, stopped, refuse) = (pipe.clone(), stopped.clone(), refuse.clone());
                    std::thread::spawn(move || pump(from, to, &pipe, upstream, &stopped, &refuse));
                }
            }
        });
        Relay {
            port,
            pipes,
            refuse_workers,
            stop,
        }
    }

    /// Closes every worker connection and refuses new ones, or lets them be.
    fn refuse_workers(&self, refuse: bool) {
        self.refuse_workers.store(refuse, Ordering::Relaxed);
        if refuse {
            self.set_worker_mode(Mode::Cut);
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Sets the mode of every open worker connection once its idle probe
    /// is answered (the worker PINGs a link idle for a few ms before it
    /// writes a pipeline, so a link that died while idle is never written
    /// to); returns how many connections are armed.
    fn set_worker_mode_after_probe(&self, mode: Mode) -> usize {
        let pipes = self.pipes.lock().unwrap();
        let open = pipes
            .iter()
            .filter(|p| p.worker.load(Ordering::Relaxed) && !p.closed.load(Ordering::Relaxed));
        let mut n = 0;
        for pipe in open {
            *pipe.after_probe.lock().unwrap() = Some(mode);
            n += 1;
        }
        n
    }

    /// Sets the mode of every open worker connection; returns how many.
    fn set_worker_mode(&self, mode: Mode) -> usize {
        let pipes = self.pipes.lock().unwrap();
        let open = pipes
            .iter()
            .filter(|p| p.worker.load(Ordering::Relaxed) && !p.closed.load(Ordering::Relaxed));
        let mut n = 0;
        for pipe in open {
            pipe.mode.store(mode as u8, Ordering::Relaxed);
            n += 1;
        }
        n
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    pipe: &Pipe,
    upstream: bool,
    stop: &AtomicBool,
    refuse_workers: &AtomicBool,
) {
    from.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) && pipe.mode.load(Ordering::Relaxed) != Mode::Cut as u8 {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => break,
        };
        // The worker's connection is the one that loads scripts (after the
        // `ECHO` every connection starts with).
        let unknown = upstream && !pipe.worker.load(Ordering::Relaxed);
        if unknown && buf[..n].windows(6).any(|w| w == b"SCRIPT") {
            pipe.worker.store(true, Ordering::Relaxed);
            if refuse_workers.load(Ordering::Relaxed) {
                break;
            }
        }
        let mut pass = match pipe.mode.load(Ordering::Relaxed) {
            m if m == Mode::Forward as u8 => true,
            m if m == Mode::Mute as u8 => upstream,
            _ => false,
        };
        if !upstream && buf[..n].windows(7).any(|w| w == b"+PONG\r\n") {
            // Armed before the answer reaches the worker, so the pipeline
            // it writes next already meets the new mode.
            if let Some(mode) = pipe.after_probe.lock().unwrap().take() {
                pipe.mode.store(mode as u8, Ordering::Relaxed);
                pass = true;
            }
        }
        if pass && to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    pipe.closed.store(true, Ordering::Relaxed);
    let _ = from.shutdown(std::net::Shutdown::Both);
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// Lets the worker finish what a reconnect set off (presence snapshots)
/// before its next connection is made silent.
fn let_the_worker_settle() {
    std::thread::sleep(Duration::from_millis(300));
}

/// A node whose worker reaches Redis through a [`Relay`], clients 1 (alice),
/// 2 (bob) and 3 (carol) online, a spy on offline events, and the worker's
/// link idle: the starting point of the lost-answer and outage tests.
struct Scene {
    redis: TestRedis,
    relay: Relay,
    node: Server,
    im: ImHelper,
    spy: Spy,
    alice: Client,
    bob: Client,
    carol: Client,
}

impl Scene {
    /// `None` on a cluster (see [`relayed`]).
    fn start() -> Option<Scene> {
        let redis = TestRedis::start();
        let (relay, node) = relayed(&redis)?;
        let im = im(&redis, &node);
        let spy = Spy::start(&redis, &[node.keys.offline_event()]);
        let alice = upgrade(&token(&redis, &node, 1)).unwrap();
        let bob = upgrade(&token(&redis, &node, 2)).unwrap();
        let carol = upgrade(&token(&redis, &node, 3)).unwrap();
        wait_online(&redis, 3, Some(1));
        let_the_worker_settle();
        Some(Scene {
            redis,
            relay,
            node,
            im,
            spy,
            alice,
            bob,
            carol,
        })
    }
}

/// A relay to the one server and a node behind it; `None` on a cluster,
/// where a relay cannot stand in for the masters (the node finds them with
/// `CLUSTER SLOTS` and connects to them directly).
fn relayed(redis: &TestRedis) -> Option<(Relay, Server)> {
    let single = single_server(redis, "a relay between node and server")?;
    let relay = Relay::start(single.port());
    let node = Server::start_on(&relay.url());
    redis.set_servers(std::slice::from_ref(&node.server));
    Some((relay, node))
}

#[test]
fn a_claim_whose_answer_is_lost_is_retried_once_and_never_answered_401() {
    let redis = TestRedis::start();
    let Some((relay, node)) = relayed(&redis) else {
        return;
    };
    // An idle link, so the claim's pipeline follows an idle probe.
    let_the_worker_settle();

    // Swallowed: the claim never reached Redis; the retry admits.
    assert_eq!(relay.set_worker_mode_after_probe(Mode::Swallow), 1);
    let started = Instant::now();
    let mut client = upgrade(&token(&redis, &node, 4)).expect("admitted on the fresh connection");
    assert!(started.elapsed() >= IO_TIMEOUT - Duration::from_millis(200));
    push(&redis, &node, 4, "admitted");
    assert_eq!(client.recv_text(PROMPTLY).as_deref(), Some("\"admitted\""));
    assert_eq!(node.liveness_failures(), 1);
    assert_eq!(node.retried("claim_token"), 1);
    assert_eq!(node.failed("claim_token"), 0);

    // Muted: the claim ran (the token is used) but its answer was lost;
    // the retry finds no token, which may be the lost claim's doing: 503.
    let_the_worker_settle();
    assert_eq!(relay.set_worker_mode_after_probe(Mode::Mute), 1);
    let url = token(&redis, &node, 5);
    assert_eq!(upgrade(&url).err(), Some(503));
    assert_eq!(
        redis.raw_command(&["EXISTS", &token_key(&node, &url)]),
        ":0"
    );
    assert_eq!(node.liveness_failures(), 2);
    assert_eq!(node.retried("claim_token"), 2);
    assert_eq!(node.failed("claim_token"), 1);
    assert_eq!(
        node.metric("freeim_upgrades_refused_total{status=\"401\"}"),
        0
    );

    // The node serves as before.
    let mut later = upgrade(&token(&redis, &node, 6)).expect("admitted");
    push(&redis, &node, 6, "later");
    assert_eq!(later.recv_text(PROMPTLY).as_deref(), Some("\"later\""));
}

#[test]
fn presence_and_receipts_whose_answers_are_lost_happen_once_or_are_counted() {
    let Scene {
        redis,
        relay,
        node,
        im,
        spy,
        mut alice,
        mut bob,
        carol,
    } = match Scene::start() {
        Some(scene) => scene,
        None => return,
    };

    // A close whose script ran but whose answer was lost: re-sent, and the
    // repeat neither uncounts nor announces again.
    assert_eq!(relay.set_worker_mode_after_probe(Mode::Mute), 1);
    carol.close();
    wait_online(&redis, 3, None);
    assert!(wait_until(AFTER_A_TIMEOUT, || node
        .retried("socket_closed")
        == 1));
    let_the_worker_settle();
    let events = spy.collect(QUIET);
    assert_eq!(
        events,
        [(
            node.keys.offline_event(),
            r#"{"Item1":3,"Item2":"m3"}"#.to_string()
        )],
        "one offline event"
    );
    assert_eq!(node.failed("socket_closed"), 0);
    assert_eq!(
        hgetall(&redis, &node.keys.online()),
        [("1".to_string(), "1".to_string()), ("2".into(), "1".into())].into()
    );

    // A receipt published but unanswered: its outcome is unknown, so it is
    // not published again; counted failed. Alice got it exactly once.
    assert_eq!(relay.set_worker_mode_after_probe(Mode::Mute), 1);
    im.send_message(1, &[2], "muted", true).unwrap();
    assert_eq!(bob.recv_text(PROMPTLY).as_deref(), Some("\"muted\""));
    assert_eq!(alice.recv_text(PROMPTLY), Some(receipt_for("muted")));
    assert!(wait_until(AFTER_A_TIMEOUT, || node.failed("publish") == 1));
    assert!(alice.receives_nothing(QUIET), "never published twice");
    let_the_worker_settle();

    // A receipt swallowed: never published; counted failed all the same.
    assert_eq!(relay.set_worker_mode_after_probe(Mode::Swallow), 1);
    im.send_message(1, &[2], "swallowed", true).unwrap();
    assert_eq!(bob.recv_text(PROMPTLY).as_deref(), Some("\"swallowed\""));
    assert!(wait_until(AFTER_A_TIMEOUT, || node.failed("publish") == 2));
    assert!(alice.receives_nothing(QUIET));
    assert_eq!(node.retried("publish"), 0);
    assert_eq!(node.liveness_failures(), 3);

    // Receipts flow again on the fresh connection.
    im.send_message(1, &[2], "again", true).unwrap();
    assert_eq!(bob.recv_text(PROMPTLY).as_deref(), Some("\"again\""));
    assert_eq!(alice.recv_text(PROMPTLY), Some(receipt_for("again")));
}

#[test]
fn an_idle_link_that_goes_silent_is_noticed_by_the_lease_refresh() {
    let redis = TestRedis::start();
    let Some((relay, node)) = relayed(&redis) else {
        return;
    };
    let mut alice = upgrade(&token(&redis, &node, 1)).unwrap();
    wait_online(&redis, 1, Some(1));
    let_the_worker_settle();

    assert_eq!(relay.set_worker_mode(Mode::Swallow), 1);
    let silent = Instant::now();
    let bound = LEASE_REFRESH + IO_TIMEOUT + Duration::from_secs(1);
    assert!(
        wait_until(bound, || node.liveness_failures() == 1),
        "a silent worker link unnoticed for {bound:?}"
    );
    let noticed = silent.elapsed();
    assert!(
        noticed >= IO_TIMEOUT - Duration::from_millis(200),
        "{noticed:?}"
    );
    assert!(wait_until(PROMPTLY, || node
        .metric("freeim_redis_up{role=\"worker\"}")
        == 1));
    assert!(node.metric("freeim_redis_reconnects_total{role=\"worker\"}") >= 1);
    eprintln!("a silent idle worker link was given up after {noticed:?}");

    // Nothing was lost: presence still right, receipts and claims work.
    assert_eq!(online_count(&redis, 1).as_deref(), Some("1"));
    let mut bob = upgrade(&token(&redis, &node, 2)).unwrap();
    let im = im(&redis, &node);
    im.send_message(1, &[2], "after", true).unwrap();
    assert_eq!(bob.recv_text(PROMPTLY).as_deref(), Some("\"after\""));
    assert_eq!(alice.recv_text(PROMPTLY), Some(receipt_for("after")));
    // No job of any kind failed.
    let failures = node.failures();
    assert_eq!(
        failures.matches("} 0").count(),
        failures.matches("} ").count(),
        "{failures}"
    );
    assert!(failures.contains("kind=\"claim_token\"} 0"), "{failures}");
}

#[test]
fn while_the_worker_cannot_connect_receipts_are_held_and_presence_is_restored_after() {
    let Scene {
        redis,
        relay,
        node,
        im,
        spy,
        mut alice,
        mut bob,
        carol,
    } = match Scene::start() {
        Some(scene) => scene,
        None => return,
    };

    relay.refuse_workers(true);
    for n in 0..3 {
        im.send_message(1, &[2], &format!("held {n}"), true)
            .unwrap();
        assert_eq!(
            bob.recv_text(PROMPTLY),
            Some(format!("\"held {n}\"")),
            "delivery does not need the worker"
        );
    }
    // A claim gets its one fresh connect, which fails: 503.
    assert_eq!(upgrade(&token(&redis, &node, 4)).err(), Some(503));
    assert_eq!(node.failed("claim_token"), 1);
    // A close while the worker is away: Redis learns it from the snapshot.
    carol.close();
    assert!(
        alice.receives_nothing(QUIET),
        "no receipt while unreachable"
    );
    assert_eq!(online_count(&redis, 3).as_deref(), Some("1"));

    relay.refuse_workers(false);
    for n in 0..3 {
        assert_eq!(
            alice.recv_text(PROMPTLY),
            Some(receipt_for(&format!("held {n}"))),
            "held receipts go out in order once the worker is back"
        );
    }
    assert!(alice.receives_nothing(QUIET), "each once");
    wait_online(&redis, 3, None);
    assert_eq!(
        spy.collect(QUIET),
        [(
            node.keys.offline_event(),
            r#"{"Item1":3,"Item2":"m3"}"#.to_string()
        )],
        "the snapshot announced the close once"
    );
    assert_eq!(node.failed("publish"), 0, "{}", node.failures());
    assert_eq!(node.failed("socket_closed"), 0);
    assert!(node.retried("publish") >= 3);
}
