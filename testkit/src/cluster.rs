//! [`RedisCluster`]: a Redis Cluster of real `redis-server --cluster-enabled
//! yes` processes on loopback, made by `redis-cli --cluster create`, for the
//! tests of cluster mode and of failover in it; and [`key_slot`], the hash
//! slot of a key.
//!
//! Each node is a [`RedisServer`] with a data directory of its own in one
//! scratch directory (its `nodes-PORT.conf` and its `redis.log`), on a port P
//! below 55535 whose cluster bus port P+10000 was free too. Replicas sync
//! diskless without delay and may always fail over
//! (`cluster-replica-validity-factor 0`); a cluster with a slot down refuses
//! reads too (`cluster-allow-reads-when-down no`).
//!
//! The harness watches the nodes over raw RESP (`CLUSTER INFO`, `CLUSTER
//! NODES`, `INFO replication`), never through the code under test:
//! [`RedisCluster::start`] returns once every node agrees on a healthy cluster
//! with every replica in sync, [`RedisCluster::kill`] SIGKILLs one node and
//! [`RedisCluster::wait_for_failover`] waits until a live master owns the
//! killed master's slots. Every process is killed on drop, then the scratch
//! directory is removed.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::ops::RangeInclusive;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::resp::{query, Reply};
use crate::scratch::ScratchDir;
use crate::{free_port, replication_args, RedisServer};

/// Number of hash slots of a Redis Cluster.
const SLOTS: u16 = 16384;
/// The cluster bus of a node listens on its port plus this.
const BUS_OFFSET: u16 = 10000;
/// How long [`RedisCluster::start`] waits for the cluster to be ready once
/// `redis-cli --cluster create` is done.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Timeout of each question the harness asks a node.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// The Redis Cluster hash slot of `key`: CRC16/XMODEM of its hash tag (the
/// text between the first `{` and the first `}` after it, when that is not
/// empty), otherwise of the whole key, modulo 16384. What `CLUSTER KEYSLOT`
/// answers.
pub fn key_slot(key: &str) -> u16 {
    const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_XMODEM);
    let key = key.as_bytes();
    let tag = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.iter()
            .position(|&b| b == b'}')
            .filter(|&len| len > 0)
            .map(|len| &rest[..len])
    });
    CRC16.checksum(tag.unwrap_or(key)) % SLOTS
}

/// A Redis Cluster of real `redis-server --cluster-enabled yes` processes on
/// loopback; every process is killed on drop.
pub struct RedisCluster {
    /// Every node, in start order (the order given to `redis-cli`).
    nodes: Vec<RedisServer>,
    /// The masters right after creation, in start order: the seeds of
    /// [`url`](Self::url).
    seeds: Vec<u16>,
    /// Dropped last: config, data and log files of every node.
    dir: ScratchDir,
}

impl RedisCluster {
    /// Starts `masters` masters, each with `replicas_per_master` replicas
    /// (0 or 1 in this project's tests; more work too), created with
    /// `redis-cli --cluster create … --cluster-replicas N --cluster-yes`,
    /// slots split evenly by `redis-cli`, `cluster-node-timeout` =
    /// `node_timeout_ms` (tests use 1000). Returns once every node answers
    /// `CLUSTER INFO` with `cluster_state:ok`, every slot covered and every
    /// node known, all nodes name the same owner for every slot, and each
    /// master's `INFO replication` lists its replicas online.
    ///
    /// # Panics
    /// When `masters` is under 3 (`redis-cli` refuses), a process does not
    /// start, `redis-cli --cluster create` fails, or the cluster is not ready
    /// within 20 s after it (the message says what was missing).
    pub fn start(masters: usize, replicas_per_master: usize, node_timeout_ms: u64) -> RedisCluster {
        assert!(
            masters >= 3,
            "redis-cli --cluster create wants at least 3 masters, not {masters}"
        );
        let dir = ScratchDir::new("cluster");
        let nodes: Vec<RedisServer> = (0..masters * (1 + replicas_per_master))
            .map(|_| {
                RedisServer::start_on(cluster_port, |port| node_args(&dir, port, node_timeout_ms))
            })
            .collect();
        create(&nodes, replicas_per_master);
        let mut cluster = RedisCluster {
            nodes,
            seeds: Vec::new(),
            dir,
        };
        cluster.seeds = cluster.wait("ready", READY_TIMEOUT, || {
            cluster.ready(masters, replicas_per_master)
        });
        cluster
    }

