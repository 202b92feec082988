//! [`ImHelperOptions`]: where Redis is, which nodes make up the cluster, and
//! the bounds every call and the event thread keep.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::on_send::{HookPresence, OnSend};

/// The WebSocket path nodes serve by default.
pub(crate) const DEFAULT_PATH: &str = "/ws";

/// The default connect/read/write timeout for Redis.
pub(crate) const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The default cap on Redis connections one `ImHelper` holds open.
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 16;

/// The default receipt budget of one send, per node (as the node's own
/// `--max-receipt-bytes` default).
pub(crate) const DEFAULT_MAX_RECEIPT_BYTES: usize = 4 << 20;

/// The default largest message (as the node's own `--max-push-bytes` default).
pub(crate) const DEFAULT_MAX_PUSH_BYTES: usize = 4 << 20;

/// The default liveness bound of the event thread's subscriber connection.
pub(crate) const DEFAULT_LIVENESS: Duration = Duration::from_secs(15);

/// The shortest liveness bound accepted: a third of it is the event
/// thread's PING schedule, which must stay above its 100 ms poll.
pub(crate) const MIN_LIVENESS: Duration = Duration::from_millis(300);

/// How to reach Redis and the ImServer cluster.
///
/// `servers` must list the cluster's nodes exactly as the nodes list them
/// (same strings, same order): a client id is routed to
/// `servers[client_id mod servers.len()]`.
///
/// [`ImHelper::new`](crate::ImHelper::new) normalises and checks the
/// options once: it trims each server name, and refuses anything a node
/// would refuse or that could not work with
/// [`Error::Config`](crate::Error::Config), whose text starts with the
/// option's name. Each field says what it accepts.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use imhelper::ImHelperOptions;
///
/// let mut options = ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]);
/// options.path = "/chat".to_string();
/// options.io_timeout = Duration::from_secs(2);
/// options.max_connections = 32;
/// options.pool_wait = Some(Duration::from_millis(500));
/// options.liveness = Duration::from_secs(6);
/// assert_eq!(options.servers, ["127.0.0.1:6001"]);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ImHelperOptions {
    /// Where Redis is, in one of the URL forms of the [`redis_link`] crate
    /// (its crate docs have the full table), the same forms the nodes take:
    ///
    /// * `redis://[[user]:password@]host[:port][/db]`: one server (port 6379
    ///   by default), e.g. `redis://127.0.0.1:6379/` or
    ///   `redis://:password@host:6379/0`;
    /// * `rediss://…`: the same over TLS; add `?ssl_ca_certs=/path/ca.pem`
    ///   to trust that CA instead of the system's roots;
    /// * `unix:///path/to/redis.sock`: a Unix socket;
    /// * `redis+sentinel://[[user]:password@]host:port[,host:port…]/master_name[/db]`
    ///   (`rediss+sentinel://…` with TLS): the primary those Redis Sentinels
    ///   name, looked up again on every reconnect so a failover is followed;
    ///   `?sentinel_password=…` when the sentinels need one;
    /// * `redis+cluster://[[user]:password@]host:port[,host:port…]/`
    ///   (`rediss+cluster://…` with TLS): a Redis Cluster found through these
    ///   seed nodes, whose slot map is asked again on every reconnect; the
    ///   names are then sharded per node (see the crate docs).
    ///
    /// Passwords are never logged nor shown in errors or `Debug` output of
    /// [`ImHelper`](crate::ImHelper).
    pub redis_url: String,
    /// The cluster's nodes as `host:port`, in the cluster's order, as the
    /// nodes' `--servers` lists them. At least one. Each name is trimmed of
    /// surrounding whitespace (as the nodes trim theirs); an empty name, or
    /// one holding whitespace, `/`, `?` or `#` (it is the authority of the
    /// URLs [`prev_connect_server`](crate::ImHelper::prev_connect_server)
    /// hands out), is refused.
    ///
    /// A server listed more than once stays listed: routing is
    /// `servers[client_id mod servers.len()]` over the whole list, exactly as
    /// on the nodes, so that server owns each of its places' shares. Channel
    /// messages and broadcasts, which go to every node, are published once
    /// per distinct server.
    pub servers: Vec<String>,
    /// The WebSocket path of the nodes, the same as their `--path`: starts
    /// with `/` and holds no `?`, `#` or whitespace (the nodes refuse those
    /// too). It also names every Redis key (see
    /// [`ImHelper::prefix`](crate::ImHelper::prefix)). Default `/ws`.
    pub path: String,
    /// Connect, read and write timeout for every Redis round-trip, so no call
    /// hangs while Redis is down or frozen. Default 5 s; must not be zero.
    pub io_timeout: Duration,
    /// The most Redis connections this helper holds open at once, counting
    /// idle ones, ones in use and ones being opened (the event threads'
    /// subscriber connections are not counted: one each). Calls beyond it
    /// wait for a free connection, in arrival order. Default 16; at least 1.
    pub max_connections: usize,
    /// The longest a call waits for a free connection when
    /// `max_connections` are all in use; it then fails with
    /// [`Error::PoolExhausted`](crate::Error::PoolExhausted). `None` (the
    /// default) means the same as `io_timeout`; `Some` must not be zero.
    pub pool_wait: Option<Duration>,
    /// How quickly the event thread ([`EventBus`](crate::EventBus),
    /// [`EventStream`](crate::EventStream)) notices a dead subscriber link,
    /// even one that is still open but passes nothing on (a hung proxy, a
    /// frozen Redis): after `liveness / 3` without a byte it sends `PING`,
    /// and when another `liveness / 3` passes without a byte it drops the
    /// connection, reconnects and resubscribes. Default 15 s; at least
    /// 300 ms.
    pub liveness: Duration,
    /// The most receipt bytes one send with `receipt` may ask one node to
    /// publish: receivers on that node (other than the sender) × the length
    /// of the receipt command the node builds (the message JSON-escaped
    /// twice, so quotes and backslashes count fourfold). Per node and per
    /// send: it bounds what one call can do, not many calls together. Receipts travel back through the
    /// sender's node's Redis subscription, and a send with receipts to
    /// 100,000 receivers would push hundreds of MB into it, past Redis's
    /// pub/sub output-buffer limit: such a send fails with
    /// [`Error::TooManyReceipts`](crate::Error::TooManyReceipts) before
    /// anything is published. Default 4 MiB, the nodes' own default
    /// (`--max-receipt-bytes`), beyond which they deliver without receipts.
    pub max_receipt_bytes: usize,
    /// The largest message a send may push, in bytes of its JSON text (what
    /// a socket receives). A larger one fails with
    /// [`Error::MessageTooLarge`](crate::Error::MessageTooLarge) before
    /// anything is published. Default 4 MiB, the nodes' own default
    /// (`--max-push-bytes`), beyond which they drop the message; keep the
    /// two equal.
    pub max_push_bytes: usize,
    /// Clients reach the nodes through a TLS-terminating proxy (e.g. nginx):
    /// `prev_connect_server` returns `wss://` URLs instead of `ws://`.
    /// The `servers` names are then the proxy's `host:port` for each node.
    /// Default `false`.
    pub secure: bool,
    /// Called for each per-node publish of a message, just before it is
    /// published (FreeIM's `OnSend` event); see [`OnSend`] for when exactly,
    /// threads and panics. Default `None`.
    pub on_send: Option<OnSend>,
}

