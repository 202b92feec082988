//! Hot upgrade (`--upgrade-socket`, `--upgrade`): real processes hand 2,000
//! live WebSocket connections over under paced p2p and channel load; every
//! message arrives once and in order, no connection closes, no presence
//! event fires, the old process exits 0. A new process killed mid-hand-over,
//! or one that cannot read the old one's state format, leaves the old one
//! serving every connection.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use imhelper::ImHelper;
use tungstenite::{Message, WebSocket};

/// A `freeim-server` process whose log lines the test reads; killed on drop.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(args: &[String], env: &[(&str, &str)]) -> Proc {
        let mut command = Command::new(env!("CARGO_BIN_EXE_freeim-server"));
        command
            .args(args)
            .env("FREEIM_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start freeim-server");
        let stderr = child.stderr.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        Proc { child, lines }
    }

    /// Waits for a log line containing `needle`; a failure shows the lines
    /// seen meanwhile.
    fn wait_line(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!(
                    "no log line with {needle:?} within {timeout:?}; saw:\n{}",
                    seen.join("\n")
                ),
            }
        }
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A one-node cluster whose node serves hand-overs.
struct Setup {
    redis: TestRedis,
    server: String,
    socket: std::path::PathBuf,
    /// The first node's admin port.
    admin: u16,
    _dir: tempdir::Dir,
}

