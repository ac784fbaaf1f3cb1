//! `KvStore`: the key-value state that belongs to a slot and outlives its code.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::RwLock;

/// Why a key-value operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The key or value is larger than the store accepts.
    #[error("{what} is {len} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// `key` or `value`.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit it broke.
        limit: usize,
    },
    /// The slot already holds as many keys as it may.
    #[error("the store holds {limit} keys already; delete some before adding more")]
    Full {
        /// The key limit.
        limit: usize,
    },
    /// The storage behind the store failed.
    #[error("key-value storage failed: {0}")]
    Backend(String),
}

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// A slot's key-value state. It belongs to the slot, not to a revision, so a
/// swap never touches it: the new revision sees what the old one wrote.
///
/// Implementations must be safe to call from many threads at once, because
/// every instance of every live revision of the slot shares one store.
pub trait KvStore: Send + Sync + 'static {
    /// The value under `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;
    /// Stores `value` under `key`, replacing what was there.
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), KvError>;
    /// Removes `key`; true if it was there.
    fn delete(&self, key: &[u8]) -> Result<bool, KvError>;
    /// The smallest key that is `>= from`, in byte order, if any. Walking
    /// the keys is `next_key(b"")`, then `next_key(key + [0])` after each
    /// key: a cursor that needs no state on either side of the ABI.
    fn next_key(&self, from: &[u8]) -> Result<Option<Vec<u8>>, KvError>;
    /// [`KvStore::next_key`] with its value: one lookup where the store can.
    fn next_entry(&self, from: &[u8]) -> Result<Option<Entry>, KvError> {
        let Some(key) = self.next_key(from)? else {
            return Ok(None);
        };
        Ok(self.get(&key)?.map(|value| (key, value)))
    }
    /// The limits it enforces, so a host can refuse an oversize key or
    /// value before copying it out of a plugin's memory.
    fn limits(&self) -> KvLimits {
        KvLimits::default()
    }

    /// A view of the state as it is now, for many reads in a row (a
    /// migration reads every key), which nobody writes: one transaction for
    /// all the reads, where the store has transactions.
    /// `None` where reading the store itself is as cheap.
    fn frozen(&self) -> Option<std::sync::Arc<dyn KvStore>> {
        None
    }
}

/// Limits every [`MemoryKv`] enforces, so a plugin cannot exhaust the host.
///
/// The defaults are the ABI's ([`hotswap_abi::limits`]): what docs/abi.md
/// promises plugins, and what the guest SDK's stand-ins enforce.
#[derive(Debug, Clone, Copy)]
pub struct KvLimits {
    /// Largest key, in bytes.
    pub max_key: usize,
    /// Largest value, in bytes.
    pub max_value: usize,
    /// Most keys in one slot's store.
    pub max_keys: usize,
}

impl Default for KvLimits {
    fn default() -> Self {
        KvLimits {
            max_key: hotswap_abi::limits::MAX_KEY,
            max_value: hotswap_abi::limits::MAX_VALUE,
            max_keys: hotswap_abi::limits::MAX_KEYS,
        }
    }
}

impl KvLimits {
    /// Checks a key and value against the size limits.
    pub fn check(&self, key: &[u8], value: Option<&[u8]>) -> Result<(), KvError> {
        self.check_sizes(key.len(), value.map(<[u8]>::len))
    }

    /// Checks a key's and a value's lengths against the size limits, before
    /// anyone copies them.
    pub fn check_sizes(&self, key: usize, value: Option<usize>) -> Result<(), KvError> {
        if key > self.max_key {
            return Err(KvError::TooLarge {
                what: "key",
                len: key,
                limit: self.max_key,
            });
        }
        match value {
            Some(v) if v > self.max_value => Err(KvError::TooLarge {
                what: "value",
                len: v,
                limit: self.max_value,
            }),
            _ => Ok(()),
        }
    }
}

/// An in-memory [`KvStore`]: state survives swaps, not restarts.
#[derive(Debug, Default)]
pub struct MemoryKv {
    map: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
    limits: KvLimits,
}

impl MemoryKv {
    /// An empty store with the given limits.
    pub fn with_limits(limits: KvLimits) -> MemoryKv {
        MemoryKv {
            map: RwLock::default(),
            limits,
        }
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when it holds no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl KvStore for MemoryKv {
    fn limits(&self) -> KvLimits {
        self.limits
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.limits.check(key, None)?;
        // A poisoned lock only means another thread panicked mid-call; the
        // map itself is always consistent (every write is one insert/remove).
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        Ok(map.get(key).cloned())
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        self.limits.check(key, Some(value))?;
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.limits.max_keys && !map.contains_key(key) {
            return Err(KvError::Full {
                limit: self.limits.max_keys,
            });
        }
        map.insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn delete(&self, key: &[u8]) -> Result<bool, KvError> {
        self.limits.check(key, None)?;
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        Ok(map.remove(key).is_some())
    }

    fn next_key(&self, from: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        let mut after = map.range::<[u8], _>((Bound::Included(from), Bound::Unbounded));
        Ok(after.next().map(|(k, _)| k.clone()))
    }
}

/// Every key of `kv`, in byte order, through [`KvStore::next_key`].
pub fn keys(kv: &dyn KvStore) -> impl Iterator<Item = Result<Vec<u8>, KvError>> + '_ {
    let mut from = Some(Vec::new());
    std::iter::from_fn(move || {
        let next = match kv.next_key(from.as_deref()?) {
            Ok(next) => next,
            Err(e) => {
                from = None;
                return Some(Err(e));
            }
        };
        from = next.as_ref().map(|k| successor(k));
        next.map(Ok)
    })
}

/// The smallest key after `key`: `key` followed by a zero byte.
pub fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_delete() {
        let kv = MemoryKv::default();
        assert_eq!(kv.get(b"a").unwrap(), None);
        kv.put(b"a", b"1").unwrap();
        assert_eq!(kv.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
        assert!(kv.delete(b"a").unwrap());
        assert!(!kv.delete(b"a").unwrap());
    }

    #[test]
    fn walks_keys_in_byte_order() {
        let kv = MemoryKv::default();
        for k in [&b"b"[..], b"", b"a", b"a\0", b"ab"] {
            kv.put(k, b"v").unwrap();
        }
        let all: Vec<Vec<u8>> = keys(&kv).map(Result::unwrap).collect();
        let want: Vec<&[u8]> = vec![b"", b"a", b"a\0", b"ab", b"b"];
        assert_eq!(all, want);
        assert_eq!(kv.next_key(b"a\x01").unwrap().as_deref(), Some(&b"ab"[..]));
        assert_eq!(kv.next_key(b"c").unwrap(), None);
    }

    #[test]
    fn defaults_are_the_abis() {
        let d = KvLimits::default();
        assert_eq!(
            (d.max_key, d.max_value, d.max_keys),
            (1024, 1 << 20, 100_000)
        );
    }

    #[test]
    fn enforces_limits() {
        let kv = MemoryKv::with_limits(KvLimits {
            max_key: 2,
            max_value: 2,
            max_keys: 1,
        });
        assert!(matches!(
            kv.put(b"abc", b""),
            Err(KvError::TooLarge { what: "key", .. })
        ));
        assert!(matches!(
            kv.put(b"a", b"abc"),
            Err(KvError::TooLarge { what: "value", .. })
        ));
        kv.put(b"a", b"1").unwrap();
        kv.put(b"a", b"2").unwrap(); // replacing is not adding
        assert_eq!(kv.put(b"b", b"1"), Err(KvError::Full { limit: 1 }));
    }
}
