//! The eBPF tier inside `hotswap serve`: programs loaded, replaced and
//! unloaded on request, each placement recorded in the store (the pins
//! keep the program running; the record says what it was loaded as), and
//! the number-valued maps exported on `/metrics`.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use std::time::Duration;

use hotswap_core::{Digest, Phase, Subject, Transition};
use hotswap_ebpf::{EbpfError, EbpfTier, Hook, MapSummary, PinnedMap};
use hotswap_store::StoreError;
use serde::{Deserialize, Serialize};

pub use record::{event_slot, ProgramRecord, ProgramState};

use crate::config::EbpfConfig;
use crate::domain::gateway::Gateway;

mod events;
mod metrics;
mod record;

pub(crate) use metrics::MapCollector;

/// The server's eBPF programs.
pub struct Programs {
    tier: Result<EbpfTier, String>,
    gateway: Arc<Gateway>,
    /// One placement or unload at a time, so a record always matches what
    /// the pins hold.
    changes: Mutex<()>,
    readers: events::Readers,
}

/// Why an eBPF request failed.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    /// From the tier: the program, its maps, the verifier, the kernel.
    #[error(transparent)]
    Ebpf(#[from] EbpfError),
    /// `load` of a name that is loaded.
    #[error("`{0}` is already loaded: use `hotswap ebpf replace` to replace it")]
    AlreadyLoaded(String),
    /// A first load without a hook.
    #[error("name the hook to attach `{0}` to with --attach (e.g. tracepoint:raw_syscalls:sys_enter, raw_tracepoint:sys_enter, uprobe:/usr/bin/app:handle, xdp:eth0)")]
    NoHook(String),
    /// A hook that does not parse.
    #[error(transparent)]
    BadHook(#[from] hotswap_ebpf::BadHook),
    /// A replacement on another hook than the running one's.
    #[error("`{name}` is attached to {running}; a replacement goes to the same hook (unload it to move it to {given})")]
    OtherHook {
        /// The program.
        name: String,
        /// Where it runs.
        running: String,
        /// Where the request wanted it.
        given: String,
    },
    /// The store could not record it.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether a placement must be the first, a replacement, or either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// `hotswap ebpf load`: the name must be free.
    New,
    /// `hotswap ebpf replace`: the name must be loaded.
    Existing,
}

/// One program, as `list` and `show` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProgramView {
    /// Its name (its pin directory).
    pub name: String,
    /// `running`, or `missing` when the store remembers it but its pins
    /// are gone (a reboot clears bpffs).
    pub state: ProgramState,
    /// Where it is attached (`unknown` for pins hotswap has no record of).
    pub hook: String,
    /// Its name in the object.
    pub program: String,
    /// 1 for the first load, one more per replacement.
    pub revision: u64,
    /// The object's SHA-256.
    pub sha256: String,
    /// When the running revision was placed (ms since the Unix epoch).
    pub placed_at_ms: u64,
    /// The kernel's id for the running revision (`bpftool prog show id N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_id: Option<u32>,
    /// Calls into a dispatched hook that found its slot empty (0 is right).
    pub missed: u64,
    /// Its maps.
    pub maps: Vec<MapSummary>,
}

/// What a load or replacement did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlacedView {
    /// The program, as it runs now.
    pub program: ProgramView,
    /// Attached for the first time (else replaced).
    pub attached: bool,
    /// From the object's bytes to serving, in µs (verifier included).
    pub took_us: u64,
    /// The swap alone (link update or slot write), in µs.
    pub swap_us: u64,
}

impl Programs {
    /// The tier under `config.pin_root`, or the reason it is not available.
    pub fn open(config: &EbpfConfig, gateway: Arc<Gateway>) -> Programs {
        let tier = if config.enabled {
            EbpfTier::new(&config.pin_root).map_err(|e| e.to_string())
        } else {
            Err("the eBPF tier is off ([ebpf] enabled = false)".to_string())
        };
        if let Err(why) = &tier {
            tracing::info!(reason = %why, "eBPF programs are not available");
        }
        let programs = Programs {
            tier,
            gateway,
            changes: Mutex::new(()),
            readers: events::Readers::default(),
        };
        programs.announce_restored();
        programs
    }

