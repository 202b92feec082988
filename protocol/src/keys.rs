//! Every Redis key and pub/sub channel name (`docs/protocol.md`, "Keys" and
//! "Pub/sub channels"), all under one prefix derived from the nodes' path.

/// The names of one cluster: `prefix = "im_v2" + path.replace('/', "_")`
/// (`im_v2_ws` for FreeIM's default path `/ws`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// The names for the nodes' WebSocket `path` (e.g. `/ws`).
    pub fn new(path: &str) -> Keys {
        Keys {
            prefix: format!("im_v2{}", path.replace('/', "_")),
        }
    }

    /// The names of one node in the sharded layout: every name starts with
    /// the hash tag `{tag}` (see [`crate::layout`]).
    pub fn tagged(path: &str, tag: &str) -> Keys {
        Keys {
            prefix: format!("{{{tag}}}{}", Keys::new(path).prefix),
        }
    }

    /// The prefix of every name, `im_v2_ws` for `/ws`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{prefix}Token{token}`: a connect token, a string with a 10 s TTL whose
    /// value is a [`ClientTicket`](crate::ClientTicket).
    pub fn token(&self, token: &str) -> String {
        format!("{}Token{token}", self.prefix)
    }

    /// `{prefix}Online`: hash clientId → open socket count, cluster-wide.
    pub fn online(&self) -> String {
        format!("{}Online", self.prefix)
    }

    /// `{prefix}Chan{chan}`: hash member clientId → `0`.
    pub fn chan(&self, chan: &str) -> String {
        format!("{}Chan{chan}", self.prefix)
    }

    /// `{prefix}Client{clientId}`: hash channel → `0`. Takes an id, or a
    /// member field exactly as read from a `Chan` hash.
    pub fn client(&self, client_id: impl std::fmt::Display) -> String {
        format!("{}Client{client_id}", self.prefix)
    }

    /// `{prefix}ListChan`: hash channel → member count.
    pub fn list_chan(&self) -> String {
        format!("{}ListChan", self.prefix)
    }

    /// `{prefix}Server{server}`: the command channel of node `server`.
    pub fn server(&self, server: &str) -> String {
        format!("{}Server{server}", self.prefix)
    }

    /// `evt_{prefix}Online`: where a node publishes a socket's online event.
    pub fn online_event(&self) -> String {
        format!("evt_{}Online", self.prefix)
    }

    /// `evt_{prefix}Offline`: where a node publishes a socket's offline event.
    pub fn offline_event(&self) -> String {
        format!("evt_{}Offline", self.prefix)
    }

    /// `{prefix}ChanChanged` (this project's own channel): the name of every
    /// channel whose members changed, for the nodes' member caches.
    pub fn chan_changed(&self) -> String {
        format!("{}ChanChanged", self.prefix)
    }

    /// `{prefix}Node{server}` (this project's own key): hash socket name →
    /// `clientId|event` of every socket node `server` holds, so a dead node's
    /// sockets can be taken out of `Online` again, each with its offline event.
    pub fn node(&self, server: &str) -> String {
        format!("{}Node{server}", self.prefix)
    }

    /// `{prefix}Alive{server}` (this project's own key): a lease a live node
    /// keeps refreshing; when it lapses, any node reaps that node's presence.
    pub fn alive(&self, server: &str) -> String {
        format!("{}Alive{server}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors::KEYS;

    #[test]
    fn every_name_matches_its_vector() {
        let keys = Keys::new("/ws");
        let built = [
            keys.prefix().to_string(),
            keys.token("ab"),
            keys.online(),
            keys.chan("room"),
            keys.client(-5),
            keys.client("007"),
            keys.list_chan(),
            keys.server("10.0.0.1:6001"),
            keys.online_event(),
            keys.offline_event(),
            keys.chan_changed(),
            keys.node("10.0.0.1:6001"),
            keys.alive("10.0.0.1:6001"),
        ];
        let expected: Vec<&str> = KEYS.iter().map(|(_, wire)| *wire).collect();
        assert_eq!(built.to_vec(), expected);
    }

    #[test]
    fn every_slash_of_the_path_becomes_an_underscore() {
        assert_eq!(Keys::new("/im/ws").prefix(), "im_v2_im_ws");
        assert_eq!(Keys::new("/").prefix(), "im_v2_");
    }
}
