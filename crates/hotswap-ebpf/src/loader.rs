//! One aya loader for the whole process, so the kernel's BTF is parsed
//! once per process and not once per load: aya 0.14's `EbpfLoader::new`
//! parses `/sys/kernel/btf/vmlinux` (several MB, a few ms) every time, and
//! offers no way to hand it an already parsed one for `'static`.
//!
//! The loader remembers pin paths by map name, and names must live as long
//! as it does; they are interned. Interning is bounded: past
//! [`MAX_NAMES`] distinct map names (only hostile objects get there) a load
//! uses a loader of its own, paying the parse, instead of growing forever.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

use aya::{Ebpf, EbpfError as AyaError, EbpfLoader};

const MAX_NAMES: usize = 4096;

static SHARED: OnceLock<Mutex<EbpfLoader<'static>>> = OnceLock::new();
static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);

/// Loads `object` with each `(map, pin path)` reusing or creating that pin.
pub(crate) fn load(object: &[u8], pins: &[(String, PathBuf)]) -> Result<Ebpf, AyaError> {
    match interned(pins) {
        Some(names) => {
            let mut loader = shared();
            for ((_, path), name) in pins.iter().zip(names) {
                loader.map_pin_path(name, path.clone());
            }
            loader.load(object)
        }
        None => {
            let mut loader = EbpfLoader::new();
            for (name, path) in pins {
                loader.map_pin_path(name.as_str(), Path::new(path));
            }
            loader.load(object)
        }
    }
}

fn shared() -> MutexGuard<'static, EbpfLoader<'static>> {
    SHARED
        .get_or_init(|| Mutex::new(EbpfLoader::new()))
        .lock()
        // A panic inside aya leaves nothing half-written that matters here:
        // pin paths are overwritten before every load.
        .unwrap_or_else(|e| e.into_inner())
}

/// The map names as `'static`, or `None` when interning them would pass
/// the bound.
fn interned(pins: &[(String, PathBuf)]) -> Option<Vec<&'static str>> {
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let names = names.get_or_insert_with(HashSet::new);
    let new = pins
        .iter()
        .filter(|(n, _)| !names.contains(n.as_str()))
        .count();
    if names.len() + new > MAX_NAMES {
        return None;
    }
    Some(
        pins.iter()
            .map(|(n, _)| match names.get(n.as_str()) {
                Some(s) => *s,
                None => {
                    let s: &'static str = Box::leak(n.clone().into_boxed_str());
                    names.insert(s);
                    s
                }
            })
            .collect(),
    )
}
