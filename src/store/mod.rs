//! The node's Redis side: a [`worker`] thread that pipelines every request
//! needing an answer (token checks, presence, receipts) and a [`subscriber`]
//! thread that receives commands (reading channel members itself, so commands
//! keep their publish order). Event loops never touch Redis.

pub mod chan_cache;
pub mod cutover;
pub mod error;
pub mod lease;
pub mod pubsub;
pub mod resp;
pub mod subscriber;
pub mod worker;

pub use error::{LeaseError, StoreError};

use std::sync::Arc;

use crate::bus::Router;
use crate::metrics::Metrics;
use crate::names::Names;

/// What the Redis threads share.
#[derive(Clone)]
pub struct Context {
    /// Where Redis is.
    pub redis: redis_link::RedisUrl,
    /// Longest a silently dead link may go unnoticed (`--redis-liveness`).
    pub liveness: std::time::Duration,
    /// Receipt budget of one Send command (`--max-receipt-bytes`).
    pub max_receipt_bytes: usize,
    /// Largest message pushed to clients (`--max-push-bytes`).
    pub max_push_bytes: usize,
    /// Take this node's name even from a live node (`--take-over`).
    pub take_over: bool,
    /// This process takes the connections over from the running node
    /// (`--upgrade`): presence is left as it is, the lease is assumed later.
    pub upgrade: bool,
    /// Key and channel names.
    pub names: Arc<Names>,
    /// The event loops' mailboxes.
    pub router: Router,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The cut of the command stream during a hand-over.
    pub cutover: Arc<cutover::CutOver>,
    /// Longest a hand-over may take (`--upgrade-timeout`).
    pub upgrade_timeout: std::time::Duration,
}
