//! Test harness shared by the workspace's integration tests.
//!
//! Everything here starts *real* processes on free loopback ports and stops
//! them when dropped. Tests never talk to a mock.
//!
//! | item | file | what |
//! |---|---|---|
//! | [`RedisServer`] | `lib.rs` | the machine's `redis-server`, plain TCP |
//! | [`raw_command`] | `resp.rs` | one command over a raw RESP connection |
//! | [`Forwarder`] | `forwarder.rs` | a TCP forwarder that can go silent (hung proxy, forgotten NAT flow) |
//! | [`SentinelSet`] | `sentinel.rs` | a primary, a replica and three `redis-sentinel`s; kill the primary, wait for the failover |
//! | [`RedisCluster`], [`key_slot`] | `cluster.rs` | a Redis Cluster of `--cluster-enabled` servers made by `redis-cli --cluster create`; kill a master, wait for its replica to take its slots, move a slot |
//! | [`TestRedis`] | `test_redis.rs` | the Redis of an end-to-end suite: one server or a cluster, by `FREEIM_TEST_REDIS`; commands routed to the key's server |
//! | [`Subscription`] | `subscription.rs` | a raw `SUBSCRIBE`/`SSUBSCRIBE` connection |
//! | [`TlsRedis`] | `tls.rs` | a TLS-only, password-protected `redis-server` with a throwaway CA |
//! | [`Node`], [`node_binary`] | `node.rs` | a `freeim-server` process, for the tests of other packages |
//!
//! Config files, certificates and server data go to a fresh directory under
//! the system's temp dir, removed on drop.

#![deny(missing_docs)]

mod cluster;
mod forwarder;
mod node;
mod resp;
mod scratch;
mod sentinel;
mod subscription;
mod test_redis;
mod tls;

pub use cluster::{key_slot, RedisCluster};
pub use forwarder::Forwarder;
pub use node::{node_binary, Node};
pub use resp::raw_command;
pub use sentinel::SentinelSet;
pub use subscription::Subscription;
pub use test_redis::{TestRedis, MODE_VARIABLE};
pub use tls::TlsRedis;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child process listening on `127.0.0.1:port`, killed on drop.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// Extra command-line arguments, passed again on [`restart`](Self::restart).
    args: Vec<String>,
}

impl RedisServer {
    /// Starts a fresh, empty, non-persistent `redis-server` on a free port and
    /// waits until it answers `PING`.
    ///
    /// # Panics
    /// When `redis-server` is not installed or does not come up within 10 s.
    pub fn start() -> RedisServer {
        RedisServer::start_with(Vec::new())
    }

    /// [`start`](Self::start) with extra `redis-server` arguments (after the
    /// harness's own, so they win).
    pub(crate) fn start_with(args: Vec<String>) -> RedisServer {
        RedisServer::start_on(free_port, |_| args.clone())
    }

    /// [`start_with`](Self::start_with) on a port from `pick_port`, with
    /// arguments made for that port by `args` (they may name it).
    pub(crate) fn start_on(
        pick_port: impl Fn() -> u16,
        args: impl Fn(u16) -> Vec<String>,
    ) -> RedisServer {
        // Another process may take the port between `pick_port` and the
        // server's bind: then the server exits at once, and we try another.
        for _ in 0..5 {
            let port = pick_port();
            let mut server = RedisServer {
                port,
                child: None,
                args: args(port),
            };
            if server.try_start() {
                return server;
            }
        }
        panic!("redis-server did not come up on any of 5 free ports");
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `redis://` URL of the server.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL): every client connection drops at once and the
    /// data set is lost.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again, empty, on the same port (after [`kill`](Self::kill)).
    ///
    /// # Panics
    /// When the server does not come up within 10 s.
    pub fn restart(&mut self) {
        assert!(
            self.try_start(),
            "redis-server on port {} did not answer PING",
            self.port
        );
    }

    /// Starts the server on `self.port`; false when it exits or stays silent.
    fn try_start(&mut self) -> bool {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if ping(self.port) {
                return true;
            }
            let exited = self
                .child
                .as_mut()
                .is_some_and(|child| !matches!(child.try_wait(), Ok(None)));
            if exited {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }

    /// SIGSTOPs the server: a hung server. The kernel still completes TCP
    /// connects to it (its listen backlog), but it never reads or answers.
    /// It is killed on drop like any other.
    ///
    /// # Panics
    /// When the server is not running, or `kill -STOP` fails.
    pub(crate) fn pause(&self) {
        let pid = self.pid().expect("a running server has a pid");
        let stopped = Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .is_ok_and(|status| status.success());
        assert!(
            stopped,
            "kill -STOP {pid} (redis-server on port {}) failed",
            self.port
        );
    }

    /// Whether the process runs (it was started and not killed).
    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The process id, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Runs one command through a raw RESP connection and returns the reply's
    /// first line (enough for assertions on integers, strings and errors);
    /// see [`raw_command`].
    pub fn raw_command(&self, args: &[&str]) -> String {
        raw_command(self.port, args)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `redis-server` arguments for a server that keeps its files in `dir` and
/// syncs its replicas diskless, without delay (for the sets of servers that
/// replicate: [`SentinelSet`], [`RedisCluster`]).
pub(crate) fn replication_args(dir: &Path) -> Vec<String> {
    [
        "--dir",
        &dir.to_string_lossy(),
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "0",
    ]
    .map(String::from)
    .to_vec()
}

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind an ephemeral port")
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes; returns
/// whether it held. Tests use this instead of fixed sleeps.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

/// Opens a WebSocket to a `ws://host:port/path?…` URL over plain TCP,
/// waiting up to 10 s for the answer, with a 100 ms read timeout afterwards
/// so tests can poll with deadlines ([`is_read_timeout`] tells such a
/// timeout from a real error).
pub fn ws_connect(url: &str) -> Result<tungstenite::WebSocket<TcpStream>, Box<tungstenite::Error>> {
    let authority = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap_or_default();
    let stream = TcpStream::connect(authority).map_err(|e| Box::new(e.into()))?;
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| Box::new(e.into()))?;
    // The answer waits for the node's token check in Redis: on a loaded
    // machine that outlasts one read timeout, so keep reading until the
    // handshake deadline (reads after the handshake keep the short timeout).
    let deadline = Instant::now() + HANDSHAKE_DEADLINE;
    let mut attempt = tungstenite::client(url, stream);
    loop {
        match attempt {
            Ok((ws, _)) => return Ok(ws),
            Err(tungstenite::HandshakeError::Failure(e)) => return Err(Box::new(e)),
            Err(tungstenite::HandshakeError::Interrupted(mid)) if Instant::now() < deadline => {
                attempt = mid.handshake();
            }
            Err(tungstenite::HandshakeError::Interrupted(_)) => {
                return Err(Box::new(tungstenite::Error::ConnectionClosed))
            }
        }
    }
}

/// Longest [`ws_connect`] waits for the `101` (or a refusal).
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

/// Whether a WebSocket read error only means the read timeout passed.
pub fn is_read_timeout(error: &tungstenite::Error) -> bool {
    matches!(
        error,
        tungstenite::Error::Io(e)
            if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
    )
}
