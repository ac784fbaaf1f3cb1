//! What operators do to a fleet (`hotswap fleet ...`): start a rollout,
//! pause, resume or abort it, read the fleet's state and history.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etcd_client::WatchOptions;
use hotswap_core::signing::Trust;
use hotswap_core::ErrorBudget;
use hotswap_oci::{PluginRef, Registry};
use serde::{Deserialize, Serialize};

use crate::error::FleetError;
use crate::etcd::{decode, Fleet, Versioned};
use crate::keys;
use crate::record::{MemberRecord, Report, Target};
use crate::rollout::{Phase, Plan, Rollout, Selector, Wave};
use crate::spec;

/// How a new rollout moves.
#[derive(Debug, Clone)]
pub struct RolloutOptions {
    /// The waves (the last is 100%).
    pub waves: Vec<Wave>,
    /// The first wave's canary weight.
    pub canary_weight: u8,
    /// How long each wave must hold.
    pub soak: Duration,
    /// The fleet-wide error budget.
    pub budget: ErrorBudget,
    /// Which members take it.
    pub members: Selector,
    /// ed25519 public keys (hex), one of which must have signed the
    /// module; checked here before anything is written, and by every
    /// member before it deploys. None: the members' own policy alone.
    pub signers: Vec<String>,
    /// Who asks for it, for the rollout's record.
    pub origin: Option<String>,
}

impl Default for RolloutOptions {
    /// The defaults of [`crate::defaults`], for every member.
    fn default() -> RolloutOptions {
        let soak = spec::parse_soak(crate::defaults::SOAK).expect("the default soak parses");
        RolloutOptions {
            waves: crate::parse_waves(crate::defaults::WAVES).expect("the default waves parse"),
            canary_weight: crate::defaults::CANARY_WEIGHT,
            soak,
            budget: spec::budget(
                spec::parse_budget(crate::defaults::BUDGET).expect("the default budget parses"),
                soak,
                crate::defaults::MIN_CALLS,
            ),
            members: Selector::default(),
            signers: Vec::new(),
            origin: None,
        }
    }
}

/// Milliseconds since the epoch, the clock rollouts are kept in.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Starts a rollout of `reference` to `slot`. A tag is resolved to its
/// digest here, once: the rollout names the manifest by digest, and the
/// module's digest (read from the registry, checked on the way) is what
/// members must serve.
pub async fn start(
    fleet: &Fleet,
    registry: &Registry,
    slot: &str,
    reference: &PluginRef,
    options: RolloutOptions,
) -> Result<Rollout, FleetError> {
    let pinned = registry.resolve(reference).await?;
    let pulled = registry.pull(&pinned).await?;
    if !options.signers.is_empty() {
        // Refused here, nothing is written: no member would take it.
        Trust::new(&options.signers, true)
            .and_then(|t| t.check(&pulled.module, pulled.signature.as_deref()))
            .map_err(|e| FleetError::Signature {
                reference: pinned.to_string(),
                source: e,
            })?;
    }
    let to = Target {
        reference: pinned.to_string(),
        module: pulled.digest,
    };
    let current = fleet.rollout(slot).await?;
    let (previous, seen) = match &current {
        None => (None, 0),
        Some(Versioned {
            value: Ok(r),
            mod_revision,
        }) => {
            if !r.phase.is_final() {
                return Err(FleetError::InProgress {
                    slot: slot.to_string(),
                    id: r.id.clone(),
                });
            }
            (Some(r), *mod_revision)
        }
        // Garbage where the desired state should be: a new rollout
        // replaces it (there is nothing to return to).
        Some(Versioned {
            value: Err(_),
            mod_revision,
        }) => (None, *mod_revision),
    };
    let plan = Plan {
        slot: slot.to_string(),
        to,
        members: options.members,
        signers: options.signers,
        origin: options.origin,
        waves: options.waves,
        canary_weight: options.canary_weight,
        soak_ms: options.soak.as_millis() as u64,
        budget: options.budget,
    };
    let rollout = Rollout::new(plan, previous, now_ms());
    if !fleet.write_rollout(&rollout, seen, None, previous).await? {
        return Err(FleetError::Raced(slot.to_string()));
    }
    Ok(rollout)
}

