//! The heart of hotswap: named [`Slot`]s that serve one active revision of
//! some code, and the swap protocol that replaces it without failing a call.
//!
//! ```text
//! stage → validate → prepare → activate → drain → retire
//!   └──────────┴─────────┴→ failed          └→ rolled-back
//! ```
//!
//! This crate runs no WebAssembly, shared library or BPF code, and reads none:
//! the one thing it knows of them is the magic number that tells a [`Kind`]
//! apart, so that a slot's records name the tier that runs each revision. A
//! kind of code plugs in by implementing [`Tier`] (validate and prepare an
//! [`Artifact`]) and [`Code`] (serve a call, shut down). The slot does the
//! rest:
//!
//! - **Atomic publish.** The active revision sits behind an `ArcSwap`; a call
//!   loads it once and finishes on it, so a call that started before a swap
//!   ends on the old revision and one that starts after runs on the new.
//! - **Drain off the call path.** A replaced revision with no call in flight
//!   is shut down and freed by the swapping thread; otherwise, when its last
//!   call returns, it is handed to a cleanup thread. A caller never pays for
//!   teardown.
//! - **Two live revisions at most.** A deploy waits (up to
//!   [`SlotOptions::drain_timeout`]) for the revision before the active one to
//!   retire before it publishes.
//! - **Canaries.** [`Slot::deploy_canary`] puts a revision beside the active
//!   one for a share of calls, routed by a stable key so a client sticks to
//!   one revision; [`Slot::promote`] makes it active, [`Slot::rollback`]
//!   takes it out. Its calls and errors are counted for an error budget.
//! - **Rollback** re-activates the previous revision from its artifact.
//! - **One slot state.** What a slot serves is one [`SlotState`]; every
//!   change is a pure transition of it ([`SlotState::deploy`],
//!   [`SlotState::promote`], ...) that names the revision it expects, so a
//!   stale change is refused rather than applied to the wrong revision.
//!   With a [`Journal`], each new state commits with its events before it
//!   serves, and [`Slot::restore`] brings a slot back as it was after a
//!   restart: restored, never replayed.
//! - **Events.** Every transition is published on an [`EventBus`] with the
//!   slot, digest, version, duration and reason.
//! - **State outlives code.** A slot's [`KvStore`] is handed to every revision
//!   it prepares; swapping code never touches it.
//! - **Signatures.** [`signing`] checks a module's ed25519 signature
//!   against trusted keys, for the server's deploys and a fleet's members
//!   alike.
//!
//! See [`Slot`] for a complete example.

mod artifact;
mod digest;
mod error;
mod event;
mod host;
mod journal;
mod kv;
mod lease;
mod manifest;
mod migrate;
mod prepare;
mod reaper;
mod revision;
mod serving;
pub mod signing;
mod slot;
mod state;
mod tier;

pub use artifact::{Artifact, Kind};
pub use digest::{Digest, HexDigest, ParseDigestError};
pub use error::{error_chain, CallError, DeployError};
pub use event::{Event, EventBus, Phase, Subject, Transition};
pub use host::{now_ns, plugin_log};
pub use journal::{Journal, JournalError};
pub use kv::{keys, successor, Entry, KvError, KvLimits, KvStore, MemoryKv};
pub use lease::Lease;
pub use manifest::{Manifest, ManifestError, MANIFEST_SECTION, SUPPORTED_ABI};
pub use migrate::{migrate_returned, KvChange, MigrateError, Migration, Writes};
pub use prepare::PrepareError;
pub use revision::{RevisionInfo, RevisionState};
pub use slot::{CanaryStats, Served, Slot, SlotOptions, SlotStatus};
pub use state::{
    CanaryState, Candidate, ErrorBudget, Next, Note, Previous, Revision, Role, SchemaShift,
    SlotState, StateError,
};
pub use tier::{Code, SlotContext, Tier, TierError};
