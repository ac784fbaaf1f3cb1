//! hotswap's eBPF tier: replace running eBPF programs atomically, keep
//! their maps across revisions, and change their policy through map writes.
//!
//! Each program has a name and a namespace in bpffs (`<root>/<name>/`),
//! where its maps are pinned. A new revision reuses the pinned maps, after
//! a check that each still fits (type, key and value size, max entries,
//! flags: aya reuses pins unchecked, libbpf checks, and so do we), so the
//! state a program built survives its replacement and hotswap's restart.
//!
//! The replacement itself is one atomic kernel operation, picked per hook:
//! - **XDP**: the first revision's link is pinned; later revisions update
//!   it (`BPF_LINK_UPDATE`), so every packet meets the old program or the
//!   new one.
//! - **tracepoints, raw tracepoints, uprobes**: the kernel cannot update those
//!   links, so hotswap attaches its own dispatcher once; it tail-calls into
//!   a pinned one-slot program array, and a replacement writes the new
//!   program into the slot. A call that finds the slot empty is counted
//!   (`hs_missed`), so "no event lost" can be checked, not assumed.
//!
//! A revision the verifier rejects, whose maps do not fit, or that cannot
//! be attached, changes nothing: the running program keeps running.
//!
//! ```no_run
//! use hotswap_ebpf::{examples, EbpfTier, Hook};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tier = EbpfTier::new("/sys/fs/bpf/hotswap")?;
//! let hook: Hook = "tracepoint:raw_syscalls:sys_enter".parse()?;
//! tier.load("tracer", examples::TRACER_V1, None, &hook)?;
//! let placed = tier.load("tracer", examples::TRACER_V2, None, &hook)?; // a replacement
//! println!("swapped in {:?}", placed.swap);
//! tier.unload("tracer")?; // detaches and removes every pin
//! # Ok(())
//! # }
//! ```

mod btf;
pub mod compile;
mod error;
mod events;
mod hook;
mod loader;
mod maps;
mod objects;
mod pins;
mod program;
mod sys;
mod value;

use std::path::{Path, PathBuf};

pub use error::EbpfError;
pub use events::Events;
pub use hook::{BadHook, Hook};
pub use maps::{Entry, MapSummary, PinnedMap, DUMP_LIMIT};
pub use program::Placed;
pub use value::{as_text, Field, Shape};

use pins::Namespace;

/// The example programs of `ebpf/`, built from source with this crate.
pub mod examples {
    pub use crate::objects::{TRACER_V1, TRACER_V2, XDP_FILTER_V1, XDP_FILTER_V2};
}

/// Where hotswap pins by default.
pub const DEFAULT_ROOT: &str = "/sys/fs/bpf/hotswap";

/// The eBPF tier: the programs pinned under one root.
///
/// Every load relocates against the kernel's BTF, which is parsed once per
/// process (by the one loader all tiers share), not once per load.
pub struct EbpfTier {
    root: PathBuf,
}

