//! `StoreError`: what can go wrong with the store, in words an operator can act on.

use std::path::PathBuf;

use hotswap_core::Digest;

/// Why a store operation failed. The store is unchanged in every case:
/// writes are atomic.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The embedded database failed.
    #[error("the store's database failed: {0}")]
    Database(String),
    /// The database is open in another process.
    #[error(
        "the store in {0} is in use by another process (is another `hotswap serve` running on it?)"
    )]
    Locked(PathBuf),
    /// The database was handed to another process (a process upgrade).
    #[error("the store was handed to the next process of an upgrade")]
    Released,
    /// No artifact with this digest is stored.
    #[error("no artifact sha256:{0} in the store")]
    NotFound(Digest),
    /// A stored artifact no longer matches its digest (disk corruption, or
    /// someone edited the file). It is never handed out.
    #[error("stored artifact sha256:{digest} is corrupt ({reason}); deploy it again")]
    Corrupt {
        /// The artifact.
        digest: Digest,
        /// What is wrong with it.
        reason: String,
    },
    /// A record in the database (a slot's, an eBPF program's) cannot be read.
    #[error("the record of {what} `{name}` is unreadable: {reason}")]
    BadRecord {
        /// What the record is of (`slot`, `eBPF program`).
        what: &'static str,
        /// Its name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A slot name the store will not keep.
    #[error("`{0}` is not a slot name: use 1-64 characters from a-z A-Z 0-9 - _ .")]
    BadSlotName(String),
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> StoreError {
        StoreError::Database(e.to_string())
    }
}

/// Converts any of redb's specific errors through `redb::Error`.
pub(crate) fn db<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::from(e.into())
}

/// Checks a slot name: it becomes part of keys, URLs and file names.
pub fn check_slot_name(name: &str) -> Result<(), StoreError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok) {
        return Err(StoreError::BadSlotName(name.to_string()));
    }
    Ok(())
}
