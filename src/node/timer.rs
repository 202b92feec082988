//! A hashed timing wheel of connection deadlines.
//!
//! Each connection has one deadline, kept in the connection itself; the wheel
//! only holds a reminder in the slot of that deadline. Activity moves the
//! deadline without touching the wheel: when a reminder comes due, the loop
//! compares it with the connection's current deadline and re-files it if the
//! deadline moved. Every operation is O(1) and costs no syscall.
//!
//! The wheel never reads the clock: the loop tells it the time once per
//! iteration ([`TimerWheel::advance`]), and every deadline and expiry is
//! relative to that, so tests drive it with made-up instants.

use std::time::{Duration, Instant};

use crate::bus::ConnId;

/// Wheel resolution.
pub const TICK: Duration = Duration::from_millis(100);
/// Number of slots; deadlines further out are re-filed when their slot comes round.
const SLOTS: u64 = 1024;

/// Time in wheel ticks since the loop started.
pub type Tick = u64;

/// The wheel of one event loop.
pub struct TimerWheel {
    start: Instant,
    /// The time last given to [`advance`](TimerWheel::advance).
    clock: Instant,
    slots: Vec<Vec<ConnId>>,
    /// The next tick whose slot has not been expired yet.
    cursor: Tick,
}

impl TimerWheel {
    /// An empty wheel whose tick 0 is `start`, the time it was last told.
    pub fn new(start: Instant) -> TimerWheel {
        TimerWheel {
            start,
            clock: start,
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            cursor: 0,
        }
    }

    /// Sets the wheel's time to `now` (never backwards); returns its tick.
    pub fn advance(&mut self, now: Instant) -> Tick {
        self.clock = self.clock.max(now);
        self.now()
    }

    /// The tick of the wheel's time.
    pub fn now(&self) -> Tick {
        let elapsed = self.clock.duration_since(self.start);
        (elapsed.as_millis() / TICK.as_millis()) as Tick
    }

    /// The tick `after` from the wheel's time, rounded up so a deadline never
    /// fires early.
    pub fn after(&self, after: Duration) -> Tick {
        let elapsed = self.clock.duration_since(self.start) + after;
        elapsed.as_millis().div_ceil(TICK.as_millis()) as Tick
    }

    /// Files a reminder for `conn` at `due` (a past tick fires on the next expiry).
    pub fn schedule(&mut self, conn: ConnId, due: Tick) {
        let due = due.max(self.cursor).min(self.cursor + SLOTS - 1);
        self.slots[(due % SLOTS) as usize].push(conn);
    }

    /// Time from `now` until the next tick boundary: how long the loop may
    /// sleep.
    pub fn until_next_tick(&self, now: Instant) -> Duration {
        let next = (self.cursor.max(self.now()) + 1) as u32;
        (self.start + TICK * next).saturating_duration_since(now)
    }

    /// Every reminder not yet expired (for checks; O(slots + reminders)).
    pub fn pending(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.slots.iter().flatten().copied()
    }

    /// Moves every reminder due by the wheel's time into `due`.
    pub fn expire(&mut self, due: &mut Vec<ConnId>) {
        let now = self.now();
        while self.cursor <= now {
            let slot = &mut self.slots[(self.cursor % SLOTS) as usize];
            due.append(slot);
            self.cursor += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(key: u32) -> ConnId {
        ConnId { key, generation: 0 }
    }

    #[test]
    fn past_and_present_reminders_fire_on_the_next_expiry() {
        let mut wheel = TimerWheel::new(Instant::now());
        wheel.schedule(id(1), 0);
        let mut due = Vec::new();
        wheel.expire(&mut due);
        assert_eq!(due, vec![id(1)]);
        due.clear();
        wheel.expire(&mut due);
        assert!(due.is_empty(), "a reminder fires once");
    }

    #[test]
    fn future_reminders_wait_and_far_ones_are_clamped() {
        let start = Instant::now();
        let mut wheel = TimerWheel::new(start);
        wheel.schedule(id(2), wheel.after(Duration::from_secs(60)));
        wheel.schedule(id(3), SLOTS * 10);
        let mut due = Vec::new();
        wheel.expire(&mut due);
        assert!(due.is_empty());
        wheel.advance(start + Duration::from_secs(59));
        wheel.expire(&mut due);
        assert!(due.is_empty(), "not a tick early");
        // A full turn later the clamped one comes round too.
        wheel.advance(start + TICK * SLOTS as u32);
        wheel.expire(&mut due);
        assert_eq!(due, vec![id(2), id(3)]);
    }

    #[test]
    fn deadlines_round_up_and_time_never_runs_backwards() {
        let start = Instant::now();
        let mut wheel = TimerWheel::new(start);
        assert_eq!(wheel.after(Duration::from_millis(1)), 1);
        assert_eq!(wheel.advance(start + TICK * 3), 3);
        assert_eq!(wheel.advance(start + TICK), 3);
        assert_eq!(wheel.until_next_tick(start + TICK * 3), TICK);
    }
}
