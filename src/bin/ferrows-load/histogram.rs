//! A log-linear latency histogram: fixed memory, under 0.4 % relative error.

/// Bits of linear resolution: values below `2^SUB_BITS` have a bucket each,
/// and every power of two above is split into `2^(SUB_BITS-1)` buckets.
const SUB_BITS: u32 = 8;
/// Buckets per power of two above the linear range.
const HALF: usize = 1 << (SUB_BITS - 1);
/// Enough buckets for any `u64`.
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * HALF + HALF;

/// Counts of values (nanoseconds here) in log-linear buckets, like HdrHistogram.
///
/// About 58 KiB whatever the number of samples, and mergeable across threads.
#[derive(Clone)]
pub struct Histogram {
    /// Samples per bucket.
    counts: Box<[u64]>,
    /// Samples recorded.
    total: u64,
    /// Smallest sample.
    min: u64,
    /// Largest sample.
    max: u64,
    /// Sum of samples, for the mean.
    sum: u128,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram").field("total", &self.total).field("min", &self.min).field("max", &self.max).finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; BUCKETS].into_boxed_slice(), total: 0, min: u64::MAX, max: 0, sum: 0 }
    }
}

/// The bucket of `value`.
fn index(value: u64) -> usize {
    if value < (1 << SUB_BITS) {
        return value as usize;
    }
    let msb = 63 - value.leading_zeros();
    let shift = msb - (SUB_BITS - 1);
    // value >> shift lies in HALF..2*HALF, so buckets continue where the linear range ends.
    shift as usize * HALF + (value >> shift) as usize
}

/// The largest value that falls in bucket `i`.
fn highest(i: usize) -> u64 {
    if i < (1 << SUB_BITS) {
        return i as u64;
    }
    let shift = (i / HALF - 1) as u32;
    let mantissa = (i % HALF + HALF) as u64;
    (mantissa << shift) + ((1u64 << shift) - 1)
}

impl Histogram {
    /// Adds one sample.
    pub fn record(&mut self, value: u64) {
        self.counts[index(value)] += 1;
        self.total += 1;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.sum += u128::from(value);
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Largest sample, 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Smallest sample, 0 when empty.
    pub fn min(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            self.min
        }
    }

    /// Mean sample, 0 when empty.
    pub fn mean(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            (self.sum / u128::from(self.total)) as u64
        }
    }

    /// The value below or at which a fraction `q` (0..=1) of the samples fall:
    /// the top of its bucket, never above the largest sample; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return highest(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut previous = None;
        for i in 0..BUCKETS {
            let top = highest(i);
            if let Some(previous) = previous {
                assert_eq!(index(previous + 1), i, "bucket {i}");
            }
            assert_eq!(index(top), i);
            previous = Some(top);
        }
        assert_eq!(previous, Some(u64::MAX));
        for value in [1_000u64, 123_456, 9_999_999_999] {
            let top = highest(index(value));
            assert!(top >= value && (top - value) as f64 / value as f64 <= 1.0 / HALF as f64);
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), 0);
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5);
        assert!((500_000..=502_000).contains(&p50), "{p50}");
        assert_eq!(h.quantile(1.0), 1_000_000);
        assert_eq!(h.min(), 1000);
        assert_eq!(h.mean(), 500_500);
        let mut other = Histogram::default();
        other.record(5_000_000);
        h.merge(&other);
        assert_eq!((h.count(), h.max()), (1001, 5_000_000));
    }
}
