//! The operator's judgement, as a pure function: from a HotswapPlugin and
//! what the fleet's etcd says, the status it should have and what to do
//! ([`reconcile`]). The operator (`operator.rs`) only gathers the inputs and
//! carries out the actions, so every phase is unit-tested without a
//! cluster (`reconcile/tests.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hotswap_core::signing::Trust;
use hotswap_core::Digest;
use hotswap_fleet::ops::RolloutOptions;
use hotswap_fleet::record::{Report, Standing};
use hotswap_fleet::{parse_waves, spec, Phase, Rollout};
use hotswap_oci::PluginRef;
use kube::ResourceExt;

use crate::resource::{
    Condition, HotswapPlugin, HotswapPluginSpec, HotswapPluginStatus, MemberStatus,
};

/// The finalizer that lets the operator end a resource's rollout before
/// the resource goes.
pub const FINALIZER: &str = "hotswap.dev/rollout";

/// What the fleet says, for one resource's slot.
#[derive(Debug, Clone, Default)]
pub struct FleetView {
    /// The slot's rollout in etcd (`Err`: its key holds garbage).
    pub rollout: Option<Result<Rollout, String>>,
    /// The live members.
    pub members: BTreeSet<String>,
    /// Each member's report on the slot.
    pub reports: BTreeMap<String, Report>,
    /// The trusted keys read from the spec's Secret, or why they could not
    /// be (`None`: the spec names no Secret).
    pub keys: Option<Result<Vec<String>, KeysTrouble>>,
}

/// Why a signature Secret gave no keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeysTrouble {
    /// There is no such Secret.
    Missing(String),
    /// It holds something that is not a list of keys.
    Bad(String),
}

/// What the operator does, in order.
#[derive(Debug, Clone)]
pub enum Action {
    /// Put [`FINALIZER`] on the resource.
    AddFinalizer,
    /// Take it off: the resource may go.
    RemoveFinalizer,
    /// Start the fleet rollout of this resource's spec.
    Start(Box<Start>),
    /// End rollout `id` of `slot` (`hotswap_fleet::ops::retire`).
    Retire {
        /// The slot.
        slot: String,
        /// The rollout.
        id: String,
        /// Roll it back (otherwise: stop it where it is).
        rollback: bool,
        /// Why, for its log.
        why: String,
    },
    /// Record an Event on the resource.
    Event(Event),
}

/// A rollout to start.
#[derive(Debug, Clone)]
pub struct Start {
    /// The slot.
    pub slot: String,
    /// The plugin (a tag is resolved once, by the start).
    pub image: PluginRef,
    /// How it moves; its origin names this resource and spec.
    pub options: RolloutOptions,
}

/// An Event on the resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// A warning (otherwise normal).
    pub warning: bool,
    /// CamelCase.
    pub reason: &'static str,
    /// For people.
    pub note: String,
}

/// The outcome of one reconcile.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The status to write (`None`: leave it, the resource is going).
    pub status: Option<HotswapPluginStatus>,
    /// What to do, in order.
    pub actions: Vec<Action>,
    /// When to look again without a change.
    pub requeue: Duration,
}

/// How often a moving rollout is looked at even without a change in etcd.
const WHILE_MOVING: Duration = Duration::from_secs(5);
/// How often a settled resource is.
const WHILE_SETTLED: Duration = Duration::from_secs(60);
/// How soon a start that failed (a tag that does not resolve yet, a
/// registry down) is tried again.
pub const RETRY_START: Duration = Duration::from_secs(10);

/// The origin every rollout of `plugin` carries: the resource by uid, and
/// its rollout-relevant spec by digest, so an edit of something else
/// (`rollbackOnDelete`) starts nothing, and an operator that restarts
/// recognises a rollout it started but had not recorded.
pub fn origin(plugin: &HotswapPlugin) -> String {
    let mut rollout_part = plugin.spec.clone();
    rollout_part.rollback_on_delete = false;
    let json = serde_json::to_vec(&rollout_part).expect("a spec serializes");
    let spec = Digest::of(&json).to_string();
    format!("{} spec {}", resource_origin(plugin), &spec[..12])
}

/// The part of [`origin`] that names the resource.
fn resource_origin(plugin: &HotswapPlugin) -> String {
    format!(
        "HotswapPlugin {}/{} (uid {})",
        plugin.namespace().unwrap_or_default(),
        plugin.name_any(),
        plugin.uid().unwrap_or_default()
    )
}

