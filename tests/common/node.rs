//! `freeim-server` processes: a node on a free port (started, restarted,
//! terminated, killed), clusters of them, and what can be read from one
//! (raw HTTP status, resident size, still serving).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use freeim_protocol::Keys;

use super::{node_keys, publish, raw_token, wait_until, Client, TestRedis, PROMPTLY};

/// A loopback port for a node that was free a moment ago.
///
/// Picked at random *below* the kernel's ephemeral range (32768–60999 by
/// default) and never handed out twice in one test process: a port from the
/// ephemeral range can be taken, between the pick and the node's `bind`, by
/// any outgoing connection (the tests open many) or by another test's pick,
/// and then the node fails to start while the harness, seeing something
/// accept on the port, talks to the wrong process.
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    for _ in 0..1000 {
        let port = 20_000 + rand::random::<u16>() % 12_000;
        if given.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    testkit::free_port()
}

/// A `freeim-server` child process, killed on drop.
pub struct Node {
    pub server: String,
    pub port: u16,
    /// This node's Redis names (tagged on a cluster).
    pub keys: Keys,
    child: Option<Child>,
    args: Vec<String>,
}

impl Node {
    /// Starts a one-node cluster on a free port.
    pub fn start(redis: &TestRedis) -> Node {
        let port = free_port();
        let server = format!("127.0.0.1:{port}");
        Node::start_in(redis, &server, std::slice::from_ref(&server), &[])
    }

    /// Starts node `server` of the cluster `servers` with extra arguments.
    pub fn start_in(redis: &TestRedis, server: &str, servers: &[String], extra: &[&str]) -> Node {
        redis.set_servers(servers);
        Node::launch(&redis.url(), server, server, servers, extra)
    }

    /// Starts node `server` of `servers` on the Redis at `redis_url` (any
    /// form `--redis` takes: a forwarder, Sentinel, TLS).
    pub fn start_on(redis_url: &str, server: &str, servers: &[String], extra: &[&str]) -> Node {
        Node::launch(redis_url, server, server, servers, extra)
    }

    /// Starts node `server` of `servers` behind a proxy: clients reach it as
    /// `server`, it listens on `listen`.
    pub fn start_proxied(
        redis: &TestRedis,
        server: &str,
        servers: &[String],
        listen: &str,
    ) -> Node {
        redis.set_servers(servers);
        Node::launch(&redis.url(), server, listen, servers, &[])
    }

    /// Starts node `server` of `servers` listening on `listen`, with two
    /// loops unless `extra` says otherwise.
    fn launch(
        redis_url: &str,
        server: &str,
        listen: &str,
        servers: &[String],
        extra: &[&str],
    ) -> Node {
        let port: u16 = listen.rsplit(':').next().unwrap().parse().unwrap();
        let mut args = vec![
            "--listen".to_string(),
            listen.to_string(),
            "--redis".into(),
            redis_url.to_string(),
            "--server".into(),
            server.to_string(),
            "--servers".into(),
            servers.join(";"),
        ];
        if !extra.contains(&"--threads") {
            args.extend(["--threads".to_string(), "2".to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let path = extra
            .iter()
            .position(|&arg| arg == "--path")
            .map_or("/ws", |at| extra[at + 1]);
        let keys = node_keys(redis_url, path, servers, server);
        let mut node = Node {
            server: server.to_string(),
            port,
            keys,
            child: None,
            args,
        };
        node.restart();
        node
    }

    /// (Re)starts the process with the same arguments and waits until it accepts.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(env!("CARGO_BIN_EXE_freeim-server"))
            .args(&self.args)
            .env("FREEIM_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start freeim-server");
        self.child = Some(child);
        let port = self.port;
        let mut exited = None;
        let up = wait_until(PROMPTLY, || {
            exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            exited.is_some() || TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(exited.is_none(), "node on port {port} exited: {exited:?}");
        assert!(up, "node on port {port} did not start");
    }

    /// Starts another process under `server`'s name, listening on `listen`.
    pub fn start_named(redis: &TestRedis, server: &str, listen: &str, extra: &[&str]) -> Node {
        let servers = [server.to_string()];
        redis.set_servers(&servers);
        Node::launch(&redis.url(), server, listen, &servers, extra)
    }

    /// Waits (up to `timeout`) for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let mut status = None;
        wait_until(timeout, || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }

    /// Sends SIGTERM and waits (up to `timeout`) for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process with SIGKILL (no drain, no cleanup).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a raw HTTP request and returns the response head's status code.
    pub fn raw_status(&self, request: &[u8]) -> u16 {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(PROMPTLY)).unwrap();
        stream.write_all(request).unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let text = String::from_utf8_lossy(&response);
        text.split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Node {
    /// Starts a one-node cluster on a free port with extra arguments.
    pub fn start_with(redis: &TestRedis, extra: &[&str]) -> Node {
        let server = format!("127.0.0.1:{}", free_port());
        Node::start_in(redis, &server, std::slice::from_ref(&server), extra)
    }

    /// The `{prefix}Server{server}` command channel of this node.
    pub fn channel(&self) -> String {
        self.keys.server(&self.server)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

/// Starts an `n`-node cluster, every node on a free port, `servers` in order.
pub fn start_cluster(redis: &TestRedis, n: usize, extra: &[&str]) -> Vec<Node> {
    let servers: Vec<String> = (0..n)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    servers
        .iter()
        .map(|server| Node::start_in(redis, server, &servers, extra))
        .collect()
}

/// Asserts that `node` admits a new client and delivers a message to it.
pub fn assert_still_serves(redis: &TestRedis, node: &Node) {
    let id = 900_000 + i64::from(rand::random::<u16>());
    let url = raw_token(redis, node, id, "probe");
    let mut client = Client::connect(&url).expect("the node still upgrades a good client");
    let command = format!(r#"{{"Item1":0,"Item2":[{id}],"Item3":"\"still here\"","Item4":false}}"#);
    assert_eq!(publish(redis, &node.channel(), &command), 1);
    assert_eq!(
        client.recv_text(PROMPTLY).as_deref(),
        Some("\"still here\""),
        "the node still delivers to a good client"
    );
    client.close();
}

/// A process's resident set size, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
