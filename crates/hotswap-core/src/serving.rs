//! `Serving`: what a call sees: the primary revision, and maybe a canary
//! that takes a share of the calls.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::reaper::Latch;
use crate::revision::Live;
use crate::{Code, SlotState};

/// Published as one value behind the slot's `ArcSwap`: the slot's books
/// and the code that serves them, so a call routes on a consistent pair
/// (never a new canary weight with an old primary), and status, derived
/// from the same value, never disagrees with what serves.
pub(crate) struct Serving<C: Code> {
    /// The books. Everything else here follows from them.
    pub state: SlotState,
    /// The code of the active revision, or of the previous one while the
    /// active one could not be restored.
    pub primary: Option<Arc<Live<C>>>,
    /// The code of the canary, if it runs.
    pub canary: Option<Canary<C>>,
    /// Why the slot does not serve as its books say, after a restore.
    pub fault: Option<Arc<str>>,
    /// The retirement latches of the revisions in the books that ran in
    /// this process, by generation: opened once the code is freed.
    pub latches: Vec<(u64, Arc<Latch>)>,
    /// Set while the slot is paused for a migration: a call that finds it
    /// waits until it opens, then looks again.
    pub pause: Option<Arc<Latch>>,
    /// Opened when the last call holding this value lets go of it, so a
    /// migration knows that no call still runs on what it served.
    pub released: Arc<Latch>,
}

impl<C: Code> Drop for Serving<C> {
    fn drop(&mut self) {
        self.released.open();
    }
}

/// Where a call goes: the revision, and the canary's counters if it is the
/// canary.
pub(crate) type Routed<'s, C> = (&'s Arc<Live<C>>, Option<&'s Arc<Outcomes>>);

pub(crate) struct Canary<C: Code> {
    pub live: Arc<Live<C>>,
    pub outcomes: Arc<Outcomes>,
}

/// Calls and failures of a canary since it started, for its error budget.
#[derive(Default)]
pub(crate) struct Outcomes {
    pub calls: AtomicU64,
    pub errors: AtomicU64,
}

impl<C: Code> Serving<C> {
    pub fn empty() -> Serving<C> {
        Serving {
            state: SlotState::default(),
            primary: None,
            canary: None,
            fault: None,
            latches: Vec::new(),
            pause: None,
            released: Arc::default(),
        }
    }

    /// The same code and books, with new calls held at `gate`.
    pub fn paused(&self, gate: Arc<Latch>) -> Serving<C> {
        self.with_pause(Some(gate))
    }

    /// The same code and books, admitting calls again.
    pub fn resumed(&self) -> Serving<C> {
        self.with_pause(None)
    }

    fn with_pause(&self, pause: Option<Arc<Latch>>) -> Serving<C> {
        Serving {
            state: self.state.clone(),
            primary: self.primary.clone(),
            canary: self.canary.as_ref().map(|c| Canary {
                live: c.live.clone(),
                outcomes: c.outcomes.clone(),
            }),
            fault: self.fault.clone(),
            latches: self.latches.clone(),
            pause,
            released: Arc::default(),
        }
    }

    /// The canary's share of calls, from the books.
    #[inline]
    fn canary_weight(&self) -> u8 {
        self.state.canary.as_ref().map_or(0, |c| c.weight)
    }

    /// The latch of generation `g`, if its code ran in this process.
    pub fn latch(&self, g: u64) -> Option<&Arc<Latch>> {
        self.latches.iter().find(|(x, _)| *x == g).map(|(_, l)| l)
    }

    /// The revision a call with `key` goes to, and the canary's counters if
    /// it is the canary. The same key always lands in the same bucket, so a
    /// client that sends one sticks to one revision.
    #[inline]
    pub fn route(&self, key: Option<u64>) -> Option<Routed<'_, C>> {
        if let Some(c) = &self.canary {
            let weight = self.canary_weight();
            if weight > 0 && bucket(key) < weight {
                return Some((&c.live, Some(&c.outcomes)));
            }
        }
        self.primary.as_ref().map(|p| (p, None))
    }

    /// Every revision it holds.
    pub fn lives(&self) -> impl Iterator<Item = &Arc<Live<C>>> {
        self.primary
            .iter()
            .chain(self.canary.iter().map(|c| &c.live))
    }

    pub fn holds(&self, live: &Arc<Live<C>>) -> bool {
        self.lives().any(|l| Arc::ptr_eq(l, live))
    }
}

/// 0–99: from the key when there is one (mixed, so nearby keys spread),
/// otherwise from a per-thread generator, so keyless calls split by weight.
#[inline]
fn bucket(key: Option<u64>) -> u8 {
    let x = match key {
        Some(k) => splitmix(k),
        None => RANDOM.with(|s| {
            let next = splitmix(s.get());
            s.set(next);
            next
        }),
    };
    (x % 100) as u8
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

thread_local! {
    static RANDOM: Cell<u64> = Cell::new({
        // Distinct per thread; quality is irrelevant, spread is enough.
        let addr = &RANDOM as *const _ as u64;
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        splitmix(addr ^ t)
    });
}

impl Outcomes {
    #[inline]
    pub fn record(&self, ok: bool) {
        self.calls.fetch_add(1, Relaxed);
        if !ok {
            self.errors.fetch_add(1, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn keys_stick_and_spread() {
        assert_eq!(bucket(Some(42)), bucket(Some(42)));
        let under_20 = (0..10_000u64).filter(|k| bucket(Some(*k)) < 20).count();
        assert!(
            (1_800..2_200).contains(&under_20),
            "{under_20} of 10000 keys under 20"
        );
        let keyless = (0..10_000).filter(|_| bucket(None) < 20).count();
        assert!(
            (1_800..2_200).contains(&keyless),
            "{keyless} of 10000 keyless calls under 20"
        );
    }
}