/// Stops `slot`'s rollout where it is.
pub async fn pause(fleet: &Fleet, slot: &str) -> Result<Rollout, FleetError> {
    change(fleet, slot, |r| match r.phase {
        Phase::Running => {
            r.phase = Phase::Paused;
            r.soak = None;
            r.note(now_ms(), "paused by an operator".into());
            Ok(())
        }
        phase => Err(("only a running rollout can be paused", phase)),
    })
    .await
}

/// Lets `slot`'s paused rollout move again (its wave's soak starts over).
pub async fn resume(fleet: &Fleet, slot: &str) -> Result<Rollout, FleetError> {
    change(fleet, slot, |r| match r.phase {
        Phase::Paused => {
            r.phase = Phase::Running;
            r.note(now_ms(), "resumed by an operator".into());
            Ok(())
        }
        phase => Err(("only a paused rollout can be resumed", phase)),
    })
    .await
}

/// Halts `slot`'s rollout and rolls every member back.
pub async fn abort(fleet: &Fleet, slot: &str, reason: &str) -> Result<Rollout, FleetError> {
    change(fleet, slot, |r| match r.phase {
        Phase::Running | Phase::Paused => {
            r.halt(now_ms(), format!("aborted by an operator: {reason}"));
            Ok(())
        }
        phase => Err(("it has already ended", phase)),
    })
    .await
}

/// Ends rollout `id` of `slot` for good, whatever its phase: with
/// `rollback`, every member that took it returns to what the fleet served
/// before (even after it succeeded); without, a rollout still moving stops
/// where it is and members keep what they serve. `None` when the slot's
/// rollout is another one, or there is nothing to do.
pub async fn retire(
    fleet: &Fleet,
    slot: &str,
    id: &str,
    rollback: bool,
    why: &str,
) -> Result<Option<Rollout>, FleetError> {
    let Some(current) = fleet.rollout(slot).await? else {
        return Ok(None);
    };
    let Ok(mut rollout) = current.value else {
        return Ok(None);
    };
    if rollout.id != id {
        return Ok(None);
    }
    match (rollout.phase, rollback) {
        (Phase::RolledBack | Phase::Stopped, _) | (Phase::Succeeded, false) => return Ok(None),
        (_, true) => rollout.halt(now_ms(), why.to_string()),
        (_, false) => rollout.stop(now_ms(), why.to_string()),
    }
    if !fleet
        .write_rollout(&rollout, current.mod_revision, None, None)
        .await?
    {
        return Err(FleetError::Raced(slot.to_string()));
    }
    Ok(Some(rollout))
}

/// Changes `slot`'s rollout by compare-and-swap.
async fn change(
    fleet: &Fleet,
    slot: &str,
    edit: impl FnOnce(&mut Rollout) -> Result<(), (&'static str, Phase)>,
) -> Result<Rollout, FleetError> {
    let Some(current) = fleet.rollout(slot).await? else {
        return Err(FleetError::NoRollout(slot.to_string()));
    };
    let mut rollout = current.value.map_err(FleetError::Garbage)?;
    edit(&mut rollout).map_err(|(why, phase)| FleetError::Phase {
        id: rollout.id.clone(),
        phase,
        why,
    })?;
    if !fleet
        .write_rollout(&rollout, current.mod_revision, None, None)
        .await?
    {
        return Err(FleetError::Raced(slot.to_string()));
    }
    Ok(rollout)
}

/// The whole fleet as etcd has it: what `hotswap fleet status` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetStatus {
    /// The controller that leads now, by name.
    pub controller: Option<String>,
    /// The live members.
    pub members: BTreeMap<String, MemberRecord>,
    /// Each slot's rollout (or why its key is unreadable).
    pub rollouts: BTreeMap<String, Result<Rollout, String>>,
    /// Each slot's reports, by member.
    pub reports: BTreeMap<String, BTreeMap<String, Report>>,
}

/// Reads the fleet's state.
pub async fn status(fleet: &Fleet) -> Result<FleetStatus, FleetError> {
    let (rollouts, _) = fleet.rollouts().await?;
    Ok(FleetStatus {
        controller: fleet.leader().await?,
        members: fleet.members().await?,
        rollouts: rollouts.into_iter().map(|(s, v)| (s, v.value)).collect(),
        reports: fleet.reports().await?,
    })
}

