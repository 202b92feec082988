//! [`SentinelSet`]: a Redis primary, one replica and three `redis-sentinel`
//! processes monitoring them, all on free loopback ports, for failover tests.
//!
//! Each sentinel gets its own config file in a scratch directory (a sentinel
//! rewrites its config as it learns), announces `127.0.0.1`, and uses IP
//! addresses only (`sentinel resolve-hostnames no`). The primary and the
//! replica sync diskless without delay and keep their data files in the
//! scratch directory, which is removed on drop after every process is killed.
//!
//! [`SentinelSet::kill_primary`] SIGKILLs whichever server the sentinels name
//! as primary now; [`SentinelSet::wait_for_failover`] waits until they name
//! the other one and it answers `ROLE` as master.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::resp::{query, Reply};
use crate::scratch::ScratchDir;
use crate::{free_port, replication_args, RedisServer};

/// Quorum of the monitored master: two of the three sentinels.
const QUORUM: u32 = 2;
/// `failover-timeout`: also how long a sentinel waits before it retries a
/// failover that did not happen (twice this).
const FAILOVER_TIMEOUT_MS: u64 = 3000;
/// How long [`SentinelSet::start`] waits for the set to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Timeout of each question the harness asks a server or a sentinel.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// A primary, a replica and three sentinels monitoring them as
/// `master_name` (quorum 2); every process is killed on drop.
pub struct SentinelSet {
    master_name: String,
    /// The first primary and its replica, in start order.
    servers: Vec<RedisServer>,
    sentinels: Vec<Sentinel>,
    /// Dropped last: config and data files of every process.
    dir: ScratchDir,
}

/// One `redis-sentinel` process.
struct Sentinel {
    port: u16,
    child: Child,
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SentinelSet {
    /// Starts a primary, a replica of it and three sentinels monitoring the
    /// primary as `master_name` with quorum 2, `down-after-milliseconds` =
    /// `down_after_ms`, a 3 s `failover-timeout` and `parallel-syncs` 1; then
    /// waits until the replica is in sync (`master_link_status:up`) and every
    /// sentinel sees the primary as up, the replica with a working link, and
    /// the other two sentinels.
    ///
    /// # Panics
    /// When a process does not start, or the set is not ready within 20 s
    /// (the message says what was missing).
    pub fn start(master_name: &str, down_after_ms: u64) -> SentinelSet {
        let dir = ScratchDir::new("sentinel");
        let server_args = |name: &str| replication_args(&dir.subdir(name));
        let primary = RedisServer::start_with(server_args("primary"));
        let mut replica_args = server_args("replica");
        replica_args.extend([
            "--replicaof".into(),
            "127.0.0.1".into(),
            primary.port().to_string(),
        ]);
        let replica = RedisServer::start_with(replica_args);
        let sentinels = (0..3)
            .map(|i| Sentinel::start(dir.path(), i, master_name, primary.port(), down_after_ms))
            .collect();
        let set = SentinelSet {
            master_name: master_name.to_string(),
            servers: vec![primary, replica],
            sentinels,
            dir,
        };
        set.wait_ready();
        set
    }

    /// `redis+sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/{master_name}`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/{}", hosts.join(","), self.master_name)
    }

    /// The name the sentinels monitor the primary as.
    pub fn master_name(&self) -> &str {
        &self.master_name
    }

