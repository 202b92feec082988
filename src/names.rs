//! This node's place in the cluster: its own name, the `servers` list it
//! partitions clients over, and the Redis names of every node in the layout
//! Redis calls for (one Redis: FreeIM's names; a Redis Cluster: each node's
//! names under its own hash tag). The wire contract itself, names, layouts
//! and routing rule, is `freeim_protocol`'s.

use freeim_protocol::{key_slot, server_index, Directory, Keys, Layout};

/// The cluster as one node sees it.
#[derive(Debug, Clone)]
pub struct Names {
    directory: Directory,
    /// This node's names (its entry of `directory`, kept at hand).
    keys: Keys,
    /// Their hash slot.
    slot: u16,
    server: String,
    servers: Vec<String>,
}

impl Names {
    /// The names for node `server` of `servers`, whose WebSocket path is
    /// `path` (which names the Redis keys), in `layout`.
    ///
    /// # Panics
    /// When `servers` is empty or lacks `server` (the settings refuse that
    /// first).
    pub fn new(path: &str, server: &str, servers: &[String], layout: Layout) -> Names {
        assert!(!servers.is_empty(), "a cluster has at least one server");
        let directory = Directory::new(layout, path, servers);
        let keys = directory.of(server).clone();
        Names {
            slot: key_slot(&keys.online()),
            keys,
            directory,
            server: server.to_string(),
            servers: servers.to_vec(),
        }
    }

    /// This node's Redis key and channel names.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The names of the node owning `client_id` (where its receipts go).
    pub fn owner_keys(&self, client_id: i64) -> &Keys {
        self.directory.owner(client_id).1
    }

    /// Node `server`'s names (this node's own, or another node's to publish
    /// a receipt to or reap).
    pub fn keys_of(&self, server: &str) -> &Keys {
        self.directory.of(server)
    }

    /// How names are laid out (and whether pub/sub is sharded).
    pub fn layout(&self) -> Layout {
        self.directory.layout()
    }

    /// The hash slot of every one of this node's names (meaningful in the
    /// sharded layout, where they share one).
    pub fn slot(&self) -> u16 {
        self.slot
    }

    /// This node's own name (`host:port`).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The cluster's servers, in partition order.
    pub fn servers(&self) -> &[String] {
        &self.servers
    }

    /// The server that owns `client_id` (FreeIM's `clientId mod len(servers)`).
    pub fn select_server(&self, client_id: i64) -> &str {
        &self.servers[server_index(client_id, self.servers.len())]
    }

    /// Whether this node is the one `client_id` is partitioned to.
    pub fn owns(&self, client_id: i64) -> bool {
        self.select_server(client_id) == self.server
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_owns_the_ids_routed_to_its_name() {
        let servers = vec!["a:1".to_string(), "b:2".to_string(), "c:3".to_string()];
        let names = Names::new("/ws", "b:2", &servers, Layout::Single);
        assert_eq!(names.select_server(4), "b:2");
        assert_eq!(names.select_server(-5), "a:1");
        assert!(names.owns(7));
        assert!(!names.owns(8));
        assert_eq!(names.keys().server(names.server()), "im_v2_wsServerb:2");
    }
}
