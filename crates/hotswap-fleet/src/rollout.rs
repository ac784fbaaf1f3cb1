//! `Rollout`: one slot's desired state in the fleet, and the state machine
//! that moves it wave by wave. Pure: the controller feeds it what etcd
//! says, and writes back what it returns; every member derives what it
//! should serve from it ([`Rollout::want`]), so the rollout is the one
//! fact and nothing else is stored.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use hotswap_core::{Digest, ErrorBudget};
use serde::{Deserialize, Serialize};

use crate::record::{Report, Standing, Target};

/// A slot's rollout: from what the fleet served to a new target, in waves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    /// Unique: `SLOT-<creation ms>`.
    pub id: String,
    /// The slot it changes on every member.
    pub slot: String,
    /// What it rolls out.
    pub to: Target,
    /// What the fleet served before (the last rollout that succeeded), which
    /// a rollback returns to. `None` for a slot's first rollout: a rollback
    /// then rolls each member that took it back to its own previous revision.
    pub from: Option<Target>,
    /// Which members it is for (the rest keep what they serve).
    #[serde(default, skip_serializing_if = "Selector::is_all")]
    pub members: Selector,
    /// The waves, each a total share of the selected members.
    pub waves: Vec<Wave>,
    /// The first wave's in-slot canary weight (percent of its calls).
    pub canary_weight: u8,
    /// How long a wave must hold, every member healthy and within budget,
    /// before the next one starts.
    pub soak_ms: u64,
    /// The fleet-wide error budget, over the members that took the target.
    pub budget: ErrorBudget,
    /// ed25519 public keys (hex). When there are any, every member checks
    /// the module's signature against them before it deploys it, on top of
    /// its own server's policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signers: Vec<String>,
    /// Who asked for it, when not an operator by hand (the Kubernetes
    /// operator names its resource and generation here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Where it is.
    pub phase: Phase,
    /// The wave it is in (== `waves.len()` once it succeeded).
    pub wave: usize,
    /// The members of each wave started so far, chosen when it starts.
    pub assigned: Vec<Vec<String>>,
    /// The current wave's soak, once every member of it is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak: Option<Soak>,
    /// Why it halted, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was created (ms since the epoch).
    pub created_ms: u64,
    /// What happened to it, oldest first.
    pub log: Vec<Step>,
}

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The controller moves it.
    Running,
    /// An operator stopped it where it is; members keep what they have.
    Paused,
    /// Every member serves the target.
    Succeeded,
    /// Halted by a breach or an operator; every member returns to `from`.
    RolledBack,
    /// Stopped where it was, for good: every member keeps what it serves
    /// (its last good revision), and the slot is free for a new rollout.
    Stopped,
}

impl Phase {
    /// Whether nothing moves it any more.
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::RolledBack | Phase::Stopped)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Running => "running",
            Phase::Paused => "paused",
            Phase::Succeeded => "succeeded",
            Phase::RolledBack => "rolled-back",
            Phase::Stopped => "stopped",
        })
    }
}

/// A wave: how much of the fleet has the target once it started, counted
/// from the whole fleet (so `1,25%,100%` is one member, then a quarter,
/// then all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wave {
    /// This many members.
    Members(u32),
    /// This percent of the members (rounded up).
    Percent(u8),
}

impl Wave {
    /// How many of `fleet` members have the target once this wave started.
    fn total(self, fleet: usize) -> usize {
        match self {
            Wave::Members(n) => (n as usize).min(fleet),
            Wave::Percent(p) => (fleet * p as usize).div_ceil(100),
        }
    }
}

impl fmt::Display for Wave {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wave::Members(n) => write!(f, "{n}"),
            Wave::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Why a wave list could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("waves `{input}`: {why} (expected e.g. 1,25%,50%,100%)")]
pub struct WavesError {
    input: String,
    why: String,
}

