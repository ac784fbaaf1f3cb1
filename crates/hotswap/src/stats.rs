//! Small measuring helpers for the benchmarks: percentiles and RSS.

/// The process's resident memory, in KiB (Linux).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        // statm counts 4 KiB pages on every Linux target hotswap builds for.
        .map_or(0, |pages| pages * 4)
}

/// Memory this process holds, in KiB, counting shared memory whole:
/// its private and file-backed resident pages (`RssAnon` + `RssFile`), plus
/// the machine's shared memory (`Shmem` in `/proc/meminfo`), which holds
/// every memfd in full whether or not its pages are mapped. Only deltas
/// mean anything, and only on a machine where nothing else changes its
/// shared memory meanwhile.
pub fn memory_kib() -> u64 {
    let field = |file: &str, name: &str| -> u64 {
        std::fs::read_to_string(file)
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with(name))?
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    };
    field("/proc/self/status", "RssAnon:")
        + field("/proc/self/status", "RssFile:")
        + field("/proc/meminfo", "Shmem:")
}

/// Sorted samples, for percentiles.
pub struct Samples(Vec<u64>);

impl Samples {
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

    pub fn len(&self) -> usize {
        self.0.len()
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