    /// The seed URL the project uses for a cluster,
    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/`, listing the
    /// port of every master as created, in start order (a killed master
    /// stays listed: a client must get by with the others).
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .seeds
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        format!("redis+cluster://{}/", hosts.join(","))
    }

    /// Ports of every process (masters and replicas, killed ones too), in
    /// start order.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// The port of the master that owns hash slot `slot` now, in the
    /// `CLUSTER NODES` of the first live node that answers. Right after a
    /// [`kill`](Self::kill) that may be the killed node, until a failover.
    ///
    /// # Panics
    /// When no live node answers, or the one that does names no owner.
    pub fn master_of_slot(&self, slot: u16) -> u16 {
        let view = self.any_view();
        owner(&view, slot)
            .unwrap_or_else(|| panic!("no node owns slot {slot} in {view:?}"))
            .port
    }

    /// Ports of the current masters, sorted: the nodes flagged `master` and
    /// owning slots in the `CLUSTER NODES` of the first live node that
    /// answers, less those [`kill`](Self::kill)ed.
    ///
    /// # Panics
    /// When no live node answers.
    pub fn master_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .any_view()
            .iter()
            .filter(|node| node.master && !node.slots.is_empty() && self.is_live(node.port))
            .map(|node| node.port)
            .collect();
        ports.sort_unstable();
        ports
    }

    /// SIGKILLs the process on `port` (a master, for failover tests); it
    /// stays dead.
    ///
    /// # Panics
    /// When no node of the cluster runs on `port`.
    pub fn kill(&mut self, port: u16) {
        self.nodes
            .iter_mut()
            .find(|node| node.port() == port && node.is_running())
            .unwrap_or_else(|| panic!("no live node of the cluster on port {port}"))
            .kill();
    }

    /// SIGSTOPs the process on `port`: a hung node (connects complete, nothing
    /// is ever answered); the others see it fail after the node timeout.
    ///
    /// # Panics
    /// When no live node of the cluster runs on `port`.
    pub fn pause(&self, port: u16) {
        self.nodes
            .iter()
            .find(|node| node.port() == port && node.is_running())
            .unwrap_or_else(|| panic!("no live node of the cluster on port {port}"))
            .pause();
    }

    /// SIGKILLs every node (the whole cluster down until
    /// [`restart_empty`](Self::restart_empty)).
    pub fn kill_all(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }

    /// Kills every node still running, then starts each again on its port
    /// with its cluster config file (so it knows its peers and slots) and no
    /// data, as after a power cut without persistence; returns once the
    /// cluster is ready again (see [`start`](Self::start)).
    ///
    /// # Panics
    /// When a node does not come up or the cluster is not ready within 20 s.
    pub fn restart_empty(&mut self) {
        self.kill_all();
        for node in &mut self.nodes {
            node.restart();
        }
        let (masters, replicas) = (self.seeds.len(), self.nodes.len() / self.seeds.len() - 1);
        self.seeds = self.wait("ready after a restart", READY_TIMEOUT, || {
            self.ready(masters, replicas)
        });
    }

    /// Waits (up to `timeout`) until every live node names the same live
    /// master, other than `old_port`, as owner of slot `slot`, that master
    /// answers `INFO replication` with `role:master`, and every live node
    /// says `cluster_state:ok` again; returns the new master's port.
    ///
    /// # Panics
    /// On timeout (the message says what was missing).
    pub fn wait_for_failover(&self, slot: u16, old_port: u16, timeout: Duration) -> u16 {
        self.wait(
            &format!("failed over (slot {slot} away from port {old_port})"),
            timeout,
            || self.failed_over(slot, old_port),
        )
    }

    /// Runs one command on the process at `port` with `redis-cli -h
    /// 127.0.0.1 -p port` (no `-c`: a `MOVED` comes back as it is) and
    /// returns its stdout trimmed.
    ///
    /// # Panics
    /// When `redis-cli` cannot be run.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli must be installed (apt-get install redis-tools)");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Moves hash `slot` (and its keys) from the master serving it to master
    /// `to`, as `redis-cli --cluster reshard` does (`SETSLOT IMPORTING` and
    /// `MIGRATING`, `MIGRATE` of its keys, then `SETSLOT NODE` on the new
    /// owner, the old one and the other masters).
    ///
    /// # Panics
    /// When a step is refused.
    pub fn move_slot(&self, slot: u16, to: u16) {
        let from = self.master_of_slot(slot);
        let slot_arg = slot.to_string();
        let id = |port| self.cli(port, &["CLUSTER", "MYID"]);
        let (from_id, to_id) = (id(from), id(to));
        let setslot = |port, state: &str, node: &str| {
            let answer = self.cli(port, &["CLUSTER", "SETSLOT", &slot_arg, state, node]);
            assert_eq!(answer, "OK", "SETSLOT {state} on {port}");
        };
        setslot(to, "IMPORTING", &from_id);
        setslot(from, "MIGRATING", &to_id);
        loop {
            let keys = self.cli(from, &["CLUSTER", "GETKEYSINSLOT", &slot_arg, "100"]);
            if keys.is_empty() {
                break;
            }
            let to_port = to.to_string();
            let mut migrate = vec!["MIGRATE", "127.0.0.1", &to_port, "", "0", "5000", "KEYS"];
            migrate.extend(keys.lines());
            assert_eq!(self.cli(from, &migrate), "OK");
        }
        // The new owner first, then the old one, then the others.
        let others = self
            .master_ports()
            .into_iter()
            .filter(|&port| port != to && port != from);
        for port in [to, from].into_iter().chain(others) {
            setslot(port, "NODE", &to_id);
        }
        assert_eq!(self.master_of_slot(slot), to);
    }

