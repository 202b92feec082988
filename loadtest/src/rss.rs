//! Node memory over time during a message run: a coordinator thread reading
//! the nodes' resident memory (`VmRSS`, summed over every `--node-pid`)
//! every [`SAMPLE_EVERY`], and the figures drawn from those readings —
//! before the first send, the peak while sending and draining, right after
//! the drain, and after the idle `--settle` hold.
//!
//! Each reading also takes the kernel's TCP buffer memory (`TCP: mem` of
//! `/proc/net/sockstat`, machine-wide, both ends of every loopback
//! connection): bytes a slow reader has not read yet sit in the node's
//! socket send buffers and the clients' receive buffers before any of them
//! is left in the node's own queues, so the two figures together say where
//! a backlog went.
//!
//! The series logic ([`RssSeries`], [`RssFigures`]) is pure; the sampler
//! takes its reading function as a closure so tests can drive it.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, Sender};
use parking_lot::Mutex;

use crate::report::RunReport;
use crate::sys::now_ns;

/// How often the sampler reads the nodes' memory: 100 ms.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// One reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RssPoint {
    /// When (monotonic ns, [`now_ns`]).
    pub at_ns: u64,
    /// The nodes' resident memory added up, bytes.
    pub bytes: u64,
    /// The kernel's TCP buffer memory, machine-wide, bytes.
    pub kernel_tcp_bytes: u64,
}

/// What a reading function returns: (node RSS, kernel TCP memory), bytes.
pub type Reading = (u64, u64);

/// Readings, in the order they were taken.
#[derive(Debug, Clone, Default)]
pub struct RssSeries {
    points: Vec<RssPoint>,
}

impl RssSeries {
    /// Adds a reading.
    pub fn push(&mut self, point: RssPoint) {
        self.points.push(point);
    }

    /// How many readings.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether there is no reading.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The reading with the highest node RSS taken from `from_ns` to
    /// `to_ns` (both included; the earliest of equal highs), if any.
    pub fn peak_between(&self, from_ns: u64, to_ns: u64) -> Option<RssPoint> {
        self.peak_by(from_ns, to_ns, |p| p.bytes)
    }

    /// The reading with the highest `key` taken from `from_ns` to `to_ns`
    /// (both included; the earliest of equal highs), if any.
    pub fn peak_by(
        &self,
        from_ns: u64,
        to_ns: u64,
        key: impl Fn(&RssPoint) -> u64,
    ) -> Option<RssPoint> {
        highest(
            self.points
                .iter()
                .copied()
                .filter(|p| (from_ns..=to_ns).contains(&p.at_ns)),
            key,
        )
    }
}

/// The point with the highest `key`, the earliest of equal highs.
fn highest(
    points: impl IntoIterator<Item = RssPoint>,
    key: impl Fn(&RssPoint) -> u64,
) -> Option<RssPoint> {
    points.into_iter().fold(None, |best, p| match best {
        Some(b) if key(&b) > key(&p) || (key(&b) == key(&p) && b.at_ns <= p.at_ns) => Some(b),
        _ => Some(p),
    })
}

/// Reads the nodes' memory every [`SAMPLE_EVERY`] on its own thread, from
/// [`RssSampler::start`] until it is stopped or dropped.
pub struct RssSampler {
    read: Arc<dyn Fn() -> Reading + Send + Sync>,
    series: Arc<Mutex<RssSeries>>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    first: RssPoint,
}

impl RssSampler {
    /// Samples the summed `VmRSS` of `pids` (a process that cannot be read
    /// counts as 0, as in [`crate::session::Meter`]) and the kernel's TCP
    /// memory.
    pub fn for_pids(pids: &[u32]) -> RssSampler {
        let pids = pids.to_vec();
        let page = crate::procfs::page_size();
        RssSampler::start(SAMPLE_EVERY, move || {
            let rss = pids
                .iter()
                .map(|&pid| crate::procfs::rss_kib(pid).unwrap_or(0) * 1024)
                .sum();
            (rss, crate::procfs::sockstat().tcp_mem_pages * page)
        })
    }

