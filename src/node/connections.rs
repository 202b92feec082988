//! The loop's connections: a slab of [`Conn`]s addressed by generation-tagged
//! [`ConnId`]s, the timing wheel of their deadlines (and with it the loop's
//! clock), and the list of connections with bytes queued to flush. No
//! sockets: the loop keeps those by the same slot keys.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;

use super::conn::{Conn, IoStep, Pending, Phase, Session, Wire};
use super::timer::{Tick, TimerWheel};
use crate::bus::{ConnId, Frame};
use crate::http::PerMessageDeflate;

/// Why bytes could not be queued for a connection.
#[derive(Debug, PartialEq, Eq)]
pub struct Overflow;

/// Every connection of one loop.
pub struct Connections {
    slab: Slab<Conn>,
    /// A reminder for each connection at (or before) its deadline.
    wheel: TimerWheel,
    dirty: Vec<u32>,
    /// Frames queued since the dirty list was last taken.
    queued: usize,
    generation: u32,
    upgrading: usize,
}

impl Default for Connections {
    /// No connections; the clock starts now.
    fn default() -> Connections {
        Connections::new(Instant::now())
    }
}

impl Connections {
    /// No connections; the clock starts at `start`.
    pub fn new(start: Instant) -> Connections {
        Connections {
            slab: Slab::new(),
            wheel: TimerWheel::new(start),
            dirty: Vec::new(),
            queued: 0,
            generation: 0,
            upgrading: 0,
        }
    }

    /// Sets the clock to `now` (never backwards); returns its tick.
    pub fn advance(&mut self, now: Instant) -> Tick {
        self.wheel.advance(now)
    }

    /// The clock's tick.
    pub fn now(&self) -> Tick {
        self.wheel.now()
    }

    /// The tick `after` from the clock's time (rounded up).
    pub fn after(&self, after: Duration) -> Tick {
        self.wheel.after(after)
    }

    /// How long the loop may sleep before the next tick.
    pub fn until_next_tick(&self, now: Instant) -> Duration {
        self.wheel.until_next_tick(now)
    }

    /// The connections whose reminders came due by the clock's time, into
    /// `due` (ask [`due`](Self::due) about each).
    pub fn expire(&mut self, due: &mut Vec<ConnId>) {
        self.wheel.expire(due);
    }

    /// The connection a due reminder names, if its deadline has come; a
    /// connection whose deadline moved later gets a reminder for it. The
    /// reminder is spent either way: a connection given a new deadline needs
    /// [`rearm`](Self::rearm).
    pub fn due(&mut self, id: ConnId) -> Option<&mut Conn> {
        let now = self.wheel.now();
        let conn = self
            .slab
            .get_mut(id.key as usize)
            .filter(|conn| conn.generation() == id.generation)?;
        let deadline = conn.deadline();
        if deadline == Tick::MAX {
            return None;
        }
        if deadline > now {
            self.wheel.schedule(id, deadline);
            return None;
        }
        Some(conn)
    }

    /// Moves a connection's deadline. A later deadline needs no wheel work (the
    /// pending reminder re-files itself); an earlier one gets its own reminder.
    pub fn set_deadline(&mut self, key: u32, deadline: Tick) {
        let Some(conn) = self.slab.get_mut(key as usize) else {
            return;
        };
        let earlier = deadline < conn.deadline();
        conn.set_deadline(deadline);
        if earlier {
            let generation = conn.generation();
            self.wheel.schedule(ConnId { key, generation }, deadline);
        }
    }

    /// Gives a connection whose reminder was spent (see [`due`](Self::due))
    /// a new deadline, with a reminder.
    pub fn rearm(&mut self, id: ConnId, deadline: Tick) {
        if let Some(conn) = self.live(id) {
            conn.set_deadline(deadline);
            self.wheel.schedule(id, deadline);
        }
    }

    /// Makes every connection inserted from now on have a generation above
    /// `floor` (see [`Imports`](crate::bus::Imports)).
    pub fn raise_generation(&mut self, floor: u32) {
        self.generation = self.generation.max(floor);
    }

    /// The key the next inserted connection will get.
    pub fn next_key(&self) -> u32 {
        self.slab.vacant_key() as u32
    }

    /// Stores a new connection reading its upgrade request.
    pub fn insert(&mut self, deadline: Tick) -> ConnId {
        let reading = Phase::Handshake { head: Vec::new() };
        self.insert_in(reading, deadline)
    }

    /// Stores a new connection in `phase` (an adopted one waits for
    /// admission), with a reminder at `deadline` (none at `Tick::MAX`).
    pub fn insert_in(&mut self, phase: Phase, deadline: Tick) -> ConnId {
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        if phase.is_upgrading() {
            self.upgrading += 1;
        }
        let conn = Conn::new(generation, phase, deadline);
        let id = ConnId {
            key: self.slab.insert(conn) as u32,
            generation,
        };
        if deadline != Tick::MAX {
            self.wheel.schedule(id, deadline);
        }
        id
    }

