//! `Lease`: one revision held for a call that outlives a function call (an
//! HTTP request whose answer streams), so the revision drains only after it.

use std::sync::Arc;

use crate::revision::Live;
use crate::serving::{Outcomes, Serving};
use crate::{Code, Served};

/// The revision routed to one call, held until the lease is dropped.
///
/// [`Slot::call_routed`](crate::Slot::call_routed) holds its revision for
/// the length of one function call. A call that goes on after it returns
/// (a component writing its response body) holds a `Lease` instead: the
/// revision is not retired while one is alive, and a state migration waits
/// for it as for any call in flight (up to the slot's pause limit, past
/// which the migration gives up and the old revision serves on). Drop it as
/// soon as the call is over. A clone holds the same
/// revision for the same call (give one to the task that finishes it).
pub struct Lease<C: Code> {
    /// Holds what the call was routed on, as a plain call's guard does, so
    /// a migration waits for this call too.
    _serving: Arc<Serving<C>>,
    live: Arc<Live<C>>,
    /// The canary's counters, when the call went to the canary.
    canary: Option<Arc<Outcomes>>,
}

impl<C: Code> Clone for Lease<C> {
    fn clone(&self) -> Lease<C> {
        Lease {
            _serving: self._serving.clone(),
            live: self.live.clone(),
            canary: self.canary.clone(),
        }
    }
}

impl<C: Code> Lease<C> {
    pub(crate) fn new(
        serving: Arc<Serving<C>>,
        live: Arc<Live<C>>,
        canary: Option<Arc<Outcomes>>,
    ) -> Lease<C> {
        Lease {
            _serving: serving,
            live,
            canary,
        }
    }

    /// The code that serves this call.
    pub fn code(&self) -> &C {
        self.live.code()
    }

    /// Which revision serves it.
    pub fn served(&self) -> Served {
        Served {
            generation: self.live.generation,
            digest: self.live.digest,
            canary: self.canary.is_some(),
        }
    }

    /// Counts the call's outcome against the canary's error budget, when it
    /// went to the canary (a plain call is counted by the slot itself).
    /// Call it once per call.
    pub fn record(&self, ok: bool) {
        if let Some(outcomes) = &self.canary {
            outcomes.record(ok);
        }
    }
}
