//! The loop's connections: a slab of [`Conn`]s addressed by generation-tagged
//! [`ConnId`]s, and the list of connections with bytes queued to flush.

use std::sync::Arc;

use mio::net::TcpStream;
use slab::Slab;

use super::conn::{Conn, IoStep, Phase, Session};
use super::timer::Tick;
use crate::bus::{ConnId, Frame};

/// Why bytes could not be queued for a connection.
#[derive(Debug, PartialEq, Eq)]
pub struct Overflow;

/// Every connection of one loop.
#[derive(Default)]
pub struct Connections {
    slab: Slab<Conn>,
    dirty: Vec<u32>,
    /// Frames queued since the dirty list was last taken.
    queued: usize,
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

    /// Queues `frame` for the connection, unless that would put more than
    /// `limit` bytes behind the message in flight even after the socket took
    /// what it could. The message in flight does not count: a reader that
    /// keeps taking bytes always gets a message, however large (up to the
    /// largest push), and the next one behind it; a queue never holds more
    /// than `limit` bytes plus the message in flight.
    pub fn queue(&mut self, key: u32, frame: &Arc<Frame>, limit: usize) -> Result<(), Overflow> {
        let Some(conn) = self.slab.get_mut(key as usize) else {
            return Ok(());
        };
        let len = frame.bytes().len();
        let over = |conn: &Conn| conn.out.lag_with(len) > limit;
        // The queue may be long only because this loop turn has not flushed
        // yet: let the socket take what it can before calling the reader slow.
        if over(conn) && (conn.flush() == IoStep::Closed || over(conn)) {
            return Err(Overflow);
        }
        conn.out.push_frame(frame.clone());
        self.queued += 1;
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

    /// Frames queued since the dirty list was last taken.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// The connections marked dirty since the last call (flags cleared).
    pub fn take_dirty(&mut self) -> Vec<u32> {
        self.queued = 0;
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
