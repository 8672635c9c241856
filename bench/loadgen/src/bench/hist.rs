//! Latency histograms (HdrHistogram, microsecond resolution, 3 significant digits), sharded so
//! tens of thousands of reader tasks on 2 threads rarely contend.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Highest trackable value: 1 hour in µs (larger values are clamped).
const MAX_US: u64 = 3_600_000_000;

pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("histogram bounds")
}

/// Records durations from many tasks.
pub struct Latencies {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    pub fn new() -> Self {
        Latencies {
            shards: (0..16).map(|_| Mutex::new(new_hist())).collect(),
        }
    }

    /// `key` picks the shard (a connection index, a sequence number...).
    pub fn record(&self, key: usize, d: Duration) {
        self.record_us(key, d.as_micros() as u64);
    }

    pub fn record_ns(&self, key: usize, ns: u64) {
        self.record_us(key, ns / 1000);
    }

    pub fn record_us(&self, key: usize, us: u64) {
        let us = us.clamp(1, MAX_US);
        let mut h = self.shards[key % self.shards.len()].lock().unwrap();
        let _ = h.record(us);
    }

    pub fn merged(&self) -> Histogram<u64> {
        let mut all = new_hist();
        for s in &self.shards {
            let _ = all.add(&*s.lock().unwrap());
        }
        all
    }

    pub fn summary(&self) -> Value {
        summary(&self.merged())
    }
}

/// `{count, min, mean, p50, p90, p99, p999, max}` in milliseconds.
pub fn summary(h: &Histogram<u64>) -> Value {
    let ms = |us: u64| (us as f64 / 1000.0 * 1000.0).round() / 1000.0;
    if h.is_empty() {
        return json!({"count": 0});
    }
    json!({
        "count": h.len(),
        "min": ms(h.min()),
        "mean": ((h.mean() / 1000.0) * 1000.0).round() / 1000.0,
        "p50": ms(h.value_at_quantile(0.50)),
        "p90": ms(h.value_at_quantile(0.90)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p999": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_in_ms() {
        let l = Latencies::new();
        for i in 1..=1000u64 {
            l.record(i as usize, Duration::from_micros(i * 1000)); // 1..1000 ms
        }
        let s = l.summary();
        assert_eq!(s["count"], 1000);
        let p50 = s["p50"].as_f64().unwrap();
        assert!((p50 - 500.0).abs() < 1.0, "{s}");
        let p99 = s["p99"].as_f64().unwrap();
        assert!((p99 - 990.0).abs() < 1.5, "{s}");
        let max = s["max"].as_f64().unwrap();
        assert!((max - 1000.0).abs() < 1.0, "{s}");
        assert_eq!(summary(&new_hist()), json!({"count": 0}));
        // clamping, never a panic
        l.record_us(0, u64::MAX);
        l.record_us(0, 0);
    }
}
