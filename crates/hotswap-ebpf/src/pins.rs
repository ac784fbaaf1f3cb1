//! A program's namespace in bpffs, and the check that a pinned map fits a
//! new revision before the loader reuses it (aya reuses pins unchecked).
//!
//! ```text
//! <root>/<name>/maps/<map>     the program's maps, shared by its revisions
//! <root>/<name>/link           its attachment: the XDP link, or the dispatcher's
//! <root>/<name>/hs_slot        the dispatcher's tail-call slot (dispatched hooks)
//! <root>/<name>/hs_missed      calls that found the slot empty
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aya::maps::MapInfo;
use aya_obj::EbpfSectionKind;

// The map types whose sizes the loader adjusts before creating them.
use crate::maps::{PERF_EVENT_ARRAY, RINGBUF};
use crate::EbpfError;

/// Where one program's pins live.
#[derive(Debug, Clone)]
pub(crate) struct Namespace {
    dir: PathBuf,
}

impl Namespace {
    pub(crate) fn new(root: &Path, name: &str) -> Namespace {
        Namespace {
            dir: root.join(name),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn map(&self, name: &str) -> PathBuf {
        self.dir.join("maps").join(name)
    }

    pub(crate) fn link(&self) -> PathBuf {
        self.dir.join("link")
    }

    pub(crate) fn slot(&self) -> PathBuf {
        self.dir.join("hs_slot")
    }

    pub(crate) fn missed(&self) -> PathBuf {
        self.dir.join("hs_missed")
    }

    pub(crate) fn create(&self) -> Result<(), EbpfError> {
        let maps = self.dir.join("maps");
        std::fs::create_dir_all(&maps).map_err(|source| EbpfError::Io {
            what: "cannot create",
            path: maps,
            source,
        })
    }

    /// Removes every pin and the directory: the program's maps are freed
    /// once nothing else holds them.
    pub(crate) fn remove(&self) -> Result<(), EbpfError> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(EbpfError::Io {
                what: "cannot remove",
                path: self.dir.clone(),
                source,
            }),
        }
    }
}

/// The maps of an object that are pinned (its own maps; not the global
/// data sections, which a loader must write afresh every time).
pub(crate) fn pinnable_maps(object: &aya_obj::Object) -> BTreeMap<String, &aya_obj::Map> {
    object
        .maps
        .iter()
        .filter(|(_, m)| {
            matches!(
                m.section_kind(),
                EbpfSectionKind::BtfMaps | EbpfSectionKind::Maps
            )
        })
        .map(|(n, m)| (n.clone(), m))
        .collect()
}

/// Checks each map of the new object against the map pinned under its
/// name, if any: type, key size, value size, max entries and flags must
/// match, as libbpf checks before reusing a pin.
pub(crate) fn check_compatible(
    ns: &Namespace,
    maps: &BTreeMap<String, &aya_obj::Map>,
) -> Result<(), EbpfError> {
    for (name, new) in maps {
        let path = ns.map(name);
        if !path.exists() {
            continue;
        }
        let pinned = MapInfo::from_pin(&path).map_err(|e| EbpfError::Map {
            map: name.clone(),
            reason: format!("cannot read the pinned map: {e}"),
        })?;
        let pinned_type = pinned.map_type().map(|t| t as u32).unwrap_or(u32::MAX);
        let mismatch = |field, pinned: u32, new: u32| EbpfError::IncompatibleMap {
            map: name.clone(),
            field,
            pinned,
            new,
        };
        if pinned_type != new.map_type() {
            return Err(mismatch("type", pinned_type, new.map_type()));
        }
        if pinned.key_size() != new.key_size() {
            return Err(mismatch("key size", pinned.key_size(), new.key_size()));
        }
        // The loader sets a ring buffer's value size to 0 and rounds its
        // size up to whole pages, and sizes a perf array by CPUs.
        if new.map_type() != RINGBUF && pinned.value_size() != new.value_size() {
            return Err(mismatch(
                "value size",
                pinned.value_size(),
                new.value_size(),
            ));
        }
        let want_entries = match new.map_type() {
            RINGBUF => ringbuf_size(new.max_entries()),
            PERF_EVENT_ARRAY => pinned.max_entries(),
            _ => new.max_entries(),
        };
        if pinned.max_entries() != want_entries {
            return Err(mismatch("max entries", pinned.max_entries(), want_entries));
        }
        if pinned.map_flags() != new.map_flags() {
            return Err(mismatch("flags", pinned.map_flags(), new.map_flags()));
        }
    }
    Ok(())
}

/// A ring buffer's size as the loader creates it: a power of two, at least a page.
fn ringbuf_size(asked: u32) -> u32 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u32;
    asked.max(page).next_power_of_two()
}
