//! `EbpfError`: why an eBPF operation failed, in words an operator can act on.

use std::path::PathBuf;

/// Why a load, replacement or map operation failed. In every case the
/// program that was running before still runs, with its maps.
#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    /// Not root (or without CAP_BPF and CAP_PERFMON), or no BPF in this kernel.
    #[error("eBPF is not available here: {0}")]
    Unavailable(String),
    /// bpffs is not mounted where the pins go.
    #[error("{0} is not on a bpffs mount: mount it with `mount -t bpf bpf /sys/fs/bpf` (scripts/setup does)")]
    NoBpffs(PathBuf),
    /// A name that cannot be a pin directory.
    #[error("`{0}` is not a program name: use 1-64 characters from a-z A-Z 0-9 - _ .")]
    BadName(String),
    /// The object file is not a BPF object aya can use.
    #[error("not a usable BPF object: {0}")]
    BadObject(String),
    /// The object has no program of that name, or more than one and none named.
    #[error("{0}")]
    NoProgram(String),
    /// The program's type does not fit the hook.
    #[error("program `{program}` is a {kind} program; {hook} needs {wants}")]
    WrongType {
        /// The program.
        program: String,
        /// What it is.
        kind: String,
        /// The hook.
        hook: String,
        /// What the hook takes.
        wants: &'static str,
    },
    /// A pinned map from the running revision does not fit the new one.
    #[error("map `{map}` is incompatible with the pinned one: {field} is {pinned} there, {new} in the new object; the running program is untouched")]
    IncompatibleMap {
        /// The map.
        map: String,
        /// `type`, `key size`, `value size`, `max entries` or `flags`.
        field: &'static str,
        /// The pinned map's value.
        pinned: u32,
        /// The new object's value.
        new: u32,
    },
    /// The kernel's verifier refused the program.
    #[error("the verifier rejected `{program}`; the running program is untouched:\n{log}")]
    Verifier {
        /// The program.
        program: String,
        /// The verifier's log (its tail, where the reason is).
        log: String,
    },
    /// Attaching (or swapping into the attachment) failed.
    #[error("cannot attach `{program}` to {hook}: {reason}")]
    Attach {
        /// The program.
        program: String,
        /// The hook.
        hook: String,
        /// Why.
        reason: String,
    },
    /// No program of that name is loaded.
    #[error("no eBPF program named `{0}` is loaded")]
    NotLoaded(String),
    /// A replacement named a hook of another kind than the one the
    /// program's pins are for (an XDP link, or the dispatcher's slot).
    #[error("`{name}` runs {running}, so a replacement cannot go to {given}; unload it first to move it")]
    OtherHook {
        /// The program.
        name: String,
        /// How it is attached, as its pins say.
        running: &'static str,
        /// The hook asked for.
        given: String,
    },
    /// A map operation failed.
    #[error("map `{map}`: {reason}")]
    Map {
        /// The map.
        map: String,
        /// Why.
        reason: String,
    },
    /// A pin could not be made or removed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}
