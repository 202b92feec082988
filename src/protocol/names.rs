//! Redis key and pub/sub channel names, and the `clientId mod servers` partition.

/// Every name a node derives from its `path`, its own `server` and the
/// cluster's `servers` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
    server: String,
    servers: Vec<String>,
}

impl Names {
    /// Builds the names for a node. `prefix` is `"im_v2" + path.replace('/', "_")`.
    pub fn new(path: &str, server: &str, servers: &[String]) -> Names {
        Names {
            prefix: format!("im_v2{}", path.replace('/', "_")),
            server: server.to_string(),
            servers: servers.to_vec(),
        }
    }

    /// The key and channel prefix, `im_v2_ws` for the default path.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// This node's own name (`host:port`).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The cluster's servers, in partition order.
    pub fn servers(&self) -> &[String] {
        &self.servers
    }

    /// The server that owns `client_id`: `servers[client_id mod len]`, falling
    /// back to the first server for negative ids, as FreeIM does.
    pub fn select_server(&self, client_id: i64) -> &str {
        let index = usize::try_from(client_id % self.servers.len() as i64).unwrap_or(0);
        &self.servers[index]
    }

    /// Whether this node is the one `client_id` is partitioned to.
    pub fn owns(&self, client_id: i64) -> bool {
        self.select_server(client_id) == self.server
    }

    /// `{prefix}Token{token}`: the one-time connection token.
    pub fn token_key(&self, token: &str) -> String {
        format!("{}Token{}", self.prefix, token)
    }

    /// `{prefix}Online`: clientId → open sockets, cluster-wide.
    pub fn online_key(&self) -> String {
        format!("{}Online", self.prefix)
    }

    /// `{prefix}Chan{chan}`: the members of a channel.
    pub fn chan_key(&self, chan: &str) -> String {
        format!("{}Chan{}", self.prefix, chan)
    }

    /// `{prefix}Server{server}`: the command channel of `server`.
    pub fn server_channel(&self, server: &str) -> String {
        format!("{}Server{}", self.prefix, server)
    }

    /// `evt_{prefix}Online`: where online events are published.
    pub fn online_event_channel(&self) -> String {
        format!("evt_{}Online", self.prefix)
    }

    /// `evt_{prefix}Offline`: where offline events are published.
    pub fn offline_event_channel(&self) -> String {
        format!("evt_{}Offline", self.prefix)
    }

    /// `{prefix}ChanChanged` (this project's own pub/sub channel): the name of
    /// every channel whose members changed, for the nodes' member caches.
    pub fn chan_changed_channel(&self) -> String {
        format!("{}ChanChanged", self.prefix)
    }

    /// `{prefix}Node{server}` (this project's own key): every socket that node
    /// holds, socket name → `clientId|event`, so a dead node's sockets can be
    /// taken out of `Online` again, each with its own offline event.
    pub fn node_key(&self, server: &str) -> String {
        format!("{}Node{}", self.prefix, server)
    }

    /// `{prefix}Alive{server}` (this project's own key): a lease a live node
    /// keeps refreshing; when it lapses, any node reaps that node's presence.
    pub fn alive_key(&self, server: &str) -> String {
        format!("{}Alive{}", self.prefix, server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        let servers = vec!["a:1".to_string(), "b:2".to_string(), "c:3".to_string()];
        Names::new("/ws", "b:2", &servers)
    }

    #[test]
    fn keys_follow_freeim_naming() {
        let names = names();
        assert_eq!(names.prefix(), "im_v2_ws");
        assert_eq!(names.token_key("ab"), "im_v2_wsTokenab");
        assert_eq!(names.online_key(), "im_v2_wsOnline");
        assert_eq!(names.chan_key("room"), "im_v2_wsChanroom");
        assert_eq!(names.server_channel("b:2"), "im_v2_wsServerb:2");
        assert_eq!(names.online_event_channel(), "evt_im_v2_wsOnline");
        assert_eq!(names.offline_event_channel(), "evt_im_v2_wsOffline");
    }

    #[test]
    fn nested_path_becomes_underscores() {
        let names = Names::new("/chat/ws", "a:1", &["a:1".to_string()]);
        assert_eq!(names.prefix(), "im_v2_chat_ws");
    }

    #[test]
    fn partition_is_client_id_mod_len() {
        let names = names();
        assert_eq!(names.select_server(0), "a:1");
        assert_eq!(names.select_server(4), "b:2");
        assert_eq!(names.select_server(i64::MAX), "b:2");
        assert_eq!(names.select_server(-5), "a:1");
        assert!(names.owns(7));
        assert!(!names.owns(8));
    }
}