mod tempdir {
    /// A directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Setup {
    fn new() -> Setup {
        let redis = TestRedis::start();
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("freeim-upgrade-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let server = format!("127.0.0.1:{port}");
        redis.set_servers(std::slice::from_ref(&server));
        Setup {
            redis,
            server,
            socket: dir.join("node.sock"),
            admin: free_port(),
            _dir: tempdir::Dir(dir),
        }
    }

    /// The node's command line, with `extra` flags (`--threads 2` unless
    /// they name another count).
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "--listen",
            &self.server,
            "--redis",
            &self.redis.url(),
            "--server",
            &self.server,
            "--servers",
            &self.server,
            "--upgrade-socket",
            self.socket.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if !extra.contains(&"--threads") {
            args.extend(["--threads".to_string(), "2".to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// Starts the first node (admin endpoint on `self.admin`) and waits
    /// until it accepts.
    fn start_node(&self, env: &[(&str, &str)]) -> Proc {
        let admin = format!("127.0.0.1:{}", self.admin);
        let node = Proc::spawn(&self.args(&["--admin", &admin]), env);
        assert!(wait_until(PROMPTLY, || TcpStream::connect(&self.server).is_ok()));
        assert!(wait_until(PROMPTLY, || self.socket.exists()));
        node
    }

    fn helper(&self) -> ImHelper {
        ImHelper::new(imhelper::ImHelperOptions::new(
            self.redis.url(),
            vec![self.server.clone()],
        ))
        .unwrap()
    }

    /// The node's Redis names (tagged on a cluster).
    fn keys(&self) -> freeim_protocol::Keys {
        names(&self.redis).of(&self.server).clone()
    }

    /// Presence events seen on the event channels.
    fn spy(&self) -> Spy {
        let keys = self.keys();
        Spy::start(&self.redis, &[keys.online_event(), keys.offline_event()])
    }
}

/// Texts received, by client.
type Received = HashMap<i64, Vec<String>>;
/// Anything but a text, ping or pong a client got (a close, an error).
type Broken = Vec<(i64, String)>;

/// Clients read by a few threads; every text received is recorded.
struct Fleet {
    received: Arc<Mutex<Received>>,
    broken: Arc<Mutex<Broken>>,
    stop: Arc<AtomicBool>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Fleet {
    fn connect(im: &ImHelper, ids: &[i64]) -> Fleet {
        let mut clients: Vec<(i64, WebSocket<TcpStream>)> = ids
            .iter()
            .map(|&id| (id, connect_as(im, id, &format!("m{id}")).ws))
            .collect();
        for (_, ws) in &mut clients {
            ws.get_mut().set_nonblocking(true).unwrap();
        }
        let received = Arc::new(Mutex::new(HashMap::new()));
        let broken = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut readers = Vec::new();
        let per_thread = clients.len().div_ceil(4);
        while !clients.is_empty() {
            let mut share: Vec<_> = clients.drain(..per_thread.min(clients.len())).collect();
            let (received, broken, stop) = (received.clone(), broken.clone(), stop.clone());
            readers.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut idle = true;
                    for (id, ws) in &mut share {
                        loop {
                            match ws.read() {
                                Ok(Message::Text(text)) => {
                                    idle = false;
                                    received
                                        .lock()
                                        .unwrap()
                                        .entry(*id)
                                        .or_insert_with(Vec::new)
                                        .push(text.to_string());
                                }
                                Ok(Message::Ping(_) | Message::Pong(_)) => {}
                                Ok(other) => {
                                    broken.lock().unwrap().push((*id, format!("{other:?}")));
                                    break;
                                }
                                Err(tungstenite::Error::Io(e))
                                    if e.kind() == std::io::ErrorKind::WouldBlock =>
                                {
                                    break
                                }
                                Err(e) => {
                                    broken.lock().unwrap().push((*id, e.to_string()));
                                    break;
                                }
                            }
                        }
                    }
                    if idle {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                // Keep the sockets open until the test is done with them.
                drop(share);
            }));
        }
        Fleet {
            received,
            broken,
            stop,
            readers,
        }
    }

    fn total(&self) -> usize {
        self.received.lock().unwrap().values().map(Vec::len).sum()
    }

    /// Stops reading (closing the sockets) and checks what came: no
    /// connection broke, and every stream of `last` arrived exactly once, in
    /// order, at each of `ids`.
    fn finish(self, ids: &[i64], last: &HashMap<String, u64>) {
        self.stop.store(true, Ordering::Relaxed);
        for reader in self.readers {
            reader.join().unwrap();
        }
        let broken = std::mem::take(&mut *self.broken.lock().unwrap());
        assert!(
            broken.is_empty(),
            "connections broke: {:?}",
            &broken[..broken.len().min(5)]
        );
        check_exactly_once(ids, &self.received.lock().unwrap(), last);
    }
}

/// Paced load: p2p messages `p:<id>:<seq>` to random clients and channel
/// messages `c:<chan>:<seq>` to the rooms, each with its own sequence.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<HashMap<String, u64>>>,
}

const ROOMS: i64 = 20;

impl Load {
    fn start(setup: &Setup, ids: &[i64], p2p_per_sec: u64, chan_per_sec: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let ids = ids.to_vec();
        let im = setup.helper();
        let p2p = move |n: u64| {
            let id = ids[(n * 7919) as usize % ids.len()];
            let stream = format!("p:{id}");
            (
                stream,
                Box::new(move |im: &ImHelper, text: &str| im.send_message(0, &[id], text, false))
                    as Sender,
            )
        };
        let chan = |n: u64| {
            let room = format!("room-{}", n as i64 % ROOMS);
            let stream = format!("c:{room}");
            (
                stream,
                Box::new(move |im: &ImHelper, text: &str| im.send_chan_message(0, &room, text))
                    as Sender,
            )
        };
        let threads = vec![
            paced(setup.helper(), p2p_per_sec, &stop, &sent, p2p),
            paced(im, chan_per_sec, &stop, &sent, chan),
        ];
        Load {
            stop,
            sent,
            threads,
        }
    }

    /// Stops sending; the last sequence number of every stream.
    fn stop(self) -> HashMap<String, u64> {
        self.stop.store(true, Ordering::Relaxed);
        let mut last = HashMap::new();
        for thread in self.threads {
            last.extend(thread.join().unwrap());
        }
        last
    }
}

/// Sends one message on its stream.
type Sender = Box<dyn FnOnce(&ImHelper, &str) -> imhelper::Result<()>>;

/// A thread sending `per_sec` messages a second until `stop`: message `n`
/// goes where `pick(n)` says, as `<stream>:<seq>` (a sequence per stream);
/// returns the last sequence number of every stream.
fn paced(
    im: ImHelper,
    per_sec: u64,
    stop: &Arc<AtomicBool>,
    sent: &Arc<AtomicU64>,
    pick: impl Fn(u64) -> (String, Sender) + Send + 'static,
) -> std::thread::JoinHandle<HashMap<String, u64>> {
    let (stop, sent) = (stop.clone(), sent.clone());
    let pace = Duration::from_micros(1_000_000 / per_sec.max(1));
    std::thread::spawn(move || {
        let mut seqs = HashMap::new();
        let start = Instant::now();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let (stream, send) = pick(n);
            let seq = seqs.entry(stream.clone()).or_insert(0u64);
            *seq += 1;
            send(&im, &format!("{stream}:{seq}")).unwrap();
            sent.fetch_add(1, Ordering::Relaxed);
            n += 1;
            std::thread::sleep((start + pace * n as u32).saturating_duration_since(Instant::now()));
        }
        seqs
    })
}

/// Joins every client to its room.
fn join_rooms(im: &ImHelper, ids: &[i64]) {
    for &id in ids {
        im.join_chan(id, &[&format!("room-{}", id % ROOMS)])
            .unwrap();
    }
}

/// Every client got every message of its streams once, in order.
fn check_exactly_once(ids: &[i64], received: &Received, last: &HashMap<String, u64>) {
    let mut messages = 0;
    for &id in ids {
        let room = format!("c:room-{}", id % ROOMS);
        let mut next: HashMap<String, u64> = HashMap::new();
        for text in received.get(&id).map(Vec::as_slice).unwrap_or_default() {
            let text = text.trim_matches('"');
            let (stream, seq) = text.rsplit_once(':').unwrap();
            let seq: u64 = seq.parse().unwrap();
            assert!(
                stream == format!("p:{id}") || stream == room,
                "client {id} got {text}, not for it"
            );
            let expected = next.entry(stream.to_string()).or_insert(1);
            assert_eq!(
                seq, *expected,
                "client {id}: {stream} out of order or repeated"
            );
            *expected += 1;
            messages += 1;
        }
        for stream in [format!("p:{id}"), room] {
            let sent = last.get(&stream).copied().unwrap_or(0);
            let got = next.get(&stream).map_or(0, |n| n - 1);
            assert_eq!(
                got, sent,
                "client {id}: {stream}: {got} of {sent} messages arrived"
            );
        }
    }
    assert!(messages > 0);
}

fn no_presence_events(spy: &Spy) {
    let seen = spy.collect(QUIET);
    assert!(
        seen.is_empty(),
        "presence events fired: {:?}",
        &seen[..seen.len().min(5)]
    );
}

/// Waits until everything sent arrived (a lower bound: `delivered` counts
/// deliveries, a channel message makes several).
fn settle(fleet: &Fleet) {
    let mut last = fleet.total();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = fleet.total();
        if now == last {
            return;
        }
        last = now;
    }
}

