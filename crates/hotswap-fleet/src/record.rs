//! The values a fleet keeps in etcd besides rollouts: what a member is, and
//! what it reports per slot. JSON, one definition each.

use hotswap_core::Digest;
use serde::{Deserialize, Serialize};

/// A plugin pinned for a fleet: its manifest by digest (what members pull)
/// and the module's digest (what they check and serve).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// `oci://HOST/REPO@sha256:...`: the manifest, never a tag.
    pub reference: String,
    /// The module's sha256: what the slot serves once it has it.
    pub module: Digest,
}

/// A member, registered under its lease: gone when the member is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Its name, unique in the fleet (`--member`).
    pub name: String,
    /// Its admin API, for operators.
    pub admin: String,
    /// Its data plane.
    pub data: String,
    /// The hotswap version it runs.
    pub version: String,
}

/// What a member says about one slot: what it serves, and whether that is
/// what the fleet wants of it. Kept under the member's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The rollout whose wish it acted on, if any.
    pub rollout: Option<String>,
    /// The active revision's digest.
    pub active: Option<Digest>,
    /// The canary's digest and weight.
    pub canary: Option<(Digest, u8)>,
    /// Where it stands.
    pub state: Standing,
    /// Why, when it is not converged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Calls the slot answered since the member started, and of those how
    /// many failed: the controller judges a wave on their growth.
    pub calls: u64,
    /// See `calls`.
    pub failed: u64,
}

/// Where a member's slot stands against the fleet's wish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Standing {
    /// It serves what the fleet wants of it.
    Converged,
    /// It is pulling or deploying it.
    Applying,
    /// It cannot: it keeps serving what it served, and `error` says why.
    Failed,
}
