//! The error budget: a canary that fails more than its share of calls over
//! the window is rolled back automatically, with an event that says why.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hotswap_core::Digest;

use crate::config::CanaryConfig;
use crate::domain::gateway::Gateway;

/// How often canaries are judged.
pub(crate) const TICK: Duration = Duration::from_millis(200);

/// Samples of each canary's cumulative counts, enough to cover the window.
pub(crate) struct Budget {
    /// The settings in force, shared with the reloadable config.
    config: Arc<CanaryConfig>,
    trails: HashMap<String, Trail>,
}

/// One canary's samples, oldest first.
struct Trail {
    digest: Digest,
    samples: VecDeque<Sample>,
}

/// A canary's counts since it started, at one moment.
#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    calls: u64,
    errors: u64,
}

impl Budget {
    pub fn new(config: Arc<CanaryConfig>) -> Budget {
        Budget {
            config,
            trails: HashMap::new(),
        }
    }

    /// Takes a sample of every canary and returns the slots whose canary
    /// broke the budget, with the canary's digest and the reason.
    pub fn judge(&mut self, gateway: &Gateway, now: Instant) -> Vec<(String, Digest, String)> {
        let canaries = gateway.canaries();
        self.trails
            .retain(|slot, _| canaries.iter().any(|(s, _)| s == slot));
        let mut breached = Vec::new();
        for (slot, stats) in canaries {
            // Its own budget, kept in its state; the server's for canaries
            // started before canaries kept one.
            let budget = stats.budget.unwrap_or_else(|| self.config.budget());
            let window = Duration::from_secs(budget.window_secs);
            let trail = self.trails.entry(slot.clone()).or_insert_with(|| Trail {
                digest: stats.digest,
                samples: VecDeque::new(),
            });
            if trail.digest != stats.digest {
                // A new canary: its record starts afresh.
                trail.digest = stats.digest;
                trail.samples.clear();
            }
            let latest = Sample {
                at: now,
                calls: stats.calls,
                errors: stats.errors,
            };
            trail.samples.push_back(latest);
            // Keep one sample at or before the window's start, as the base.
            while trail.samples.len() > 2 && now.duration_since(trail.samples[1].at) >= window {
                trail.samples.pop_front();
            }
            // Until a full window has passed, the base is the canary's start.
            let base = match trail.samples.front() {
                Some(first) if now.duration_since(first.at) >= window => *first,
                _ => Sample {
                    at: now,
                    calls: 0,
                    errors: 0,
                },
            };
            let (calls, errors) = (latest.calls - base.calls, latest.errors - base.errors);
            if budget.broken_by(calls, errors) {
                breached.push((
                    slot,
                    stats.digest,
                    format!(
                        "error budget exceeded: {errors} of {calls} calls failed ({:.0}%) in the last {}s; the budget is {:.0}%",
                        100.0 * errors as f64 / calls as f64,
                        budget.window_secs,
                        f64::from(budget.max_failed_ppm) / 1e4
                    ),
                ));
            }
        }
        breached
    }
}

/// Takes out the canary `digest` that broke its budget. By digest: if it
/// was promoted (or replaced) since it was judged, this is refused as stale
/// and whatever serves now stays.
fn take_out(
    gateway: &Gateway,
    slot: &str,
    digest: Digest,
    reason: &str,
) -> Result<hotswap_core::RevisionInfo, crate::GatewayError> {
    gateway.abort(slot, digest, reason)
}