    /// The sentinels' ports, in the order of [`url`](Self::url).
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(|s| s.port).collect()
    }

    /// The port of the server the sentinels name as primary now
    /// (`SENTINEL get-master-addr-by-name` on the first sentinel that
    /// answers). It may be a dead server, until a failover.
    ///
    /// # Panics
    /// When no sentinel answers with an address.
    pub fn primary_port(&self) -> u16 {
        let mut errors = String::new();
        for sentinel in &self.sentinels {
            match self.ask_primary(sentinel.port) {
                Ok(port) => return port,
                Err(e) => {
                    let _ = write!(errors, " sentinel {}: {e};", sentinel.port);
                }
            }
        }
        panic!(
            "no sentinel names a primary for {:?}:{errors}",
            self.master_name
        )
    }

    /// SIGKILLs the server the sentinels name as primary now; it stays dead.
    ///
    /// # Panics
    /// When that server is not running (already killed).
    pub fn kill_primary(&mut self) {
        self.current_primary().kill();
    }

    /// SIGSTOPs the server the sentinels name as primary now: a hung server.
    /// The kernel still completes TCP connects to it (its listen backlog),
    /// but it never reads or answers; the sentinels see it down as if killed.
    /// It is killed on drop like the others.
    ///
    /// # Panics
    /// When that server is not running, or `kill -STOP` fails.
    pub fn pause_primary(&mut self) {
        self.current_primary().pause();
    }

    /// Waits until the sentinels name a server other than `old_port` as
    /// primary and that server answers `ROLE` as `master`; returns its port.
    ///
    /// # Panics
    /// When that does not happen within `timeout`.
    pub fn wait_for_failover(&self, old_port: u16, timeout: Duration) -> u16 {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no sentinel asked yet");
        loop {
            for sentinel in &self.sentinels {
                match self.ask_primary(sentinel.port) {
                    Ok(port) if port == old_port => {
                        last = format!("sentinel {} still names {port}", sentinel.port);
                    }
                    Ok(port) => match role(port) {
                        Ok(role) if role == "master" => return port,
                        Ok(role) => last = format!("{port} is named but says ROLE {role}"),
                        Err(e) => last = format!("{port} is named but ROLE failed: {e}"),
                    },
                    Err(e) => last = format!("sentinel {}: {e}", sentinel.port),
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "no failover of {:?} away from port {old_port} within {timeout:?}: {last}",
                    self.master_name
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The running server the sentinels name as primary.
    fn current_primary(&mut self) -> &mut RedisServer {
        let port = self.primary_port();
        self.servers
            .iter_mut()
            .find(|s| s.port() == port && s.is_running())
            .unwrap_or_else(|| {
                panic!("the primary the sentinels name (port {port}) is not running")
            })
    }

    /// `SENTINEL get-master-addr-by-name` on one sentinel: the port.
    fn ask_primary(&self, sentinel: u16) -> Result<u16, String> {
        let reply = query(
            sentinel,
            &["SENTINEL", "get-master-addr-by-name", &self.master_name],
            ASK_TIMEOUT,
        )
        .map_err(|e| e.to_string())?;
        match reply.items() {
            [_, port] => port
                .text()
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("bad address reply {reply:?}")),
            _ => Err(format!("no address: {reply:?}")),
        }
    }

    /// Waits until the set is ready (see [`start`](Self::start)); panics with
    /// what is still missing after [`READY_TIMEOUT`].
    fn wait_ready(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let missing = self.missing();
            if missing.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "SentinelSet {:?} not ready within {READY_TIMEOUT:?} (files in {}):{missing}",
                    self.master_name,
                    self.dir.path().display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What keeps the set from being ready; empty when it is.
    fn missing(&self) -> String {
        let mut missing = String::new();
        let replica = self.servers[1].port();
        match query(replica, &["INFO", "replication"], ASK_TIMEOUT) {
            Ok(Reply::Bulk(Some(info))) if info.contains("master_link_status:up") => {}
            other => {
                let _ = write!(missing, " replica {replica} not in sync ({other:?});");
            }
        }
        for sentinel in &self.sentinels {
            let master = query(
                sentinel.port,
                &["SENTINEL", "master", &self.master_name],
                ASK_TIMEOUT,
            );
            let replicas = query(
                sentinel.port,
                &["SENTINEL", "replicas", &self.master_name],
                ASK_TIMEOUT,
            );
            let (master, replicas) = match (master, replicas) {
                (Ok(master), Ok(replicas)) => (master, replicas),
                (Err(e), _) | (_, Err(e)) => {
                    let _ = write!(missing, " sentinel {}: {e};", sentinel.port);
                    continue;
                }
            };
            let flags = master.field("flags");
            let others = master.field("num-other-sentinels");
            let replica_ok = replicas.items().iter().any(|r| {
                r.field("port") == Some(&replica.to_string())
                    && r.field("flags") == Some("slave")
                    && r.field("master-link-status") == Some("ok")
            });
            if flags != Some("master") || others != Some("2") || !replica_ok {
                let _ = write!(
                    missing,
                    " sentinel {}: master flags {flags:?}, other sentinels {others:?}, replica seen in sync {replica_ok};",
                    sentinel.port
                );
            }
        }
        missing
    }
}

impl Drop for SentinelSet {
    fn drop(&mut self) {
        // Sentinels first, so none reconfigures a server while it goes.
        self.sentinels.clear();
        for server in &mut self.servers {
            server.kill();
        }
    }
}

impl Sentinel {
    /// Starts sentinel number `index` with its config in `dir`, on a free
    /// port (retrying when the port was taken meanwhile).
    fn start(dir: &Path, index: usize, master: &str, primary: u16, down_after_ms: u64) -> Sentinel {
        let config_path = dir.join(format!("sentinel-{index}.conf"));
        for _ in 0..5 {
            let port = free_port();
            let config = format!(
                "port {port}\n\
                 bind 127.0.0.1\n\
                 protected-mode no\n\
                 daemonize no\n\
                 logfile \"\"\n\
                 dir \"{dir}\"\n\
                 sentinel resolve-hostnames no\n\
                 sentinel announce-ip 127.0.0.1\n\
                 sentinel monitor {master} 127.0.0.1 {primary} {QUORUM}\n\
                 sentinel down-after-milliseconds {master} {down_after_ms}\n\
                 sentinel failover-timeout {master} {FAILOVER_TIMEOUT_MS}\n\
                 sentinel parallel-syncs {master} 1\n",
                dir = dir.display()
            );
            std::fs::write(&config_path, config)
                .unwrap_or_else(|e| panic!("write {}: {e}", config_path.display()));
            let child = Command::new("redis-sentinel")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-sentinel must be installed (apt-get install redis-sentinel)");
            let mut sentinel = Sentinel { port, child };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if matches!(query(port, &["PING"], ASK_TIMEOUT), Ok(Reply::Status(pong)) if pong == "PONG")
                {
                    return sentinel;
                }
                if !matches!(sentinel.child.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("redis-sentinel {index} did not come up on any of 5 free ports");
    }
}

/// The first element of `ROLE` on `127.0.0.1:port` (`master`, `slave`, …).
fn role(port: u16) -> Result<String, String> {
    let reply = query(port, &["ROLE"], ASK_TIMEOUT).map_err(|e| e.to_string())?;
    reply
        .items()
        .first()
        .and_then(Reply::text)
        .map(str::to_string)
        .ok_or_else(|| format!("bad ROLE reply {reply:?}"))
}