/// What to do about `plugin`, given `fleet`, at `now` (RFC 3339).
pub fn reconcile(plugin: &HotswapPlugin, fleet: &FleetView, now: &str) -> Decision {
    let old = plugin.status.clone().unwrap_or_default();
    let has_finalizer = plugin.finalizers().iter().any(|f| f == FINALIZER);
    let current = match &fleet.rollout {
        Some(Ok(r)) => Some(r),
        _ => None,
    };
    let ours = current.filter(|r| {
        r.origin
            .as_deref()
            .is_some_and(|o| o.starts_with(&resource_origin(plugin)))
    });
    if plugin.metadata.deletion_timestamp.is_some() {
        return deleting(plugin, ours, has_finalizer);
    }
    if !has_finalizer {
        return Decision {
            status: None,
            actions: vec![Action::AddFinalizer],
            requeue: WHILE_MOVING,
        };
    }
    let mut status = HotswapPluginStatus {
        observed_generation: plugin.metadata.generation,
        ..old.clone()
    };
    let mut actions = Vec::new();
    let options = match options(plugin, fleet) {
        Ok(options) => options,
        Err((reason, why)) => {
            degraded(&mut status, now, reason, &why);
            return finish(&old, status, actions, WHILE_SETTLED);
        }
    };
    let image: PluginRef = match plugin.spec.image.parse() {
        Ok(image) => image,
        Err(e) => {
            degraded(&mut status, now, "InvalidSpec", &format!("image: {e}"));
            return finish(&old, status, actions, WHILE_SETTLED);
        }
    };
    let this = origin(plugin);
    match current {
        Some(r) if r.origin.as_deref() == Some(this.as_str()) => {
            mirror(&mut status, r, fleet, now);
            let requeue = if r.phase.is_final() {
                WHILE_SETTLED
            } else {
                WHILE_MOVING
            };
            finish(&old, status, actions, requeue)
        }
        // This spec's rollout was started, and someone replaced it since:
        // the resource does not fight them; a new spec starts again.
        Some(r)
            if old.observed_generation == plugin.metadata.generation
                && old.rollout.as_ref().is_some_and(|id| *id != r.id) =>
        {
            let by = r.origin.as_deref().unwrap_or("an operator by hand");
            let why = format!(
                "rollout {} was replaced by {} ({by}); edit the spec to roll out again",
                old.rollout.as_deref().unwrap_or_default(),
                r.id
            );
            degraded(&mut status, now, "Replaced", &why);
            finish(&old, status, actions, WHILE_SETTLED)
        }
        Some(r) if !r.phase.is_final() && ours.is_some() => {
            actions.push(Action::Retire {
                slot: r.slot.clone(),
                id: r.id.clone(),
                rollback: false,
                why: "its HotswapPlugin's spec changed".into(),
            });
            progressing(&mut status, now, "Starting", "the spec changed: the rollout of the previous one stops where it is, and a new one starts");
            finish(&old, status, actions, WHILE_MOVING)
        }
        Some(r) if !r.phase.is_final() => {
            let by = r.origin.as_deref().unwrap_or("an operator by hand");
            let why = format!(
                "slot `{}` is being rolled out by {by} ({}); this resource waits for it",
                r.slot, r.id
            );
            set(&mut status, now, "Progressing", false, "SlotBusy", &why);
            set(&mut status, now, "Ready", false, "SlotBusy", &why);
            finish(&old, status, actions, WHILE_MOVING)
        }
        _ => {
            actions.push(Action::Start(Box::new(Start {
                slot: plugin.spec.slot.clone(),
                image: image.clone(),
                options: RolloutOptions {
                    origin: Some(this),
                    ..options
                },
            })));
            status.rollout = None;
            status.phase = None;
            status.wave = None;
            progressing(
                &mut status,
                now,
                "Starting",
                &format!("starting the rollout of {image}"),
            );
            finish(&old, status, actions, WHILE_MOVING)
        }
    }
}

/// The status after a start failed for `why`, and the Event that says so.
pub fn start_failed(
    plugin: &HotswapPlugin,
    planned: &Decision,
    why: &str,
    now: &str,
) -> (HotswapPluginStatus, Event) {
    let mut status = planned.status.clone().unwrap_or_default();
    let why = format!("{why} (tried again every {}s)", RETRY_START.as_secs());
    degraded(&mut status, now, "StartFailed", &why);
    let event = Event {
        warning: true,
        reason: "StartFailed",
        note: format!("{}: {why}", plugin.spec.image),
    };
    (status, event)
}