impl ImHelperOptions {
    /// Options with the defaults: path `/ws`, I/O timeout 5 s, at most 16
    /// connections, pool wait = the I/O timeout, liveness 15 s, `ws://`.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use imhelper::ImHelperOptions;
    ///
    /// let options = ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]);
    /// assert_eq!(options.path, "/ws");
    /// assert_eq!(options.io_timeout, Duration::from_secs(5));
    /// assert_eq!(options.max_connections, 16);
    /// assert_eq!(options.pool_wait, None);
    /// assert_eq!(options.liveness, Duration::from_secs(15));
    /// assert_eq!(options.max_receipt_bytes, 4 << 20);
    /// assert_eq!(options.max_push_bytes, 4 << 20);
    /// ```
    pub fn new(redis_url: impl Into<String>, servers: Vec<String>) -> Self {
        ImHelperOptions {
            redis_url: redis_url.into(),
            servers,
            path: DEFAULT_PATH.to_string(),
            io_timeout: DEFAULT_IO_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            pool_wait: None,
            liveness: DEFAULT_LIVENESS,
            max_receipt_bytes: DEFAULT_MAX_RECEIPT_BYTES,
            max_push_bytes: DEFAULT_MAX_PUSH_BYTES,
            secure: false,
            on_send: None,
        }
    }

    /// The longest a call waits for a free connection: `pool_wait`, or
    /// `io_timeout` when unset.
    pub(crate) fn effective_pool_wait(&self) -> Duration {
        self.pool_wait.unwrap_or(self.io_timeout)
    }

    /// The options as `ImHelper::new` uses them: server names trimmed, and
    /// everything that can be checked without Redis checked. The URL itself
    /// is checked by parsing it as a `redis_link::RedisUrl` in
    /// `ImHelper::new`.
    pub(crate) fn normalize(mut self) -> Result<ImHelperOptions> {
        for server in &mut self.servers {
            let trimmed = server.trim();
            if trimmed.len() != server.len() {
                *server = trimmed.to_string();
            }
        }
        self.validate()?;
        Ok(self)
    }

