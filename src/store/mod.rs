//! The node's Redis side: a [`worker`] thread that pipelines every request
//! needing an answer (token checks, presence, channel members, receipts) and a
//! [`subscriber`] thread that receives commands. Event loops never touch Redis.

pub mod chan_cache;
pub mod scripts;
pub mod subscriber;
pub mod worker;

pub use chan_cache::ChanCache;
pub use worker::{Job, WorkerHandle};