/// Judges canaries every [`TICK`] and rolls back the ones over budget,
/// until `stop` is set. The settings are read at every tick, so a config
/// reload applies from the next one.
pub(crate) async fn watch(
    gateway: Arc<Gateway>,
    config: Arc<arc_swap::ArcSwap<CanaryConfig>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut budget = Budget::new(config.load_full());
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        budget.config = config.load_full();
        for (slot, digest, reason) in budget.judge(&gateway, Instant::now()) {
            let g = gateway.clone();
            let result = tokio::task::spawn_blocking(move || {
                take_out(&g, &slot, digest, &reason).map(|_| slot)
            })
            .await;
            match result {
                Ok(Ok(slot)) => tracing::warn!(slot, "canary rolled back: over its error budget"),
                Ok(Err(crate::GatewayError::Deploy(hotswap_core::DeployError::Refused(e)))) => {
                    tracing::info!(reason = %e, "a canary over budget changed before it was rolled back; left as it is")
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "could not roll back a canary over budget")
                }
                Err(e) => tracing::error!(error = %e, "the rollback task failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{take_out, Budget};
    use crate::{CanaryConfig, Gateway, GatewayError};
    use hotswap_core::{DeployError, ErrorBudget, StateError};
    use std::sync::Arc;
    use std::time::Instant;

    /// Every call to it traps.
    fn trapping() -> Vec<u8> {
        wat::parse_str(
            r#"(module (memory (export "memory") 1)
                 (func (export "hs_alloc") (param i32) (result i32) (i32.const 1024))
                 (func (export "hs_process") (param i32 i32) (result i64) unreachable)
                 (@custom "hotswap.manifest" "{\"name\":\"greet\",\"version\":\"broken\",\"abi\":1}"))"#,
        )
        .unwrap()
    }

    /// A canary is judged by the budget it started with, which its state
    /// keeps across a restart; a canary without one, by the server's.
    #[test]
    fn a_canary_keeps_the_budget_it_started_with() {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            let store = hotswap_store::Store::open(dir.path()).unwrap();
            Gateway::open(store, Default::default(), false, Default::default()).unwrap()
        };
        let lenient = ErrorBudget {
            max_failed_ppm: 1_000_000,
            window_secs: 60,
            min_calls: 1,
        };
        let strict = Arc::new(CanaryConfig {
            error_budget: 0.0,
            min_calls: 1,
            ..CanaryConfig::default()
        });
        {
            let gateway = open();
            gateway
                .deploy("greet", hotswap_examples::GREET_V1.to_vec(), None)
                .unwrap();
            gateway
                .deploy_canary("greet", trapping(), None, 100, Some(lenient))
                .unwrap();
        }
        let gateway = open();
        let (_, stats) = gateway.canaries().pop().unwrap();
        assert_eq!(stats.budget, Some(lenient), "restored with the canary");
        for _ in 0..5 {
            assert!(gateway.call("greet", b"x", None).is_err());
        }
        let mut judge = Budget::new(strict.clone());
        assert!(
            judge.judge(&gateway, Instant::now()).is_empty(),
            "its own budget tolerates this"
        );

        // The same canary without a budget of its own: the server's judges it.
        gateway.rollback("greet", None, "again").unwrap();
        gateway
            .deploy_canary("greet", trapping(), None, 100, None)
            .unwrap();
        for _ in 0..5 {
            assert!(gateway.call("greet", b"x", None).is_err());
        }
        let mut judge = Budget::new(strict);
        let breached = judge.judge(&gateway, Instant::now());
        assert_eq!(breached.len(), 1, "{breached:?}");
        assert!(
            breached[0].2.contains("5 of 5 calls failed"),
            "{}",
            breached[0].2
        );
    }

    /// The race, forced: the budget judges canary v2, an operator promotes
    /// it, then the budget acts on its judgement. The promoted revision
    /// stays active.
    #[test]
    fn a_breach_judged_before_a_promote_leaves_the_promoted_revision_active() {
        let dir = tempfile::tempdir().unwrap();
        let store = hotswap_store::Store::open(dir.path()).unwrap();
        let gateway = Gateway::open(store, Default::default(), false, Default::default()).unwrap();
        let v1 = hotswap_examples::GREET_V1.to_vec();
        gateway.deploy("greet", v1, None).unwrap();
        let v2 = hotswap_examples::GREET_V2.to_vec();
        gateway.deploy_canary("greet", v2, None, 50, None).unwrap();
        let (_, judged) = gateway.canaries().pop().unwrap();

        let promoted = gateway.promote("greet", None).unwrap();
        assert_eq!(promoted.digest, judged.digest);
        let err = take_out(&gateway, "greet", judged.digest, "over budget").unwrap_err();
        assert!(
            matches!(
                err,
                GatewayError::Deploy(DeployError::Refused(StateError::Stale { .. }))
            ),
            "{err}"
        );
        let status = gateway.show("greet").unwrap();
        assert_eq!(status.active.unwrap().digest, judged.digest);
        assert!(status.canary.is_none());
    }
}
