//! This node's cache of channel members, so a channel message costs no Redis
//! read when its publisher keeps the cache honest.
//!
//! Every membership change made by the Rust `imhelper` (join, leave) or by a
//! node (a client's last socket closed, a dead node reaped) publishes the
//! channel's name on `{prefix}ChanChanged`; the subscriber drops that entry.
//! Channel messages from the Rust `imhelper` say so (`"Item4": true`) and are
//! served from the cache; others (a .NET ImHelper, which publishes no
//! notices) always read the members afresh.
//!
//! A read that was in flight while any notice arrived is not cached: each
//! notice bumps an epoch, and the worker only stores a read whose epoch is
//! still current.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// Most channels kept; past it the cache starts over.
const MAX_CHANNELS: usize = 100_000;

/// A channel's members held by this node, split by owning event loop.
pub type Members = Arc<Vec<Vec<i64>>>;

/// The cache, shared by the subscriber and the worker.
#[derive(Default)]
pub struct ChanCache {
    epoch: AtomicU64,
    entries: Mutex<HashMap<String, Members>>,
}

impl ChanCache {
    /// The current epoch, to be passed back to [`store`](Self::store).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The cached members of `chan`.
    pub fn get(&self, chan: &str) -> Option<Members> {
        self.entries.lock().get(chan).cloned()
    }

    /// Caches `members`, read from Redis at `epoch`, unless a notice came since.
    pub fn store(&self, chan: &str, members: Members, epoch: u64) {
        let mut entries = self.entries.lock();
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        if entries.len() >= MAX_CHANNELS {
            entries.clear();
        }
        entries.insert(chan.to_string(), members);
    }

    /// Forgets `chan` after a membership change.
    pub fn invalidate(&self, chan: &str) {
        let mut entries = self.entries.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.remove(chan);
    }

    /// Forgets everything (the notices may have been missed, e.g. while the
    /// subscriber was reconnecting).
    pub fn clear(&self) {
        let mut entries = self.entries.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(ids: &[i64]) -> Members {
        Arc::new(vec![ids.to_vec()])
    }

    #[test]
    fn a_notice_drops_the_entry() {
        let cache = ChanCache::default();
        cache.store("room", members(&[1, 2]), cache.epoch());
        assert_eq!(cache.get("room").unwrap()[0], vec![1, 2]);
        cache.invalidate("room");
        assert!(cache.get("room").is_none());
    }

    #[test]
    fn a_read_overtaken_by_a_notice_is_not_cached() {
        let cache = ChanCache::default();
        let epoch = cache.epoch();
        cache.invalidate("room");
        cache.store("room", members(&[1]), epoch);
        assert!(cache.get("room").is_none());
        cache.store("room", members(&[1]), cache.epoch());
        cache.clear();
        assert!(cache.get("room").is_none());
    }
}
