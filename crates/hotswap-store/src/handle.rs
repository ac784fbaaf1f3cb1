//! `DbHandle`: the one open database, which the store can let go of and
//! take back while every view of it stays valid.
//!
//! A process upgrade hands the store to the next process, and redb lets one
//! process at a time open a database. So the old process must close the
//! database while its slots and their key-value views still exist (it keeps
//! them, to resume serving if the new process fails). Every user goes
//! through this handle; an operation holds the read side of the lock for
//! its whole transaction, so [`DbHandle::release`] waits for the ones in
//! flight and then closes the file.

use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard};

use redb::Database;

use crate::error::{db, StoreError};
use crate::{journal, kv, SLOTS};

/// The database, or nothing while another process holds it.
pub(crate) struct DbHandle {
    path: PathBuf,
    db: RwLock<Option<Database>>,
}

/// An open database, borrowed for one operation.
pub(crate) struct Open<'a>(RwLockReadGuard<'a, Option<Database>>);

impl std::ops::Deref for Open<'_> {
    type Target = Database;
    fn deref(&self) -> &Database {
        self.0
            .as_ref()
            .expect("an Open is only made over an open database")
    }
}

impl DbHandle {
    /// Opens (or creates) the database at `path`.
    pub(crate) fn open(path: &Path) -> Result<DbHandle, StoreError> {
        Ok(DbHandle {
            db: RwLock::new(Some(create(path)?)),
            path: path.to_path_buf(),
        })
    }

    /// The open database, or [`StoreError::Released`].
    pub(crate) fn get(&self) -> Result<Open<'_>, StoreError> {
        let guard = self.db.read().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            return Err(StoreError::Released);
        }
        Ok(Open(guard))
    }

    /// Waits for the operations in flight, runs `last` on the database, and
    /// closes it, releasing its lock for another process.
    pub(crate) fn release(
        &self,
        last: impl FnOnce(&Database) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut guard = self.db.write().unwrap_or_else(|e| e.into_inner());
        if let Some(database) = guard.as_ref() {
            last(database)?;
        }
        *guard = None;
        Ok(())
    }

    /// Opens the database again after [`DbHandle::release`].
    pub(crate) fn reacquire(&self) -> Result<(), StoreError> {
        let mut guard = self.db.write().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            *guard = Some(create(&self.path)?);
        }
        Ok(())
    }
}

/// Opens the file and makes sure every table exists, so readers never meet
/// a missing one.
fn create(path: &Path) -> Result<Database, StoreError> {
    let database = match Database::create(path) {
        Ok(d) => d,
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
            let dir = path.parent().unwrap_or(path).to_path_buf();
            return Err(StoreError::Locked(dir));
        }
        Err(e) => return Err(db(e)),
    };
    let txn = database.begin_write().map_err(db)?;
    txn.open_table(SLOTS.def).map_err(db)?;
    txn.open_table(journal::STATES.def).map_err(db)?;
    txn.open_table(journal::EVENTS).map_err(db)?;
    txn.open_table(kv::KV).map_err(db)?;
    txn.open_table(kv::KV_COUNTS).map_err(db)?;
    txn.open_table(kv::KV_BANKS).map_err(db)?;
    txn.open_table(crate::snapshot::SNAPSHOTS).map_err(db)?;
    txn.open_table(crate::snapshot::SNAPSHOT_OF).map_err(db)?;
    txn.open_table(crate::ebpf::EBPF.def).map_err(db)?;
    txn.open_table(crate::counters::COUNTERS.def).map_err(db)?;
    txn.commit().map_err(db)?;
    Ok(database)
}