    /// Whether a node of the cluster runs on `port`.
    fn is_live(&self, port: u16) -> bool {
        self.nodes
            .iter()
            .any(|node| node.port() == port && node.is_running())
    }

    /// Ports of the nodes not killed, in start order.
    fn live_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.nodes
            .iter()
            .filter(|node| node.is_running())
            .map(RedisServer::port)
    }

    /// `CLUSTER NODES` of the first live node that answers.
    fn any_view(&self) -> Vec<NodeLine> {
        let mut errors = String::new();
        for port in self.live_ports() {
            match cluster_nodes(port) {
                Ok(view) => return view,
                Err(e) => {
                    let _ = write!(errors, " node {port}: {e};");
                }
            }
        }
        panic!("no live node of the cluster answers CLUSTER NODES:{errors}")
    }

    /// Polls `check` every 50 ms until it returns a value; panics with its
    /// last complaint after `timeout`.
    fn wait<T>(&self, what: &str, timeout: Duration, check: impl Fn() -> Result<T, String>) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let missing = match check() {
                Ok(value) => return value,
                Err(missing) => missing,
            };
            if Instant::now() >= deadline {
                panic!(
                    "Redis Cluster {:?} not {what} within {timeout:?} (files in {}):{missing}",
                    self.ports(),
                    self.dir.path().display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The seeds when the cluster is ready (see [`start`](Self::start)),
    /// otherwise what keeps it from being so.
    fn ready(&self, masters: usize, replicas: usize) -> Result<Vec<u16>, String> {
        let mut missing = String::new();
        let mut first: Option<(u16, Vec<NodeLine>)> = None;
        for port in self.live_ports() {
            let checked = cluster_ok(port, Some(self.nodes.len()))
                .and_then(|()| cluster_nodes(port))
                .and_then(|view| {
                    check_view(&view, masters, replicas)?;
                    check_replication(port, &view, replicas)?;
                    Ok(view)
                });
            match (checked, &first) {
                (Err(e), _) => {
                    let _ = write!(missing, " node {port}: {e};");
                }
                (Ok(view), Some((first_port, first_view))) => {
                    if slot_owners(&view) != slot_owners(first_view) {
                        let _ = write!(
                            missing,
                            " node {port} and node {first_port} name other slot owners;"
                        );
                    }
                }
                (Ok(view), None) => first = Some((port, view)),
            }
        }
        match first {
            Some((_, view)) if missing.is_empty() => Ok(self
                .live_ports()
                .filter(|&port| view.iter().any(|n| n.port == port && n.master))
                .collect()),
            _ => Err(missing),
        }
    }

    /// The new owner of `slot` when the cluster has failed over away from
    /// `old_port` (see [`wait_for_failover`](Self::wait_for_failover)),
    /// otherwise what is missing.
    fn failed_over(&self, slot: u16, old_port: u16) -> Result<u16, String> {
        let mut owners = Vec::new();
        for port in self.live_ports() {
            let owner = cluster_ok(port, None)
                .and_then(|()| cluster_nodes(port))
                .and_then(|view| {
                    owner(&view, slot)
                        .map(|node| node.port)
                        .ok_or_else(|| format!("no owner of slot {slot}"))
                })
                .map_err(|e| format!(" node {port}: {e};"))?;
            owners.push(owner);
        }
        owners.dedup();
        match owners[..] {
            [new] if new != old_port && self.is_live(new) => {
                let replication = info(new, &["INFO", "replication"])
                    .map_err(|e| format!(" owner {new}: {e};"))?;
                match field(&replication, "role") {
                    Some("master") => Ok(new),
                    role => Err(format!(" owner {new} says role {role:?};")),
                }
            }
            _ => Err(format!(" the live nodes name {owners:?} as owners;")),
        }
    }
}

/// A free port P below 55535 whose cluster bus port P+10000 was free too.
fn cluster_port() -> u16 {
    for _ in 0..1000 {
        let port = free_port();
        if port < u16::MAX - BUS_OFFSET
            && TcpListener::bind(("127.0.0.1", port + BUS_OFFSET)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port P below 55535 with P+10000 free in 1000 tries")
}

/// The `redis-server` arguments of the cluster node on `port`, its files in
/// a subdirectory of `dir`.
fn node_args(dir: &ScratchDir, port: u16, node_timeout_ms: u64) -> Vec<String> {
    let data = dir.subdir(&format!("node-{port}"));
    let mut args = replication_args(&data);
    args.extend(
        [
            "--logfile",
            &data.join("redis.log").to_string_lossy(),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            &format!("nodes-{port}.conf"),
            "--cluster-node-timeout",
            &node_timeout_ms.to_string(),
            "--cluster-replica-validity-factor",
            "0",
            "--cluster-allow-reads-when-down",
            "no",
        ]
        .map(String::from),
    );
    args
}

/// `redis-cli --cluster create` of `nodes` with `replicas` replicas a master.
fn create(nodes: &[RedisServer], replicas: usize) {
    let output = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(
            nodes
                .iter()
                .map(|node| format!("127.0.0.1:{}", node.port())),
        )
        .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli must be installed (apt-get install redis-tools)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("[OK] All 16384 slots covered"),
        "redis-cli --cluster create failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// One line of `CLUSTER NODES`.
#[derive(Debug)]
struct NodeLine {
    id: String,
    port: u16,
    /// Flagged `master`.
    master: bool,
    /// Flagged `fail` or `fail?`.
    failing: bool,
    /// The id of its master, for a replica.
    master_id: Option<String>,
    /// The slots it owns (not those it imports or migrates).
    slots: Vec<RangeInclusive<u16>>,
}

/// `CLUSTER NODES` on `port`, parsed.
fn cluster_nodes(port: u16) -> Result<Vec<NodeLine>, String> {
    info(port, &["CLUSTER", "NODES"])?
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(parse_node_line)
        .collect()
}

/// `<id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent>
/// <pong-recv> <config-epoch> <link-state> <slot> <slot> …`
fn parse_node_line(line: &str) -> Result<NodeLine, String> {
    let bad = || format!("bad CLUSTER NODES line {line:?}");
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 8 {
        return Err(bad());
    }
    let port = fields[1]
        .split('@')
        .next()
        .and_then(|address| address.rsplit(':').next())
        .and_then(|port| port.parse().ok())
        .ok_or_else(bad)?;
    let flags: Vec<&str> = fields[2].split(',').collect();
    let slots = fields[8..]
        .iter()
        .filter(|slot| !slot.starts_with('['))
        .map(|slot| {
            let (start, end) = slot.split_once('-').unwrap_or((slot, slot));
            Some(start.parse().ok()?..=end.parse().ok()?)
        })
        .collect::<Option<_>>()
        .ok_or_else(bad)?;
    Ok(NodeLine {
        id: fields[0].to_string(),
        port,
        master: flags.contains(&"master"),
        failing: flags.iter().any(|flag| matches!(*flag, "fail" | "fail?")),
        master_id: (fields[3] != "-").then(|| fields[3].to_string()),
        slots,
    })
}

/// The node of `view` that owns `slot`.
fn owner(view: &[NodeLine], slot: u16) -> Option<&NodeLine> {
    view.iter()
        .find(|node| node.slots.iter().any(|range| range.contains(&slot)))
}

/// Every slot range of `view` with the port of its owner, sorted.
fn slot_owners(view: &[NodeLine]) -> Vec<(u16, u16, u16)> {
    let mut owners: Vec<(u16, u16, u16)> = view
        .iter()
        .flat_map(|node| {
            node.slots
                .iter()
                .map(|range| (*range.start(), *range.end(), node.port))
        })
        .collect();
    owners.sort_unstable();
    owners
}

/// Ok when `view` has `masters` masters owning slots, each with `replicas`
/// replicas, and flags no node as failing.
fn check_view(view: &[NodeLine], masters: usize, replicas: usize) -> Result<(), String> {
    if let Some(node) = view.iter().find(|node| node.failing) {
        return Err(format!("node {} flagged failing", node.port));
    }
    let owners: Vec<&NodeLine> = view.iter().filter(|node| !node.slots.is_empty()).collect();
    if owners.len() != masters || owners.iter().any(|node| !node.master) {
        return Err(format!(
            "{} nodes own slots, not {masters} masters",
            owners.len()
        ));
    }
    for master in owners {
        let count = view
            .iter()
            .filter(|node| node.master_id.as_ref() == Some(&master.id))
            .count();
        if count != replicas {
            return Err(format!(
                "master {} has {count} replicas, not {replicas}",
                master.port
            ));
        }
    }
    Ok(())
}

/// Ok when the node on `port` is, by `INFO replication`, a master with
/// `replicas` replicas online or a replica with its link up, as `view` (its
/// own `CLUSTER NODES`) says it should be.
fn check_replication(port: u16, view: &[NodeLine], replicas: usize) -> Result<(), String> {
    let replication = info(port, &["INFO", "replication"])?;
    let master = view
        .iter()
        .find(|node| node.port == port)
        .is_some_and(|node| node.master);
    match field(&replication, "role") {
        Some("master") if master => {
            let online = replication
                .lines()
                .filter(|line| line.starts_with("slave") && line.contains("state=online"))
                .count();
            if online == replicas {
                Ok(())
            } else {
                Err(format!("{online} replicas online, not {replicas}"))
            }
        }
        Some("slave") if !master => match field(&replication, "master_link_status") {
            Some("up") => Ok(()),
            status => Err(format!("replica link {status:?}")),
        },
        role => Err(format!(
            "role {role:?} in INFO replication, master {master} in CLUSTER NODES"
        )),
    }
}

/// Ok when `CLUSTER INFO` on `port` says `cluster_state:ok` with every slot
/// covered, and (when given) that it knows `known` nodes.
fn cluster_ok(port: u16, known: Option<usize>) -> Result<(), String> {
    let text = info(port, &["CLUSTER", "INFO"])?;
    let slots = SLOTS.to_string();
    let known = known.map(|known| known.to_string());
    let wanted = [
        ("cluster_state", Some("ok")),
        ("cluster_slots_ok", Some(slots.as_str())),
        ("cluster_known_nodes", known.as_deref()),
    ];
    for (key, value) in wanted {
        if value.is_some() && field(&text, key) != value {
            return Err(format!("CLUSTER INFO {key}:{:?}", field(&text, key)));
        }
    }
    Ok(())
}

/// The bulk-string answer of `args` on `port` (`INFO`, `CLUSTER INFO`,
/// `CLUSTER NODES`).
fn info(port: u16, args: &[&str]) -> Result<String, String> {
    match query(port, args, ASK_TIMEOUT) {
        Ok(Reply::Bulk(Some(text))) => Ok(text),
        Ok(other) => Err(format!("{args:?} answered {other:?}")),
        Err(e) => Err(format!("{args:?}: {e}")),
    }
}

/// The value of `key` in `key:value` lines (`INFO`, `CLUSTER INFO`).
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        line.trim_end()
            .strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(':'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_slot_hashes_the_tag_or_the_key() {
        // The CRC16 check value of the cluster spec, and slots it lists.
        assert_eq!(key_slot("123456789"), 0x31C3);
        assert_eq!(key_slot("foo"), 12182);
        assert_eq!(key_slot("{user1000}.following"), key_slot("user1000"));
        assert_eq!(key_slot("{user1000}.followers"), key_slot("user1000"));
        // An empty tag counts as none; the tag ends at the first `}`.
        assert_eq!(key_slot("foo{}{bar}"), key_slot_of_bytes(b"foo{}{bar}"));
        assert_eq!(key_slot("foo{{bar}}zap"), key_slot("{bar"));
        assert_eq!(key_slot("foo{bar"), key_slot_of_bytes(b"foo{bar"));
    }

    fn key_slot_of_bytes(key: &[u8]) -> u16 {
        crc::Crc::<u16>::new(&crc::CRC_16_XMODEM).checksum(key) % SLOTS
    }

    #[test]
    fn parses_cluster_nodes_lines() {
        let node = parse_node_line(
            "e7d1 127.0.0.1:30001@40001,host myself,master - 0 0 1 connected 0-5460 7000 [5461->-abcd]",
        )
        .unwrap();
        assert_eq!(node.port, 30001);
        assert!(node.master && !node.failing && node.master_id.is_none());
        assert_eq!(node.slots, vec![0..=5460, 7000..=7000]);
        let node = parse_node_line("07c3 127.0.0.1:30004@40004 slave,fail e7d1 0 0 1 disconnected")
            .unwrap();
        assert!(!node.master && node.failing);
        assert_eq!(node.master_id.as_deref(), Some("e7d1"));
        assert!(parse_node_line("e7d1 127.0.0.1:x@1 master - 0 0 1 connected").is_err());
    }
}
