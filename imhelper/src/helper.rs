//! The [`ImHelper`] value: validated options, the names of every node (one
//! Redis, or a Redis Cluster), the connection pool and the scripts. Its
//! operations live in the files named after them.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use freeim_protocol::{first_places, Directory, Keys, Layout};

use crate::error::{Error, Result};
use crate::on_send::{HookPresence, OnSend};
use crate::options::ImHelperOptions;
use crate::pool::{Connector, Pool, PoolStats};
use crate::scripts::Scripts;

/// A handle on one FreeIM cluster, through its Redis.
///
/// Every call is blocking; each connect, read and write inside it is bounded
/// by [`ImHelperOptions::io_timeout`], and waiting for a free connection by
/// [`ImHelperOptions::pool_wait`].
/// `ImHelper` is `Send + Sync`: share one per process (in an `Arc`, or a
/// `static`) and call it from any number of threads; it keeps its Redis
/// connections for reuse and never holds more than
/// [`ImHelperOptions::max_connections`] open, however many threads call at
/// once ([`stats`](ImHelper::stats) shows them).
///
/// # Example
///
/// ```no_run
/// use std::sync::Arc;
/// use imhelper::{ImHelper, ImHelperOptions};
///
/// # fn main() -> imhelper::Result<()> {
/// let helper = Arc::new(ImHelper::new(ImHelperOptions::new(
///     "redis://127.0.0.1:6379/",
///     vec!["127.0.0.1:6001".into()],
/// ))?);
/// let worker = {
///     let helper = Arc::clone(&helper);
///     std::thread::spawn(move || helper.send_message(0, &[1, 2], "from a thread", false))
/// };
/// helper.send_message(0, &[3], "from main", false)?;
/// worker.join().unwrap()?;
/// # Ok(())
/// # }
/// ```
pub struct ImHelper {
    pub(crate) servers: Vec<String>,
    /// For each place in `servers`, the first place with the same name: how
    /// direct messages are grouped per node.
    pub(crate) first_places: Vec<usize>,
    /// `servers` without repeats, in order: the targets of channel messages.
    pub(crate) distinct_servers: Vec<String>,
    pub(crate) path: String,
    /// Hand out `wss://` URLs.
    pub(crate) secure: bool,
    /// Every node's names: FreeIM's for one Redis, a hash tag per node for
    /// a Redis Cluster (see `shards.rs`).
    pub(crate) directory: Directory,
    /// The names' prefix, without any hash tag.
    prefix: String,
    pub(crate) pool: Pool,
    pub(crate) scripts: Scripts,
    /// The event threads' liveness bound.
    pub(crate) liveness: Duration,
    /// Bumped each time Sentinel announces a new primary.
    pub(crate) primary_epoch: Arc<AtomicU64>,
    /// Follows `+switch-master` (Sentinel URLs only); stops when dropped.
    _failover_watch: Option<redis_link::FailoverWatch>,
    /// Receipt budget of one send, per node.
    pub(crate) max_receipt_bytes: usize,
    /// Largest message text.
    pub(crate) max_push_bytes: usize,
    /// Told of every message publish, before it goes out.
    pub(crate) on_send: Option<OnSend>,
    /// Calls of `on_send` that panicked.
    pub(crate) on_send_panics: AtomicU64,
}

impl ImHelper {
    /// Normalises and checks the options once (see [`ImHelperOptions`]:
    /// server names are trimmed) and prepares the helper; does not contact
    /// Redis (it may be down now and come up later).
    ///
    /// # Errors
    /// [`Error::Config`], its text starting with the option's name, when
    /// `servers` is empty or has an empty or malformed name, `path` does not
    /// start with `/` or holds `?`, `#` or whitespace, `redis_url` does not
    /// parse, `io_timeout` or `pool_wait` is zero, `max_connections` or
    /// `max_push_bytes` is 0, or `liveness` is under 300 ms.
    ///
    /// # Example
    ///
    /// ```
    /// use imhelper::{Error, ImHelper, ImHelperOptions};
    ///
    /// let ok = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]));
    /// assert!(ok.is_ok());
    /// let no_servers = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec![]));
    /// assert!(matches!(no_servers, Err(Error::Config(_))));
    /// ```
    pub fn new(options: ImHelperOptions) -> Result<ImHelper> {
        let options = options.normalize()?;
        let url: redis_link::RedisUrl = options
            .redis_url
            .parse()
            .map_err(|e| Error::Config(format!("redis_url is invalid: {e}")))?;
        let layout = Layout::for_redis(url.is_cluster());
        let first_places = first_places(&options.servers);
        let distinct_servers: Vec<String> = first_places
            .iter()
            .enumerate()
            .filter(|&(place, &first)| place == first)
            .map(|(place, _)| options.servers[place].clone())
            .collect();
        // Bumped on every `+switch-master`: pooled connections and event
        // links to the old primary are replaced at once.
        let primary_epoch = Arc::new(AtomicU64::new(0));
        let bump = Arc::clone(&primary_epoch);
        let failover_watch = url
            .watch_failovers(move || {
                log::warn!("imhelper: Sentinel announced a new primary; reconnecting");
                bump.fetch_add(1, Ordering::AcqRel);
            })
            .map_err(|e| Error::Redis(e.into()))?;
        let pool = Pool::new(
            Connector::new(url, options.io_timeout),
            options.max_connections,
            options.effective_pool_wait(),
            Arc::clone(&primary_epoch),
        );
        Ok(ImHelper {
            directory: Directory::new(layout, &options.path, &options.servers),
            prefix: Keys::new(&options.path).prefix().to_string(),
            pool,
            scripts: Scripts::new(layout),
            liveness: options.liveness,
            primary_epoch,
            _failover_watch: failover_watch,
            max_receipt_bytes: options.max_receipt_bytes,
            max_push_bytes: options.max_push_bytes,
            servers: options.servers,
            first_places,
            distinct_servers,
            path: options.path,
            secure: options.secure,
            on_send: options.on_send,
            on_send_panics: AtomicU64::new(0),
        })
    }

