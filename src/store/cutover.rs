//! The exact cut of this node's command stream between two processes during
//! a hand-over (a hot upgrade, see `crate::upgrade`).
//!
//! Both processes subscribe to `{prefix}Server{server}` before the old one
//! publishes a `cut` marker (`freeim_protocol::handover`). Redis delivers a
//! channel's messages to every subscriber in publish order, so both see the
//! marker at the same place: the old process delivers every command before
//! it and holds those after it; the new one drops those before it and holds
//! those after it. Then exactly one of them releases what it held: the new
//! one at its `go` marker (it holds every connection by then), or the old
//! one at its `abort` marker (the hand-over failed). Each command is
//! delivered once, in order, by one process.
//!
//! The subscriber thread asks [`CutOver::on_message`] about each command; the
//! hand-over's coordinator sets the states. Outside a hand-over that costs
//! one relaxed atomic load per command.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use freeim_protocol::handover::{parse_marker, Step};
use parking_lot::Mutex;

/// The cut-over of one process; shared by its subscriber and its hand-over
/// coordinator.
#[derive(Default)]
pub struct CutOver {
    /// Whether `state` is anything but [`State::Idle`].
    active: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
enum State {
    /// No hand-over: every command is delivered, markers ignored.
    #[default]
    Idle,
    /// A process started to take over, before it knows the hand-over's id:
    /// every command is the old process's to deliver, none is delivered here.
    Starting,
    /// The old process: deliver until the `cut` marker of `id`, then hold.
    Cutting { id: u64, reached: Sender<()> },
    /// The new process: drop until the `cut` marker of `id`, then hold.
    Awaiting { id: u64, reached: Sender<()> },
    /// Hold every command until the `release` marker of `id`.
    Holding {
        id: u64,
        release: Step,
        held: Vec<Vec<u8>>,
        since: Instant,
    },
    /// The old process after handing over: nothing is delivered any more.
    Retired,
}

/// What the subscriber does with a message.
pub enum Verdict {
    /// Deliver it.
    Deliver,
    /// Drop it (a marker, a command the other process delivers).
    Skip,
    /// Deliver these held commands, in order (it was the release marker).
    Release(Vec<Vec<u8>>),
}

impl CutOver {
    /// The cut-over of a process started to take the connections over
    /// (`--upgrade`): it delivers nothing until it has seen the cut of its
    /// hand-over ([`await_cut`](Self::await_cut)).
    pub fn taking_over() -> CutOver {
        let cutover = CutOver::default();
        cutover.set(State::Starting);
        cutover
    }

    /// The old process, before it publishes the `cut` marker of `id`: the
    /// receiver yields once every command before the marker was routed.
    pub fn cut(&self, id: u64) -> Receiver<()> {
        let (reached, at_cut) = crossbeam_channel::bounded(1);
        self.set(State::Cutting { id, reached });
        at_cut
    }

    /// The new process, once subscribed and before the old one publishes its
    /// marker: the receiver yields once the `cut` marker of `id` was seen.
    pub fn await_cut(&self, id: u64) -> Receiver<()> {
        let (reached, at_cut) = crossbeam_channel::bounded(1);
        self.set(State::Awaiting { id, reached });
        at_cut
    }

    /// The old process, when the hand-over fails: true when the cut was not
    /// reached (nothing held, every command is delivered again at once);
    /// false when commands are held, to be released at an `abort` marker.
    pub fn cancel(&self) -> bool {
        let mut state = self.state.lock();
        match *state {
            State::Holding { .. } => false,
            _ => {
                *state = State::Idle;
                self.active.store(false, Ordering::Release);
                true
            }
        }
    }

    /// The old process, once the new one holds the connections: nothing is
    /// delivered here any more.
    pub fn retire(&self) {
        self.set(State::Retired);
    }

    fn set(&self, state: State) {
        *self.state.lock() = state;
        self.active.store(true, Ordering::Release);
    }

    /// What to do with `payload`, a message on the node's command channel.
    pub fn on_message(&self, payload: &[u8]) -> Verdict {
        let marker = parse_marker(payload);
        if !self.active.load(Ordering::Acquire) {
            return match marker {
                Some(_) => Verdict::Skip,
                None => Verdict::Deliver,
            };
        }
        let mut state = self.state.lock();
        match (&mut *state, marker) {
            (State::Cutting { id, reached }, Some((Step::Cut, seen))) if seen == *id => {
                let _ = reached.send(());
                *state = State::Holding {
                    id: seen,
                    release: Step::Abort,
                    held: Vec::new(),
                    since: Instant::now(),
                };
                Verdict::Skip
            }
            (State::Awaiting { id, reached }, Some((Step::Cut, seen))) if seen == *id => {
                let _ = reached.send(());
                *state = State::Holding {
                    id: seen,
                    release: Step::Go,
                    held: Vec::new(),
                    since: Instant::now(),
                };
                Verdict::Skip
            }
            (
                State::Holding {
                    id, release, held, ..
                },
                Some((step, seen)),
            ) if seen == *id && step == *release => {
                let held = std::mem::take(held);
                *state = State::Idle;
                self.active.store(false, Ordering::Release);
                Verdict::Release(held)
            }
            (_, Some(_)) => Verdict::Skip,
            (State::Idle | State::Cutting { .. }, None) => Verdict::Deliver,
            (State::Starting | State::Awaiting { .. } | State::Retired, None) => Verdict::Skip,
            (State::Holding { held, .. }, None) => {
                held.push(payload.to_vec());
                Verdict::Skip
            }
        }
    }

