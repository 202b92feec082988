//! [`TestRedis`]: the Redis an end-to-end suite runs against, one
//! `redis-server` or a Redis Cluster, chosen by the `FREEIM_TEST_REDIS`
//! environment variable, so the same suite checks both modes
//! (`scripts/test.sh` runs the suites once in each).
//!
//! Commands on keys go to the server that holds the key (in a cluster: the
//! master owning its hash slot), so a suite reads and writes the same way in
//! both modes; the names themselves are the caller's (the layout differs).

use std::sync::Mutex;

use crate::{key_slot, raw_command, RedisCluster, RedisServer, Subscription};

/// The environment variable choosing the mode: `single` (or unset) or
/// `cluster`.
pub const MODE_VARIABLE: &str = "FREEIM_TEST_REDIS";

/// A Redis for an end-to-end suite; every process is killed on drop.
pub struct TestRedis {
    backend: Backend,
    /// The node list the suite's nodes were started with (see
    /// [`set_servers`](Self::set_servers)).
    servers: Mutex<Vec<String>>,
}

enum Backend {
    Single(RedisServer),
    Cluster(RedisCluster),
}

impl TestRedis {
    /// Starts the mode `FREEIM_TEST_REDIS` names: `single` (default) is a
    /// fresh [`RedisServer`]; `cluster` is a [`RedisCluster`] of 3 masters
    /// without replicas, `cluster-node-timeout` 1000 ms.
    ///
    /// # Panics
    /// On another value, or when the servers do not start.
    pub fn start() -> TestRedis {
        let backend = match std::env::var(MODE_VARIABLE).as_deref() {
            Err(_) | Ok("" | "single") => Backend::Single(RedisServer::start()),
            Ok("cluster") => Backend::Cluster(RedisCluster::start(3, 0, 1000)),
            Ok(other) => panic!("{MODE_VARIABLE}={other:?}: expected `single` or `cluster`"),
        };
        TestRedis {
            backend,
            servers: Mutex::new(Vec::new()),
        }
    }

    /// Whether this is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.backend, Backend::Cluster(_))
    }

    /// The URL `--redis` and `ImHelper` take: `redis://127.0.0.1:P/` or the
    /// cluster's `redis+cluster://…` seed list.
    pub fn url(&self) -> String {
        match &self.backend {
            Backend::Single(server) => server.url(),
            Backend::Cluster(cluster) => cluster.url(),
        }
    }

    /// The one server, when this is not a cluster (for a suite's checks that
    /// only mean something on one server).
    pub fn single(&self) -> Option<&RedisServer> {
        match &self.backend {
            Backend::Single(server) => Some(server),
            Backend::Cluster(_) => None,
        }
    }

    /// The cluster, when this is one.
    pub fn cluster(&self) -> Option<&RedisCluster> {
        match &self.backend {
            Backend::Single(_) => None,
            Backend::Cluster(cluster) => Some(cluster),
        }
    }

    /// The port of the server holding `key` (or serving channel `key`'s
    /// sharded subscribers): the one server, or the master owning the key's
    /// hash slot now.
    pub fn port_of(&self, key: &str) -> u16 {
        match &self.backend {
            Backend::Single(server) => server.port(),
            Backend::Cluster(cluster) => cluster.master_of_slot(key_slot(key)),
        }
    }

    /// The ports of every master (the one server's alone when not a cluster).
    pub fn masters(&self) -> Vec<u16> {
        match &self.backend {
            Backend::Single(server) => vec![server.port()],
            Backend::Cluster(cluster) => cluster.master_ports(),
        }
    }

    /// Runs a command whose first argument is a key (`args[1]`) on the
    /// server holding that key; returns the reply's first line, as
    /// [`raw_command`] does.
    ///
    /// # Panics
    /// When `args` has no key, or the server does not answer.
    pub fn raw_command(&self, args: &[&str]) -> String {
        let key = args.get(1).expect("a command on a key: [NAME, KEY, …]");
        raw_command(self.port_of(key), args)
    }

    /// Runs a command that names no key (`CLIENT KILL`, `CONFIG SET`) on
    /// every master; returns each reply's first line.
    pub fn on_every_master(&self, args: &[&str]) -> Vec<String> {
        self.masters()
            .into_iter()
            .map(|port| raw_command(port, args))
            .collect()
    }

    /// The command publishing a message: `PUBLISH`, or `SPUBLISH` in a
    /// cluster (what the nodes subscribe with there).
    pub fn publish_verb(&self) -> &'static str {
        if self.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        }
    }

    /// Publishes `payload` on `channel` (see [`publish_verb`](Self::publish_verb));
    /// returns how many subscribers heard it.
    ///
    /// # Panics
    /// When Redis answers anything but a count.
    pub fn publish(&self, channel: &str, payload: &str) -> i64 {
        let reply = self.raw_command(&[self.publish_verb(), channel, payload]);
        reply
            .strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{} {channel} answered {reply}", self.publish_verb()))
    }

    /// Subscribes to `channels` on the servers that carry them: one
    /// `SUBSCRIBE` connection for all of them (so their messages keep the
    /// order they were published in), or on a cluster one `SSUBSCRIBE`
    /// connection per hash slot, on the master owning it (messages of one
    /// slot keep their order).
    ///
    /// # Panics
    /// When a subscription is refused.
    pub fn subscribe(&self, channels: &[String]) -> Vec<Subscription> {
        let mut groups: Vec<(u16, Vec<String>)> = Vec::new();
        for channel in channels {
            let group = if self.is_cluster() {
                key_slot(channel)
            } else {
                0
            };
            match groups.iter_mut().find(|(g, _)| *g == group) {
                Some((_, members)) => members.push(channel.clone()),
                None => groups.push((group, vec![channel.clone()])),
            }
        }
        let verb = if self.is_cluster() {
            "SSUBSCRIBE"
        } else {
            "SUBSCRIBE"
        };
        groups
            .into_iter()
            .map(|(_, members)| {
                Subscription::open(self.port_of(&members[0]), verb, &members)
                    .unwrap_or_else(|e| panic!("{verb} {members:?}: {e}"))
            })
            .collect()
    }

    /// Kills every server (no Redis at all until [`restart`](Self::restart)).
    pub fn kill(&mut self) {
        match &mut self.backend {
            Backend::Single(server) => server.kill(),
            Backend::Cluster(cluster) => cluster.kill_all(),
        }
    }

    /// Starts every server again, empty (a cluster keeps its slot map); see
    /// [`RedisServer::restart`] and [`RedisCluster::restart_empty`].
    pub fn restart(&mut self) {
        match &mut self.backend {
            Backend::Single(server) => server.restart(),
            Backend::Cluster(cluster) => cluster.restart_empty(),
        }
    }

    /// Records the node list (`--servers`) the suite's nodes run with, for
    /// the suite to work out names from; the last call wins.
    pub fn set_servers(&self, servers: &[String]) {
        *self.servers.lock().unwrap_or_else(|e| e.into_inner()) = servers.to_vec();
    }

    /// The node list last given to [`set_servers`](Self::set_servers).
    pub fn servers(&self) -> Vec<String> {
        self.servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
