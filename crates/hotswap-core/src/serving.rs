//! `Serving`: what a call sees: the primary revision, and maybe a canary
//! that takes a share of the calls.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::revision::Live;
use crate::Code;

/// Published as one value behind the slot's `ArcSwap`, so a call routes on a
/// consistent pair: never a new canary weight with an old primary.
pub(crate) struct Serving<C: Code> {
    pub primary: Option<Arc<Live<C>>>,
    pub canary: Option<Canary<C>>,
}

pub(crate) struct Canary<C: Code> {
    pub live: Arc<Live<C>>,
    /// Percent of calls, 0–100.
    pub weight: u8,
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
            primary: None,
            canary: None,
        }
    }

    /// The revision a call with `key` goes to, and the canary's counters if
    /// it is the canary. The same key always lands in the same bucket, so a
    /// client that sends one sticks to one revision.
    #[inline]
    pub fn route(&self, key: Option<u64>) -> Option<(&Arc<Live<C>>, Option<&Outcomes>)> {
        if let Some(c) = &self.canary {
            if c.weight > 0 && bucket(key) < c.weight {
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
