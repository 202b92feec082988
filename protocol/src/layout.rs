//! Where each node's names live: FreeIM's layout for one Redis, or the
//! sharded layout for a Redis Cluster (`docs/protocol.md` §11).
//!
//! **Single** ([`Layout::Single`]): every name under one prefix (`im_v2_ws`),
//! plain `PUBLISH`/`SUBSCRIBE`; byte for byte FreeIM 2.x.
//!
//! **Sharded** ([`Layout::Sharded`]): the names of node `server` (its keys,
//! its command channel, its presence, the channel memberships of the clients
//! it owns, the tokens of those clients, its presence events) all start with a
//! hash tag of its own, `{<server>#<n>}`, so every Lua script touches one
//! slot and stays atomic, and each node's traffic goes to one shard. `<n>`
//! (from 0 to 4095) puts the tag's slot nearest the middle of the node's equal
//! share of the slot space (node `i` of `N` distinct servers: the middle of
//! slots `i·16384/N` to `(i+1)·16384/N − 1`; the smallest such `<n>` on a
//! tie), so nodes spread evenly over shards that own equal slot ranges (what
//! `redis-cli --cluster create` makes): with as many nodes as shards, one node
//! per shard. Pub/sub is sharded
//! (`SPUBLISH`/`SSUBSCRIBE`): a message goes to the one shard owning its
//! channel's slot instead of to every shard.

use crate::keys::Keys;

/// Number of hash slots in a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// How names are laid out, see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One Redis (or a Sentinel-managed primary): FreeIM's names.
    Single,
    /// A Redis Cluster: each node's names under its own hash tag.
    Sharded,
}

impl Layout {
    /// The layout for a Redis Cluster (`cluster`: the Redis URL names one,
    /// `redis+cluster://`) or for any other Redis.
    pub fn for_redis(cluster: bool) -> Layout {
        match cluster {
            true => Layout::Sharded,
            false => Layout::Single,
        }
    }

    /// The publish command: `PUBLISH`, or `SPUBLISH` when sharded.
    pub fn publish(self) -> &'static str {
        match self {
            Layout::Single => "PUBLISH",
            Layout::Sharded => "SPUBLISH",
        }
    }

    /// The subscribe command: `SUBSCRIBE`, or `SSUBSCRIBE` when sharded.
    pub fn subscribe(self) -> &'static str {
        match self {
            Layout::Single => "SUBSCRIBE",
            Layout::Sharded => "SSUBSCRIBE",
        }
    }

    /// A script's source for this layout: its `PUBLISH` calls become
    /// `SPUBLISH` when sharded (the channels they name share the keys' slot).
    pub fn script(self, source: &str) -> String {
        match self {
            Layout::Single => source.to_string(),
            Layout::Sharded => source.replace("'PUBLISH'", "'SPUBLISH'"),
        }
    }
}

/// The Redis Cluster hash slot of `key`: CRC16 (XMODEM) of its hash tag (the
/// text between the first `{` and the next `}`, if not empty) or else of the
/// whole key, modulo 16384.
pub fn key_slot(key: &str) -> u16 {
    const CRC: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_XMODEM);
    let bytes = key.as_bytes();
    let hashed = match key.find('{') {
        Some(open) => match key[open + 1..].find('}') {
            Some(0) | None => bytes,
            Some(len) => &bytes[open + 1..open + 1 + len],
        },
        None => bytes,
    };
    CRC.checksum(hashed) % SLOTS
}

/// Every node's names, by server name.
#[derive(Debug, Clone)]
pub struct Directory {
    layout: Layout,
    /// `(server, its names)`, one entry per distinct server, in list order.
    nodes: Vec<(String, Keys)>,
    /// For each place of the list as given (a server may appear twice), its
    /// entry in `nodes`: routing a client is two index lookups.
    places: Vec<usize>,
}

impl Directory {
    /// The names of the cluster `servers` (the `--servers` list) for the
    /// nodes' WebSocket `path`.
    pub fn new(layout: Layout, path: &str, servers: &[String]) -> Directory {
        let mut distinct: Vec<&String> = Vec::new();
        for server in servers {
            if !distinct.contains(&server) {
                distinct.push(server);
            }
        }
        let count = distinct.len();
        let nodes: Vec<(String, Keys)> = distinct
            .into_iter()
            .enumerate()
            .map(|(index, server)| {
                let keys = match layout {
                    Layout::Single => Keys::new(path),
                    Layout::Sharded => Keys::tagged(path, &shard_tag(server, index, count)),
                };
                (server.clone(), keys)
            })
            .collect();
        let places = servers
            .iter()
            .map(|server| nodes.iter().position(|(name, _)| name == server))
            .collect::<Option<_>>()
            .expect("every server of the list has an entry");
        Directory {
            layout,
            nodes,
            places,
        }
    }

    /// The node owning `client_id` (`servers[id mod len]`, see
    /// [`crate::server_index`]) and its names.
    pub fn owner(&self, client_id: i64) -> (&str, &Keys) {
        let place = self.places[crate::server_index(client_id, self.places.len())];
        let (server, keys) = &self.nodes[place];
        (server, keys)
    }

