//! Prometheus metrics, served as text on the admin listener's `/metrics`:
//! calls, errors and latency per slot and revision, swaps by result, deploy
//! duration, rollbacks, live revisions.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hotswap_core::{Digest, EventBus, Served, Transition};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A label value taken from the revision that served a call (its
/// generation or digest), written out only when scraped, so that a call
/// formats nothing; or a word where no revision did (`none`), or where an
/// older process's counters said something else.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
enum Of<T> {
    Revision(T),
    Word(Cow<'static, str>),
}

impl<T: std::str::FromStr> Of<T> {
    /// As an older process's counters wrote it.
    fn parse(text: String) -> Of<T> {
        match text.parse() {
            Ok(v) => Of::Revision(v),
            Err(_) => Of::Word(Cow::Owned(text)),
        }
    }
}

impl<T: std::fmt::Display> prometheus_client::encoding::EncodeLabelValue for Of<T> {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder,
    ) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        match self {
            Of::Revision(v) => write!(encoder, "{v}"),
            Of::Word(w) => encoder.write_str(w),
        }
    }
}

const NONE: Cow<'static, str> = Cow::Borrowed("none");

/// The outcome of a call that succeeded.
const OK: &str = "ok";

/// Where one revision's successful calls are counted: shared handles on
/// its series in the registry.
#[derive(Clone, Debug)]
pub struct ServedCounters {
    calls: Counter,
    seconds: Histogram,
    tally: Arc<Tally>,
}

impl ServedCounters {
    /// Counts one call that took `took`.
    pub fn record(&self, took: Duration) {
        self.calls.inc();
        self.seconds.observe(took.as_secs_f64());
        self.tally.calls.fetch_add(1, Ordering::Relaxed);
    }
}