/// Reads `1,25%,50%,100%`: counts or percents, the last 100%.
pub fn parse_waves(input: &str) -> Result<Vec<Wave>, WavesError> {
    let err = |why: String| WavesError {
        input: input.to_string(),
        why,
    };
    let waves = input
        .split(',')
        .map(|w| w.trim().parse::<Wave>().map_err(err))
        .collect::<Result<Vec<_>, _>>()?;
    if waves.last() != Some(&Wave::Percent(100)) {
        return Err(err(
            "the last wave must be 100%, or part of the fleet would never get it".into(),
        ));
    }
    Ok(waves)
}

impl FromStr for Wave {
    type Err = String;

    fn from_str(s: &str) -> Result<Wave, String> {
        let bad = || format!("`{s}` is neither a member count nor a percent");
        match s.strip_suffix('%') {
            Some(p) => match p.parse::<u8>() {
                Ok(p @ 1..=100) => Ok(Wave::Percent(p)),
                _ => Err(format!("`{s}`: a percent is 1% to 100%")),
            },
            None => match s.parse::<u32>() {
                Ok(0) => Err("a wave of 0 members does nothing".into()),
                Ok(n) => Ok(Wave::Members(n)),
                Err(_) => Err(bad()),
            },
        }
    }
}

impl Serialize for Wave {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Wave {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Wave, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A wave's soak: since when every member of it was healthy, and the
/// members' call counts then, which the budget is judged against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Soak {
    /// Ms since the epoch.
    pub since_ms: u64,
    /// Each member's (calls, failed) when the soak began.
    pub baseline: BTreeMap<String, (u64, u64)>,
}

/// One line of a rollout's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Ms since the epoch.
    pub at_ms: u64,
    /// What happened.
    pub what: String,
}

/// What one member's slot should be, derived from the rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// Serve `target`: as the active revision, or as a canary at a weight.
    Serve {
        /// The plugin.
        target: Target,
        /// The canary weight, or `None` for the active revision.
        canary: Option<u8>,
    },
    /// Roll the slot back from `digest`, if it serves it (a first
    /// rollout's rollback: there is no fleet-wide revision to return to).
    Revert {
        /// The revision to leave.
        digest: Digest,
    },
    /// The rollout has nothing to say about this member.
    Nothing,
}

impl Want {
    /// Whether a slot whose active revision is `active` and whose canary is
    /// `canary` (digest, weight) is what this asks. A canary wish is met by
    /// the target already active, too.
    pub fn met_by(&self, active: Option<Digest>, canary: Option<(Digest, u8)>) -> bool {
        match self {
            Want::Nothing => true,
            Want::Revert { digest } => {
                active != Some(*digest) && canary.is_none_or(|(d, _)| d != *digest)
            }
            Want::Serve {
                target,
                canary: None,
            } => active == Some(target.module) && canary.is_none(),
            Want::Serve {
                target,
                canary: Some(w),
            } => {
                canary == Some((target.module, *w))
                    || (active == Some(target.module) && canary.is_none())
            }
        }
    }
}

/// What the controller sees of the fleet when it moves a rollout.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Now, in ms since the epoch.
    pub now_ms: u64,
    /// The members alive (registered under a live lease).
    pub members: BTreeSet<String>,
    /// Each member's report on the rollout's slot.
    pub reports: BTreeMap<String, Report>,
}

/// Which members a rollout is for: all of them, or those named, or those
/// whose names start with a prefix (a Deployment's pods), or both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    /// Exactly these members.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Members whose names start with this (a Deployment's pods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_prefix: Option<String>,
}

impl Selector {
    /// Whether it selects every member.
    pub fn is_all(&self) -> bool {
        self.names.is_empty() && self.name_prefix.is_none()
    }

    /// Whether `member` is one it selects.
    pub fn selects(&self, member: &str) -> bool {
        self.is_all()
            || self.names.iter().any(|n| n == member)
            || self
                .name_prefix
                .as_deref()
                .is_some_and(|p| member.starts_with(p))
    }
}