/// A node serving `n` clients (each in one of the rooms) under paced load,
/// watched for presence events.
struct Scene {
    setup: Setup,
    old: Proc,
    im: ImHelper,
    ids: Vec<i64>,
    fleet: Fleet,
    spy: Spy,
    load: Load,
}

impl Scene {
    fn start(n: i64, p2p_per_sec: u64, chan_per_sec: u64) -> Scene {
        let setup = Setup::new();
        let old = setup.start_node(&[]);
        let im = setup.helper();
        let ids: Vec<i64> = (1..=n).collect();
        let fleet = Fleet::connect(&im, &ids);
        join_rooms(&im, &ids);
        wait_online_count(&setup, ids.len());
        let spy = setup.spy();
        let load = Load::start(&setup, &ids, p2p_per_sec, chan_per_sec);
        Scene {
            setup,
            old,
            im,
            ids,
            fleet,
            spy,
            load,
        }
    }
}

#[test]
fn two_thousand_connections_move_to_a_new_process_under_load() {
    let Scene {
        setup,
        mut old,
        im,
        ids,
        fleet,
        spy,
        load,
    } = Scene::start(2000, 1000, 100);
    std::thread::sleep(Duration::from_secs(1));

    let mut new = Proc::spawn(&setup.args(&["--upgrade"]), &[]);
    new.wait_line("took over 2000 connections", Duration::from_secs(20));
    let status = old
        .wait_exit(Duration::from_secs(10))
        .expect("old process exits");
    assert!(status.success(), "old process: {status:?}");
    std::thread::sleep(Duration::from_secs(1));
    let sent_during = load.sent.load(Ordering::Relaxed);
    let last = load.stop();
    settle(&fleet);
    no_presence_events(&spy);

    // Presence is what it was: every client counted once, every socket
    // known under its new name, the lease the new process's.
    let online = online_all(&setup.redis);
    assert_eq!(online.len(), 2000);
    assert!(online.values().all(|count| count == "1"), "{online:?}");
    let node = hgetall(&setup.redis, &setup.keys().node(&setup.server));
    assert_eq!(node.len(), 2000);
    let alive = setup.keys().alive(&setup.server);
    let holder: String = redis::cmd("GET")
        .arg(&alive)
        .query(&mut redis_conn(&setup.redis, &alive))
        .unwrap();
    assert!(
        holder.contains(&format!("{}@", new.child.id())),
        "lease: {holder}"
    );
    assert!(new.running());

    // The new process serves: a client closing now is announced offline
    // (its socket known under the new name), and new clients connect.
    let mut late = connect_as(&im, 5001, "late");
    late.ws.send(Message::Close(None)).unwrap();
    let seen = spy.collect(Duration::from_secs(1));
    assert_eq!(seen.len(), 2, "online then offline of 5001: {seen:?}");

    fleet.finish(&ids, &last);
    assert!(sent_during > 1000);
}

