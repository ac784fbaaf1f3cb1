//! Prometheus metrics, served as text on the admin listener's `/metrics`:
//! calls, errors and latency per slot and revision, swaps by result, deploy
//! duration, rollbacks, live revisions.

use std::sync::Arc;
use std::time::Duration;

use hotswap_core::{EventBus, Transition};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    slot: String,
    /// The generation that served the call ("none" if none did).
    revision: String,
    /// `ok`, or the error's kind (`deadline`, `trap`, ...).
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevisionLabels {
    slot: String,
    revision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SwapLabels {
    slot: String,
    /// `activated`, `failed` or `rolled-back`.
    result: &'static str,
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
        Metrics {
            registry,
            calls,
            call_seconds,
            swaps,
            deploy_seconds,
            rollbacks,
            live_revisions,
        }
    }

    /// Records one data-plane call.
    pub fn call(&self, slot: &str, generation: Option<u64>, outcome: &'static str, took: Duration) {
        let revision = generation.map_or_else(|| "none".to_string(), |g| g.to_string());
        self.calls
            .get_or_create(&CallLabels {
                slot: slot.to_string(),
                revision: revision.clone(),
                outcome,
            })
            .inc();
        if generation.is_some() {
            self.call_seconds
                .get_or_create(&RevisionLabels {
                    slot: slot.to_string(),
                    revision,
                })
                .observe(took.as_secs_f64());
        }
    }

    /// Records how long a whole deploy took.
    pub fn deploy(&self, took: Duration) {
        self.deploy_seconds.observe(took.as_secs_f64());
    }

    /// The text exposition, with `live` as the live revision count.
    pub fn encode(&self, live: usize) -> String {
        self.live_revisions.set(live as i64);
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    fn swap(&self, slot: &str, result: &'static str) {
        self.swaps
            .get_or_create(&SwapLabels {
                slot: slot.to_string(),
                result,
            })
            .inc();
    }
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
