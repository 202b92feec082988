//! Rate limiting for log lines that a misbehaving peer could trigger at
//! network speed (misrouted commands, refused connections).

use std::time::{Duration, Instant};

/// Lets one event through per `interval` and counts the rest.
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    next: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// A throttle that lets one event through per `interval`.
    pub fn new(interval: Duration) -> Throttle {
        Throttle {
            interval,
            next: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when this event may be logged, `n` being how many were
    /// suppressed since the last one; `None` when it should be dropped.
    pub fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.next.is_some_and(|next| now < next) {
            self.suppressed += 1;
            return None;
        }
        self.next = Some(now + self.interval);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_interval_with_a_count_of_the_rest() {
        let mut throttle = Throttle::new(Duration::from_secs(3600));
        assert_eq!(throttle.allow(), Some(0));
        assert_eq!(throttle.allow(), None);
        assert_eq!(throttle.allow(), None);
        throttle.next = Some(Instant::now());
        assert_eq!(throttle.allow(), Some(2));
    }
}
