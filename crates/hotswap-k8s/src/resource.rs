//! `HotswapPlugin`: the custom resource's spec and status, from which its
//! CRD is generated.

use std::collections::BTreeMap;

use hotswap_fleet::{defaults, Selector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A plugin rolled out to a slot on the members of a hotswap fleet.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "hotswap.dev",
    version = "v1alpha1",
    kind = "HotswapPlugin",
    namespaced,
    status = "HotswapPluginStatus",
    shortname = "hsp",
    printcolumn = r#"{"name":"Slot","type":"string","jsonPath":".spec.slot"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Wave","type":"integer","jsonPath":".status.wave"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct HotswapPluginSpec {
    /// The slot it serves on every selected member.
    pub slot: String,
    /// The plugin: `oci://HOST/REPO@sha256:...`, or a `:TAG` the operator
    /// resolves to its digest once and records in the status.
    pub image: String,
    /// Which members take it (all of the fleet when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Selector>,
    /// The waves: member counts or percents of the fleet, the last `100%`.
    #[serde(default = "default_waves")]
    pub waves: Vec<String>,
    /// How long each wave must hold (`30s`, `2m`).
    #[serde(default = "default_soak")]
    pub soak: String,
    /// The share of calls that may fail on the members that took it
    /// (`1%`).
    #[serde(default = "default_budget")]
    pub error_budget: String,
    /// Calls a wave must serve before the budget judges it.
    #[serde(default = "default_min_calls")]
    pub min_calls: u64,
    /// The first wave's in-slot canary weight, in percent.
    #[serde(default = "default_canary_weight")]
    pub canary_weight: u8,
    /// Whether members must check a signature, and against which keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signatures: Option<Signatures>,
    /// On delete, roll the members back to the revision before (otherwise
    /// they stay on their last good revision).
    #[serde(default)]
    pub rollback_on_delete: bool,
}

/// The signature policy of a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Signatures {
    /// Refuse the plugin unless its signature checks.
    pub required: bool,
    /// A Secret in the resource's namespace whose values are the trusted
    /// ed25519 public keys (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_secret: Option<String>,
}

/// What the operator says of a HotswapPlugin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HotswapPluginStatus {
    /// `Ready`, `Progressing` and `Degraded`, each with a reason.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The spec's generation this status is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The image pinned to its manifest digest, as the rollout names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_image: Option<String>,
    /// The fleet rollout that carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<String>,
    /// The rollout's phase: running, paused, succeeded, rolled-back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The current wave, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave: Option<u32>,
    /// Per member: what it serves and where it stands.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub members: BTreeMap<String, MemberStatus>,
}

/// One member, as the fleet's report says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// The module digest of its active revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<String>,
    /// `converged`, `applying` or `failed`.
    pub state: String,
    /// Why, when not converged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A condition, as Kubernetes writes them (the 1.20 API has no shared
/// schema for it that a CRD could point at).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Progressing` or `Degraded`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase word for machines.
    pub reason: String,
    /// A sentence for people.
    pub message: String,
    /// RFC 3339.
    pub last_transition_time: String,
}

fn default_waves() -> Vec<String> {
    defaults::WAVES.split(',').map(String::from).collect()
}
fn default_soak() -> String {
    defaults::SOAK.into()
}
fn default_budget() -> String {
    defaults::BUDGET.into()
}
fn default_min_calls() -> u64 {
    defaults::MIN_CALLS
}
fn default_canary_weight() -> u8 {
    defaults::CANARY_WEIGHT
}
