//! Sorted samples and their percentiles, for benchmarks that keep every
//! sample.

/// Sorted samples, for percentiles.
#[derive(Debug, Clone)]
pub struct Samples(Vec<u64>);

impl Samples {
    /// Sorts `v`.
    pub fn new(mut v: Vec<u64>) -> Samples {
        v.sort_unstable();
        Samples(v)
    }

    /// The `p`-th percentile (0–100), nearest rank.
    pub fn pct(&self, p: f64) -> u64 {
        if self.0.is_empty() {
            return 0;
        }
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }

    /// How many samples there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::Samples;

    #[test]
    fn nearest_rank_percentiles() {
        let s = Samples::new((1..=100).rev().collect());
        assert_eq!(s.pct(50.0), 50);
        assert_eq!(s.pct(99.0), 99);
        assert_eq!(s.pct(100.0), 100);
        assert_eq!(s.pct(0.0), 1);
        assert_eq!(Samples::new(vec![]).pct(50.0), 0);
    }
}
