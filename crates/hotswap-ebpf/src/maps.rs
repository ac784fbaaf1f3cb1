//! A program's pinned maps, read and written by typed entries: the key
//! and value shapes come from the map's BTF (as the kernel holds it), so
//! `hotswap ebpf map set fw blocklist 10.0.0.7 1` writes the right bytes.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::btf::Btf;
use crate::value::Shape;
use crate::{sys, EbpfError};

/// Entries `dump` returns at most. (`/metrics` exports fewer per map: see
/// the server's `METRIC_ENTRIES`.)
pub const DUMP_LIMIT: usize = 10_000;

/// One map of a program, opened from its pin.
pub struct PinnedMap {
    name: String,
    fd: OwnedFd,
    kind: u32,
    key: Shape,
    value: Shape,
    value_size: usize,
    max_entries: u32,
    /// Possible CPUs, for per-CPU maps (which hold one value per CPU).
    cpus: Option<usize>,
}

/// What a map is, for `list` and for people choosing what to type.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MapSummary {
    /// Its name.
    pub name: String,
    /// Its type (`hash`, `array`, `percpu_array`, `ringbuf`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// What its keys are (`u32`, `IPv4 address`, ...); empty for keyless maps.
    pub key: String,
    /// What its values are.
    pub value: String,
    /// Its capacity.
    pub max_entries: u32,
}

/// One entry, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The key.
    pub key: Value,
    /// The value; for per-CPU maps of numbers, their sum over the CPUs.
    pub value: Value,
    /// Per-CPU maps: each CPU's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_cpu: Option<Vec<Value>>,
}