/// `slot`'s rollouts, the current one last.
pub async fn history(fleet: &Fleet, slot: &str) -> Result<Vec<Rollout>, FleetError> {
    let mut all = fleet.history(slot).await?;
    if let Some(Versioned { value: Ok(r), .. }) = fleet.rollout(slot).await? {
        all.push(r);
    }
    Ok(all)
}

/// Follows rollout `id` of `slot` until it ends, calling `seen` with each
/// version of it, and returns the last.
pub async fn follow(
    fleet: &Fleet,
    slot: &str,
    id: &str,
    mut seen: impl FnMut(&Rollout),
) -> Result<Rollout, FleetError> {
    let key = keys::desired(slot);
    let mut client = fleet.client();
    let mut watch = client
        .watch(key.as_str(), Some(WatchOptions::new()))
        .await
        .map_err(|e| fleet.failed(e))?;
    // Read after the watch is in place, so no change falls between.
    let mut last = match fleet.rollout(slot).await? {
        Some(Versioned { value: Ok(r), .. }) => r,
        _ => return Err(FleetError::NoRollout(slot.to_string())),
    };
    loop {
        if last.id != id {
            return Err(FleetError::Replaced {
                id: id.to_string(),
                by: last.id.clone(),
            });
        }
        seen(&last);
        if last.phase.is_final() {
            return Ok(last);
        }
        let Some(message) = watch.message().await.map_err(|e| fleet.failed(e))? else {
            return Err(FleetError::Interrupted("etcd closed the watch"));
        };
        for event in message.events() {
            if let Some(kv) = event.kv() {
                if let Ok(r) = decode::<Rollout>(&key, kv.value()) {
                    last = r;
                }
            }
        }
    }
}

/// Waits until `done` holds of the fleet's state, re-reading it at every
/// change in etcd, for `within` at most. The last state read, and whether
/// `done` held of it.
pub async fn until(
    fleet: &Fleet,
    within: Duration,
    mut done: impl FnMut(&FleetStatus) -> bool,
) -> Result<(FleetStatus, bool), FleetError> {
    let mut client = fleet.client();
    let mut watch = client
        .watch(keys::ROOT, Some(WatchOptions::new().with_prefix()))
        .await
        .map_err(|e| fleet.failed(e))?;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        // Read after the watch is in place, so no change falls between.
        let now = status(fleet).await?;
        if done(&now) {
            return Ok((now, true));
        }
        match tokio::time::timeout_at(deadline, watch.message()).await {
            Err(_) => return Ok((now, false)),
            Ok(message) => {
                message
                    .map_err(|e| fleet.failed(e))?
                    .ok_or_else(|| FleetError::Interrupted("etcd closed the watch"))?;
            }
        }
    }
}

/// The live members that do not (yet) serve what `rollout` wants of them.
pub fn behind(status: &FleetStatus, rollout: &Rollout) -> Vec<String> {
    let none = BTreeMap::new();
    let reports = status.reports.get(&rollout.slot).unwrap_or(&none);
    status
        .members
        .keys()
        .filter(|m| rollout.members.selects(m))
        .filter(|m| !reports.get(*m).is_some_and(|r| rollout.converged(m, r)))
        .cloned()
        .collect()
}

/// Waits until every live member reports that it serves what `rollout`
/// wants of it (after it ended: the fleet has settled on its outcome), up
/// to `within`. Returns the members that had not, if any, by name.
pub async fn settle(
    fleet: &Fleet,
    rollout: &Rollout,
    within: Duration,
) -> Result<Vec<String>, FleetError> {
    let (last, _) = until(fleet, within, |s| behind(s, rollout).is_empty()).await?;
    Ok(behind(&last, rollout))
}

/// A tick after every change in the fleet's keys, coalesced (a slow
/// receiver gets one tick for many changes), until the receiver is
/// dropped. Reconnects to etcd on its own.
pub fn changes(fleet: Fleet) -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        while !tx.is_closed() {
            let mut client = fleet.client();
            let watch = client
                .watch(keys::ROOT, Some(WatchOptions::new().with_prefix()))
                .await;
            if let Ok(mut stream) = watch {
                while let Ok(Some(_)) = stream.message().await {
                    if tx.is_closed() {
                        return;
                    }
                    let _ = tx.try_send(());
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    rx
}