    /// After a restart: one `restored` event per program the store
    /// remembers, saying whether its pins kept it running. Nothing is
    /// re-enacted: the kernel kept the program, the store its record.
    fn announce_restored(&self) {
        let Ok(tier) = self.tier() else { return };
        let records = match self.gateway.store().ebpf_programs::<ProgramRecord>() {
            Ok(records) => records,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the eBPF program records");
                return;
            }
        };
        for (name, record) in records {
            let reason = match tier.is_loaded(&name) {
                true => format!("running at {}, revision {}", record.hook, record.revision),
                false => "its pins are gone (a reboot clears bpffs); load it again".to_string(),
            };
            self.publish(
                &name,
                Transition::Restored,
                Phase::Restore,
                &record,
                None,
                reason,
            );
        }
    }

    /// An event about program `name` on the server's bus, where plugin
    /// slots publish theirs: the same log, stream and swap metrics.
    fn publish(
        &self,
        name: &str,
        transition: Transition,
        phase: Phase,
        record: &ProgramRecord,
        took: Option<Duration>,
        reason: String,
    ) {
        let subject = Subject {
            digest: Some(record.digest),
            version: Some(record.program.clone()),
            generation: Some(record.revision),
        };
        let slot = event_slot(name);
        let events = self.gateway.events();
        events.publish(&slot, transition, phase, &subject, took, Some(reason));
    }

    pub(crate) fn tier(&self) -> Result<&EbpfTier, ProgramError> {
        self.tier
            .as_ref()
            .map_err(|why| EbpfError::Unavailable(why.clone()).into())
    }

    /// Every program: those the store remembers and those pinned.
    pub fn list(&self) -> Result<Vec<ProgramView>, ProgramError> {
        let tier = self.tier()?;
        let records = self.gateway.store().ebpf_programs::<ProgramRecord>()?;
        let mut records: Vec<(String, Option<ProgramRecord>)> =
            records.into_iter().map(|(n, r)| (n, Some(r))).collect();
        for name in tier.programs()? {
            if !records.iter().any(|(n, _)| *n == name) {
                records.push((name, None));
            }
        }
        records.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(records
            .into_iter()
            .map(|(name, record)| self.view(tier, name, record))
            .collect())
    }

    /// One program: remembered by the store, or pinned.
    pub fn show(&self, name: &str) -> Result<ProgramView, ProgramError> {
        let tier = self.tier()?;
        let record = match self.gateway.store().ebpf_program::<ProgramRecord>(name)? {
            Some(record) => Some(record),
            None if tier.is_loaded(name) => None,
            None => return Err(EbpfError::NotLoaded(name.to_string()).into()),
        };
        Ok(self.view(tier, name.to_string(), record))
    }

    /// Loads `object` as `name` (first load: `attach` names the hook) or
    /// replaces the running revision. Blocking: the verifier runs here.
    pub fn place(
        &self,
        name: &str,
        object: &[u8],
        attach: Option<&str>,
        program: Option<&str>,
        expect: Option<Expect>,
    ) -> Result<PlacedView, ProgramError> {
        let tier = self.tier()?;
        let _one_at_a_time = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        let store = self.gateway.store();
        let record = store.ebpf_program::<ProgramRecord>(name)?;
        let loaded = tier.is_loaded(name);
        // A record whose pins are gone (a reboot) is a first load again.
        let running = record.filter(|_| loaded);
        match (expect, loaded) {
            (Some(Expect::New), true) => return Err(ProgramError::AlreadyLoaded(name.to_string())),
            (Some(Expect::Existing), false) => {
                return Err(EbpfError::NotLoaded(name.to_string()).into())
            }
            _ => {}
        }
        let hook: Hook = match (attach, &running) {
            (Some(given), Some(r)) => {
                let given: Hook = given.parse()?;
                if given != r.hook {
                    return Err(ProgramError::OtherHook {
                        name: name.to_string(),
                        running: r.hook.to_string(),
                        given: given.to_string(),
                    });
                }
                given
            }
            (Some(given), None) => given.parse()?,
            (None, Some(r)) => r.hook.clone(),
            (None, _) => return Err(ProgramError::NoHook(name.to_string())),
        };
        let record = ProgramRecord {
            hook,
            program: program.unwrap_or_default().to_string(),
            digest: Digest::of(object),
            revision: running.as_ref().map_or(1, |r| r.revision + 1),
            placed_at_ms: now_ms(),
        };
        let placed = match tier.load(name, object, program, &record.hook) {
            Ok(placed) => placed,
            Err(e) => {
                let reason = hotswap_core::error_chain(&e);
                self.publish(
                    name,
                    Transition::Failed,
                    Phase::Prepare,
                    &record,
                    None,
                    reason,
                );
                return Err(e.into());
            }
        };
        let record = ProgramRecord {
            program: placed.program.clone(),
            ..record
        };
        store.save_ebpf_program(name, &record)?;
        let how = match (&running, record.hook.dispatched()) {
            (None, _) => format!("attached at {}", record.hook),
            (Some(old), true) => format!(
                "replaced revision {} through the dispatcher's slot",
                old.revision
            ),
            (Some(old), false) => format!("replaced revision {} by a link update", old.revision),
        };
        self.publish(
            name,
            Transition::Activated,
            Phase::Activate,
            &record,
            Some(placed.swap),
            how,
        );
        tracing::info!(program = name, hook = %record.hook, revision = record.revision, swap_us = placed.swap.as_micros() as u64, "placed an eBPF program");
        Ok(PlacedView {
            program: self.view(tier, name.to_string(), Some(record)),
            attached: placed.attached,
            took_us: placed.took.as_micros() as u64,
            swap_us: placed.swap.as_micros() as u64,
        })
    }

    /// Detaches `name`, removes its pins (its maps go with them) and
    /// forgets its record.
    pub fn unload(&self, name: &str) -> Result<(), ProgramError> {
        let tier = self.tier()?;
        let _one_at_a_time = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        let pinned = match tier.unload(name) {
            Ok(()) => true,
            Err(EbpfError::NotLoaded(_)) => false,
            Err(e) => return Err(e.into()),
        };
        self.readers.stop(name);
        let store = self.gateway.store();
        let record = store.ebpf_program::<ProgramRecord>(name)?;
        let remembered = store.remove_ebpf_program(name)?;
        if !pinned && !remembered {
            return Err(EbpfError::NotLoaded(name.to_string()).into());
        }
        if let Some(record) = record {
            let reason = "unloaded: detached, its pins and maps removed".to_string();
            self.publish(
                name,
                Transition::Retired,
                Phase::Retire,
                &record,
                None,
                reason,
            );
        }
        tracing::info!(program = name, "unloaded an eBPF program");
        Ok(())
    }

    /// Program `name`'s map `map`.
    pub fn map(&self, name: &str, map: &str) -> Result<PinnedMap, ProgramError> {
        Ok(self.tier()?.map(name, map)?)
    }

    /// Subscribes to program `name`'s events (from ring buffer `map`, or
    /// its only one), as the server's one reader of that ring decodes them.
    /// Within the tokio runtime.
    pub fn subscribe(
        &self,
        name: &str,
        map: Option<&str>,
    ) -> Result<tokio::sync::broadcast::Receiver<events::EventJson>, ProgramError> {
        let tier = self.tier()?;
        // Opened once, to resolve which ring and to check it is one.
        let ring = tier.events(name, map)?;
        let map = ring.map_name().to_string();
        let mut ring = Some(ring);
        self.readers
            .subscribe(name, &map, || Ok(ring.take().expect("opened once")))
            .map_err(|source| {
                EbpfError::Io {
                    what: "cannot watch the ring buffer of",
                    path: name.into(),
                    source,
                }
                .into()
            })
    }

    fn view(&self, tier: &EbpfTier, name: String, record: Option<ProgramRecord>) -> ProgramView {
        let state = match tier.is_loaded(&name) {
            true => ProgramState::Running,
            false => ProgramState::Missing,
        };
        // Pins hotswap has no record of: placed by another process through
        // the library, or by an older hotswap.
        let (hook, program, revision, sha256, placed_at_ms) = match record {
            Some(r) => (
                r.hook.to_string(),
                r.program,
                r.revision,
                r.digest.to_string(),
                r.placed_at_ms,
            ),
            None => (UNKNOWN.into(), UNKNOWN.into(), 0, String::new(), 0),
        };
        ProgramView {
            state,
            kernel_id: tier.running(&name).ok(),
            missed: tier.missed(&name).unwrap_or(0),
            maps: tier
                .maps(&name)
                .map(|maps| maps.iter().map(PinnedMap::summary).collect())
                .unwrap_or_default(),
            hook,
            program,
            revision,
            sha256,
            placed_at_ms,
            name,
        }
    }
}

const UNKNOWN: &str = "unknown";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
