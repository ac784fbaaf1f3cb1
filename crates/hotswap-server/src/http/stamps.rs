//! What a revision's answers carry (its headers) and where its calls are
//! counted, made once per revision instead of once per call.
//!
//! A call's answer names the revision that served it, and its metrics are
//! labelled by slot, generation and digest. Formatting a digest as hex and
//! hashing every label on each call cost as much as the plugin call
//! itself, so the data plane keeps the finished header values and the
//! shared counter handles of the few revisions each slot serves, in a map
//! that calls read without a lock and that only a revision never seen
//! before writes to.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use hotswap_api::headers;
use hotswap_core::{Digest, Served};

use crate::metrics::{Metrics, ServedCounters};

const GENERATION: HeaderName = HeaderName::from_static(headers::GENERATION);
const DIGEST: HeaderName = HeaderName::from_static(headers::DIGEST);
const CANARY: HeaderName = HeaderName::from_static(headers::CANARY);

/// How many revisions of one slot keep their stamps: the active one, a
/// canary, and the ones still draining or just rolled back to. A revision
/// past that is stamped afresh if it ever serves again.
const PER_SLOT: usize = 8;

/// One revision's stamp.
pub(crate) struct Stamp {
    generation: u64,
    digest: Digest,
    generation_value: HeaderValue,
    digest_value: HeaderValue,
    counters: ServedCounters,
}

impl Stamp {
    fn new(slot: &str, served: &Served, metrics: &Metrics) -> Stamp {
        Stamp {
            generation: served.generation,
            digest: served.digest,
            generation_value: HeaderValue::from(served.generation),
            digest_value: HeaderValue::from_str(served.digest.hex().as_str())
                .expect("hex is a valid header value"),
            counters: metrics.served_by(slot, served),
        }
    }

    fn is(&self, served: &Served) -> bool {
        self.generation == served.generation && self.digest == served.digest
    }

    /// Where this revision's calls are counted.
    pub(crate) fn counters(&self) -> &ServedCounters {
        &self.counters
    }

    /// Names the revision (and whether it served as the canary) in an
    /// answer's headers.
    pub(crate) fn mark(&self, headers: &mut HeaderMap, canary: bool) {
        headers.insert(GENERATION, self.generation_value.clone());
        headers.insert(DIGEST, self.digest_value.clone());
        if canary {
            headers.insert(CANARY, HeaderValue::from_static("true"));
        }
    }
}

/// The stamps of every slot's recent revisions.
pub(crate) struct Stamps {
    by_slot: ArcSwap<HashMap<String, Vec<Arc<Stamp>>>>,
    metrics: Arc<Metrics>,
}

impl Stamps {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Stamps {
        Stamps {
            by_slot: ArcSwap::default(),
            metrics,
        }
    }

    /// The stamp of the revision that `served` names in `slot`, made on
    /// its first call.
    pub(crate) fn of(&self, slot: &str, served: &Served) -> Arc<Stamp> {
        let known = self.by_slot.load();
        if let Some(stamp) = known
            .get(slot)
            .and_then(|stamps| stamps.iter().find(|s| s.is(served)))
        {
            return stamp.clone();
        }
        drop(known);
        let stamp = Arc::new(Stamp::new(slot, served, &self.metrics));
        self.by_slot.rcu(|map| {
            let mut map = HashMap::clone(map);
            let stamps = map.entry(slot.to_string()).or_default();
            // Another call may have stamped the same revision meanwhile:
            // either stamp counts to the same series.
            stamps.retain(|s| !s.is(served));
            if stamps.len() >= PER_SLOT {
                stamps.remove(0);
            }
            stamps.push(stamp.clone());
            map
        });
        stamp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(generation: u64, code: &[u8]) -> Served {
        Served {
            generation,
            digest: Digest::of(code),
            canary: false,
        }
    }

    #[test]
    fn a_revision_is_stamped_once_and_its_calls_counted_on_one_series() {
        let stamps = Stamps::new(Arc::new(Metrics::new()));
        let one = stamps.of("greet", &served(1, b"v1"));
        let again = stamps.of("greet", &served(1, b"v1"));
        assert!(Arc::ptr_eq(&one, &again));
        one.counters().record(std::time::Duration::from_micros(5));
        again.counters().record(std::time::Duration::from_micros(5));
        let text = stamps.metrics.encode(crate::Exposition::Prometheus);
        let digest = Digest::of(b"v1");
        assert!(
            text.contains(&format!(
                "hotswap_calls_total{{slot=\"greet\",revision=\"1\",digest=\"{digest}\",outcome=\"ok\"}} 2"
            )),
            "{text}"
        );

        let mut h = HeaderMap::new();
        one.mark(&mut h, true);
        assert_eq!(h[headers::GENERATION], "1");
        assert_eq!(h[headers::DIGEST], digest.to_string().as_str());
        assert_eq!(h[headers::CANARY], "true");
    }

    #[test]
    fn the_same_generation_with_other_code_is_another_revision() {
        // A slot removed and made again numbers its revisions from 1 anew.
        let stamps = Stamps::new(Arc::new(Metrics::new()));
        let old = stamps.of("greet", &served(1, b"v1"));
        let new = stamps.of("greet", &served(1, b"v2"));
        assert!(!Arc::ptr_eq(&old, &new));
        let mut h = HeaderMap::new();
        new.mark(&mut h, false);
        assert_eq!(h[headers::DIGEST], Digest::of(b"v2").to_string().as_str());
        assert!(h.get(headers::CANARY).is_none());
    }

    #[test]
    fn a_slot_keeps_the_stamps_of_its_recent_revisions_only() {
        let stamps = Stamps::new(Arc::new(Metrics::new()));
        for generation in 1..=(PER_SLOT as u64 + 3) {
            stamps.of("greet", &served(generation, b"v"));
        }
        assert_eq!(stamps.by_slot.load()["greet"].len(), PER_SLOT);
        let first = stamps.of("greet", &served(1, b"v"));
        assert_eq!(first.generation, 1, "an evicted revision is stamped afresh");
    }
}
