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
//! The subscriber thread alone owns the cache and handles notices and
//! messages in the order Redis published them, so a read can never be cached
//! after a notice that should have dropped it.

use crate::bus::Members;
use std::collections::HashMap;

/// Most channels kept; past it the cache starts over.
const MAX_CHANNELS: usize = 100_000;

/// The cache.
#[derive(Default)]
pub struct ChanCache {
    entries: HashMap<String, Members>,
}

impl ChanCache {
    /// The cached members of `chan`.
    pub fn get(&self, chan: &str) -> Option<Members> {
        self.entries.get(chan).cloned()
    }

    /// Caches the members of `chan` just read from Redis.
    pub fn store(&mut self, chan: &str, members: Members) {
        if self.entries.len() >= MAX_CHANNELS {
            self.entries.clear();
        }
        self.entries.insert(chan.to_string(), members);
    }

    /// Forgets `chan` after a membership change.
    pub fn invalidate(&mut self, chan: &str) {
        self.entries.remove(chan);
    }

    /// Forgets everything (notices may have been missed, e.g. while the
    /// subscriber was reconnecting).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_notice_drops_the_entry_and_clear_drops_all() {
        let mut cache = ChanCache::default();
        cache.store("room", Arc::new(vec![vec![1, 2]]));
        cache.store("hall", Arc::new(vec![vec![3]]));
        assert_eq!(cache.get("room").unwrap()[0], vec![1, 2]);
        cache.invalidate("room");
        assert!(cache.get("room").is_none());
        assert!(cache.get("hall").is_some());
        cache.clear();
        assert!(cache.get("hall").is_none());
    }
}