/// A resource being deleted: end its rollout as the spec says, then let it go.
fn deleting(plugin: &HotswapPlugin, ours: Option<&Rollout>, has_finalizer: bool) -> Decision {
    let mut actions = Vec::new();
    if !has_finalizer {
        return Decision {
            status: None,
            actions,
            requeue: WHILE_SETTLED,
        };
    }
    let rollback = plugin.spec.rollback_on_delete;
    if let Some(r) = ours {
        let acts = match r.phase {
            Phase::RolledBack | Phase::Stopped => false,
            Phase::Succeeded => rollback,
            Phase::Running | Phase::Paused => true,
        };
        if acts {
            let what = if rollback {
                "rolled back"
            } else {
                "stopped where it is"
            };
            actions.push(Action::Retire {
                slot: r.slot.clone(),
                id: r.id.clone(),
                rollback,
                why: "its HotswapPlugin was deleted".into(),
            });
            actions.push(Action::Event(Event {
                warning: false,
                reason: "Deleted",
                note: format!("rollout {} {what}: the resource was deleted", r.id),
            }));
        }
    }
    actions.push(Action::RemoveFinalizer);
    Decision {
        status: None,
        actions,
        requeue: WHILE_SETTLED,
    }
}

/// The spec read into rollout options, or a reason and why it is not one.
fn options(
    plugin: &HotswapPlugin,
    fleet: &FleetView,
) -> Result<RolloutOptions, (&'static str, String)> {
    let spec: &HotswapPluginSpec = &plugin.spec;
    let invalid = |e: String| ("InvalidSpec", e);
    if spec.slot.trim().is_empty() {
        return Err(invalid("slot is empty".into()));
    }
    let waves = parse_waves(&spec.waves.join(",")).map_err(|e| invalid(e.to_string()))?;
    let soak = spec::parse_soak(&spec.soak).map_err(|e| invalid(e.to_string()))?;
    let budget = spec::parse_budget(&spec.error_budget).map_err(|e| invalid(e.to_string()))?;
    let canary_weight =
        spec::canary_weight(u64::from(spec.canary_weight)).map_err(|e| invalid(e.to_string()))?;
    let signers = match (&spec.signatures, &fleet.keys) {
        (None, _) => Vec::new(),
        (Some(s), _) if s.keys_secret.is_none() => {
            if s.required {
                return Err(invalid(
                    "signatures.required needs signatures.keysSecret: the keys to check against"
                        .into(),
                ));
            }
            Vec::new()
        }
        (Some(_), None) => {
            return Err(("SecretMissing", "the signature Secret was not read".into()))
        }
        (Some(_), Some(Err(KeysTrouble::Missing(why)))) => {
            return Err(("SecretMissing", why.clone()))
        }
        (Some(_), Some(Err(KeysTrouble::Bad(why)))) => return Err(("BadSecret", why.clone())),
        (Some(s), Some(Ok(keys))) => {
            let name = s.keys_secret.as_deref().unwrap_or_default();
            if keys.is_empty() {
                return Err(("BadSecret", format!("Secret {name} holds no keys")));
            }
            Trust::new(keys, true).map_err(|e| ("BadSecret", format!("Secret {name}: {e}")))?;
            keys.clone()
        }
    };
    Ok(RolloutOptions {
        waves,
        canary_weight,
        soak,
        budget: spec::budget(budget, soak, spec.min_calls),
        members: spec.members.clone().unwrap_or_default(),
        signers,
        origin: None,
    })
}

