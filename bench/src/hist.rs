//! A log-linear latency histogram (HDR-like): exact below 1024 ns, then 512 sub-buckets per
//! power of two, i.e. ≤ 0.2 % relative error at every scale, in a fixed ~140 KiB.
//!
//! One histogram per row, shared by all the row's clients (the bench is single-threaded), so
//! 2000 clients cost no more memory than one.

const SUB: u64 = 512;
const LINEAR: u64 = 2 * SUB;
const BUCKETS: usize = (LINEAR + 44 * SUB) as usize;

/// Counts of nanosecond values.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
            sum: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let e = 63 - v.leading_zeros() as u64 - 9; // v >> e is in [512, 1024)
    ((LINEAR + (e - 1) * SUB + ((v >> e) - SUB)) as usize).min(BUCKETS - 1)
}

/// The highest value that falls in bucket `i` (percentiles round up, never flatter the result).
fn upper(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let e = (i - LINEAR) / SUB + 1;
    let m = (i - LINEAR) % SUB + SUB;
    ((m + 1) << e) - 1
}

impl Histogram {
    /// Adds one value.
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.total += 1;
        self.sum += v as u128;
        self.max = self.max.max(v);
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Largest value (exact).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Mean value.
    pub fn mean(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            (self.sum / self.total as u128) as u64
        }
    }

    /// The value at quantile `q` (0..=1), rounded up to its bucket's top, capped at the max.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(self.max);
            }
        }
        self.max
    }

    /// Adds all of `other`'s values.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_trip_within_0_2_percent() {
        for v in [
            0u64,
            1,
            1023,
            1024,
            1025,
            5000,
            123_456,
            1_000_000,
            987_654_321,
            1 << 50,
        ] {
            let u = upper(index(v));
            assert!(u >= v, "{v} -> {u}");
            assert!((u - v) as f64 <= v as f64 * 0.002 + 1.0, "{v} -> {u}");
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::default();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        assert!((h.quantile(0.5) as i64 - 500_000).abs() < 1000);
        assert!((h.quantile(0.99) as i64 - 990_000).abs() < 2000);
        assert_eq!(h.quantile(1.0), 1_000_000);
        assert_eq!(h.max(), 1_000_000);
    }
}