impl PinnedMap {
    /// Opens the map pinned at `path`, and reads its key and value types
    /// from its BTF (a map without BTF gets untyped shapes by size). The
    /// maps of one program share their BTF: `btfs` keeps each one parsed
    /// once, by id, across the maps opened with it.
    pub(crate) fn open(
        name: &str,
        path: &Path,
        btfs: &mut HashMap<u32, Rc<Btf>>,
    ) -> Result<PinnedMap, EbpfError> {
        let err = |reason: String| EbpfError::Map {
            map: name.to_string(),
            reason,
        };
        let fd = sys::obj_get(path).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => err("no such map in this program".into()),
            _ => err(format!("cannot open its pin {}: {e}", path.display())),
        })?;
        let info =
            sys::map_info(fd.as_fd()).map_err(|e| err(format!("cannot read its info: {e}")))?;
        let btf = match info.btf_id {
            0 => None,
            id => match btfs.get(&id) {
                Some(btf) => Some(btf.clone()),
                None => {
                    let raw =
                        sys::btf_by_id(id).map_err(|e| err(format!("cannot read its BTF: {e}")))?;
                    let btf = Rc::new(Btf::parse(&raw).map_err(|e| err(format!("its BTF: {e}")))?);
                    btfs.insert(id, btf.clone());
                    Some(btf)
                }
            },
        };
        // A shape that disagrees with the size the kernel enforces is not
        // trusted: the bytes would be wrong.
        let typed = |type_id: u32, size: u32| {
            btf.as_ref()
                .filter(|_| type_id != 0)
                .map(|b| b.shape(type_id))
                .filter(|s| s.size() == size as usize)
                .unwrap_or_else(|| Shape::untyped(size as usize))
        };
        let per_cpu = matches!(info.type_, PERCPU_HASH | PERCPU_ARRAY | LRU_PERCPU_HASH);
        let cpus = if per_cpu {
            Some(aya::util::nr_cpus().map_err(|(what, e)| err(format!("{what}: {e}")))?)
        } else {
            None
        };
        Ok(PinnedMap {
            name: name.to_string(),
            key: typed(info.btf_key_type_id, info.key_size),
            value: typed(info.btf_value_type_id, info.value_size),
            kind: info.type_,
            value_size: info.value_size as usize,
            max_entries: info.max_entries,
            cpus,
            fd,
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it is.
    pub fn summary(&self) -> MapSummary {
        let keyless = self.key.size() == 0;
        MapSummary {
            name: self.name.clone(),
            kind: kind_name(self.kind).to_string(),
            key: if keyless {
                String::new()
            } else {
                self.key.describe()
            },
            value: if self.value.size() == 0 {
                String::new()
            } else {
                self.value.describe()
            },
            max_entries: self.max_entries,
        }
    }

    /// Whether it is a ring buffer (a source of events, not entries).
    pub fn is_ring_buffer(&self) -> bool {
        self.kind == RINGBUF
    }

    /// The entry under `key` (typed as its shape says), if there is one.
    pub fn get(&self, key: &str) -> Result<Option<Entry>, EbpfError> {
        self.holds_entries()?;
        let key = self.key_bytes(key)?;
        self.lookup(&key)
    }

    /// Writes `value` under `key`, both typed as their shapes say; the
    /// program sees it on its next run. Per-CPU maps get it on every CPU.
    pub fn set(&self, key: &str, value: &str) -> Result<Entry, EbpfError> {
        self.holds_entries()?;
        let key = self.key_bytes(key)?;
        let one = self
            .value
            .parse(value)
            .map_err(|e| self.err(format!("value: {e}")))?;
        let bytes = match self.cpus {
            None => one,
            Some(cpus) => {
                let stride = self.value_size.next_multiple_of(8);
                let mut all = vec![0u8; stride * cpus];
                for cpu in all.chunks_mut(stride) {
                    cpu[..one.len()].copy_from_slice(&one);
                }
                all
            }
        };
        sys::update(self.fd.as_fd(), &key, &bytes, sys::BPF_ANY).map_err(|e| {
            self.err(match e.raw_os_error() {
                Some(libc::E2BIG) => format!("it is full ({} entries)", self.max_entries),
                _ => format!("the kernel refused the write: {e}"),
            })
        })?;
        self.lookup(&key)?
            .ok_or_else(|| self.err("the entry vanished right after it was written".into()))
    }

    /// Deletes `key`'s entry; `false` if there was none.
    pub fn delete(&self, key: &str) -> Result<bool, EbpfError> {
        self.holds_entries()?;
        if matches!(self.kind, ARRAY | PERCPU_ARRAY) {
            return Err(self.err(
                "array entries always exist and cannot be deleted; set the entry to 0 instead"
                    .into(),
            ));
        }
        let key = self.key_bytes(key)?;
        sys::delete(self.fd.as_fd(), &key)
            .map_err(|e| self.err(format!("the kernel refused the delete: {e}")))
    }

    /// Up to `limit` entries, and whether there were more.
    pub fn dump(&self, limit: usize) -> Result<(Vec<Entry>, bool), EbpfError> {
        self.holds_entries()?;
        let mut entries = Vec::new();
        let mut key: Option<Vec<u8>> = None;
        let mut next = vec![0u8; self.key.size()];
        while sys::next_key(self.fd.as_fd(), key.as_deref(), &mut next)
            .map_err(|e| self.err(format!("cannot list its keys: {e}")))?
        {
            if entries.len() == limit {
                return Ok((entries, true));
            }
            // An entry deleted between listing and reading is skipped.
            if let Some(entry) = self.lookup(&next)? {
                entries.push(entry);
            }
            key = Some(next.clone());
        }
        Ok((entries, false))
    }

    /// Whether `/metrics` can export it: a hash or array map of numbers.
    pub fn is_counters(&self) -> bool {
        self.value.is_number()
            && matches!(
                self.kind,
                HASH | ARRAY | PERCPU_HASH | PERCPU_ARRAY | LRU_HASH | LRU_PERCPU_HASH
            )
    }

    fn lookup(&self, key: &[u8]) -> Result<Option<Entry>, EbpfError> {
        let stride = self.value_size.next_multiple_of(8);
        let mut value = vec![0u8; self.cpus.map_or(self.value_size, |n| stride * n)];
        let found = sys::lookup(self.fd.as_fd(), key, &mut value)
            .map_err(|e| self.err(format!("cannot read the entry: {e}")))?;
        if !found {
            return Ok(None);
        }
        let key = self.key.read(key);
        Ok(Some(match self.cpus {
            None => Entry {
                key,
                value: self.value.read(&value),
                per_cpu: None,
            },
            Some(_) => {
                let per_cpu: Vec<Value> = value
                    .chunks(stride)
                    .map(|c| self.value.read(&c[..self.value_size]))
                    .collect();
                let total = if self.value.is_number() {
                    let sum: i128 = per_cpu
                        .iter()
                        .filter_map(Value::as_i64)
                        .map(i128::from)
                        .sum();
                    i64::try_from(sum).map_or_else(|_| Value::from(sum.to_string()), Value::from)
                } else {
                    Value::Array(per_cpu.clone())
                };
                Entry {
                    key,
                    value: total,
                    per_cpu: Some(per_cpu),
                }
            }
        }))
    }

    fn key_bytes(&self, key: &str) -> Result<Vec<u8>, EbpfError> {
        self.key
            .parse(key)
            .map_err(|e| self.err(format!("key: {e}")))
    }

    /// Whether entries can be read and written here, or why not.
    fn holds_entries(&self) -> Result<(), EbpfError> {
        match self.kind {
            HASH | ARRAY | PERCPU_HASH | PERCPU_ARRAY | LRU_HASH | LRU_PERCPU_HASH | LPM_TRIE => Ok(()),
            PROG_ARRAY => Err(self.err("a program array holds programs, not data".into())),
            RINGBUF | PERF_EVENT_ARRAY => Err(self.err(format!(
                "a {} carries events, not entries: use `hotswap ebpf events`",
                kind_name(self.kind)
            ))),
            other => Err(self.err(format!(
                "hotswap reads and writes hash, array and LRU maps (and their per-CPU forms), not {}",
                kind_name(other)
            ))),
        }
    }

    fn err(&self, reason: String) -> EbpfError {
        EbpfError::Map {
            map: self.name.clone(),
            reason,
        }
    }
}

// Map types, from include/uapi/linux/bpf.h.
const HASH: u32 = 1;
const ARRAY: u32 = 2;
const PROG_ARRAY: u32 = 3;
pub(crate) const PERF_EVENT_ARRAY: u32 = 4;
const PERCPU_HASH: u32 = 5;
const PERCPU_ARRAY: u32 = 6;
const LRU_HASH: u32 = 9;
const LRU_PERCPU_HASH: u32 = 10;
const LPM_TRIE: u32 = 11;
pub(crate) const RINGBUF: u32 = 27;

fn kind_name(kind: u32) -> &'static str {
    const NAMES: &[&str] = &[
        "unspec",
        "hash",
        "array",
        "prog_array",
        "perf_event_array",
        "percpu_hash",
        "percpu_array",
        "stack_trace",
        "cgroup_array",
        "lru_hash",
        "lru_percpu_hash",
        "lpm_trie",
        "array_of_maps",
        "hash_of_maps",
        "devmap",
        "sockmap",
        "cpumap",
        "xskmap",
        "sockhash",
        "cgroup_storage",
        "reuseport_sockarray",
        "percpu_cgroup_storage",
        "queue",
        "stack",
        "sk_storage",
        "devmap_hash",
        "struct_ops",
        "ringbuf",
        "inode_storage",
        "task_storage",
        "bloom_filter",
        "user_ringbuf",
        "cgrp_storage",
        "arena",
    ];
    NAMES.get(kind as usize).copied().unwrap_or("unknown")
}

/// The first struct named one of `names` in BTF `btf_id`, as a shape.
pub(crate) fn struct_shape(btf_id: u32, names: &[&str]) -> Option<Shape> {
    let btf = Btf::parse(&sys::btf_by_id(btf_id).ok()?).ok()?;
    names
        .iter()
        .find_map(|n| btf.struct_named(n))
        .map(|id| btf.shape(id))
}