    /// The connection in slot `key`, if any.
    pub fn get_mut(&mut self, key: u32) -> Option<&mut Conn> {
        self.slab.get_mut(key as usize)
    }

    /// The connection `id` names, unless it closed since.
    pub fn live(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.slab
            .get_mut(id.key as usize)
            .filter(|conn| conn.generation() == id.generation)
    }

    /// The phase of the connection in slot `key`, if any.
    pub fn phase(&self, key: u32) -> Option<&Phase> {
        Some(self.slab.get(key as usize)?.phase())
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
            generation: conn.generation(),
        })
    }

    /// Takes the connection out of the slab.
    pub fn remove(&mut self, key: u32) -> Option<Conn> {
        let conn = self.slab.try_remove(key as usize)?;
        if conn.phase().is_upgrading() {
            self.upgrading -= 1;
        }
        if let Some(at) = conn.dirty_at() {
            // The list holds live connections only: the last entry takes
            // its place.
            self.dirty.swap_remove(at as usize);
            if let Some(&moved) = self.dirty.get(at as usize) {
                self.slab[moved as usize].set_dirty_at(Some(at));
            }
        }
        Some(conn)
    }

    /// Takes a connection waiting for admission out of the slab, to hand it
    /// over to another loop: what its `101` needs.
    pub fn take_pending(&mut self, key: u32) -> Option<Pending> {
        if !matches!(self.slab.get(key as usize)?.phase(), Phase::Authorizing(_)) {
            return None;
        }
        match self.remove(key)?.into_phase() {
            Phase::Authorizing(pending) => Some(pending),
            _ => None,
        }
    }

    /// Moves connection `key` to `phase`; returns the phase it left.
    pub fn set_phase(&mut self, key: u32, phase: Phase) -> Option<Phase> {
        let conn = self.slab.get_mut(key as usize)?;
        let now_upgrading = phase.is_upgrading();
        let old = conn.replace_phase(phase);
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
    /// than `limit` bytes plus the message in flight. A session that
    /// negotiated permessage-deflate gets the frame's compressed variant
    /// when `deflate` says so (it makes the variant if needed).
    pub fn queue(
        &mut self,
        key: u32,
        frame: &Arc<Frame>,
        limit: usize,
        wire: &mut impl Wire,
        deflate: &mut impl FnMut(PerMessageDeflate) -> bool,
    ) -> Result<(), Overflow> {
        let Some(conn) = self.slab.get_mut(key as usize) else {
            return Ok(());
        };
        let deflated = conn
            .session()
            .and_then(|session| session.deflate)
            .is_some_and(deflate);
        let len = frame.bytes_as(deflated).len();
        let over = |conn: &Conn| conn.lag_with(len) > limit;
        // The queue may be long only because this loop turn has not flushed
        // yet: let the socket take what it can before calling the reader slow.
        if over(conn) && (wire.flush(key, conn) == IoStep::Closed || over(conn)) {
            return Err(Overflow);
        }
        conn.send_frame(frame.clone(), deflated);
        self.queued += 1;
        self.mark_dirty(key);
        Ok(())
    }

    /// Notes that `key` has bytes to flush at the end of this loop iteration.
    pub fn mark_dirty(&mut self, key: u32) {
        if let Some(conn) = self.slab.get_mut(key as usize) {
            if conn.dirty_at().is_none() {
                conn.set_dirty_at(Some(self.dirty.len() as u32));
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
                conn.set_dirty_at(None);
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

impl Connections {
    /// Every connection with its slot key.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Conn)> {
        self.slab.iter().map(|(key, conn)| (key as u32, conn))
    }

    /// Checks what this part of the loop keeps consistent: the count of
    /// upgrading connections matches the slab; the dirty list holds live
    /// connections only, once each, exactly those flagged dirty; no
    /// connection whose write side is shut has bytes queued; every
    /// connection with a deadline has a reminder in the wheel.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.check_slots()?;
        let reminded: HashSet<ConnId> = self.wheel.pending().collect();
        for (key, conn) in self.iter() {
            let id = ConnId {
                key,
                generation: conn.generation(),
            };
            if conn.deadline() != Tick::MAX && !reminded.contains(&id) {
                return Err(format!("connection {key} has a deadline but no reminder"));
            }
        }
        Ok(())
    }

    /// [`check_invariants`](Self::check_invariants) but the reminders (which
    /// take a walk over the whole wheel).
    pub fn check_slots(&self) -> Result<(), String> {
        let upgrading = self
            .iter()
            .filter(|(_, c)| c.phase().is_upgrading())
            .count();
        if upgrading != self.upgrading {
            return Err(format!(
                "{} connections counted as upgrading, {upgrading} are",
                self.upgrading
            ));
        }
        for (at, &key) in self.dirty.iter().enumerate() {
            let conn = self.slab.get(key as usize);
            if conn.and_then(Conn::dirty_at) != Some(at as u32) {
                return Err(format!(
                    "dirty list entry {at} is {key}, not a connection listed there"
                ));
            }
        }
        for (key, conn) in self.iter() {
            let listed = conn.dirty_at().and_then(|at| self.dirty.get(at as usize));
            if conn.dirty_at().is_some() && listed != Some(&key) {
                return Err(format!("connection {key} is flagged dirty but not listed"));
            }
            if matches!(conn.phase(), Phase::Shut) && conn.has_unsent() {
                return Err(format!(
                    "connection {key} has bytes queued after its shutdown"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::conn::Farewell;

    /// `n` connections reading their upgrade request.
    fn connections(n: usize) -> Connections {
        let mut conns = Connections::default();
        for _ in 0..n {
            conns.insert(0);
        }
        conns
    }

    #[test]
    fn removing_a_dirty_connection_takes_it_off_the_list() {
        let mut conns = connections(4);
        for key in [0, 1, 2, 3, 1] {
            conns.mark_dirty(key);
        }
        conns.check_invariants().unwrap();
        assert!(conns.remove(1).is_some());
        conns.check_invariants().unwrap();
        assert!(conns.remove(3).is_some(), "the one moved into its place");
        conns.check_invariants().unwrap();
        let mut dirty = conns.take_dirty();
        dirty.sort_unstable();
        assert_eq!(dirty, vec![0, 2]);
        conns.check_invariants().unwrap();
        assert_eq!(
            conns.iter().filter(|(_, c)| c.dirty_at().is_some()).count(),
            0
        );
    }

    #[test]
    fn phases_keep_the_count_of_upgrading_connections() {
        let mut conns = connections(3);
        assert_eq!(conns.upgrading(), 3);
        let pending = Pending {
            accept_key: "k".into(),
            heartbeat: true,
            deflate: None,
            early_bytes: b"early".to_vec(),
        };
        let left = conns.set_phase(0, Phase::Authorizing(pending));
        assert!(matches!(left, Some(Phase::Handshake { .. })));
        assert_eq!(conns.upgrading(), 3);
        assert!(conns.take_pending(1).is_none(), "not waiting for admission");
        let pending = conns.take_pending(0).unwrap();
        assert_eq!(pending.early_bytes, b"early");
        assert_eq!((conns.upgrading(), conns.len()), (2, 2));
        conns.set_phase(1, Phase::Closing(Farewell::Refused(400)));
        assert_eq!(conns.upgrading(), 1);
        conns.check_invariants().unwrap();
    }

    #[test]
    fn a_reminder_acts_once_the_deadline_has_come() {
        let start = Instant::now();
        let second = Duration::from_secs(1);
        let mut conns = Connections::new(start);
        let id = conns.insert(conns.after(second));
        conns.check_invariants().unwrap();
        let mut due = Vec::new();

        // Moved later without wheel work: the reminder re-files itself.
        let later = conns.after(3 * second);
        conns.get_mut(id.key).unwrap().set_deadline(later);
        conns.advance(start + second);
        conns.expire(&mut due);
        assert_eq!(due, vec![id]);
        assert!(conns.due(id).is_none(), "not yet");
        conns.check_invariants().unwrap();

        due.clear();
        conns.advance(start + 3 * second);
        conns.expire(&mut due);
        assert_eq!(due, vec![id]);
        assert!(conns.due(id).is_some());
        let broken = conns.check_invariants().unwrap_err();
        assert!(broken.contains("no reminder"), "spent: {broken}");
        conns.rearm(id, conns.after(10 * second));
        conns.check_invariants().unwrap();

        // An earlier deadline gets a reminder of its own.
        conns.set_deadline(id.key, conns.after(second));
        due.clear();
        conns.advance(start + 4 * second);
        conns.expire(&mut due);
        assert_eq!(due, vec![id]);
        assert!(conns.due(id).is_some());
    }

    #[test]
    fn invariants_catch_bytes_queued_after_the_write_side_shut() {
        let mut conns = connections(1);
        conns.set_phase(0, Phase::Shut);
        conns.check_invariants().unwrap();
        let conn = conns.get_mut(0).unwrap();
        conn.send(|out| out.extend_from_slice(b"late"));
        let broken = conns.check_invariants().unwrap_err();
        assert!(broken.contains("after its shutdown"), "{broken}");
    }

    #[test]
    fn invariants_catch_a_wrong_count_or_a_stale_dirty_entry() {
        let mut conns = connections(2);
        conns.upgrading += 1;
        assert!(conns.check_invariants().is_err());
        conns.upgrading -= 1;
        conns.dirty.push(1);
        assert!(conns.check_invariants().is_err(), "listed, not flagged");
        conns.dirty.clear();
        conns.slab[0].set_dirty_at(Some(0));
        assert!(conns.check_invariants().is_err(), "flagged, not listed");
    }
}
