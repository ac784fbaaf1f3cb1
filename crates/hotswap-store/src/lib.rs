//! hotswap's persistent store: everything `hotswap serve` must find again
//! after a restart or a crash.
//!
//! - **Artifacts**, content-addressed: `<dir>/artifacts/<sha256>.wasm`,
//!   written atomically (temporary file, fsync, rename, directory fsync) and
//!   checked against their digest on every read, so a corrupt file is
//!   reported, never served.
//! - **Slot states** ([`hotswap_core::SlotState`]): what each slot serves,
//!   its previous revision, its canary and weight, its generation counter;
//!   and the **event log**. The store is the slots' [`hotswap_core::Journal`]
//!   ([`Store::journal`]): a state and the events of the change that made
//!   it commit in one durable redb transaction, and a state only ever names
//!   artifacts already on disk. The log keeps a bounded number of events.
//! - **Key-value data** of plugins ([`SlotKv`], a [`hotswap_core::KvStore`]),
//!   in the same database.
//!
//! A deploy stores its artifact first and commits the slot's state last.
//! A crash anywhere in between leaves the old state, pointing at the old,
//! intact artifact: after a restart a slot serves the old revision or the
//! new one, never a broken one, and it is restored as it was, never
//! rebuilt by replaying its history.
//!
//! ```
//! use hotswap_core::{Artifact, Candidate, Journal, KvChange, KvStore, Manifest, SlotState};
//! use hotswap_store::Store;
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! let code = Artifact::new(b"\0asm...".to_vec());
//! store.put_artifact(&code)?;
//! let manifest = Manifest { name: "greet".into(), version: "1".into(), abi: 1, state_schema: 0 };
//! let candidate = Candidate { digest: code.digest(), manifest, kind: code.kind() };
//! let state = SlotState::default().deploy(candidate)?.state;
//! store.journal(1000).commit("greet", &state, &[], KvChange::Keep)?;
//! store.kv("greet")?.put(b"count", b"1")?;
//! drop(store);
//!
//! let store = Store::open(dir.path())?; // as after a restart
//! assert_eq!(store.slot_state("greet")?, Some(state));
//! assert_eq!(store.artifact(&code.digest())?.bytes(), code.bytes());
//! assert_eq!(store.kv("greet")?.get(b"count")?, Some(b"1".to_vec()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod artifacts;
mod counters;
mod ebpf;
mod error;
mod handle;
mod journal;
mod kv;
mod records;
mod snapshot;
mod table;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use hotswap_core::{Artifact, Digest, KvLimits};
use redb::{Database, Durability, TableDefinition};

use handle::DbHandle;

pub use error::{check_slot_name, StoreError};
pub use journal::{StoreJournal, DEFAULT_EVENT_RETENTION};
pub use kv::SlotKv;
pub use records::{CanaryRecord, SlotRecord};

use artifacts::Artifacts;
use error::db;
use table::RecordTable;

/// `slot name → SlotRecord as JSON`: slots as releases before slot states
/// kept them, read once to convert ([`Store::legacy_slots`]).
const SLOTS: RecordTable = RecordTable {
    def: TableDefinition::new("slots"),
    what: "slot",
};

/// How long a key-value write may stay in memory only.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// When a plugin's key-value write reaches the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvSync {
    /// Within 100 ms, by the flusher, and at a clean shutdown: a `kill -9`
    /// can lose the last fraction of a second of writes (never tear one).
    /// A plugin that writes on every call does not pay an fsync per call.
    #[default]
    Interval,
    /// Before the write returns to the plugin: an acknowledged write
    /// survives any crash, at the price of an fsync per write.
    Always,
}

/// The store in one directory. One process at a time may open it; a
/// process upgrade passes it on with [`Store::release`].
pub struct Store {
    dir: PathBuf,
    db: Arc<DbHandle>,
    artifacts: Artifacts,
    dirty: Arc<AtomicBool>,
    flusher: Option<Flusher>,
    kv_sync: KvSync,
}

