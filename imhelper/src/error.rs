//! [`Error`]: everything an `ImHelper` call can fail with.

/// What went wrong in an `ImHelper` call.
///
/// # Example
///
/// ```no_run
/// use imhelper::{Error, ImHelper, ImHelperOptions};
///
/// # fn main() -> imhelper::Result<()> {
/// let helper = ImHelper::new(ImHelperOptions::new("redis://127.0.0.1:6379/", vec!["127.0.0.1:6001".into()]))?;
/// match helper.send_message(1, &[2], "hi", false) {
///     Ok(()) => {}
///     Err(Error::Unrouted { servers }) => eprintln!("no node is running for {servers:?}"),
///     Err(Error::Redis(e)) => eprintln!("Redis is unreachable: {e}"),
///     Err(Error::PoolExhausted { max_connections, waited }) => {
///         eprintln!("all {max_connections} connections stayed busy for {waited:?}; shed load")
///     }
///     Err(other) => return Err(other),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// [`ImHelper::new`](crate::ImHelper::new) refused the options. The
    /// text starts with the option's name (`servers`, `servers[2]`, `path`,
    /// `redis_url`, `io_timeout`, …) and says what is wrong with it: no
    /// servers, an empty or malformed server name, a path that does not
    /// start with `/` or holds `?`, `#` or whitespace, an unparsable Redis
    /// URL, a zero timeout or pool wait, `max_connections` or
    /// `max_push_bytes` 0, a liveness under 300 ms.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A call refused one of its arguments; nothing was sent to Redis.
    /// Only arguments that FreeIM would turn into something else are
    /// refused (each method's docs say which): an empty channel name for
    /// [`send_chan_message`](crate::ImHelper::send_chan_message), which
    /// FreeIM would broadcast to everyone.
    #[error("invalid argument {argument}: {reason}; nothing was sent")]
    InvalidArgument {
        /// The parameter's name, as in the method's signature.
        argument: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Redis could not be reached, timed out, or refused the command.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The message could not be serialised to JSON.
    #[error("cannot serialise the message as JSON: {0}")]
    Serialize(#[from] serde_json::Error),
    /// The publish went out, but no node was subscribed for these servers
    /// (PUBLISH reached 0 subscribers), so nobody there got it. The other
    /// targeted servers did get their part.
    #[error("no ImServer node is listening for {servers:?}; nothing was delivered there")]
    Unrouted {
        /// The servers (as named in the options) whose channel nobody heard.
        servers: Vec<String>,
    },
    /// All [`max_connections`](crate::ImHelperOptions::max_connections)
    /// connections stayed in use for the whole
    /// [`pool_wait`](crate::ImHelperOptions::pool_wait): more calls run at
    /// once than the pool allows, and those ahead did not finish in time
    /// (Redis is slow or paused, or the load is too high). Nothing was sent
    /// to Redis for this call, so it is safe to retry or shed. Counted in
    /// [`PoolStats::pool_exhausted`](crate::PoolStats::pool_exhausted).
    #[error(
        "all {max_connections} Redis connections stayed busy for {waited:?}; the call was not sent"
    )]
    PoolExhausted {
        /// The configured cap, all of it in use.
        max_connections: usize,
        /// How long the call waited for a connection.
        waited: std::time::Duration,
    },
    /// A send with receipts would make one node publish more receipt bytes
    /// than [`ImHelperOptions::max_receipt_bytes`](crate::ImHelperOptions::max_receipt_bytes);
    /// nothing was published. Send without receipts, or to fewer receivers
    /// at a time.
    #[error(
        "receipts for {receivers} receivers on {server} would be ~{receipt_bytes} bytes, over \
         max_receipt_bytes {max_receipt_bytes}; nothing was sent"
    )]
    TooManyReceipts {
        /// The node whose share is over the budget.
        server: String,
        /// Receivers on that node that would each get a receipt.
        receivers: usize,
        /// The estimated receipt bytes.
        receipt_bytes: usize,
        /// The budget.
        max_receipt_bytes: usize,
    },
    /// The message's JSON text is longer than
    /// [`ImHelperOptions::max_push_bytes`](crate::ImHelperOptions::max_push_bytes),
    /// past which nodes drop it; nothing was published.
    #[error("the message is {bytes} bytes of JSON, over max_push_bytes {max_push_bytes}; nothing was sent")]
    MessageTooLarge {
        /// Length of the message's JSON text.
        bytes: usize,
        /// The limit.
        max_push_bytes: usize,
    },
}

/// `std::result::Result` with this crate's [`Error`].
///
/// # Example
///
/// ```
/// fn check(online: bool) -> imhelper::Result<bool> {
///     Ok(online)
/// }
/// assert!(check(true).unwrap());
/// ```
pub type Result<T> = std::result::Result<T, Error>;
