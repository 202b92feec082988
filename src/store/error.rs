//! Why the Redis side could not start: [`StoreError`], and [`LeaseError`]
//! for the claim on this node's name. Each renders as the one line the node
//! prints before it exits.

use std::io;

use super::lease::LEASE_TTL_SECS;

/// Why the Redis worker or subscriber did not start.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis asked for a password the URL does not give.
    #[error(
        "Redis requires a password and --redis gives none: write it in the URL \
         (redis://:password@host:port/, or user:password@ with ACL users)"
    )]
    NoAuth,
    /// The first connection failed.
    #[error("cannot reach Redis: {0}")]
    Unreachable(redis::RedisError),
    /// This node's name could not be claimed.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// What a previous run of this node left counted online could not be
    /// taken back.
    #[error("cannot clear this node's old presence in Redis: {0}")]
    Reap(redis::RedisError),
    /// The first subscription failed.
    #[error("cannot subscribe to Redis: {0}")]
    Subscribe(io::Error),
    /// The first subscription got no answer in time.
    #[error("cannot subscribe to Redis: no answer")]
    SubscribeTimeout,
    /// A thread could not be started.
    #[error("cannot start the Redis {thread} thread: {source}")]
    Thread {
        /// `worker` or `subscriber`.
        thread: &'static str,
        /// Why.
        source: io::Error,
    },
}

impl StoreError {
    /// The error of a first connection, naming the usual fix when there is one.
    pub fn connecting(error: redis::RedisError) -> StoreError {
        match error.code() {
            Some("NOAUTH") => StoreError::NoAuth,
            _ => StoreError::Unreachable(error),
        }
    }
}

/// Why this node's name (`--server`) could not be leased.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Redis failed while the lease was claimed.
    #[error("cannot claim --server {server}: {source}")]
    Redis {
        /// The name.
        server: String,
        /// Why.
        source: redis::RedisError,
    },
    /// A live process on this host holds the name.
    #[error(
        "another node process holds --server {server} (lease {holder}, alive on this host): \
         stop it first, or start with --take-over to replace it"
    )]
    HeldHere {
        /// The name.
        server: String,
        /// The lease's value (`pid@host`).
        holder: String,
    },
    /// A node elsewhere renewed the lease while this one waited.
    #[error(
        "another node holds --server {server} (lease {holder}, renewed just now): \
         stop it first, or start with --take-over to replace it"
    )]
    HeldElsewhere {
        /// The name.
        server: String,
        /// The lease's value (`pid@host`).
        holder: String,
    },
    /// The lease neither lapsed nor was renewed in a lease's time.
    #[error(
        "--server {server}'s lease ({holder}) neither lapsed nor was renewed within \
         {LEASE_TTL_SECS} s: start with --take-over to replace it"
    )]
    Stuck {
        /// The name.
        server: String,
        /// The lease's value (`pid@host`).
        holder: String,
    },
}
