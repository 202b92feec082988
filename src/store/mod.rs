//! The node's Redis side: a [`worker`] thread that pipelines every request
//! needing an answer (token checks, presence, channel members, receipts) and a
//! [`subscriber`] thread that receives commands. Event loops never touch Redis.

pub mod chan_cache;
pub mod scripts;
pub mod subscriber;
pub mod worker;

use std::sync::Arc;

use crate::metrics::Metrics;
use crate::node::mailbox::Router;
use crate::protocol::Names;

pub use chan_cache::ChanCache;
pub use worker::{Job, WorkerHandle};

/// What the Redis threads share.
#[derive(Clone)]
pub struct Context {
    /// Where Redis is.
    pub client: redis::Client,
    /// Key and channel names.
    pub names: Arc<Names>,
    /// The event loops' mailboxes.
    pub router: Router,
    /// This node's channel-member cache.
    pub chan_cache: Arc<ChanCache>,
    /// Counters.
    pub metrics: Arc<Metrics>,
}