    /// The key prefix: `"im_v2" + path.replace('/', "_")`, so `im_v2_ws` for
    /// the default path. Every key and channel this helper uses starts with
    /// it; with a Redis Cluster (`redis+cluster://`), after the hash tag of
    /// the node it belongs to (`{10.0.0.1:6001#3}im_v2_wsOnline`).
    ///
    /// # Example
    ///
    /// ```
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// let mut options = ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]);
    /// assert_eq!(ImHelper::new(options.clone())?.prefix(), "im_v2_ws");
    /// options.path = "/im/chat".into();
    /// assert_eq!(ImHelper::new(options)?.prefix(), "im_v2_im_chat");
    /// # Ok::<(), imhelper::Error>(())
    /// ```
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The connection pool's state and counters, for dashboards and
    /// alerts: connections open and idle now, calls waiting, connections
    /// opened in total, calls retried, stale idle connections replaced,
    /// calls failed with [`Error::PoolExhausted`]. Cheap (one short lock).
    ///
    /// # Example
    ///
    /// ```no_run
    /// use imhelper::{ImHelper, ImHelperOptions};
    ///
    /// # fn main() -> imhelper::Result<()> {
    /// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
    /// helper.has_online(1)?;
    /// let stats = helper.stats();
    /// println!(
    ///     "redis connections: {}/{} open, {} idle; {} opened, {} exhausted",
    ///     stats.open, stats.max_connections, stats.idle, stats.opened, stats.pool_exhausted
    /// );
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats(&self) -> PoolStats {
        self.pool.stats()
    }
}

impl fmt::Debug for ImHelper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImHelper")
            .field("servers", &self.servers)
            .field("path", &self.path)
            .field("prefix", &self.prefix)
            .field("layout", &self.directory.layout())
            .field("redis_url", &self.pool.connector().url())
            .field("io_timeout", &self.pool.connector().io_timeout())
            .field("max_connections", &self.pool.max_connections())
            .field("liveness", &self.liveness)
            .field("on_send", &HookPresence(&self.on_send))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn helper_is_send_and_sync() {
        assert_send_sync::<ImHelper>();
    }

    #[test]
    fn debug_shows_no_password() {
        let options = ImHelperOptions::new("redis://:s3cret@127.0.0.1/", vec!["a:1".into()]);
        let shown = format!("{:?}", ImHelper::new(options).unwrap());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains(":***@"), "{shown}");
        assert!(shown.contains("on_send: absent"), "{shown}");
    }

    #[test]
    fn bad_url_is_a_config_error() {
        let options = ImHelperOptions::new("http://nope", vec!["a:1".into()]);
        assert!(matches!(ImHelper::new(options), Err(Error::Config(_))));
    }

    #[test]
    fn a_cluster_url_shards_the_names_under_the_same_prefix() {
        let options = ImHelperOptions::new(
            "redis+cluster://:s3cret@127.0.0.1:7000,127.0.0.1:7001/",
            vec!["a:1".into()],
        );
        let helper = ImHelper::new(options).unwrap();
        assert_eq!(helper.directory.layout(), Layout::Sharded);
        assert_eq!(helper.prefix(), "im_v2_ws");
        let shown = format!("{helper:?}");
        assert!(shown.contains("layout: Sharded"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
        let single = ImHelperOptions::new("redis://127.0.0.1/", vec!["a:1".into()]);
        let single = ImHelper::new(single).unwrap();
        assert_eq!(single.directory.layout(), Layout::Single);
    }

    #[test]
    fn repeated_servers_are_targeted_once() {
        let options = ImHelperOptions::new(
            "redis://127.0.0.1:6379/",
            vec!["a:1".into(), "b:2".into(), "a:1".into()],
        );
        let helper = ImHelper::new(options).unwrap();
        assert_eq!(helper.distinct_servers, ["a:1", "b:2"]);
        assert_eq!(helper.first_places, [0, 1, 0]);
        assert_eq!(helper.servers.len(), 3);
    }
}
