//! The bodies and queries of the admin API's slot and process endpoints
//! (docs/admin-api.md), as the server writes them and the client reads
//! them. The values inside (revisions, slots, events) are hotswap-core's.

use hotswap_core::{Event, RevisionInfo, SlotStatus};
use serde::{Deserialize, Serialize};

/// `{"revision": ...}`: what a deploy, a canary change, a promotion or a
/// rollback answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevisionAnswer {
    /// The revision the change is about.
    pub revision: RevisionInfo,
}

/// `{"slots": [...]}`: `GET /v1/slots`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlotsAnswer {
    /// Every slot that serves or has served.
    pub slots: Vec<SlotStatus>,
}

/// `GET /v1/slots/{slot}/calls`: the slot's calls since the process
/// started, over all its revisions, and of those how many failed (what a
/// fleet member judges a rollout by).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallsAnswer {
    /// Calls answered.
    pub calls: u64,
    /// Of those, calls that failed.
    pub failed: u64,
}

/// `{"events": [...]}`: `GET /v1/events`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventsAnswer {
    /// The recent events, oldest first.
    pub events: Vec<Event>,
}

/// The query of `POST /v1/slots/{slot}/revisions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeployQuery {
    /// Refuse unless the artifact's sha256 is this (hex).
    pub sha256: Option<String>,
    /// Deploy as a canary taking this percent of calls.
    pub canary: Option<u8>,
    /// The artifact's signature (hex), if not in `x-hotswap-signature`.
    pub signature: Option<String>,
}

/// The query of `POST /v1/slots/{slot}/rollback`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RollbackQuery {
    /// Why, for the event log.
    pub reason: Option<String>,
    /// The digest of the revision the caller means (compare-and-swap).
    pub expect: Option<String>,
}

/// `?expect=sha256`: the revision the caller means to act on. A change
/// whose revision is no longer there is refused with `409 stale`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExpectQuery {
    /// The digest (hex, `sha256:` prefix allowed).
    pub expect: Option<String>,
}

/// The body of `POST /v1/slots/{slot}/canary`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WeightBody {
    /// The canary's new share of calls, 0–100.
    pub weight: u8,
    /// The digest of the canary the caller means.
    #[serde(default)]
    pub expect: Option<String>,
}

/// The query of `GET /v1/events`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EventsQuery {
    /// Stream new events as they happen (server-sent events).
    #[serde(default)]
    pub follow: bool,
}

/// The query of `POST /v1/reload`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReloadQuery {
    /// Only say what would change.
    #[serde(default)]
    pub dry_run: bool,
}

/// `GET /v1/process`: which process this is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// Its pid.
    pub pid: u32,
    /// 1 for a process started by hand, one more for each upgrade since.
    pub generation: u64,
    /// The binary an upgrade starts.
    pub binary: String,
}

/// `POST /v1/upgrade`: a binary upgrade that happened.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpgradeReport {
    /// The process that served before.
    pub old_pid: u32,
    /// The process that serves now.
    pub new_pid: u32,
    /// Its generation.
    pub generation: u64,
    /// From the upgrade's start until the new process was ready.
    pub ready_ms: f64,
    /// How long the old process took to drain.
    pub drain_ms: f64,
    /// From the upgrade's start until the new process served.
    pub handover_ms: f64,
}

/// A setting a config reload can change in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    /// The data plane's address: a new listener opens before the old closes.
    Listen,
    /// The admin API's address, the same way.
    Admin,
    /// HTTP paths mapped to slots.
    Routes,
    /// The data plane's certificate: read again from its files at every
    /// reload that has `[tls]`, so that a rotated certificate applies.
    Tls,
    /// How canaries are routed and judged.
    Canary,
    /// Limits for revisions deployed from now on.
    Limits,
    /// Accepted signing keys.
    TrustedKeys,
    /// Whether modules must be signed.
    RequireSignature,
    /// The admin API's bearer token.
    AdminToken,
    /// The largest upload.
    MaxModuleBytes,
    /// How upgrades run.
    Upgrade,
    /// Native plugins on or off, and their signature rule.
    Native,
    /// Which hosts each slot's components may send requests to.
    ComponentOutgoing,
    /// The component tier's limits (deadline, memory cap, instances).
    ComponentLimits,
    /// Matters only on a first start.
    DeployExample,
    /// The event log's bound, from the next start.
    EventRetention,
    /// How long calls may wait during a migration, from the next start.
    MigrationPause,
    /// When plugin key-value writes reach the disk, from the next start.
    KvSync,
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let json = serde_json::to_value(self).expect("a setting serialises");
        f.write_str(json.as_str().expect("a setting is a string"))
    }
}

