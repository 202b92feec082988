//! Names of every Redis key and pub/sub channel (`docs/protocol.md`, "Keys" and
//! "Pub/sub channels"). Nothing else in the crate formats a key.

/// The key and channel names of one cluster, all under one prefix.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    /// `prefix = "im_v2" + path.replace('/', "_")`.
    pub(crate) fn new(path: &str) -> Keys {
        Keys {
            prefix: format!("im_v2{}", path.replace('/', "_")),
        }
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{prefix}Token{token}`: the connect token, a string with a 10 s TTL.
    pub(crate) fn token(&self, token: &str) -> String {
        format!("{}Token{token}", self.prefix)
    }

    /// `{prefix}Online`: hash clientId -> open socket count.
    pub(crate) fn online(&self) -> String {
        format!("{}Online", self.prefix)
    }

    /// `{prefix}ChanChanged` (this project's own pub/sub channel): join and
    /// leave publish the channel's name there, so Rust nodes can cache members.
    pub(crate) fn chan_changed(&self) -> String {
        format!("{}ChanChanged", self.prefix)
    }

    /// `{prefix}Chan{chan}`: hash member clientId -> 0.
    pub(crate) fn chan(&self, chan: &str) -> String {
        format!("{}Chan{chan}", self.prefix)
    }

    /// `{prefix}Client{clientId}`: hash channel -> 0. Takes an id, or a
    /// member field exactly as read from a `Chan` hash.
    pub(crate) fn client(&self, client_id: impl std::fmt::Display) -> String {
        format!("{}Client{client_id}", self.prefix)
    }

    /// `{prefix}ListChan`: hash channel -> member count.
    pub(crate) fn list_chan(&self) -> String {
        format!("{}ListChan", self.prefix)
    }

    /// `{prefix}Server{server}`: the command channel of one node.
    pub(crate) fn server(&self, server: &str) -> String {
        format!("{}Server{server}", self.prefix)
    }

    /// `evt_{prefix}Online`: published by a node when a socket opens.
    pub(crate) fn online_event(&self) -> String {
        format!("evt_{}Online", self.prefix)
    }

    /// `evt_{prefix}Offline`: published by a node when a socket closes.
    pub(crate) fn offline_event(&self) -> String {
        format!("evt_{}Offline", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_path_names() {
        let k = Keys::new("/ws");
        assert_eq!(k.prefix(), "im_v2_ws");
        assert_eq!(k.token("ab"), "im_v2_wsTokenab");
        assert_eq!(k.online(), "im_v2_wsOnline");
        assert_eq!(k.chan("room"), "im_v2_wsChanroom");
        assert_eq!(k.client(-5), "im_v2_wsClient-5");
        assert_eq!(k.client("007"), "im_v2_wsClient007");
        assert_eq!(k.list_chan(), "im_v2_wsListChan");
        assert_eq!(k.server("10.0.0.1:6001"), "im_v2_wsServer10.0.0.1:6001");
        assert_eq!(k.online_event(), "evt_im_v2_wsOnline");
        assert_eq!(k.offline_event(), "evt_im_v2_wsOffline");
    }

    #[test]
    fn nested_path_replaces_every_slash() {
        assert_eq!(Keys::new("/im/ws").prefix(), "im_v2_im_ws");
        assert_eq!(Keys::new("/").prefix(), "im_v2_");
    }
}