    /// The distinct sets of names a cluster-wide read must visit: one (every
    /// node shares FreeIM's names) in the single layout, one per node when
    /// sharded.
    pub fn partitions(&self) -> impl Iterator<Item = &Keys> {
        let count = match self.layout {
            Layout::Single => 1,
            Layout::Sharded => self.nodes.len(),
        };
        self.nodes.iter().take(count).map(|(_, keys)| keys)
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The names of node `server`.
    ///
    /// # Panics
    /// When `server` is not in the list (a caller's bug: names are only
    /// asked for servers of the list).
    pub fn of(&self, server: &str) -> &Keys {
        &self
            .nodes
            .iter()
            .find(|(name, _)| name == server)
            .unwrap_or_else(|| panic!("{server} is not in the servers list"))
            .1
    }

    /// Every distinct node with its names, in list order.
    pub fn nodes(&self) -> impl Iterator<Item = (&str, &Keys)> {
        self.nodes
            .iter()
            .map(|(server, keys)| (server.as_str(), keys))
    }
}

/// Candidates tried for a node's hash tag.
const TAG_CANDIDATES: u32 = 4096;

/// The hash tag of node `server`, distinct server `index` of `count`: the
/// `<server>#<n>` whose slot is nearest the middle of the node's share of
/// the slots (see the [module docs](self)).
pub fn shard_tag(server: &str, index: usize, count: usize) -> String {
    // In 1/(2·count)ths of the slot space, to stay in integers.
    let middle = 2 * index + 1;
    let distance = |n: &u32| {
        let slot = usize::from(key_slot(&format!("{server}#{n}")));
        (slot * 2 * count).abs_diff(middle * usize::from(SLOTS))
    };
    let n = (0..TAG_CANDIDATES)
        .min_by_key(distance)
        .expect("there are candidates");
    format!("{server}#{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from `redis-cli CLUSTER KEYSLOT` (Redis 7.0).
        assert_eq!(key_slot("foo"), 12182);
        assert_eq!(key_slot("{user1000}.following"), key_slot("user1000"));
        assert_eq!(key_slot("foo{}{bar}"), key_slot("foo{}{bar}"));
        assert_eq!(key_slot("foo{{bar}}zap"), key_slot("{bar"));
        assert_eq!(key_slot("123456789"), 0x31C3 % SLOTS);
    }

    #[test]
    fn two_nodes_on_three_equal_shards_use_two_shards() {
        let servers = ["a:1".to_string(), "b:2".to_string()];
        let directory = Directory::new(Layout::Sharded, "/ws", &servers);
        let shard =
            |server: &str| usize::from(key_slot(&directory.of(server).online())) * 3 / 16384;
        assert_eq!((shard("a:1"), shard("b:2")), (0, 2));
    }

    #[test]
    fn single_layout_is_freeims() {
        let servers = ["a:1".to_string(), "b:2".to_string()];
        let directory = Directory::new(Layout::Single, "/ws", &servers);
        assert_eq!(directory.of("b:2").online(), "im_v2_wsOnline");
        assert_eq!(directory.partitions().count(), 1);
        assert_eq!(directory.owner(3).0, "b:2");
        assert_eq!(
            Layout::Single.script("redis.call('PUBLISH', c)"),
            "redis.call('PUBLISH', c)"
        );
    }

    #[test]
    fn sharded_names_share_one_slot_per_node_and_spread() {
        let servers: Vec<String> = (1..=6).map(|i| format!("10.0.0.{i}:6001")).collect();
        let directory = Directory::new(Layout::Sharded, "/ws", &servers);
        let mut shares = Vec::new();
        for (index, (server, keys)) in directory.nodes().enumerate() {
            let slot = key_slot(&keys.online());
            for name in [
                keys.node(server),
                keys.alive(server),
                keys.server(server),
                keys.online_event(),
                keys.offline_event(),
                keys.chan_changed(),
                keys.chan("room"),
                keys.client(42),
                keys.list_chan(),
                keys.token("t"),
            ] {
                assert_eq!(key_slot(&name), slot, "{name}");
            }
            shares.push(usize::from(slot) * 6 / usize::from(SLOTS));
            assert_eq!(shares[index], index);
            // Near the middle of its share: within a 24th of the space.
            let middle = (2 * index + 1) * usize::from(SLOTS) / 12;
            assert!(usize::from(slot).abs_diff(middle) < usize::from(SLOTS) / 24);
        }
        assert!(directory
            .of("10.0.0.1:6001")
            .online()
            .starts_with("{10.0.0.1:6001#"));
        assert_eq!(directory.partitions().count(), 6);
        assert_eq!(directory.owner(7).1, directory.of("10.0.0.2:6001"));
        assert_eq!(
            Layout::Sharded.script("redis.call('PUBLISH', c)"),
            "redis.call('SPUBLISH', c)"
        );
    }
}