/// `POST /v1/reload`: what a reload does (or, for a dry run, would do):
/// the settings it changes, and what the operator should know about how
/// they apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadPlan {
    /// The settings that change, in the order they are applied.
    pub changed: Vec<Setting>,
    /// How some of them apply.
    pub notes: Vec<String>,
}

impl ReloadPlan {
    /// The changed settings' names, `listen, routes`, or `nothing`.
    pub fn changed_names(&self) -> String {
        if self.changed.is_empty() {
            return "nothing".into();
        }
        let names: Vec<String> = self.changed.iter().map(Setting::to_string).collect();
        names.join(", ")
    }

    /// Whether `setting` changes.
    pub fn changes(&self, setting: Setting) -> bool {
        self.changed.contains(&setting)
    }
}

/// The bodies of the eBPF endpoints (`/v1/ebpf/...`, docs/ebpf.md). The
/// program and map views inside them are hotswap-ebpf's and the server's
/// types, so these are generic over them.
pub mod ebpf {
    use serde::{Deserialize, Serialize};

    /// `GET /v1/ebpf`: every program.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct ProgramList<P> {
        /// The programs, by name.
        pub programs: Vec<P>,
    }

    /// `DELETE /v1/ebpf/{name}`.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Unloaded {
        /// The program that was unloaded.
        pub unloaded: String,
    }

    /// `GET /v1/ebpf/{name}/maps/{map}`: a map and its entries.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct MapDump<M, E> {
        /// What the map is.
        pub map: M,
        /// Its entries, up to the limit.
        pub entries: Vec<E>,
        /// Whether there were more than the limit.
        pub truncated: bool,
    }

    /// The body of `PUT /v1/ebpf/{name}/maps/{map}/entry`: numbers, IPv4
    /// addresses and strings, as the map's BTF types them.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct EntryBody {
        /// The key.
        pub key: serde_json::Value,
        /// The value.
        pub value: serde_json::Value,
    }

    /// `DELETE /v1/ebpf/{name}/maps/{map}/entry`.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Deleted {
        /// Whether there was an entry to delete.
        pub deleted: bool,
    }

    /// The query of `POST /v1/ebpf/{name}/revisions`.
    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    pub struct PlaceQuery {
        /// The hook, on a first load.
        pub attach: Option<String>,
        /// The program in the object, when it has several.
        pub program: Option<String>,
        /// Whether the program must be new or already loaded; either
        /// when absent.
        pub expect: Option<PlaceExpect>,
        /// The object's signature (hex), if not in `x-hotswap-signature`.
        pub signature: Option<String>,
    }

    /// What a placement expects to find.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum PlaceExpect {
        /// No program of that name (`hotswap ebpf load`).
        New,
        /// A program of that name, to replace (`hotswap ebpf replace`).
        Existing,
    }

    /// The query of `GET /v1/ebpf/{name}/maps/{map}`.
    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    pub struct DumpQuery {
        /// Entries at the most (the server caps it).
        pub limit: Option<usize>,
    }

    /// The query of `GET` and `DELETE /v1/ebpf/{name}/maps/{map}/entry`.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct KeyQuery {
        /// The entry's key, as text.
        pub key: String,
    }

    /// The query of `GET /v1/ebpf/{name}/events`.
    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    pub struct MapEventsQuery {
        /// Only this ring buffer's records.
        pub map: Option<String>,
    }
}
