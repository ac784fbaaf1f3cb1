//! Migration of a slot's state between schemas: the transaction a plugin's
//! `hs_migrate` reads and writes, and what a commit does to the state beside
//! the books.
//!
//! A revision declaring a higher `state_schema` than the active one converts
//! the state when it is activated. It does so through the ordinary key-value
//! calls, which during a migration go to a [`Migration`]: reads see the
//! state as it was plus the migration's own writes, and writes stay in the
//! migration until the slot commits them, with the new books and a snapshot
//! of the old state, in one transaction of the [`Journal`](crate::Journal).
//! A migration that fails has written nothing.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{CallError, Digest, KvError, KvLimits, KvStore};

/// A migration's writes: each key with its new value, or `None` when the
/// migration deleted it. In byte order of the keys.
pub type Writes = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// What a commit does to the slot's key-value state, in the same
/// transaction as the books.
#[derive(Debug, Clone, Copy)]
pub enum KvChange<'a> {
    /// Nothing.
    Keep,
    /// A migration: keep a snapshot of the state as it is, taken for the
    /// revision `snapshot_of` (the one being replaced, so a rollback to it
    /// finds its state), then apply `writes`.
    Migrate {
        /// The revision whose state the snapshot keeps.
        snapshot_of: Digest,
        /// What the migration wrote.
        writes: &'a Writes,
    },
    /// A rollback to a lower schema: the state becomes, byte for byte, the
    /// snapshot taken when `snapshot_of` was migrated away from.
    Restore {
        /// The revision rolled back to.
        snapshot_of: Digest,
    },
}

/// Why a migration did not happen. Nothing was written; the revision that
/// was active still serves, with its state.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The revision declares a higher schema but has no migrate entry point.
    #[error("it declares state schema {to}, the slot's state is in schema {from}, and it does not export `hs_migrate` to convert it")]
    NotExported {
        /// The active revision's schema.
        from: u32,
        /// The new revision's schema.
        to: u32,
    },
    /// `hs_migrate` trapped, ran out of time or memory, or returned an error.
    #[error("hs_migrate({from}) failed: {error}")]
    Failed {
        /// The schema it converted from.
        from: u32,
        /// What went wrong.
        #[source]
        error: CallError,
    },
    /// Draining, migrating and committing took longer than calls may wait.
    #[error("the slot was paused for {limit:?} (the pause limit) without finishing {during}; calls resumed on the active revision")]
    PauseOverrun {
        /// The pause limit.
        limit: Duration,
        /// What was still running.
        during: &'static str,
    },
}

/// The error of an `hs_migrate` that returned `code` (not 0), with the
/// last error the plugin logged while it ran: that is where the SDKs put
/// their reason. Both tiers report a failed migration with it.
pub fn migrate_returned(code: i32, logged: Option<String>) -> CallError {
    CallError::Plugin(match logged {
        Some(why) => format!("{why} (returned {code})"),
        None => format!("hs_migrate returned {code}; 0 means done"),
    })
}

/// The key-value state as a migration sees it: the slot's state, with the
/// migration's own writes laid over it. Nothing reaches the slot's state
/// until the slot commits [`Migration::writes`].
pub struct Migration {
    base: Arc<dyn KvStore>,
    overlay: Mutex<BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
    /// The entry of the base the last `next_key` found: a migration walks
    /// a key and then reads it, and this saves the second lookup.
    found: Mutex<Option<crate::Entry>>,
}

impl Migration {
    /// A migration over `base`, which nobody else writes while it runs
    /// (so it reads a [frozen](KvStore::frozen) view of it when it can).
    pub fn new(base: Arc<dyn KvStore>) -> Migration {
        Migration {
            base: base.frozen().unwrap_or(base),
            overlay: Mutex::new(BTreeMap::new()),
            found: Mutex::new(None),
        }
    }

    /// What it wrote, to commit.
    pub fn writes(&self) -> Writes {
        self.lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<u8>, Option<Vec<u8>>>> {
        self.overlay.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl KvStore for Migration {
    fn limits(&self) -> KvLimits {
        self.base.limits()
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.limits().check(key, None)?;
        if let Some(written) = self.lock().get(key) {
            return Ok(written.clone());
        }
        let found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        match &*found {
            Some((k, v)) if k == key => Ok(Some(v.clone())),
            _ => self.base.get(key),
        }
    }

    // The key limit is checked when the writes commit: only the store
    // knows how many keys the slot has.
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        self.limits().check(key, Some(value))?;
        self.lock().insert(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }

    fn delete(&self, key: &[u8]) -> Result<bool, KvError> {
        let existed = self.get(key)?.is_some();
        self.lock().insert(key.to_vec(), None);
        Ok(existed)
    }

    fn next_key(&self, from: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let overlay = self.lock();
        let mut from = from.to_vec();
        loop {
            let entry = self.base.next_entry(&from)?;
            let base = entry.as_ref().map(|(k, _)| k.clone());
            *self.found.lock().unwrap_or_else(|e| e.into_inner()) = entry;
            let written = overlay
                .range::<[u8], _>((Bound::Included(&from[..]), Bound::Unbounded))
                .find(|(_, v)| v.is_some())
                .map(|(k, _)| k.clone());
            let candidate = match (base, written) {
                (Some(b), Some(w)) => b.min(w),
                (b, w) => match b.or(w) {
                    Some(k) => k,
                    None => return Ok(None),
                },
            };
            // A key of the base that the migration deleted is not there.
            if matches!(overlay.get(&candidate), Some(None)) {
                from = crate::kv::successor(&candidate);
                continue;
            }
            return Ok(Some(candidate));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::keys;
    use crate::MemoryKv;

    #[test]
    fn reads_through_and_keeps_its_writes() {
        let base = Arc::new(MemoryKv::default());
        for k in [&b"a"[..], b"b", b"c"] {
            base.put(k, b"old").unwrap();
        }
        let m = Migration::new(base.clone());
        m.put(b"b", b"new").unwrap();
        assert!(m.delete(b"c").unwrap());
        m.put(b"d", b"added").unwrap();
        assert_eq!(m.get(b"a").unwrap().as_deref(), Some(&b"old"[..]));
        assert_eq!(m.get(b"b").unwrap().as_deref(), Some(&b"new"[..]));
        assert_eq!(m.get(b"c").unwrap(), None);
        let seen: Vec<Vec<u8>> = keys(&m).map(Result::unwrap).collect();
        assert_eq!(seen, vec![b"a".to_vec(), b"b".to_vec(), b"d".to_vec()]);
        // The slot's state is untouched until the writes commit.
        assert_eq!(base.get(b"b").unwrap().as_deref(), Some(&b"old"[..]));
        assert_eq!(base.get(b"c").unwrap().as_deref(), Some(&b"old"[..]));
        let writes = m.writes();
        assert_eq!(writes.len(), 3);
        assert_eq!(writes[1], (b"c".to_vec(), None));
    }
}