/// Waits until `n` clients are counted online.
fn wait_online_count(setup: &Setup, n: usize) {
    assert!(
        wait_until(PROMPTLY, || online_all(&setup.redis).len() == n),
        "{n} clients online"
    );
}

#[test]
fn a_new_process_killed_mid_hand_over_leaves_the_old_one_serving() {
    let Scene {
        setup,
        mut old,
        ids,
        fleet,
        spy,
        load,
        ..
    } = Scene::start(200, 200, 40);

    let mut new = Proc::spawn(
        &setup.args(&["--upgrade"]),
        &[("FREEIM_UPGRADE_FAULT", "stall-before-took")],
    );
    new.wait_line("stalling before Took", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(300)); // commands held meanwhile
    new.child.kill().unwrap();
    new.child.wait().unwrap();
    old.wait_line("abandoned", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    assert!(old.running());
    let (_, metrics) = admin_get(setup.admin, "/metrics");
    assert_eq!(
        admin_metric(&metrics, "freeim_handovers_total{outcome=\"failed\"}"),
        1
    );
    assert_eq!(admin_metric(&metrics, "freeim_connections_open"), 200);

    // Another attempt, not killed, completes; with three loops instead of
    // two (a loop binds a listener of its own; socket names all change).
    let admin = free_port();
    let admin_at = format!("127.0.0.1:{admin}");
    let newer = Proc::spawn(
        &setup.args(&["--upgrade", "--threads", "3", "--admin", &admin_at]),
        &[],
    );
    let node_key = setup.keys().node(&setup.server);
    let sockets_before = sorted_values(hgetall(&setup.redis, &node_key));
    newer.wait_line("took over 200 connections", Duration::from_secs(20));
    // Every socket is still known, under its new name.
    assert!(wait_until(PROMPTLY, || sorted_values(hgetall(
        &setup.redis,
        &node_key
    )) == sockets_before));
    let (_, metrics) = admin_get(admin, "/metrics");
    assert_eq!(
        admin_metric(&metrics, "freeim_handovers_total{outcome=\"taken_over\"}"),
        1
    );
    assert_eq!(
        admin_metric(&metrics, "freeim_handover_connections_total"),
        200
    );
    assert_eq!(admin_metric(&metrics, "freeim_connections_open"), 200);
    assert!(old
        .wait_exit(Duration::from_secs(10))
        .expect("old exits")
        .success());
    std::thread::sleep(Duration::from_millis(500));
    let last = load.stop();
    settle(&fleet);
    no_presence_events(&spy);
    assert_eq!(online_all(&setup.redis).len(), 200);
    fleet.finish(&ids, &last);
}

#[test]
fn a_state_format_the_new_binary_cannot_read_is_refused() {
    let setup = Setup::new();
    let mut old = setup.start_node(&[("FREEIM_UPGRADE_FORMAT", "999")]);
    let im = setup.helper();
    let mut client = connect_as(&im, 7, "seven");
    // Its online event is published first, so the spy does not see it.
    wait_online_count(&setup, 1);
    let spy = setup.spy();
    let mut new = Proc::spawn(&setup.args(&["--upgrade"]), &[]);
    let status = new
        .wait_exit(Duration::from_secs(10))
        .expect("new process exits");
    assert!(!status.success());
    new.wait_line("state format 999", Duration::from_secs(1));
    old.wait_line("refused", Duration::from_secs(5));
    assert!(old.running());
    im.send_message(0, &[7], "still here", false).unwrap();
    assert_eq!(
        client.recv_text(PROMPTLY).as_deref(),
        Some("\"still here\"")
    );
    no_presence_events(&spy);
}

/// A hash's values, sorted.
fn sorted_values(hash: HashMap<String, String>) -> Vec<String> {
    let mut values: Vec<String> = hash.into_values().collect();
    values.sort();
    values
}

#[test]
fn connections_handed_over_on_an_idle_node_are_served_at_once() {
    let setup = Setup::new();
    let mut old = setup.start_node(&[]);
    let im = setup.helper();
    let mut clients: Vec<Client> = (1..=4).map(|id| connect_as(&im, id, "idle")).collect();
    wait_online_count(&setup, 4);
    let spy = setup.spy();
    let new = Proc::spawn(&setup.args(&["--upgrade"]), &[]);
    new.wait_line("took over 4 connections", Duration::from_secs(20));
    assert!(old.wait_exit(PROMPTLY).expect("old exits").success());
    // No push wakes the new loops: the connections are read anyway.
    for client in &mut clients {
        client
            .ws
            .send(Message::Ping(b"are you there".to_vec().into()))
            .unwrap();
        let deadline = Instant::now() + PROMPTLY;
        let pong = loop {
            match client.ws.read() {
                Ok(Message::Pong(payload)) => break Some(payload),
                Ok(_) => {}
                Err(e) if testkit::is_read_timeout(&e) && Instant::now() < deadline => {}
                Err(_) => break None,
            }
        };
        assert_eq!(pong.as_deref(), Some(&b"are you there"[..]));
    }
    // A close is announced once, under the socket's new name.
    clients.pop().unwrap().close();
    let seen = spy.collect(Duration::from_secs(1));
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(online_all(&setup.redis).len(), 3);
}

#[test]
fn sigterm_during_a_hand_over_waits_for_it_then_drains() {
    let setup = Setup::new();
    let old = Proc::spawn(&setup.args(&["--upgrade-timeout", "2s"]), &[]);
    assert!(wait_until(PROMPTLY, || setup.socket.exists()));
    let mut old = old;
    let im = setup.helper();
    let mut client = connect_as(&im, 9, "nine");
    wait_online_count(&setup, 1);
    let mut new = Proc::spawn(
        &setup.args(&["--upgrade", "--upgrade-timeout", "2s"]),
        &[("FREEIM_UPGRADE_FAULT", "stall-before-took")],
    );
    new.wait_line("stalling before Took", Duration::from_secs(20));
    let spy = setup.spy();
    let pid = nix::unistd::Pid::from_raw(old.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    // The hand-over is abandoned at its deadline, the connection taken
    // back, and then drained: closed with 1001, announced offline once.
    assert_eq!(
        client.closed_with(Duration::from_secs(10)),
        Some(tungstenite::protocol::frame::coding::CloseCode::Away)
    );
    assert!(old.wait_exit(PROMPTLY).expect("old exits").success());
    let seen = spy.collect(Duration::from_secs(1));
    assert_eq!(seen.len(), 1, "one offline event: {seen:?}");
    assert!(online_all(&setup.redis).is_empty());
    new.child.kill().unwrap();
}

#[test]
fn a_new_process_on_another_redis_database_is_refused() {
    let setup = Setup::new();
    if single_server(&setup.redis, "numbered databases").is_none() {
        return;
    }
    let mut old = setup.start_node(&[]);
    let mut args = setup.args(&["--upgrade"]);
    let redis = args.iter().position(|a| a == "--redis").unwrap() + 1;
    args[redis] = format!("{}1", setup.redis.url());
    let mut new = Proc::spawn(&args, &[]);
    let status = new
        .wait_exit(Duration::from_secs(10))
        .expect("new process exits");
    assert!(!status.success());
    new.wait_line("Redis database 0, this one in 1", Duration::from_secs(1));
    assert!(old.running());
}

#[test]
fn a_deflate_session_keeps_its_extension_across_a_hand_over() {
    let setup = Setup::new();
    let mut old = setup.start_node(&[]);
    let im = setup.helper();
    let url = im.prev_connect_server(5, "deflate").unwrap();
    let (mut raw, head) = RawWs::open_with(&url, BROWSER_OFFER);
    assert!(head.contains(NODE_ANSWER), "{head}");
    wait_online_count(&setup, 1);
    // Half a compressed message goes over with the connection.
    let text = r#"{"note":"handed over, still compressed, still compressed, still compressed"}"#;
    let data = deflate(text.as_bytes());
    let (first, rest) = data.split_at(data.len() / 2);
    raw.send(&frame(false, 0b100, 0x1, first, Some([1, 2, 3, 4])));
    let new = Proc::spawn(&setup.args(&["--upgrade"]), &[]);
    new.wait_line("took over 1 connections", Duration::from_secs(20));
    assert!(old.wait_exit(PROMPTLY).expect("old exits").success());

    raw.send(&frame(true, 0, 0x0, rest, Some([1, 2, 3, 4])));
    raw.send(&masked(0x9, b"inflated?"));
    let next = |raw: &mut RawWs, opcode: u8| loop {
        match raw.read_frame(PROMPTLY) {
            Got::Frame(f) if f.opcode == opcode => return f,
            Got::Frame(_) => {}
            other => panic!("no frame of opcode {opcode}: {other:?}"),
        }
    };
    let pong = next(&mut raw, 0xA);
    assert_eq!(pong.payload, b"inflated?", "the half message was completed");
    let long = "a message long enough to be compressed: ".repeat(10);
    im.send_message(0, &[5], &long, false).unwrap();
    let message = next(&mut raw, 0x1);
    assert!(message.compressed, "the new process compresses for it");
    let got: String = serde_json::from_slice(&inflate(&message.payload)).unwrap();
    assert_eq!(got, long);
}

#[test]
fn compressed_frames_queued_for_a_slow_reader_go_over_in_order() {
    let setup = Setup::new();
    let mut old = setup.start_node(&[]);
    let im = setup.helper();
    let url = im.prev_connect_server(6, "slow").unwrap();
    // A small kernel window: what the reader leaves unread waits in the
    // node's queue, as compressed frames.
    let addr: std::net::SocketAddr = setup.server.parse().unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(32 * 1024).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut raw = RawWs::from_stream(socket.into());
    let head = raw.handshake_with(&url, BROWSER_OFFER);
    assert!(head.contains(NODE_ANSWER), "{head}");
    wait_online_count(&setup, 1);

    // Ten 2 MiB messages of chat words, about 7 MiB compressed: more than
    // the kernel buffers take, less than --max-send-buffer (8 MiB).
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let messages: Vec<String> = (0..10)
        .map(|i| chat_words(format!("{i}:"), (2 << 20) - 16, &mut seed))
        .collect();
    for text in &messages {
        im.send_message(0, &[6], text, false).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let new = Proc::spawn(&setup.args(&["--upgrade"]), &[]);
    new.wait_line("took over 1 connections", Duration::from_secs(20));
    assert!(old.wait_exit(PROMPTLY).expect("old exits").success());

    for (i, text) in messages.iter().enumerate() {
        let frame = loop {
            match raw.read_frame(4 * PROMPTLY) {
                Got::Frame(f) if f.opcode == 0x1 => break f,
                Got::Frame(f) if f.opcode == 0x9 => {}
                other => panic!("message {i}: {other:?}"),
            }
        };
        assert!(frame.fin && frame.compressed, "message {i}");
        let got: String = serde_json::from_slice(&inflate(&frame.payload)).unwrap();
        assert!(got == *text, "message {i} whole and in order");
    }
}