    /// Checks the (trimmed) options; each error's text starts with the
    /// option's name.
    fn validate(&self) -> Result<()> {
        if self.servers.is_empty() {
            return Err(Error::Config("servers must list at least one node".into()));
        }
        for (index, server) in self.servers.iter().enumerate() {
            if server.is_empty() {
                return Err(Error::Config(format!("servers[{index}] is empty")));
            }
            if server.contains(|c: char| c.is_whitespace() || matches!(c, '/' | '?' | '#')) {
                return Err(Error::Config(format!(
                    "servers[{index}] {server:?} is not a \"host:port\" name \
                     (no whitespace, '/', '?' or '#')"
                )));
            }
        }
        if !self.path.starts_with('/')
            || self
                .path
                .contains(|c: char| c.is_whitespace() || matches!(c, '?' | '#'))
        {
            return Err(Error::Config(format!(
                "path {:?} must start with '/' and hold no '?', '#' or whitespace",
                self.path
            )));
        }
        if self.io_timeout.is_zero() {
            return Err(Error::Config("io_timeout must not be zero".into()));
        }
        if self.max_connections == 0 {
            return Err(Error::Config("max_connections must be at least 1".into()));
        }
        if self.pool_wait.is_some_and(|wait| wait.is_zero()) {
            return Err(Error::Config("pool_wait must not be zero".into()));
        }
        if self.max_push_bytes == 0 {
            return Err(Error::Config("max_push_bytes must be at least 1".into()));
        }
        if self.liveness < MIN_LIVENESS {
            return Err(Error::Config(format!(
                "liveness must be at least {MIN_LIVENESS:?}, not {:?}",
                self.liveness
            )));
        }
        Ok(())
    }
}

/// Shows `redis_url` with its passwords replaced by `***`, and `on_send`
/// as `present` or `absent`.
impl fmt::Debug for ImHelperOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redis_url = match self.redis_url.parse::<redis_link::RedisUrl>() {
            Ok(url) => url.to_string(),
            Err(_) => "<not a valid Redis URL>".to_string(),
        };
        f.debug_struct("ImHelperOptions")
            .field("redis_url", &redis_url)
            .field("servers", &self.servers)
            .field("path", &self.path)
            .field("io_timeout", &self.io_timeout)
            .field("max_connections", &self.max_connections)
            .field("pool_wait", &self.pool_wait)
            .field("liveness", &self.liveness)
            .field("max_receipt_bytes", &self.max_receipt_bytes)
            .field("max_push_bytes", &self.max_push_bytes)
            .field("secure", &self.secure)
            .field("on_send", &HookPresence(&self.on_send))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ImHelperOptions {
        ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["a:1".into(), "b:2".into()])
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
        for bad in ["", " \t", "a: 1", "a:1/ws", "a:1?x", "a:1#x"] {
            let mut o = options();
            o.servers.push(bad.into());
            let Err(Error::Config(why)) = o.normalize() else {
                panic!("{bad:?} accepted");
            };
            assert!(why.starts_with("servers[2]"), "{why}");
        }
    }

    #[test]
    fn trims_server_names_and_keeps_repeats() {
        let mut o = options();
        o.servers = vec![" a:1".into(), "b:2\n".into(), "a:1".into()];
        assert_eq!(o.normalize().unwrap().servers, ["a:1", "b:2", "a:1"]);
    }

    #[test]
    fn rejects_paths_a_node_refuses() {
        for bad in ["ws", "", "/w s", "/ws?x=1", "/ws#top", "/ws\t"] {
            let mut o = options();
            o.path = bad.into();
            let Err(Error::Config(why)) = o.normalize() else {
                panic!("{bad:?} accepted");
            };
            assert!(why.starts_with("path"), "{why}");
        }
        let mut o = options();
        o.path = "/".into();
        assert!(o.normalize().is_ok());
    }

    #[test]
    fn debug_shows_whether_a_hook_is_set_but_no_password() {
        let mut o = ImHelperOptions::new("redis://:s3cret@127.0.0.1/", vec!["a:1".into()]);
        let shown = format!("{o:?}");
        assert!(shown.contains("on_send: absent"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
        o.on_send = Some(OnSend::new(|_| {}));
        let shown = format!("{o:?}");
        assert!(shown.contains("on_send: present"), "{shown}");
        assert_eq!(o.clone(), o, "a clone shares the hook");
    }

    #[test]
    fn rejects_zero_timeout() {
        let mut o = options();
        o.io_timeout = Duration::ZERO;
        assert!(matches!(o.validate(), Err(Error::Config(_))));
    }

    #[test]
    fn rejects_an_empty_pool() {
        let mut o = options();
        o.max_connections = 0;
        assert!(matches!(o.validate(), Err(Error::Config(_))));
        o.max_connections = 1;
        assert!(o.validate().is_ok());
    }

    #[test]
    fn pool_wait_defaults_to_the_io_timeout_and_must_not_be_zero() {
        let mut o = options();
        o.io_timeout = Duration::from_secs(2);
        assert_eq!(o.effective_pool_wait(), Duration::from_secs(2));
        o.pool_wait = Some(Duration::from_millis(250));
        assert_eq!(o.effective_pool_wait(), Duration::from_millis(250));
        o.pool_wait = Some(Duration::ZERO);
        assert!(matches!(o.validate(), Err(Error::Config(_))));
    }

    #[test]
    fn rejects_a_liveness_below_300_ms() {
        let mut o = options();
        o.liveness = Duration::from_millis(299);
        assert!(matches!(o.validate(), Err(Error::Config(_))));
        o.liveness = Duration::from_millis(300);
        assert!(o.validate().is_ok());
    }
}