    /// Takes a first reading now (see [`RssSampler::first`]), then one every
    /// `every` with `read` on a thread.
    pub fn start(
        every: Duration,
        read: impl Fn() -> Reading + Send + Sync + 'static,
    ) -> RssSampler {
        let read: Arc<dyn Fn() -> Reading + Send + Sync> = Arc::new(read);
        let first = point(now_ns(), read());
        let series = Arc::new(Mutex::new(RssSeries::default()));
        series.lock().push(first);
        let (stop, stopped) = crossbeam_channel::bounded::<()>(1);
        let (thread_read, thread_series) = (read.clone(), series.clone());
        let thread = std::thread::Builder::new()
            .name("rss-sampler".into())
            .spawn(move || loop {
                match stopped.recv_timeout(every) {
                    Err(RecvTimeoutError::Timeout) => {
                        let reading = thread_read();
                        thread_series.lock().push(point(now_ns(), reading));
                    }
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
            })
            .ok();
        RssSampler {
            read,
            series,
            stop: Some(stop),
            thread,
            first,
        }
    }

    /// The reading taken by `start`.
    pub fn first(&self) -> RssPoint {
        self.first
    }

    /// Takes a reading now, adds it to the series and returns it.
    pub fn mark(&self) -> RssPoint {
        let point = point(now_ns(), (self.read)());
        self.series.lock().push(point);
        point
    }

    /// A copy of the readings so far.
    pub fn series(&self) -> RssSeries {
        self.series.lock().clone()
    }

    /// Stops the thread and returns every reading.
    pub fn stop(mut self) -> RssSeries {
        self.halt();
        self.series()
    }

    fn halt(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn point(at_ns: u64, (bytes, kernel_tcp_bytes): Reading) -> RssPoint {
    RssPoint {
        at_ns,
        bytes,
        kernel_tcp_bytes,
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.halt();
    }
}

/// What a message run reports about the nodes' memory (and the kernel's
/// TCP memory at the same moments).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RssFigures {
    /// Just before the first send, bytes.
    pub before: u64,
    /// The highest reading from just before the first send to the end of
    /// the drain, bytes.
    pub peak: u64,
    /// When the peak was read, seconds after `before`.
    pub peak_at_s: f64,
    /// Right after the last delivery (the end of the drain), bytes.
    pub drained: u64,
    /// After the idle `--settle` hold, bytes (none without `--settle`).
    pub settled: Option<u64>,
    /// Readings taken over the whole run (send, drain and settle).
    pub samples: usize,
    /// Kernel TCP memory (machine-wide) at `before`, at its own peak during
    /// send + drain, at `drained` and at `settled`, bytes.
    pub kernel_tcp: [Option<u64>; 4],
}

impl RssFigures {
    /// The figures from `series`, given the readings taken before the first
    /// send, at the end of the drain and (optionally) after settling.
    pub fn from_series(
        series: &RssSeries,
        before: RssPoint,
        drained: RssPoint,
        settled: Option<RssPoint>,
    ) -> RssFigures {
        // `before` and `drained` are in the window even if not in `series`.
        let peak_by = |key: fn(&RssPoint) -> u64| {
            let inside = series.peak_by(before.at_ns, drained.at_ns, key);
            highest(inside.into_iter().chain([before, drained]), key).unwrap_or(before)
        };
        let peak = peak_by(|p| p.bytes);
        let tcp_peak = peak_by(|p| p.kernel_tcp_bytes);
        RssFigures {
            before: before.bytes,
            peak: peak.bytes,
            peak_at_s: peak.at_ns.saturating_sub(before.at_ns) as f64 / 1e9,
            drained: drained.bytes,
            settled: settled.map(|p| p.bytes),
            samples: series.len(),
            kernel_tcp: [
                Some(before.kernel_tcp_bytes),
                Some(tcp_peak.kernel_tcp_bytes),
                Some(drained.kernel_tcp_bytes),
                settled.map(|p| p.kernel_tcp_bytes),
            ],
        }
    }

    /// Adds `node_rss_before_bytes`, `node_rss_peak_bytes`,
    /// `node_rss_peak_at_s`, `node_rss_drained_bytes`,
    /// `node_rss_settled_bytes` (with `--settle`), `node_rss_backlog_bytes`
    /// (peak − before), `node_rss_samples`, and the same four moments of
    /// `kernel_tcp_mem_*_bytes` to `report`.
    pub fn add_to(&self, report: &mut RunReport) {
        report.figure("node_rss_before_bytes", self.before);
        report.figure("node_rss_peak_bytes", self.peak);
        report.figure("node_rss_peak_at_s", self.peak_at_s);
        report.figure("node_rss_drained_bytes", self.drained);
        if let Some(settled) = self.settled {
            report.figure("node_rss_settled_bytes", settled);
        }
        report.figure(
            "node_rss_backlog_bytes",
            self.peak.saturating_sub(self.before),
        );
        report.figure("node_rss_samples", self.samples);
        let names = ["before", "peak", "drained", "settled"];
        for (name, value) in names.iter().zip(self.kernel_tcp) {
            if let Some(bytes) = value {
                report.figure(&format!("kernel_tcp_mem_{name}_bytes"), bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn p(at_ns: u64, bytes: u64) -> RssPoint {
        RssPoint {
            at_ns,
            bytes,
            kernel_tcp_bytes: bytes / 10,
        }
    }

    #[test]
    fn peak_is_the_highest_reading_inside_the_window() {
        let mut s = RssSeries::default();
        for point in [
            p(10, 5),
            p(20, 9),
            p(30, 40),
            p(40, 12),
            p(50, 40),
            p(60, 99),
        ] {
            s.push(point);
        }
        // 99 at 60 is after the window; of the two 40s the earlier wins.
        assert_eq!(s.peak_between(10, 55), Some(p(30, 40)));
        // Both ends are included.
        assert_eq!(s.peak_between(20, 20), Some(p(20, 9)));
        assert_eq!(s.peak_between(60, 100), Some(p(60, 99)));
        assert_eq!(s.peak_between(61, 100), None);
        assert_eq!(RssSeries::default().peak_between(0, u64::MAX), None);
    }

    #[test]
    fn figures_take_before_drained_and_settled_as_given() {
        let mut s = RssSeries::default();
        let before = p(1_000_000_000, 100);
        let drained = p(4_000_000_000, 300);
        let settled = p(34_000_000_000, 150);
        for point in [
            before,
            p(2_500_000_000, 900),
            drained,
            p(20_000_000_000, 2_000),
            settled,
        ] {
            s.push(point);
        }
        let f = RssFigures::from_series(&s, before, drained, Some(settled));
        assert_eq!(f.before, 100);
        // 2,000 came during the settle, not during send + drain.
        assert_eq!(f.peak, 900);
        assert!((f.peak_at_s - 1.5).abs() < 1e-9);
        assert_eq!(f.drained, 300);
        assert_eq!(f.settled, Some(150));
        assert_eq!(f.samples, 5);
        assert_eq!(f.kernel_tcp, [Some(10), Some(90), Some(30), Some(15)]);

        let mut r = RunReport::new("fanout", "x");
        f.add_to(&mut r);
        assert_eq!(r.get("node_rss_peak_bytes"), Some(&serde_json::json!(900)));
        assert_eq!(
            r.get("node_rss_backlog_bytes"),
            Some(&serde_json::json!(800))
        );
        assert_eq!(
            r.get("node_rss_settled_bytes"),
            Some(&serde_json::json!(150))
        );
        assert_eq!(
            r.get("kernel_tcp_mem_peak_bytes"),
            Some(&serde_json::json!(90))
        );
    }

    #[test]
    fn the_kernel_peak_is_found_on_its_own() {
        let mut s = RssSeries::default();
        let at = |at_ns, bytes, kernel_tcp_bytes| RssPoint {
            at_ns,
            bytes,
            kernel_tcp_bytes,
        };
        // Node RSS peaks early, kernel buffers later.
        for point in [at(0, 10, 1), at(1, 50, 5), at(2, 20, 70), at(3, 20, 2)] {
            s.push(point);
        }
        let f = RssFigures::from_series(&s, at(0, 10, 1), at(3, 20, 2), None);
        assert_eq!(f.peak, 50);
        assert!((f.peak_at_s - 1e-9).abs() < 1e-12);
        assert_eq!(f.kernel_tcp, [Some(1), Some(70), Some(2), None]);
        assert_eq!(s.peak_by(0, 3, |p| p.kernel_tcp_bytes), Some(at(2, 20, 70)));
    }

    #[test]
    fn peak_is_never_below_the_end_points() {
        // No reading between the two marks (a run shorter than one period),
        // or marks missing from the series: the marks still count.
        let before = p(10, 500);
        let drained = p(20, 700);
        let f = RssFigures::from_series(&RssSeries::default(), before, drained, None);
        assert_eq!((f.peak, f.settled), (700, None));
        assert_eq!(f.kernel_tcp[1], Some(70));
        let mut r = RunReport::new("fanout", "x");
        f.add_to(&mut r);
        assert_eq!(r.get("node_rss_settled_bytes"), None);
        assert_eq!(r.get("kernel_tcp_mem_settled_bytes"), None);
    }

    #[test]
    fn sampler_reads_periodically_and_on_marks() {
        let value = Arc::new(AtomicU64::new(1_000));
        let source = value.clone();
        let sampler = RssSampler::start(Duration::from_millis(5), move || {
            (source.load(Ordering::Relaxed), 0)
        });
        let before = sampler.first();
        assert_eq!(before.bytes, 1_000);
        std::thread::sleep(Duration::from_millis(30));
        value.store(5_000, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(30));
        value.store(2_000, Ordering::Relaxed);
        let drained = sampler.mark();
        assert_eq!(drained.bytes, 2_000);
        let series = sampler.stop();
        assert!(series.len() >= 4, "only {} readings", series.len());
        let f = RssFigures::from_series(&series, before, drained, None);
        assert_eq!(f.peak, 5_000);
        assert!(f.peak_at_s > 0.0);
    }

    #[test]
    fn dropping_the_sampler_stops_its_thread() {
        let calls = Arc::new(AtomicU64::new(0));
        let counter = calls.clone();
        let sampler = RssSampler::start(Duration::from_millis(1), move || {
            (counter.fetch_add(1, Ordering::Relaxed), 0)
        });
        std::thread::sleep(Duration::from_millis(10));
        drop(sampler);
        let after_drop = calls.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(calls.load(Ordering::Relaxed), after_drop);
    }
}
