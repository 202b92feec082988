//! Read pacing for the slow-reader mode (`--read-rate`): the arithmetic of
//! one token bucket per connection, kept as a single `u64` per connection.
//!
//! The bucket is a GCRA ("virtual scheduling"): each connection keeps a
//! *theoretical arrival time* `tat` (monotonic ns). Reading `n` bytes moves
//! it to `max(tat, now) + n / rate`; a read may take as many bytes as keep
//! `tat` within the bucket's depth — [`BUCKET_NS`] plus one byte's worth —
//! of now. So a connection reads at most `rate` bytes per second on
//! average, and at most the depth's worth at once after an idle spell.
//!
//! A connection whose allowance runs out while its socket still has data
//! stops reading (the kernel's receive buffer then fills, the window closes
//! and the server has to queue) and is resumed [`RESUME_NS`] later. Every
//! resume has the same delay, so the engine keeps the paused connections in
//! a FIFO queue: O(1) per pause, however many connections a worker holds.
//! The delay is half of [`BUCKET_NS`], so a resume that comes late by up
//! to [`RESUME_NS`] finds the bucket not yet full: no allowance is lost and
//! the long-run rate holds (the extra byte's worth in the depth makes this
//! true for rates of a few bytes per second too).
//!
//! No I/O here; the engine ([`crate::engine`]) does the reading.

/// The bucket's depth, as time at the configured rate: 200 ms.
pub const BUCKET_NS: u64 = 200_000_000;
/// How long a connection that used up its allowance waits before reading
/// again: 100 ms, so a paced connection reads about ten times a second.
pub const RESUME_NS: u64 = BUCKET_NS / 2;

/// The pacing shared by every connection of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPacer {
    /// Bytes per second, per connection; never 0.
    rate: u64,
    /// The bucket's depth in ns: [`BUCKET_NS`] plus one byte's worth.
    depth_ns: u64,
}

impl ReadPacer {
    /// A pacer of `bytes_per_s` per connection, or `None` for 0 (unlimited).
    pub fn new(bytes_per_s: u64) -> Option<ReadPacer> {
        (bytes_per_s > 0).then(|| ReadPacer {
            rate: bytes_per_s,
            depth_ns: BUCKET_NS + 1_000_000_000u64.div_ceil(bytes_per_s),
        })
    }

    /// The rate, bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Bytes a connection with theoretical arrival time `tat` (ns; 0 for a
    /// fresh connection) may read at `now` (ns): 0 up to the bucket's depth.
    pub fn allowance(&self, tat: u64, now: u64) -> usize {
        let start = tat.max(now);
        let room_ns = (now + self.depth_ns).saturating_sub(start);
        let bytes = u128::from(room_ns) * u128::from(self.rate) / 1_000_000_000;
        usize::try_from(bytes).unwrap_or(usize::MAX)
    }

    /// The theoretical arrival time after reading `bytes` at `now` (both
    /// ns). The cost is rounded up, so the rate is never exceeded.
    pub fn consume(&self, tat: u64, now: u64, bytes: usize) -> u64 {
        let cost_ns = (bytes as u128 * 1_000_000_000).div_ceil(u128::from(self.rate));
        let cost_ns = u64::try_from(cost_ns).unwrap_or(u64::MAX);
        tat.max(now).saturating_add(cost_ns)
    }

    /// The bucket's depth in bytes (at least 1): what a connection idle for
    /// a while may read at once.
    pub fn depth_bytes(&self) -> usize {
        self.allowance(0, self.depth_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn zero_means_unlimited() {
        assert_eq!(ReadPacer::new(0), None);
        assert_eq!(ReadPacer::new(16_384).unwrap().rate(), 16_384);
    }

    #[test]
    fn a_fresh_or_idle_connection_gets_a_full_bucket() {
        let p = ReadPacer::new(10_000).unwrap();
        // 200 ms at 10,000 B/s, and one byte.
        assert_eq!(p.depth_bytes(), 2_001);
        assert_eq!(p.allowance(0, 5 * S), 2_001);
        // Idle for longer than the bucket: still only the depth.
        let tat = p.consume(0, 5 * S, 2_001);
        assert_eq!(p.allowance(tat, 60 * S), 2_001);
    }

    #[test]
    fn reading_spends_the_allowance_and_time_refills_it() {
        let p = ReadPacer::new(10_000).unwrap();
        let now = 10 * S;
        let tat = p.consume(0, now, 1_500);
        assert_eq!(tat, now + 150_000_000);
        assert_eq!(p.allowance(tat, now), 501);
        let tat = p.consume(tat, now, 501);
        assert_eq!(p.allowance(tat, now), 0);
        // One resume later: 100 ms worth.
        assert_eq!(p.allowance(tat, now + RESUME_NS), 1_000);
        // Late by a whole resume delay: nothing is lost.
        assert_eq!(p.allowance(tat, now + 2 * RESUME_NS), 2_000);
    }

    #[test]
    fn costs_round_up() {
        let p = ReadPacer::new(3).unwrap();
        // 1 byte at 3 B/s costs 333,333,334 ns, not 333,333,333.
        assert_eq!(p.consume(0, S, 1), S + 333_333_334);
    }

    #[test]
    fn rates_under_one_byte_per_bucket_still_read() {
        let p = ReadPacer::new(3).unwrap();
        assert_eq!(p.depth_bytes(), 1);
        assert_eq!(p.allowance(0, S), 1);
        let tat = p.consume(0, S, 1);
        assert_eq!(p.allowance(tat, S), 0);
        // The next byte once `tat` is within the depth (533.3 ms) of now:
        // a byte every third of a second on average.
        assert_eq!(p.allowance(tat, S + 133_333_333), 0);
        assert_eq!(p.allowance(tat, S + 133_333_334), 1);
    }

    /// A reader with an endless backlog, resumed every `RESUME_NS` plus a
    /// jitter below it, reads the configured rate over a long run, and
    /// never more than rate × time + depth.
    #[test]
    fn long_run_rate_holds_with_late_resumes() {
        for rate in [1u64, 3, 100, 2_000, 16_384, 1_000_000] {
            let p = ReadPacer::new(rate).unwrap();
            let (mut now, mut tat, mut read) = (S, 0u64, 0u64);
            let end = now + 60 * S;
            let mut step = 0u64;
            while now < end {
                // Reads come in chunks of at most 1,500 bytes (the socket's
                // backlog arrives in pieces).
                loop {
                    let n = p.allowance(tat, now).min(1_500);
                    if n == 0 {
                        break;
                    }
                    tat = p.consume(tat, now, n);
                    read += n as u64;
                }
                step += 1;
                now += RESUME_NS + (step * 7_919_000) % (RESUME_NS - 1);
            }
            let elapsed_s = (now - S) as f64 / 1e9;
            let expected = rate as f64 * elapsed_s;
            let depth = p.depth_bytes() as f64;
            assert!(
                read as f64 <= expected + depth + 1.0,
                "rate {rate}: read {read}, at most {expected} + {depth}"
            );
            assert!(
                read as f64 >= expected * 0.98 - rate as f64 * 0.2,
                "rate {rate}: read only {read} of {expected}"
            );
        }
    }
}
