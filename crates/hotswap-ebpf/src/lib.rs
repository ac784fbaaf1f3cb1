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
//! - **tracepoints, raw tracepoints**: the kernel cannot update those
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

mod error;
mod hook;
mod objects;
mod pins;
mod program;

use std::path::{Path, PathBuf};

pub use error::EbpfError;
pub use hook::{BadHook, Hook};
pub use program::Placed;

use pins::Namespace;

/// The example programs of `ebpf/`, built from source with this crate.
pub mod examples {
    pub use crate::objects::{TRACER_V1, TRACER_V2, XDP_FILTER_V1, XDP_FILTER_V2};
}

/// Where hotswap pins by default.
pub const DEFAULT_ROOT: &str = "/sys/fs/bpf/hotswap";

/// The eBPF tier: one pin root, and the kernel's BTF that every load
/// relocates against.
///
/// aya 0.14's `EbpfLoader::new` parses the kernel's BTF again itself, so
/// each load still pays one parse (a few ms) on top of this one; caching a
/// loader per program, which would avoid it, is still to do.
pub struct EbpfTier {
    root: PathBuf,
    btf: aya::Btf,
}

impl EbpfTier {
    /// Checks that this process can use BPF (root, bpffs mounted at or
    /// above `root`), creates `root`, and parses the kernel's BTF.
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
        std::fs::create_dir_all(&root).map_err(|source| EbpfError::Io {
            what: "cannot create",
            path: root.clone(),
            source,
        })?;
        let btf = aya::Btf::from_sys_fs().map_err(|e| {
            EbpfError::Unavailable(format!(
                "cannot read the kernel's BTF (/sys/kernel/btf/vmlinux): {e}"
            ))
        })?;
        Ok(EbpfTier { root, btf })
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
        program::place(&ns, &self.btf, object, program, hook)
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

    /// Calls into a dispatched program's hook that found its slot empty
    /// (0 for XDP, which has no slot).
    pub fn missed(&self, name: &str) -> Result<u64, EbpfError> {
        let ns = self.namespace(name)?;
        if !ns.missed().exists() {
            return Ok(0);
        }
        program::missed(&ns)
    }

    /// The pin root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn namespace(&self, name: &str) -> Result<Namespace, EbpfError> {
        let ok = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
        if name.is_empty() || name.len() > 64 || !name.chars().all(ok) || name.starts_with('.') {
            return Err(EbpfError::BadName(name.to_string()));
        }
        Ok(Namespace::new(&self.root, name))
    }
}