impl EbpfTier {
    /// Checks that this process can use BPF (root, bpffs mounted at or
    /// above `root`, the kernel's BTF readable).
    pub fn new(root: impl AsRef<Path>) -> Result<EbpfTier, EbpfError> {
        let root = root.as_ref().to_path_buf();
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(EbpfError::Unavailable(
                "loading eBPF programs needs root (or CAP_BPF with CAP_PERFMON and CAP_NET_ADMIN)"
                    .into(),
            ));
        }
        let mount = root
            .ancestors()
            .find(|p| p.exists())
            .unwrap_or(Path::new("/"));
        if !program::on_bpffs(mount) {
            return Err(EbpfError::NoBpffs(root));
        }
        // The root itself is made by the first load: a server that never
        // loads a program leaves nothing behind in bpffs.
        if let Err(e) = std::fs::File::open(compile::KERNEL_BTF) {
            return Err(EbpfError::Unavailable(format!(
                "cannot read the kernel's BTF ({}: {e}); \
                 hotswap's programs are CO-RE and need a kernel built with CONFIG_DEBUG_INFO_BTF",
                compile::KERNEL_BTF
            )));
        }
        Ok(EbpfTier { root })
    }

    /// Loads `object` as program `name` on `hook`: attaches it the first
    /// time, replaces the running revision atomically after that (in this
    /// process or after a restart: the pins say what runs). `program` names
    /// the program in the object when it has more than one.
    pub fn load(
        &self,
        name: &str,
        object: &[u8],
        program: Option<&str>,
        hook: &Hook,
    ) -> Result<Placed, EbpfError> {
        let ns = self.namespace(name)?;
        // A replacement stays on its hook. The pins show the hook's kind (a
        // slot is there for dispatched hooks only), though not which
        // tracepoint or interface: the server's record has that.
        if ns.link().exists() && hook.dispatched() != ns.slot().exists() {
            return Err(EbpfError::OtherHook {
                name: name.to_string(),
                running: if ns.slot().exists() {
                    "through the dispatcher (a tracepoint, raw tracepoint or uprobe)"
                } else {
                    "on an XDP link"
                },
                given: hook.to_string(),
            });
        }
        program::place(&ns, object, program, hook)
    }

    /// Detaches program `name` and removes its pins; its maps are freed.
    pub fn unload(&self, name: &str) -> Result<(), EbpfError> {
        let ns = self.namespace(name)?;
        if !ns.dir().exists() {
            return Err(EbpfError::NotLoaded(name.to_string()));
        }
        ns.remove()
    }

    /// Where program `name`'s map `map` is pinned.
    pub fn map_pin(&self, name: &str, map: &str) -> Result<PathBuf, EbpfError> {
        Ok(self.namespace(name)?.map(map))
    }

    /// The programs pinned under the root, by name.
    pub fn programs(&self) -> Result<Vec<String>, EbpfError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(EbpfError::Io {
                    what: "cannot list",
                    path: self.root.clone(),
                    source,
                })
            }
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().join("link").exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        Ok(names)
    }

    /// The kernel's id for the revision program `name` runs now (as
    /// `bpftool prog show id N` shows it).
    pub fn running(&self, name: &str) -> Result<u32, EbpfError> {
        let ns = self.loaded(name)?;
        program::running(&ns).map_err(|source| EbpfError::Io {
            what: "cannot read what runs at",
            path: ns.link(),
            source,
        })
    }

    /// Whether program `name` is pinned (attached) here.
    pub fn is_loaded(&self, name: &str) -> bool {
        self.namespace(name).is_ok_and(|ns| ns.link().exists())
    }

    /// Program `name`'s maps, by name.
    pub fn maps(&self, name: &str) -> Result<Vec<PinnedMap>, EbpfError> {
        let ns = self.loaded(name)?;
        let dir = ns.dir().join("maps");
        let entries = std::fs::read_dir(&dir).map_err(|source| EbpfError::Io {
            what: "cannot list",
            path: dir.clone(),
            source,
        })?;
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        let mut btfs = Default::default();
        names
            .iter()
            .map(|m| PinnedMap::open(m, &ns.map(m), &mut btfs))
            .collect()
    }

    /// Program `name`'s map `map`, to read and write entries.
    pub fn map(&self, name: &str, map: &str) -> Result<PinnedMap, EbpfError> {
        let ns = self.loaded(name)?;
        if map.is_empty() || map.contains('/') || map.starts_with('.') {
            return Err(EbpfError::Map {
                map: map.to_string(),
                reason: "not a map name".into(),
            });
        }
        PinnedMap::open(map, &ns.map(map), &mut Default::default())
    }

    /// Program `name`'s events: from ring buffer `map`, or from its only
    /// ring buffer.
    pub fn events(&self, name: &str, map: Option<&str>) -> Result<Events, EbpfError> {
        let rings: Vec<String> = self
            .maps(name)?
            .into_iter()
            .filter(PinnedMap::is_ring_buffer)
            .map(|m| m.name().to_string())
            .collect();
        let chosen = match map {
            Some(m) => m.to_string(),
            None if rings.len() == 1 => rings[0].clone(),
            None if rings.is_empty() => {
                return Err(EbpfError::NoProgram(format!(
                    "program `{name}` has no ring buffer, so no events to stream"
                )))
            }
            None => {
                return Err(EbpfError::NoProgram(format!(
                    "program `{name}` has {} ring buffers ({}); name one",
                    rings.len(),
                    rings.join(", ")
                )))
            }
        };
        let ns = self.loaded(name)?;
        let btf = program::running(&ns)
            .and_then(crate::sys::program_btf)
            .ok()
            .filter(|&id| id != 0);
        Events::open(&chosen, &ns.map(&chosen), btf)
    }

    /// Calls into a dispatched program's hook that found its slot empty
    /// (0 for XDP, which has no slot).
    pub fn missed(&self, name: &str) -> Result<u64, EbpfError> {
        let ns = self.namespace(name)?;
        if !ns.missed().exists() {
            return Ok(0);
        }
        program::missed(&ns)
    }

    fn loaded(&self, name: &str) -> Result<Namespace, EbpfError> {
        let ns = self.namespace(name)?;
        if !ns.link().exists() {
            return Err(EbpfError::NotLoaded(name.to_string()));
        }
        Ok(ns)
    }

    fn namespace(&self, name: &str) -> Result<Namespace, EbpfError> {
        let ok = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
        if name.is_empty() || name.len() > 64 || !name.chars().all(ok) || name.starts_with('.') {
            return Err(EbpfError::BadName(name.to_string()));
        }
        Ok(Namespace::new(&self.root, name))
    }
}