/// What a new rollout is made of.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The slot.
    pub slot: String,
    /// The plugin.
    pub to: Target,
    /// Which members take it.
    pub members: Selector,
    /// Keys one of which must have signed it (none: the members' own
    /// policy alone).
    pub signers: Vec<String>,
    /// Who asked for it.
    pub origin: Option<String>,
    /// The waves (the last is 100%).
    pub waves: Vec<Wave>,
    /// The first wave's canary weight.
    pub canary_weight: u8,
    /// Each wave's soak.
    pub soak_ms: u64,
    /// The fleet-wide budget.
    pub budget: ErrorBudget,
}

impl Rollout {
    /// A new rollout of `plan`, after `previous` (the slot's rollout
    /// before, if any): it returns to what the fleet served then.
    pub fn new(plan: Plan, previous: Option<&Rollout>, now_ms: u64) -> Rollout {
        let from = previous.and_then(|p| match p.phase {
            Phase::Succeeded => Some(p.to.clone()),
            _ => p.from.clone(),
        });
        Rollout {
            id: format!("{}-{now_ms}", plan.slot),
            slot: plan.slot,
            to: plan.to,
            from,
            members: plan.members,
            waves: plan.waves,
            canary_weight: plan.canary_weight,
            soak_ms: plan.soak_ms,
            budget: plan.budget,
            signers: plan.signers,
            origin: plan.origin,
            phase: Phase::Running,
            wave: 0,
            assigned: Vec::new(),
            soak: None,
            reason: None,
            created_ms: now_ms,
            log: vec![Step {
                at_ms: now_ms,
                what: "created".into(),
            }],
        }
    }

    /// What `member` should serve in this slot now.
    pub fn want(&self, member: &str) -> Want {
        if !self.members.selects(member) {
            return Want::Nothing;
        }
        let took = |upto: usize| {
            self.assigned
                .iter()
                .take(upto + 1)
                .position(|w| w.iter().any(|m| m == member))
        };
        let serve = |target: &Target, canary| Want::Serve {
            target: target.clone(),
            canary,
        };
        let before = || match &self.from {
            Some(from) => serve(from, None),
            None => Want::Nothing,
        };
        match self.phase {
            Phase::Succeeded => serve(&self.to, None),
            Phase::Stopped => Want::Nothing,
            Phase::RolledBack => match (&self.from, took(self.assigned.len())) {
                (Some(from), _) => serve(from, None),
                (None, Some(_)) => Want::Revert {
                    digest: self.to.module,
                },
                (None, None) => Want::Nothing,
            },
            Phase::Running | Phase::Paused => match took(self.wave) {
                Some(0) if self.wave == 0 && self.canary_weight < 100 => {
                    serve(&self.to, Some(self.canary_weight))
                }
                Some(_) => serve(&self.to, None),
                None => before(),
            },
        }
    }

    /// Whether `report` says `member` serves what this rollout wants of it.
    pub fn converged(&self, member: &str, report: &Report) -> bool {
        report.rollout.as_deref() == Some(self.id.as_str())
            && report.state == Standing::Converged
            && self.want(member).met_by(report.active, report.canary)
    }