/// One slot's calls, summed over its revisions and outcomes: what a fleet
/// member reports for its rollout's error budget (`/metrics` has the same
/// calls by revision and outcome).
#[derive(Debug, Default)]
struct Tally {
    calls: AtomicU64,
    failed: AtomicU64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    slot: String,
    /// The generation that served the call ("none" if none did).
    revision: Of<u64>,
    /// The digest of the revision that served it ("none" if none did), so
    /// counters of different code never merge, even across data dirs.
    digest: Of<Digest>,
    /// `ok`, or the error's kind (`deadline`, `trap`, ...). Owned only
    /// when carried over from the process before an upgrade.
    outcome: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevisionLabels {
    slot: String,
    revision: u64,
    digest: Of<Digest>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SwapLabels {
    slot: String,
    /// `activated`, `failed` or `rolled-back`.
    result: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SlotLabels {
    slot: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric the server keeps, and the registry that prints them.
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    call_seconds: HistogramFamily<RevisionLabels>,
    swaps: Family<SwapLabels, Counter>,
    deploy_seconds: Histogram,
    rollbacks: Family<SlotLabels, Counter>,
    live_revisions: Gauge,
    native_pinned: Gauge,
    tallies: RwLock<HashMap<String, Arc<Tally>>>,
}

fn call_buckets() -> Histogram {
    // 10 µs to ~5 s.
    Histogram::new(exponential_buckets(0.000_01, 2.0, 20))
}

impl Metrics {
    /// All metrics at zero, registered under `hotswap_`.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("hotswap");
        let calls = Family::<CallLabels, Counter>::default();
        let call_seconds = HistogramFamily::<RevisionLabels>::new_with_constructor(
            call_buckets as fn() -> Histogram,
        );
        let swaps = Family::<SwapLabels, Counter>::default();
        // 100 µs to ~100 s: a swap from the cache to a large compile.
        let deploy_seconds = Histogram::new(exponential_buckets(0.000_1, 2.0, 20));
        let rollbacks = Family::<SlotLabels, Counter>::default();
        let live_revisions = Gauge::default();
        let native_pinned = Gauge::default();
        registry.register(
            "calls",
            "Plugin calls by slot, revision and outcome",
            calls.clone(),
        );
        registry.register(
            "call_duration_seconds",
            "Plugin call latency by slot and revision",
            call_seconds.clone(),
        );
        registry.register(
            "swaps",
            "Revision changes by slot and result",
            swaps.clone(),
        );
        registry.register(
            "deploy_duration_seconds",
            "Whole deploys, from upload to active",
            deploy_seconds.clone(),
        );
        registry.register(
            "rollbacks",
            "Rollbacks by slot, requested or automatic",
            rollbacks.clone(),
        );
        registry.register(
            "live_revisions",
            "Revisions alive: serving or draining",
            live_revisions.clone(),
        );
        registry.register(
            "native_pinned_libraries",
            "Native libraries still mapped after unload, pinned (most often by a thread-local destructor); each keeps its memory",
            native_pinned.clone(),
        );
        Metrics {
            registry,
            calls,
            call_seconds,
            swaps,
            deploy_seconds,
            rollbacks,
            live_revisions,
            native_pinned,
            tallies: RwLock::default(),
        }
    }

    /// Adds metrics read at each scrape (the eBPF maps).
    pub(crate) fn register_collector(
        &mut self,
        collector: Box<dyn prometheus_client::collector::Collector>,
    ) {
        self.registry.register_collector(collector);
    }

    /// The counters a revision's successful calls go to: looked up once
    /// per revision (by the data plane's [`crate::http`] stamps), not once
    /// per call, since a lookup hashes every label.
    pub fn served_by(&self, slot: &str, served: &Served) -> ServedCounters {
        let calls = self
            .calls
            .get_or_create(&CallLabels {
                slot: slot.to_string(),
                revision: Of::Revision(served.generation),
                digest: Of::Revision(served.digest),
                outcome: Cow::Borrowed(OK),
            })
            .clone();
        let seconds = self
            .call_seconds
            .get_or_create(&RevisionLabels {
                slot: slot.to_string(),
                revision: served.generation,
                digest: Of::Revision(served.digest),
            })
            .clone();
        ServedCounters {
            calls,
            seconds,
            tally: self.tally(slot),
        }
    }

    fn tally(&self, slot: &str) -> Arc<Tally> {
        let known = self.tallies.read().expect("tallies").get(slot).cloned();
        known.unwrap_or_else(|| {
            let mut tallies = self.tallies.write().expect("tallies");
            tallies.entry(slot.to_string()).or_default().clone()
        })
    }

    /// `slot`'s calls since this process started, and of those how many
    /// failed.
    pub fn slot_calls(&self, slot: &str) -> (u64, u64) {
        let tally = self.tally(slot);
        let failed = tally.failed.load(Ordering::Relaxed);
        (tally.calls.load(Ordering::Relaxed), failed)
    }

    /// Records one data-plane call that failed: no revision served it, so
    /// its outcome (the error's kind) says enough.
    pub fn failed_call(&self, slot: &str, outcome: &'static str) {
        self.calls
            .get_or_create(&CallLabels {
                slot: slot.to_string(),
                revision: Of::Word(NONE),
                digest: Of::Word(NONE),
                outcome: Cow::Borrowed(outcome),
            })
            .inc();
        let tally = self.tally(slot);
        tally.calls.fetch_add(1, Ordering::Relaxed);
        tally.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Records how long a whole deploy took.
    pub fn deploy(&self, took: Duration) {
        self.deploy_seconds.observe(took.as_secs_f64());
    }

    /// Reads the tiers' gauges (live revisions, pinned libraries) for the
    /// next [`Metrics::encode`].
    pub fn observe(&self, tiers: &crate::Tiers) {
        let native = tiers.native_stats();
        let live = tiers.wasm().live_revisions() as u64 + native.live();
        self.live_revisions.set(live as i64);
        self.native_pinned.set(native.pinned as i64);
    }

    /// The text exposition, in `format`.
    pub fn encode(&self, format: Exposition) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        match format {
            Exposition::OpenMetrics => out,
            Exposition::Prometheus => classic(&out),
        }
    }

    /// The counters (calls, swaps, rollbacks) as text, for the next process
    /// of an upgrade, so that they carry on instead of starting at zero.
    /// Histograms and gauges are not carried: the new process measures its
    /// own latencies, and gauges describe the present.
    ///
    /// A registry of the counters alone is encoded (the families are
    /// shared handles), so the hand-over does not read every eBPF map and
    /// format every histogram only to throw them away.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut counters = Registry::with_prefix("hotswap");
        counters.register("calls", "", self.calls.clone());
        counters.register("swaps", "", self.swaps.clone());
        counters.register("rollbacks", "", self.rollbacks.clone());
        let mut text = String::new();
        encode(&mut text, &counters).expect("writing to a String cannot fail");
        let series: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        series.join("\n").into_bytes()
    }

    /// Adds the counters of a [`Metrics::snapshot`] to these, whatever
    /// their labels' values (an outcome kind this version does not know
    /// still carries on). Lines it cannot read are skipped and counted.
    pub fn restore(&self, snapshot: &[u8]) -> Restored {
        let mut restored = Restored::default();
        for line in String::from_utf8_lossy(snapshot).lines() {
            match self.restore_line(line) {
                Some(()) => restored.counters += 1,
                None => restored.skipped += 1,
            }
        }
        restored
    }

    fn restore_line(&self, line: &str) -> Option<()> {
        let (series, value) = line.rsplit_once(' ')?;
        let value: u64 = value.parse().ok()?;
        let (name, labels) = series.strip_suffix('}')?.split_once('{')?;
        let labels = parse_labels(labels)?;
        let label = |k: &str| labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        match name {
            "hotswap_calls_total" => {
                self.calls
                    .get_or_create(&CallLabels {
                        slot: label("slot")?,
                        revision: Of::parse(label("revision")?),
                        // Counters of a version before digests carry on
                        // under "unknown" rather than being dropped.
                        digest: Of::parse(label("digest").unwrap_or_else(|| "unknown".into())),
                        outcome: Cow::Owned(label("outcome")?),
                    })
                    .inc_by(value);
            }
            "hotswap_swaps_total" => {
                self.swaps
                    .get_or_create(&SwapLabels {
                        slot: label("slot")?,
                        result: Cow::Owned(label("result")?),
                    })
                    .inc_by(value);
            }
            "hotswap_rollbacks_total" => {
                self.rollbacks
                    .get_or_create(&SlotLabels {
                        slot: label("slot")?,
                    })
                    .inc_by(value);
            }
            _ => return None,
        }
        Some(())
    }

    fn swap(&self, slot: &str, result: &'static str) {
        self.swaps
            .get_or_create(&SwapLabels {
                slot: slot.to_string(),
                result: Cow::Borrowed(result),
            })
            .inc();
    }
}

/// The two text formats `/metrics` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposition {
    /// OpenMetrics 1.0, what Prometheus servers ask for.
    OpenMetrics,
    /// The Prometheus text format 0.0.4, which `promtool check metrics`,
    /// older scrapers and people with curl read.
    Prometheus,
}

