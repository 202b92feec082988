//! Receipts held while Redis cannot be reached, to be published once a
//! connection is back, in the order they were made.
//!
//! Bounded by [`MAX_HELD`] receipts and [`MAX_HELD_BYTES`] of channel and
//! payload: an outage under load must not grow the node without limit. A
//! receipt past either bound is refused, and the worker counts it failed.

use std::collections::VecDeque;

/// Most receipts held.
pub(super) const MAX_HELD: usize = 10_000;
/// Most bytes (channel names plus payloads) of the receipts held: 4 MiB.
pub(super) const MAX_HELD_BYTES: usize = 4 << 20;

/// A bounded FIFO of items with a size in bytes.
#[derive(Debug)]
pub(super) struct Backlog<T> {
    items: VecDeque<(T, usize)>,
    bytes: usize,
    max_items: usize,
    max_bytes: usize,
}

impl<T> Backlog<T> {
    /// An empty backlog with the bounds of the module docs.
    pub(super) fn new() -> Backlog<T> {
        Backlog::with_bounds(MAX_HELD, MAX_HELD_BYTES)
    }

    pub(super) fn with_bounds(max_items: usize, max_bytes: usize) -> Backlog<T> {
        Backlog {
            items: VecDeque::new(),
            bytes: 0,
            max_items,
            max_bytes,
        }
    }

    /// Holds `item` of `bytes` bytes, or gives it back when a bound would
    /// be passed.
    pub(super) fn push(&mut self, item: T, bytes: usize) -> Result<(), T> {
        if self.items.len() >= self.max_items || self.bytes + bytes > self.max_bytes {
            return Err(item);
        }
        self.bytes += bytes;
        self.items.push_back((item, bytes));
        Ok(())
    }

    /// Takes every item, oldest first.
    pub(super) fn take_all(&mut self) -> impl Iterator<Item = T> {
        self.bytes = 0;
        std::mem::take(&mut self.items)
            .into_iter()
            .map(|(item, _)| item)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_in_order_within_both_bounds() {
        let mut backlog = Backlog::with_bounds(3, 100);
        assert_eq!(backlog.push('a', 40), Ok(()));
        assert_eq!(backlog.push('b', 40), Ok(()));
        assert_eq!(backlog.push('c', 40), Err('c'), "past the byte bound");
        assert_eq!(backlog.push('d', 20), Ok(()));
        assert_eq!(backlog.push('e', 0), Err('e'), "past the count bound");
        assert_eq!(backlog.len(), 3);
        assert_eq!(backlog.take_all().collect::<String>(), "abd");
        assert!(backlog.is_empty());
        assert_eq!(backlog.push('f', 100), Ok(()), "taking frees the bytes");
    }
}
