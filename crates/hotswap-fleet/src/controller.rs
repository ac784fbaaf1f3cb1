//! The controller: the one process in a fleet that moves rollouts. Every
//! member campaigns for it through an etcd election (so a fleet needs no
//! extra process; `hotswap fleet controller` runs one alone); the leader
//! feeds each running rollout what etcd says of the fleet and writes back
//! the next state, by compare-and-swap on the rollout's revision and on its
//! own leadership, so two controllers never both act.

use std::time::Duration;

use etcd_client::{LeaderKey, WatchOptions};

use crate::error::FleetError;
use crate::etcd::Fleet;
use crate::keys;
use crate::lease::Lease;
use crate::ops::now_ms;
use crate::rollout::Observed;

/// How a controller runs.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// Its name in the election (a member's name, for one inside a member).
    pub name: String,
    /// The fleet's etcd.
    pub etcd: String,
    /// How long leadership outlives a silent leader.
    pub lease_ttl: Duration,
    /// How often it looks even when nothing changed (soaks end by time).
    pub tick: Duration,
}

impl ControllerOptions {
    /// The defaults for controller `name` of the fleet at `etcd`.
    pub fn new(name: &str, etcd: &str) -> ControllerOptions {
        ControllerOptions {
            name: name.to_string(),
            etcd: etcd.to_string(),
            lease_ttl: Duration::from_secs(3),
            tick: Duration::from_millis(100),
        }
    }
}

/// Campaigns, and while it leads moves the fleet's rollouts, until `stop`
/// resolves; after a lost connection or leadership it campaigns again.
pub async fn run(options: ControllerOptions, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    // The candidacy's lease, revoked at a stop so that another controller
    // takes over at once.
    let mut held: Option<Lease> = None;
    loop {
        tokio::select! {
            () = &mut stop => {
                if let Some(lease) = held.take() {
                    lease.revoke().await;
                }
                return;
            }
            end = session(&options, &mut held) => {
                if let Err(e) = end {
                    tracing::warn!(controller = %options.name, error = %e, "fleet controller stopped leading; it campaigns again");
                }
            }
        }
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// One candidacy: campaign, then lead until something fails.
async fn session(options: &ControllerOptions, held: &mut Option<Lease>) -> Result<(), FleetError> {
    let fleet = Fleet::connect(&options.etcd).await?;
    let lease = Lease::grant(&fleet, options.lease_ttl).await?;
    let mut lost = lease.lost();
    let id = lease.id();
    *held = Some(lease);
    let leader = loop {
        // A campaign waits until it wins; the client's request timeout
        // ends the wait now and then, and it simply campaigns again.
        let mut client = fleet.client();
        let campaign = client.campaign(keys::election(), options.name.as_bytes(), id);
        tokio::select! {
            won = campaign => match won {
                Ok(mut won) => match won.take_leader() {
                    Some(leader) => break leader,
                    None => return Err(FleetError::Interrupted("etcd's campaign answer names no leader")),
                },
                Err(etcd_client::Error::GRpcStatus(s)) if s.code() == tonic::Code::DeadlineExceeded => continue,
                Err(e) => return Err(fleet.failed(e)),
            },
            _ = lost.changed() => return Err(FleetError::Interrupted("the controller's lease expired")),
        }
    };
    tracing::info!(controller = %options.name, "leads the fleet's rollouts");
    let mut watch = fleet
        .client()
        .watch(keys::ROOT, Some(WatchOptions::new().with_prefix()))
        .await
        .map_err(|e| fleet.failed(e))?;
    let mut tick = tokio::time::interval(options.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        pass(&fleet, &leader).await?;
        tokio::select! {
            message = watch.message() => {
                message.map_err(|e| fleet.failed(e))?
                    .ok_or_else(|| FleetError::Interrupted("etcd closed the watch"))?;
            }
            _ = tick.tick() => {}
            _ = lost.changed() => return Err(FleetError::Interrupted("the controller's lease expired")),
        }
    }
}

/// Moves every running rollout one step, if it can.
async fn pass(fleet: &Fleet, leader: &LeaderKey) -> Result<(), FleetError> {
    let (rollouts, _) = fleet.rollouts().await?;
    let moving = |v: &crate::etcd::Versioned<crate::Rollout>| {
        v.value.as_ref().is_ok_and(|r| !r.phase.is_final())
    };
    if !rollouts.values().any(moving) {
        return Ok(());
    }
    let members = fleet.members().await?;
    let mut reports = fleet.reports().await?;
    for (slot, current) in rollouts {
        let Ok(rollout) = current.value else {
            continue;
        };
        let seen = Observed {
            now_ms: now_ms(),
            members: members.keys().cloned().collect(),
            reports: reports.remove(&slot).unwrap_or_default(),
        };
        let Some(next) = rollout.step(&seen) else {
            continue;
        };
        if fleet
            .write_rollout(&next, current.mod_revision, Some(leader), None)
            .await?
        {
            if let Some(step) = next
                .log
                .last()
                .filter(|_| next.log.len() > rollout.log.len())
            {
                tracing::info!(rollout = %next.id, "{}", step.what);
            }
        } else if !still_leads(fleet, leader).await? {
            return Err(FleetError::Interrupted("another controller leads now"));
        }
    }
    Ok(())
}

/// Whether `leader` is still the election's leader.
async fn still_leads(fleet: &Fleet, leader: &LeaderKey) -> Result<bool, FleetError> {
    let mut answer = fleet
        .client()
        .leader(keys::election())
        .await
        .map_err(|e| fleet.failed(e))?;
    Ok(answer.take_kv().is_some_and(|kv| kv.key() == leader.key()))
}
