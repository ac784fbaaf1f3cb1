//! `KvStore`: the key-value state that belongs to a slot and outlives its code.

use std::collections::HashMap;
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
    /// The limits it enforces, so a host can refuse an oversize key or
    /// value before copying it out of a plugin's memory.
    fn limits(&self) -> KvLimits {
        KvLimits::default()
    }
}

/// Limits every [`MemoryKv`] enforces, so a plugin cannot exhaust the host.
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
            max_key: 1024,
            max_value: 1024 * 1024,
            max_keys: 100_000,
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
    map: RwLock<HashMap<Vec<u8>, Vec<u8>>>,
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