    /// Moves the rollout as far as `seen` allows, once: starts the current
    /// wave, begins its soak, judges it, advances or halts. `None` when
    /// nothing changes.
    pub fn step(&self, seen: &Observed) -> Option<Rollout> {
        if self.phase != Phase::Running {
            return None;
        }
        let mut next = self.clone();
        if next.assigned.len() <= next.wave {
            return next.start_wave(seen).then_some(next);
        }
        let members: Vec<&String> = next
            .assigned
            .iter()
            .take(next.wave + 1)
            .flatten()
            .filter(|m| seen.members.contains(*m))
            .collect();
        // A member that cannot apply the target halts the rollout at once.
        for m in &members {
            if let Some(r) = seen.reports.get(*m) {
                if r.rollout.as_deref() == Some(self.id.as_str()) && r.state == Standing::Failed {
                    let why = r.error.as_deref().unwrap_or("no reason given");
                    next.halt(seen.now_ms, format!("member {m} cannot apply it: {why}"));
                    return Some(next);
                }
            }
        }
        let healthy = members
            .iter()
            .all(|m| seen.reports.get(*m).is_some_and(|r| self.converged(m, r)));
        if !healthy {
            // Someone is still applying (or re-applying after a restart):
            // the soak starts over once all are there.
            if next.soak.take().is_some() {
                return Some(next);
            }
            return None;
        }
        let Some(soak) = &next.soak else {
            let baseline = members
                .iter()
                .map(|m| {
                    let r = &seen.reports[*m];
                    ((*m).clone(), (r.calls, r.failed))
                })
                .collect();
            next.soak = Some(Soak {
                since_ms: seen.now_ms,
                baseline,
            });
            return Some(next);
        };
        let (calls, failed) = members.iter().fold((0, 0), |(c, f), m| {
            let r = &seen.reports[*m];
            let (c0, f0) = soak
                .baseline
                .get(*m)
                .copied()
                .unwrap_or((r.calls, r.failed));
            (
                c + r.calls.saturating_sub(c0),
                f + r.failed.saturating_sub(f0),
            )
        });
        if self.budget.broken_by(calls, failed) {
            let why = format!(
                "error budget broken in wave {}: {failed} of {calls} calls failed (budget {} ppm)",
                self.wave + 1,
                self.budget.max_failed_ppm
            );
            next.halt(seen.now_ms, why);
            return Some(next);
        }
        if seen.now_ms.saturating_sub(soak.since_ms) < self.soak_ms {
            return None;
        }
        next.soak = None;
        next.wave += 1;
        if next.wave == next.waves.len() {
            next.phase = Phase::Succeeded;
            next.note(seen.now_ms, "succeeded: every member serves it".into());
        } else {
            next.note(seen.now_ms, format!("wave {} held its soak", self.wave + 1));
        }
        Some(next)
    }

    /// Chooses the current wave's members: the live members not in an
    /// earlier wave, by name, until the wave's share is reached. False when
    /// there is no member to choose from.
    fn start_wave(&mut self, seen: &Observed) -> bool {
        let earlier: BTreeSet<&String> = self.assigned.iter().flatten().collect();
        let live: Vec<&String> = seen
            .members
            .iter()
            .filter(|m| self.members.selects(m))
            .collect();
        let fleet: BTreeSet<&String> = live
            .iter()
            .copied()
            .chain(earlier.iter().copied())
            .collect();
        if live.is_empty() {
            return false;
        }
        let total = self.waves[self.wave].total(fleet.len()).max(1);
        let wave: Vec<String> = live
            .into_iter()
            .filter(|m| !earlier.contains(m))
            .take(total.saturating_sub(earlier.len()))
            .cloned()
            .collect();
        let what = format!(
            "wave {} ({}) started: {}",
            self.wave + 1,
            self.waves[self.wave],
            if wave.is_empty() {
                "no new member".to_string()
            } else {
                wave.join(", ")
            }
        );
        self.assigned.push(wave);
        self.note(seen.now_ms, what);
        true
    }

    /// Stops it for good where it is, for `why`: members keep what they
    /// serve.
    pub fn stop(&mut self, now_ms: u64, why: String) {
        self.phase = Phase::Stopped;
        self.soak = None;
        self.note(now_ms, format!("stopped: {why}"));
        self.reason = Some(why);
    }

    /// Halts and rolls every member back, for `why`.
    pub fn halt(&mut self, now_ms: u64, why: String) {
        self.phase = Phase::RolledBack;
        self.soak = None;
        self.note(now_ms, format!("rolled back: {why}"));
        self.reason = Some(why);
    }

    /// Adds a line to the log.
    pub fn note(&mut self, now_ms: u64, what: String) {
        self.log.push(Step {
            at_ms: now_ms,
            what,
        });
    }
}

#[cfg(test)]
mod tests;