impl Exposition {
    /// What a scraper's `Accept` header asks for: OpenMetrics when it
    /// names it, the classic text format otherwise (as Prometheus's own
    /// client libraries do).
    pub fn negotiate(accept: Option<&str>) -> Exposition {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Exposition::OpenMetrics,
            _ => Exposition::Prometheus,
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Exposition::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Exposition::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// OpenMetrics text as the Prometheus text format: the two differ, for
/// what this server exports, only in that a counter's `HELP` and `TYPE`
/// name its `_total` series, and in the `# EOF` and `# UNIT` lines, which
/// the older format does not have. (prometheus-client writes OpenMetrics
/// only.)
fn classic(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let descriptor = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match descriptor {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(name) {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(tail);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// What [`Metrics::restore`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Counter series carried over.
    pub counters: usize,
    /// Lines not understood.
    pub skipped: usize,
}

/// `a="x",b="y"` as written by the text encoder (which escapes `\`, `"`
/// and newlines in values).
fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        out.push((name.to_string(), value));
        rest = after[end + 1..]
            .strip_prefix(',')
            .unwrap_or(&after[end + 1..]);
    }
    Some(out)
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Counts swaps and rollbacks from the event stream, until the bus closes.
pub(crate) async fn count_events(metrics: Arc<Metrics>, events: EventBus) {
    use tokio::sync::broadcast::error::RecvError;
    let mut rx = events.subscribe();
    loop {
        match rx.recv().await {
            Ok(e) => match e.transition {
                Transition::Activated => metrics.swap(&e.slot, "activated"),
                Transition::Failed => metrics.swap(&e.slot, "failed"),
                Transition::RolledBack => {
                    metrics.swap(&e.slot, "rolled-back");
                    metrics
                        .rollbacks
                        .get_or_create(&SlotLabels {
                            slot: e.slot.clone(),
                        })
                        .inc();
                }
                _ => {}
            },
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "metrics fell behind the event stream")
            }
            Err(RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(m: &Metrics) -> Vec<String> {
        let text = m.encode(Exposition::OpenMetrics);
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| l.contains("_total{"))
            .map(String::from)
            .collect();
        lines.sort();
        lines
    }

    fn served(generation: u64) -> Served {
        Served {
            generation,
            digest: hotswap_core::Digest::of(b"v2"),
            canary: false,
        }
    }

    const V2: &str = "fb04dcb6970e4c3d1873de51fd5a50d7bb46b3383113602665c350ec40b5f990";

    #[test]
    fn counters_carry_over_to_a_new_process() {
        assert_eq!(hotswap_core::Digest::of(b"v2").to_string(), V2);
        let old = Metrics::new();
        for _ in 0..3 {
            old.served_by("greet", &served(2))
                .record(Duration::from_micros(5));
        }
        old.failed_call("greet", "deadline");
        old.swap("greet", "activated");
        old.swap("greet", "rolled-back");
        old.rollbacks
            .get_or_create(&SlotLabels {
                slot: "greet".into(),
            })
            .inc();

        let new = Metrics::new();
        new.served_by("greet", &served(2))
            .record(Duration::from_micros(5)); // served meanwhile
        let restored = new.restore(&old.snapshot());
        assert_eq!(
            restored,
            Restored {
                counters: 5,
                skipped: 0
            }
        );
        let lines = counters(&new);
        assert!(
            lines.contains(&format!(
                r#"hotswap_calls_total{{slot="greet",revision="2",digest="{V2}",outcome="ok"}} 4"#
            )),
            "{lines:?}"
        );
        assert!(lines.contains(
            &r#"hotswap_calls_total{slot="greet",revision="none",digest="none",outcome="deadline"} 1"#
                .to_string()
        ));
        assert!(lines.contains(&r#"hotswap_rollbacks_total{slot="greet"} 1"#.to_string()));
        assert_eq!(lines.len(), 5);
    }

    #[test]
    fn garbage_in_a_snapshot_is_skipped_and_unknown_kinds_carried() {
        let m = Metrics::new();
        let r = m.restore(b"hotswap_calls_total{slot=\"a\",revision=\"1\",outcome=\"new-kind\"} 1\nnonsense\nhotswap_swaps_total{slot=\"a\",result=\"activated\"} x\nhotswap_other_total{slot=\"a\"} 1");
        assert_eq!(
            r,
            Restored {
                counters: 1,
                skipped: 3
            }
        );
        assert_eq!(
            counters(&m),
            // A snapshot from before digests were labels carries on under
            // `unknown`.
            vec![
                r#"hotswap_calls_total{slot="a",revision="1",digest="unknown",outcome="new-kind"} 1"#
                    .to_string()
            ]
        );
        assert_eq!(
            parse_labels(r#"a="x\"y",b="2""#).unwrap(),
            vec![("a".into(), "x\"y".into()), ("b".into(), "2".into())]
        );
    }

    #[test]
    fn the_classic_format_names_counters_by_their_series() {
        let m = Metrics::new();
        m.served_by("greet", &served(1))
            .record(Duration::from_micros(5));
        let text = m.encode(Exposition::Prometheus);
        assert!(
            text.contains("# HELP hotswap_calls_total Plugin calls"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE hotswap_calls_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE hotswap_live_revisions gauge\n"),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
        let open = m.encode(Exposition::OpenMetrics);
        assert!(open.contains("# TYPE hotswap_calls counter\n"), "{open}");
        assert!(open.ends_with("# EOF\n"), "{open}");
    }
}
