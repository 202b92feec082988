//! Latency histograms: HDR histograms in microseconds, shipped between
//! processes as sparse `(value, count)` lists (their serde form), summarised
//! as percentiles.

use hdrhistogram::Histogram;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Largest latency tracked (µs): ten minutes.
const MAX_MICROS: u64 = 600_000_000;

/// A latency histogram in microseconds with 3 significant digits.
#[derive(Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl std::fmt::Debug for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Latency")
            .field("count", &self.hist.len())
            .finish()
    }
}

impl Latency {
    /// An empty histogram.
    pub fn new() -> Latency {
        Latency {
            hist: Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid bounds"),
        }
    }

    /// Records a latency in nanoseconds (clamped to the tracked range).
    pub fn record_ns(&mut self, ns: u64) {
        self.hist.saturating_record((ns / 1000).max(1));
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Adds every value recorded in `other`.
    pub fn add(&mut self, other: &Latency) {
        // Same bounds and precision on both sides, so this cannot fail.
        let _ = self.hist.add(&other.hist);
    }

    /// The recorded values as `(value µs, count)` pairs.
    pub fn to_sparse(&self) -> Vec<(u64, u64)> {
        self.hist
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }

    /// Adds the values of a sparse list made by [`to_sparse`](Self::to_sparse).
    pub fn add_sparse(&mut self, values: &[(u64, u64)]) {
        for &(value, count) in values {
            let _ = self.hist.record_n(value.clamp(1, MAX_MICROS), count);
        }
    }

    /// Percentiles in milliseconds (all zero when empty).
    pub fn summary(&self) -> Percentiles {
        if self.hist.is_empty() {
            return Percentiles::default();
        }
        let ms = |q: f64| self.hist.value_at_quantile(q) as f64 / 1000.0;
        Percentiles {
            count: self.hist.len(),
            p50_ms: ms(0.50),
            p90_ms: ms(0.90),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: self.hist.max() as f64 / 1000.0,
            mean_ms: self.hist.mean() / 1000.0,
        }
    }
}

impl Serialize for Latency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_sparse().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut latency = Latency::new();
        latency.add_sparse(&Vec::<(u64, u64)>::deserialize(deserializer)?);
        Ok(latency)
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Number of samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest value.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_round_trip_keeps_percentiles() {
        let mut a = Latency::new();
        for i in 1..=10_000u64 {
            a.record_ns(i * 1_000);
        }
        let mut b = Latency::new();
        b.add_sparse(&a.to_sparse());
        assert_eq!(a.count(), b.count());
        let (sa, sb) = (a.summary(), b.summary());
        assert!((sa.p50_ms - sb.p50_ms).abs() < 0.02, "{sa:?} {sb:?}");
        assert!((sa.p99_ms - 9.9).abs() < 0.02);
        assert!((sb.max_ms - 10.0).abs() < 0.02);
    }

    #[test]
    fn add_matches_recording_both() {
        let (mut a, mut b, mut both) = (Latency::new(), Latency::new(), Latency::new());
        for i in 1..=1_000u64 {
            a.record_ns(i * 7_000);
            b.record_ns(i * 3_000);
            both.record_ns(i * 7_000);
            both.record_ns(i * 3_000);
        }
        a.add(&b);
        assert_eq!(a.to_sparse(), both.to_sparse());
        assert_eq!(a.summary(), both.summary());
    }

    #[test]
    fn empty_histogram_summarises_to_zero() {
        assert_eq!(Latency::new().summary(), Percentiles::default());
    }
}
