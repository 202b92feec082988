//! The loop's connections: a slab of [`Conn`]s addressed by generation-tagged
//! [`ConnId`]s, and the list of connections with bytes queued to flush.

use mio::net::TcpStream;
use slab::Slab;

use super::conn::{Conn, IoStep, Phase, Session};
use super::mailbox::ConnId;
use super::timer::Tick;

/// Why bytes could not be queued for a connection.
#[derive(Debug, PartialEq, Eq)]
pub struct Overflow;

/// Every connection of one loop.
#[derive(Default)]
pub struct Connections {
    slab: Slab<Conn>,
    dirty: Vec<u32>,
    generation: u32,
    upgrading: usize,
}

impl Connections {
    /// The key the next inserted connection will get.
    pub fn next_key(&self) -> u32 {
        self.slab.vacant_key() as u32
    }

    /// Stores a new connection reading its upgrade request.
    pub fn insert(&mut self, stream: TcpStream, deadline: Tick) -> ConnId {
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        let key = self.slab.insert(Conn::new(stream, generation, deadline)) as u32;
        self.upgrading += 1;
        ConnId { key, generation }
    }

    /// The connection in slot `key`, if any.
    pub fn get_mut(&mut self, key: u32) -> Option<&mut Conn> {
        self.slab.get_mut(key as usize)
    }

    /// The connection `id` names, unless it closed since.
    pub fn live(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.slab
            .get_mut(id.key as usize)
            .filter(|conn| conn.generation == id.generation)
    }

    /// The open session in slot `key`, if that connection is an open WebSocket.
    pub fn session(&self, key: u32) -> Option<&Session> {
        self.slab.get(key as usize)?.session()
    }

    /// The id of the connection in slot `key`.
    pub fn id(&self, key: u32) -> Option<ConnId> {
        let conn = self.slab.get(key as usize)?;
        Some(ConnId {
            key,
            generation: conn.generation,
        })
    }

    /// Takes the connection out of the slab.
    pub fn remove(&mut self, key: u32) -> Option<Conn> {
        let conn = self.slab.try_remove(key as usize)?;
        if conn.phase.is_upgrading() {
            self.upgrading -= 1;
        }
        Some(conn)
    }

    /// Moves connection `key` to `phase`; returns the phase it left.
    pub fn set_phase(&mut self, key: u32, phase: Phase) -> Option<Phase> {
        let conn = self.slab.get_mut(key as usize)?;
        let now_upgrading = phase.is_upgrading();
        let old = std::mem::replace(&mut conn.phase, phase);
        match (old.is_upgrading(), now_upgrading) {
            (true, false) => self.upgrading -= 1,
            (false, true) => self.upgrading += 1,
            _ => {}
        }
        Some(old)
    }

    /// How many connections are still upgrading.
    pub fn upgrading(&self) -> usize {
        self.upgrading
    }

    /// Number of connections.
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// Every slot key.
    pub fn keys(&self) -> Vec<u32> {
        self.slab.iter().map(|(key, _)| key as u32).collect()
    }

    /// Appends `bytes` to the connection's unsent bytes, unless the queue is
    /// not empty and would then hold more than `limit` bytes even after the
    /// socket took what it could: a reader that keeps up always gets a
    /// message, however large, and a queue never holds more than `limit` plus
    /// one message.
    pub fn queue(&mut self, key: u32, bytes: &[u8], limit: usize) -> Result<(), Overflow> {
        let Some(conn) = self.slab.get_mut(key as usize) else {
            return Ok(());
        };
        let over = |conn: &Conn| !conn.out.is_empty() && conn.out.len() + bytes.len() > limit;
        // The queue may be long only because this loop turn has not flushed
        // yet: let the socket take what it can before calling the reader slow.
        if over(conn) && (conn.flush() == IoStep::Closed || over(conn)) {
            return Err(Overflow);
        }
        reserve_within(&mut conn.out, bytes.len(), limit);
        conn.out.extend_from_slice(bytes);
        self.mark_dirty(key);
        Ok(())
    }

    /// Notes that `key` has bytes to flush at the end of this loop iteration.
    pub fn mark_dirty(&mut self, key: u32) {
        if let Some(conn) = self.slab.get_mut(key as usize) {
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    /// The connections marked dirty since the last call (flags cleared).
    pub fn take_dirty(&mut self) -> Vec<u32> {
        let dirty = std::mem::take(&mut self.dirty);
        for &key in &dirty {
            if let Some(conn) = self.slab.get_mut(key as usize) {
                conn.dirty = false;
            }
        }
        dirty
    }

    /// Hands back the (emptied) list taken by [`take_dirty`](Self::take_dirty),
    /// so its allocation is reused.
    pub fn return_dirty(&mut self, mut list: Vec<u32>) {
        if self.dirty.is_empty() {
            list.clear();
            self.dirty = list;
        }
    }
}

/// Makes room for `extra` more bytes in `out`, doubling its capacity as `Vec`
/// does but never past `limit` plus the new bytes: a queue capped at `limit`
/// never holds an allocation twice that size.
fn reserve_within(out: &mut Vec<u8>, extra: usize, limit: usize) {
    let needed = out.len() + extra;
    if needed > out.capacity() {
        let target = (out.capacity() * 2).clamp(needed, (limit + extra).max(needed));
        out.reserve_exact(target - out.len());
    }
}

#[cfg(test)]
mod tests {
    use super::reserve_within;

    #[test]
    fn queues_grow_by_doubling_but_not_past_the_cap() {
        let mut out = Vec::new();
        let mut reallocations = 0;
        // `queue` lets a queue reach the cap plus one message, no further.
        while out.len() < 64 * 1024 {
            let capacity = out.capacity();
            reserve_within(&mut out, 100, 64 * 1024);
            out.extend_from_slice(&[0; 100]);
            reallocations += usize::from(out.capacity() != capacity);
            assert!(
                out.capacity() <= 64 * 1024 + 200,
                "capacity {}",
                out.capacity()
            );
        }
        assert!(
            reallocations < 20,
            "amortised: {reallocations} reallocations"
        );
    }
}