/// Mirrors rollout `r` into `status`.
fn mirror(status: &mut HotswapPluginStatus, r: &Rollout, fleet: &FleetView, now: &str) {
    status.resolved_image = Some(r.to.reference.clone());
    status.rollout = Some(r.id.clone());
    status.phase = Some(r.phase.to_string());
    status.wave = Some((r.wave + 1).min(r.waves.len()) as u32);
    status.members = fleet
        .reports
        .iter()
        .filter(|(m, _)| fleet.members.contains(*m) && r.members.selects(m))
        .map(|(m, report)| {
            let state = match report.state {
                Standing::Converged => "converged",
                Standing::Applying => "applying",
                Standing::Failed => "failed",
            };
            let member = MemberStatus {
                serving: report.active.map(|d| format!("sha256:{d}")),
                state: state.into(),
                error: report.error.clone(),
            };
            (m.clone(), member)
        })
        .collect();
    let waves = r.waves.len();
    match r.phase {
        Phase::Running => {
            let why = format!(
                "wave {} of {waves} ({}): {}",
                r.wave + 1,
                r.waves[r.wave.min(waves - 1)],
                r.assigned
                    .get(r.wave)
                    .map_or("choosing members".into(), |m| m.join(", "))
            );
            progressing(status, now, "Wave", &why);
        }
        Phase::Paused => progressing(
            status,
            now,
            "Paused",
            &format!("paused at wave {} of {waves}", r.wave + 1),
        ),
        Phase::Succeeded => {
            let behind: Vec<&String> = fleet
                .members
                .iter()
                .filter(|m| r.members.selects(m))
                .filter(|m| !fleet.reports.get(*m).is_some_and(|rep| r.converged(m, rep)))
                .collect();
            if behind.is_empty() {
                let why = format!("every selected member serves {}", r.to.reference);
                set(status, now, "Ready", true, "Succeeded", &why);
                set(status, now, "Progressing", false, "Succeeded", &why);
                set(status, now, "Degraded", false, "Succeeded", &why);
            } else {
                let names: Vec<&str> = behind.iter().map(|m| m.as_str()).collect();
                progressing(
                    status,
                    now,
                    "Settling",
                    &format!(
                        "the rollout succeeded; not yet served by {}",
                        names.join(", ")
                    ),
                );
            }
        }
        Phase::RolledBack => {
            let why = r.reason.clone().unwrap_or_else(|| "rolled back".into());
            degraded(status, now, "RolledBack", &why);
        }
        Phase::Stopped => {
            let why = r.reason.clone().unwrap_or_else(|| "stopped".into());
            degraded(status, now, "Stopped", &why);
        }
    }
}

/// The status and the Events that its change from `old` calls for.
fn finish(
    old: &HotswapPluginStatus,
    status: HotswapPluginStatus,
    mut actions: Vec<Action>,
    requeue: Duration,
) -> Decision {
    let changed = |t: &str| {
        let reason = |s: &HotswapPluginStatus| {
            s.conditions
                .iter()
                .find(|c| c.type_ == t && c.status == "True")
                .map(|c| (c.reason.clone(), c.message.clone()))
        };
        let now = reason(&status);
        (now != reason(old)).then_some(now).flatten()
    };
    let moved = (old.rollout.as_ref(), old.wave, old.phase.as_ref())
        != (status.rollout.as_ref(), status.wave, status.phase.as_ref());
    if let Some((reason, message)) = changed("Degraded") {
        let reason = match reason.as_str() {
            "RolledBack" => "RolledBack",
            "Stopped" => "Stopped",
            "Replaced" => "Replaced",
            _ => "Invalid",
        };
        actions.push(Action::Event(Event {
            warning: true,
            reason,
            note: message,
        }));
    } else if let Some((_, message)) = changed("Ready") {
        actions.push(Action::Event(Event {
            warning: false,
            reason: "Succeeded",
            note: message,
        }));
    } else if moved && status.phase.as_deref() == Some("running") {
        if let Some(c) = status.conditions.iter().find(|c| c.type_ == "Progressing") {
            actions.push(Action::Event(Event {
                warning: false,
                reason: "Wave",
                note: c.message.clone(),
            }));
        }
    }
    Decision {
        status: Some(status),
        actions,
        requeue,
    }
}

fn progressing(status: &mut HotswapPluginStatus, now: &str, reason: &str, why: &str) {
    set(status, now, "Progressing", true, reason, why);
    set(status, now, "Ready", false, reason, why);
    set(status, now, "Degraded", false, reason, why);
}

fn degraded(status: &mut HotswapPluginStatus, now: &str, reason: &str, why: &str) {
    set(status, now, "Degraded", true, reason, why);
    set(status, now, "Ready", false, reason, why);
    set(status, now, "Progressing", false, reason, why);
}

/// Sets condition `type_`, keeping its transition time unless its status
/// changes.
fn set(
    status: &mut HotswapPluginStatus,
    now: &str,
    type_: &str,
    on: bool,
    reason: &str,
    message: &str,
) {
    let value = if on { "True" } else { "False" };
    let since = status
        .conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == value)
        .map_or_else(|| now.to_string(), |c| c.last_transition_time.clone());
    status.conditions.retain(|c| c.type_ != type_);
    status.conditions.push(Condition {
        type_: type_.into(),
        status: value.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: since,
    });
    status.conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

#[cfg(test)]
mod tests;
