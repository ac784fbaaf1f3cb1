//! `Recent`: what a cache keeps per digest, for its newest digests only.

use std::collections::{HashMap, VecDeque};

use hotswap_core::Digest;

/// Values by digest, at most `cap` of them; the oldest digest goes first.
/// Both wasmtime tiers' compile caches keep their entries in one.
pub struct Recent<V> {
    map: HashMap<Digest, V>,
    order: VecDeque<Digest>,
    cap: usize,
}

impl<V> Recent<V> {
    /// Empty, keeping at most `cap` digests.
    pub fn new(cap: usize) -> Recent<V> {
        Recent {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    /// The value of `digest`, if it is still kept.
    pub fn get(&self, digest: &Digest) -> Option<&V> {
        self.map.get(digest)
    }

    /// Sets the value of `digest` to `f` of the one it had, if any; a new
    /// digest may push out the oldest.
    pub fn update(&mut self, digest: Digest, f: impl FnOnce(Option<V>) -> V) {
        let old = self.map.remove(&digest);
        if old.is_none() {
            self.order.push_back(digest);
        }
        self.map.insert(digest, f(old));
        while self.order.len() > self.cap {
            if let Some(oldest) = self.order.pop_front() {
                self.map.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_digests_and_updates_in_place() {
        let d = |n: u8| Digest::of(&[n]);
        let mut recent = Recent::new(2);
        recent.update(d(1), |_| 1);
        recent.update(d(2), |_| 2);
        recent.update(d(1), |old| old.unwrap() + 10);
        assert_eq!(recent.get(&d(1)), Some(&11));
        recent.update(d(3), |_| 3);
        assert_eq!(recent.get(&d(1)), None, "the oldest digest went first");
        assert_eq!((recent.get(&d(2)), recent.get(&d(3))), (Some(&2), Some(&3)));
    }
}
