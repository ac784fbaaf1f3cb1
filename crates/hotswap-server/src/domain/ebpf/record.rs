//! `ProgramRecord`: what an eBPF program was placed as (hook, program,
//! object digest, revision), typed, as the store keeps it; and the name its
//! events carry.

use hotswap_core::Digest;
use hotswap_ebpf::Hook;
use serde::{Deserialize, Serialize};

/// One eBPF program as hotswap placed it. The program itself lives in the
/// kernel, pinned in bpffs; this is what the pins cannot say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramRecord {
    /// Where it is attached.
    pub hook: Hook,
    /// Its name in the object.
    pub program: String,
    /// The object it was loaded from. (Records of earlier releases call
    /// it `sha256`.)
    #[serde(alias = "sha256")]
    pub digest: Digest,
    /// 1 for the first load, then one more per replacement.
    pub revision: u64,
    /// When the running revision was placed, in ms since the Unix epoch.
    pub placed_at_ms: u64,
}

/// Whether a program's pins are there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProgramState {
    /// Pinned and attached.
    Running,
    /// The store remembers it, but its pins are gone (a reboot clears bpffs).
    Missing,
}

impl std::fmt::Display for ProgramState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProgramState::Running => "running",
            ProgramState::Missing => "missing",
        })
    }
}

/// The name eBPF program `name`'s events and swap metrics carry, beside
/// the slots': `ebpf/NAME` (no slot name holds a `/`).
pub fn event_slot(name: &str) -> String {
    format!("ebpf/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_records_of_earlier_releases() {
        let digest = Digest::of(b"object");
        let old = format!(
            r#"{{"hook":"tracepoint:raw_syscalls:sys_enter","program":"count","sha256":"{digest}","revision":3,"placed_at_ms":7}}"#
        );
        let record: ProgramRecord = serde_json::from_str(&old).unwrap();
        assert_eq!(record.hook.to_string(), "tracepoint:raw_syscalls:sys_enter");
        assert_eq!((record.digest, record.revision), (digest, 3));
        let again: ProgramRecord =
            serde_json::from_str(&serde_json::to_string(&record).unwrap()).unwrap();
        assert_eq!(again, record);
        let bad = old.replace("tracepoint:raw_syscalls:sys_enter", "nowhere");
        assert!(serde_json::from_str::<ProgramRecord>(&bad).is_err());
    }
}
