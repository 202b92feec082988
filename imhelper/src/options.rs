//! [`ImHelperOptions`]: where Redis is, which nodes make up the cluster.

use std::time::Duration;

use crate::error::{Error, Result};

/// The WebSocket path nodes serve by default.
pub(crate) const DEFAULT_PATH: &str = "/ws";

/// The default connect/read/write timeout for Redis.
pub(crate) const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(5);

/// How to reach Redis and the ImServer cluster.
///
/// `servers` must list the cluster's nodes exactly as the nodes list them
/// (same strings, same order): a client id is routed to
/// `servers[client_id mod servers.len()]`.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use imhelper::ImHelperOptions;
///
/// let mut options = ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["10.0.0.1:6001".into()]);
/// options.path = "/chat".to_string();
/// options.io_timeout = Duration::from_secs(2);
/// assert_eq!(options.servers, ["10.0.0.1:6001"]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImHelperOptions {
    /// The Redis URL, e.g. `redis://127.0.0.1:6379/` or
    /// `redis://:password@host:6379/0`.
    pub redis_url: String,
    /// The cluster's nodes as `host:port`, in the cluster's order.
    pub servers: Vec<String>,
    /// The WebSocket path of the nodes; starts with `/`. Default `/ws`.
    pub path: String,
    /// Connect, read and write timeout for every Redis round-trip, so no call
    /// hangs while Redis is down or frozen. Default 5 s; must not be zero.
    pub io_timeout: Duration,
    /// Clients reach the nodes through a TLS-terminating proxy (e.g. nginx):
    /// `prev_connect_server` returns `wss://` URLs instead of `ws://`.
    /// The `servers` names are then the proxy's `host:port` for each node.
    /// Default `false`.
    pub secure: bool,
}

impl ImHelperOptions {
    /// Options with the default path (`/ws`) and I/O timeout (5 s).
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use imhelper::ImHelperOptions;
    ///
    /// let options = ImHelperOptions::new("redis://127.0.0.1/", vec!["127.0.0.1:6001".into()]);
    /// assert_eq!(options.path, "/ws");
    /// assert_eq!(options.io_timeout, Duration::from_secs(5));
    /// ```
    pub fn new(redis_url: impl Into<String>, servers: Vec<String>) -> Self {
        ImHelperOptions {
            redis_url: redis_url.into(),
            servers,
            path: DEFAULT_PATH.to_string(),
            io_timeout: DEFAULT_IO_TIMEOUT,
            secure: false,
        }
    }

    /// Checks everything that can be checked without Redis. The URL itself
    /// is checked by `redis::Client::open` in `ImHelper::new`.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.servers.is_empty() {
            return Err(Error::Config("servers must list at least one node".into()));
        }
        if let Some(bad) = self
            .servers
            .iter()
            .find(|s| s.is_empty() || s.chars().any(char::is_whitespace))
        {
            return Err(Error::Config(format!(
                "server {bad:?} is not a \"host:port\" name"
            )));
        }
        if !self.path.starts_with('/') {
            return Err(Error::Config(format!(
                "path {:?} must start with '/'",
                self.path
            )));
        }
        if self.io_timeout.is_zero() {
            return Err(Error::Config("io_timeout must not be zero".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ImHelperOptions {
        ImHelperOptions::new("redis://127.0.0.1/", vec!["a:1".into(), "b:2".into()])
    }

    #[test]
    fn defaults_validate() {
        assert!(options().validate().is_ok());
    }

    #[test]
    fn rejects_empty_servers() {
        let mut o = options();
        o.servers.clear();
        assert!(matches!(o.validate(), Err(Error::Config(_))));
    }

    #[test]
    fn rejects_blank_server_names() {
        for bad in ["", "a: 1"] {
            let mut o = options();
            o.servers.push(bad.into());
            assert!(matches!(o.validate(), Err(Error::Config(_))), "{bad:?}");
        }
    }

    #[test]
    fn rejects_relative_path() {
        let mut o = options();
        o.path = "ws".into();
        assert!(matches!(o.validate(), Err(Error::Config(_))));
    }

    #[test]
    fn rejects_zero_timeout() {
        let mut o = options();
        o.io_timeout = Duration::ZERO;
        assert!(matches!(o.validate(), Err(Error::Config(_))));
    }
}