    /// What has been held for longer than `limit` (longer than any
    /// hand-over can last: its release marker was lost), released: the
    /// process holding it is the one that must deliver it. Checked by the
    /// subscriber after every read.
    pub fn release_overdue(&self, limit: Duration) -> Vec<Vec<u8>> {
        if !self.active.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut state = self.state.lock();
        match &mut *state {
            State::Holding { held, since, .. } if since.elapsed() > limit => {
                let held = std::mem::take(held);
                log::warn!(
                    "hand-over: its release marker did not come within {limit:?}; delivering the \
                     {} commands held since the cut",
                    held.len()
                );
                *state = State::Idle;
                self.active.store(false, Ordering::Release);
                held
            }
            _ => Vec::new(),
        }
    }

    /// The subscription was lost and is back: markers may have been missed.
    /// What was held is released (the gap is reported as any other); a cut
    /// not reached yet is never reached (its hand-over times out).
    pub fn on_resubscribed(&self) -> Vec<Vec<u8>> {
        let mut state = self.state.lock();
        match &mut *state {
            State::Holding { held, .. } => {
                let held = std::mem::take(held);
                *state = State::Idle;
                self.active.store(false, Ordering::Release);
                held
            }
            State::Cutting { .. } | State::Awaiting { .. } => {
                *state = State::Idle;
                self.active.store(false, Ordering::Release);
                Vec::new()
            }
            State::Idle | State::Retired | State::Starting => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use freeim_protocol::handover::marker;

    fn run(cutover: &CutOver, stream: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut delivered = Vec::new();
        for payload in stream {
            match cutover.on_message(payload) {
                Verdict::Deliver => delivered.push(payload.clone()),
                Verdict::Skip => {}
                Verdict::Release(held) => delivered.extend(held),
            }
        }
        delivered
    }

    fn command(n: u8) -> Vec<u8> {
        format!("{{\"n\":{n}}}").into_bytes()
    }

    #[test]
    fn each_command_is_delivered_once_by_one_side() {
        let stream = |release: Step| {
            vec![
                command(1),
                marker(Step::Cut, 9).into_bytes(),
                command(2),
                marker(Step::Cut, 8).into_bytes(), // another hand-over's: ignored
                command(3),
                marker(release, 9).into_bytes(),
                command(4),
            ]
        };
        // Committed: the old side delivers up to the cut, the new one the rest.
        let (old, new) = (CutOver::default(), CutOver::default());
        let _at_cut = (old.cut(9), new.await_cut(9));
        let before = run(&old, &stream(Step::Go)[..3]);
        old.retire();
        let mut all = before;
        all.extend(run(&old, &stream(Step::Go)[3..]));
        let after = run(&new, &stream(Step::Go));
        assert_eq!(all, vec![command(1)]);
        assert_eq!(after, vec![command(2), command(3), command(4)]);

        // Aborted: the old side delivers everything, in order.
        let old = CutOver::default();
        let at_cut = old.cut(9);
        assert_eq!(
            run(&old, &stream(Step::Abort)),
            vec![command(1), command(2), command(3), command(4)]
        );
        assert!(at_cut.try_recv().is_ok());
    }

    #[test]
    fn a_process_taking_over_delivers_nothing_before_its_cut() {
        let new = CutOver::taking_over();
        assert!(run(&new, &[command(1)]).is_empty());
        let _at_cut = new.await_cut(4);
        let stream = [
            command(2),
            marker(Step::Cut, 4).into_bytes(),
            command(3),
            marker(Step::Go, 4).into_bytes(),
        ];
        assert_eq!(run(&new, &stream), vec![command(3)]);
    }

    #[test]
    fn commands_held_past_the_limit_are_released() {
        let old = CutOver::default();
        let _at_cut = old.cut(2);
        run(&old, &[marker(Step::Cut, 2).into_bytes(), command(1)]);
        assert!(old.release_overdue(Duration::from_secs(60)).is_empty());
        assert_eq!(old.release_overdue(Duration::ZERO), vec![command(1)]);
        assert_eq!(run(&old, &[command(2)]), vec![command(2)]);
    }

    #[test]
    fn markers_outside_a_hand_over_are_dropped() {
        let idle = CutOver::default();
        let stream = [marker(Step::Go, 1).into_bytes(), command(1)];
        assert_eq!(run(&idle, &stream), vec![command(1)]);
    }

    #[test]
    fn a_lost_subscription_releases_what_was_held() {
        let new = CutOver::default();
        let _at_cut = new.await_cut(1);
        run(&new, &[marker(Step::Cut, 1).into_bytes(), command(5)]);
        assert_eq!(new.on_resubscribed(), vec![command(5)]);
        assert_eq!(run(&new, &[command(6)]), vec![command(6)]);
    }
}