impl Store {
    /// Opens (or creates) the store in `dir`, removing the leftovers of
    /// writes a crash interrupted.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            what: "cannot create",
            path: dir.to_path_buf(),
            source,
        })?;
        let database = Arc::new(DbHandle::open(&dir.join("store.redb"))?);
        let dirty = Arc::new(AtomicBool::new(false));
        Ok(Store {
            artifacts: Artifacts::open(dir.join("artifacts"))?,
            flusher: Some(Flusher::start(database.clone(), dirty.clone())),
            dir: dir.to_path_buf(),
            db: database,
            dirty,
            kv_sync: KvSync::default(),
        })
    }

    /// The same store, with key-value writes made durable as `sync` says
    /// (for the slots' stores made from now on).
    pub fn with_kv_sync(mut self, sync: KvSync) -> Store {
        self.kv_sync = sync;
        self
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the WASM tier should keep compiled modules, so that they too
    /// survive a restart.
    pub fn compile_cache_dir(&self) -> PathBuf {
        self.dir.join("compiled")
    }

    /// Stores an artifact durably (a no-op if it is already there).
    pub fn put_artifact(&self, artifact: &Artifact) -> Result<(), StoreError> {
        self.artifacts.put(artifact)
    }

    /// A stored artifact, verified against its digest.
    pub fn artifact(&self, digest: &Digest) -> Result<Artifact, StoreError> {
        self.artifacts.get(digest)
    }

    /// Slot records in the format of releases before slot states, to
    /// convert once. Empty on every data directory made since.
    pub fn legacy_slots(&self) -> Result<Vec<(String, SlotRecord)>, StoreError> {
        self.records(SLOTS)
    }

    /// Forgets a legacy slot record, once converted.
    pub fn remove_legacy_slot(&self, name: &str) -> Result<bool, StoreError> {
        self.remove_record(SLOTS, name)
    }

    /// A slot's key-value data, with the default limits.
    pub fn kv(&self, slot: &str) -> Result<Arc<SlotKv>, StoreError> {
        check_slot_name(slot)?;
        Ok(Arc::new(SlotKv::new(
            self.db.clone(),
            slot,
            KvLimits::default(),
            self.dirty.clone(),
            self.kv_sync,
        )))
    }

    /// Makes every key-value write so far durable now.
    pub fn flush(&self) -> Result<(), StoreError> {
        match self.db.get() {
            Ok(open) => flush(&open, &self.dirty).map_err(db),
            // Released: flushed when it was released.
            Err(StoreError::Released) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Makes every write durable and closes the database, so that another
    /// process (the next generation of a process upgrade) can open it.
    /// Operations in flight finish first; later ones fail with
    /// [`StoreError::Released`] until [`Store::reacquire`]. Artifacts stay
    /// readable: they are plain files.
    pub fn release(&self) -> Result<(), StoreError> {
        self.db.release(|open| flush(open, &self.dirty).map_err(db))
    }

    /// Opens the database again after [`Store::release`], when the process
    /// it was handed to did not take it after all. A no-op if it is open.
    pub fn reacquire(&self) -> Result<(), StoreError> {
        self.db.reacquire()
    }
}

impl Drop for Store {
    /// A clean shutdown loses nothing: stop the flusher, then flush.
    fn drop(&mut self) {
        drop(self.flusher.take());
        if let Err(e) = self.flush() {
            tracing::error!(error = %e, "could not flush the store at shutdown");
        }
    }
}

/// A durable empty commit: makes every earlier non-durable one durable.
fn flush(db: &Database, dirty: &AtomicBool) -> Result<(), redb::Error> {
    if !dirty.swap(false, Ordering::AcqRel) {
        return Ok(());
    }
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    txn.commit()?;
    Ok(())
}

/// The thread that makes key-value writes durable every [`FLUSH_EVERY`].
struct Flusher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flusher {
    fn start(db: Arc<DbHandle>, dirty: Arc<AtomicBool>) -> Flusher {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name("hotswap-store-flush".into())
            .spawn(move || {
                let (lock, cv) = &*signal;
                let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
                while !*stopped {
                    stopped = cv
                        .wait_timeout(stopped, FLUSH_EVERY)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    let Ok(open) = db.get() else {
                        continue; // released: flushed then, nothing to do
                    };
                    if let Err(e) = flush(&open, &dirty) {
                        tracing::error!(error = %e, "could not flush key-value writes");
                        dirty.store(true, Ordering::Release);
                    }
                }
            })
            .expect("cannot start the store's flush thread");
        Flusher {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        let (lock, cv) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
