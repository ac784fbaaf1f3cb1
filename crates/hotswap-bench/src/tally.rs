//! `Tally`: what a stretch of load saw, one type for every benchmark that
//! counts answers (the throughput runs of `bench http`, the correctness
//! counts of `bench upgrade` and `bench fleet`).

use std::time::Duration;

use hdrhistogram::Histogram;

/// How many first failures a tally keeps, to show why.
const KEPT_ERRORS: usize = 5;

/// Answers counted by one or more clients.
#[derive(Default)]
pub(crate) struct Tally {
    /// Right answers.
    pub(crate) ok: u64,
    /// Wrong answers and failed requests.
    pub(crate) failed: u64,
    /// Connections refused.
    pub(crate) refused: u64,
    /// The first failures, for the report.
    pub(crate) errors: Vec<String>,
    /// How long it counted (summed over sequential stretches).
    pub(crate) elapsed: Duration,
    /// Latencies in nanoseconds, where they were measured.
    pub(crate) hist: Option<Histogram<u64>>,
}

impl Tally {
    /// Counts a failure, keeping its reason among the first few.
    pub(crate) fn fail(&mut self, why: impl FnOnce() -> String) {
        self.failed += 1;
        if self.errors.len() < KEPT_ERRORS {
            self.errors.push(why());
        }
    }

    /// Adds `other`'s counts, latencies and first errors.
    pub(crate) fn add(&mut self, other: Tally) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.refused += other.refused;
        let room = KEPT_ERRORS.saturating_sub(self.errors.len());
        self.errors.extend(other.errors.into_iter().take(room));
        self.elapsed += other.elapsed;
        match (&mut self.hist, other.hist) {
            (Some(h), Some(o)) => h.add(o).expect("same bounds"),
            (h @ None, o) => *h = o,
            _ => {}
        }
    }

    /// Right answers per second.
    pub(crate) fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The 99th percentile latency, in ms (0 without latencies).
    pub(crate) fn p99_ms(&self) -> f64 {
        self.hist
            .as_ref()
            .map_or(0.0, |h| h.value_at_quantile(0.99) as f64 / 1e6)
    }
}
