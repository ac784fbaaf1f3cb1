//! `SlotState`: a slot's books as one value (what serves, what came before,
//! the canary, the generation counter), and every transition between two
//! of them as a pure function that also says which events it emits.
//!
//! The slot runs code; this module decides what the code *is*. Keeping the
//! decisions pure means they are tested without a tier, persisted as they
//! are (the store keeps exactly this value), and restored without
//! re-enacting history: a restart reads the value back, it does not replay
//! the deploys that made it.

use serde::{Deserialize, Serialize};

use crate::{Digest, Kind, Manifest, Phase, Transition};

/// One revision as the books know it: enough to show it, and to prepare it
/// again from its artifact after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// The artifact's sha256.
    pub digest: Digest,
    /// What the plugin declared.
    pub manifest: Manifest,
    /// Which tier runs it.
    #[serde(default)]
    pub kind: Kind,
    /// Its activation number in the slot. Never reused for the life of the
    /// data directory.
    pub generation: u64,
}

/// A revision about to enter the books: a [`Revision`] before it has a
/// generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The artifact's sha256.
    pub digest: Digest,
    /// What the plugin declared.
    pub manifest: Manifest,
    /// Which tier runs it.
    pub kind: Kind,
}

/// The revision before the active one, kept for rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Previous {
    /// The revision.
    #[serde(flatten)]
    pub revision: Revision,
    /// Whether a rollback took it out of service (rather than a deploy
    /// replacing it).
    #[serde(default)]
    pub rolled_back: bool,
}

/// A canary on trial beside the active revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryState {
    /// The revision.
    #[serde(flatten)]
    pub revision: Revision,
    /// Its share of calls, 0–100.
    pub weight: u8,
    /// What it is judged against, fixed when it started (so a change of
    /// the server's settings does not move the goalposts of a canary on
    /// trial, and a restart finds them again). `None`: not judged
    /// automatically, or started before canaries kept their budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<ErrorBudget>,
}

/// An error budget: a canary that fails more than `max_failed_ppm` of its
/// calls over `window_secs`, once it served `min_calls` there, is taken out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ErrorBudget {
    /// The share of calls that may fail, in parts per million (50 000 = 5 %).
    pub max_failed_ppm: u32,
    /// The window the share is measured over, in seconds.
    pub window_secs: u64,
    /// Calls the canary must serve in the window before it is judged.
    pub min_calls: u64,
}

impl ErrorBudget {
    /// Whether `failed` of `calls` breaks the budget.
    pub fn broken_by(&self, calls: u64, failed: u64) -> bool {
        calls >= self.min_calls && failed * 1_000_000 > u64::from(self.max_failed_ppm) * calls
    }
}

/// Everything a slot must find again after a restart, as one value.
///
/// ```
/// use hotswap_core::{Candidate, Digest, Kind, Manifest, SlotState};
///
/// let candidate = |v: &str| Candidate {
///     digest: Digest::of(v.as_bytes()),
///     manifest: Manifest { name: "greet".into(), version: v.into(), abi: 1, state_schema: 0 },
///     kind: Kind::Wasm,
/// };
/// let v1 = SlotState::default().deploy(candidate("1")).unwrap().state;
/// let v2 = v1.deploy(candidate("2")).unwrap().state;
/// let back = v2.rollback(&Digest::of(b"2"), "bad").unwrap().state;
/// let active = back.active.as_ref().unwrap();
/// assert_eq!(active.manifest.version, "1");
/// // A new activation, not the old one: generations only grow.
/// assert_eq!(active.generation, 3);
/// assert!(back.previous.as_ref().unwrap().rolled_back);
/// // A second rollback that still believes v2 is active is refused.
/// assert!(back.rollback(&Digest::of(b"2"), "again").is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotState {
    /// The revision serving calls.
    #[serde(default)]
    pub active: Option<Revision>,
    /// The revision before it.
    #[serde(default)]
    pub previous: Option<Previous>,
    /// A canary on trial.
    #[serde(default)]
    pub canary: Option<CanaryState>,
    /// The highest generation ever given out in this slot.
    #[serde(default)]
    pub last_generation: u64,
}

/// An event a transition emits, before the bus numbers and timestamps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// What happened.
    pub transition: Transition,
    /// The phase it happened in.
    pub phase: Phase,
    /// The revision it happened to.
    pub revision: Revision,
    /// Why, when there is more to say.
    pub reason: Option<String>,
}

/// A transition's result: the new state and what it emits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Next {
    /// The slot's state after the transition.
    pub state: SlotState,
    /// Its events, in order.
    pub notes: Vec<Note>,
}

/// Which of a slot's revisions a transition names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The active revision.
    Active,
    /// The canary.
    Canary,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Active => "active revision",
            Role::Canary => "canary",
        })
    }
}

/// Why a transition was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The caller named a revision that is no longer the one in that role:
    /// somebody else changed the slot since the caller looked.
    #[error("{}", stale_message(.role, .expected, .found))]
    Stale {
        /// The role the caller meant.
        role: Role,
        /// The digest the caller expected there.
        expected: Digest,
        /// What is there now.
        found: Option<Digest>,
    },
    /// A canary is on trial; the active revision cannot change until it is
    /// promoted or rolled back.
    #[error("a canary is on trial; promote it or roll it back first")]
    CanaryInProgress,
    /// A canary was asked for, but nothing is active to share calls with.
    #[error("no active revision for a canary to share calls with; deploy one first")]
    NoActive,
    /// Promotion or a weight change was asked for, but there is no canary.
    #[error("no canary on trial")]
    NoCanary,
    /// A rollback was asked for but there is no previous revision.
    #[error("no previous revision to roll back to")]
    NoPrevious,
    /// A deploy of a revision that reads an older shape of state than the
    /// slot holds. Only a rollback can go back, because only a rollback has
    /// a snapshot of the older state to return to.
    #[error("the slot's state is in schema {active}, and this revision reads schema {candidate}; roll back instead (which restores the state as it was before the migration), or deploy a revision with state_schema >= {active}")]
    SchemaDowngrade {
        /// The active revision's schema.
        active: u32,
        /// The new revision's.
        candidate: u32,
    },
    /// A canary that reads another shape of state than the active revision:
    /// both would serve from one state, and one of them would misread it.
    #[error("a canary must read the same state schema as the active revision ({active}), and this one reads schema {candidate}; deploy it without a canary, which migrates the state")]
    CanaryAcrossSchemas {
        /// The active revision's schema.
        active: u32,
        /// The canary's.
        candidate: u32,
    },
    /// A canary of another kind than the active revision (a component
    /// beside an ABI v1 plugin): the two are called differently, so a
    /// request routed to one could not be served by the other.
    #[error("a canary must be of the same kind as the active revision ({active}), and this one is a {candidate}; deploy it without a canary")]
    CanaryAcrossKinds {
        /// The active revision's kind.
        active: Kind,
        /// The canary's.
        candidate: Kind,
    },
}

/// How a change moves the slot's state between schemas; the slot runs
/// the migration or the restore it calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaShift {
    /// Same schema (or no state to convert): the state is kept as it is.
    Keep,
    /// Up: the new active revision converts the state with `hs_migrate`.
    Migrate {
        /// The schema the state is in.
        from: u32,
        /// The schema the new revision reads.
        to: u32,
    },
    /// Down, by a rollback: the state returns to the snapshot taken when
    /// the migration away from the new active revision ran.
    Restore {
        /// The schema the state is in.
        from: u32,
        /// The schema of the revision rolled back to.
        to: u32,
    },
}

fn stale_message(role: &Role, expected: &Digest, found: &Option<Digest>) -> String {
    match found {
        Some(found) => format!(
            "the {role} is sha256:{found}, not sha256:{expected}: the slot changed since you looked; check its status and try again"
        ),
        None => format!(
            "there is no {role} any more (expected sha256:{expected}): the slot changed since you looked; check its status and try again"
        ),
    }
}

impl SlotState {
    /// Every artifact the state names, so none is pruned from under it.
    pub fn digests(&self) -> impl Iterator<Item = Digest> + '_ {
        self.active
            .iter()
            .chain(self.previous.iter().map(|p| &p.revision))
            .chain(self.canary.iter().map(|c| &c.revision))
            .map(|r| r.digest)
    }

    /// `candidate` becomes active; the active revision becomes the previous
    /// and drains. Refused while a canary is on trial, and for a revision
    /// that reads an older state schema than the active one.
    pub fn deploy(&self, candidate: Candidate) -> Result<Next, StateError> {
        if self.canary.is_some() {
            return Err(StateError::CanaryInProgress);
        }
        if let Some(active) = &self.active {
            let (active, candidate) = (
                active.manifest.state_schema,
                candidate.manifest.state_schema,
            );
            if candidate < active {
                return Err(StateError::SchemaDowngrade { active, candidate });
            }
        }
        Ok(self.replace(candidate, None, None))
    }

    /// How going from this state to `next` moves the slot's state between
    /// schemas. A first activation converts nothing: there is no older
    /// revision whose state it could read.
    pub fn schema_shift(&self, next: &SlotState) -> SchemaShift {
        let (Some(old), Some(new)) = (&self.active, &next.active) else {
            return SchemaShift::Keep;
        };
        let (from, to) = (old.manifest.state_schema, new.manifest.state_schema);
        match from.cmp(&to) {
            std::cmp::Ordering::Equal => SchemaShift::Keep,
            std::cmp::Ordering::Less => SchemaShift::Migrate { from, to },
            std::cmp::Ordering::Greater => SchemaShift::Restore { from, to },
        }
    }

    /// `candidate` starts as a canary taking `weight` percent of calls
    /// (clamped to 100) beside the active revision, judged against
    /// `budget` if one is given.
    pub fn start_canary(
        &self,
        candidate: Candidate,
        weight: u8,
        budget: Option<ErrorBudget>,
    ) -> Result<Next, StateError> {
        if self.canary.is_some() {
            return Err(StateError::CanaryInProgress);
        }
        let Some(active) = &self.active else {
            return Err(StateError::NoActive);
        };
        if active.kind != candidate.kind {
            return Err(StateError::CanaryAcrossKinds {
                active: active.kind,
                candidate: candidate.kind,
            });
        }
        let (active, schema) = (
            active.manifest.state_schema,
            candidate.manifest.state_schema,
        );
        if schema != active {
            return Err(StateError::CanaryAcrossSchemas {
                active,
                candidate: schema,
            });
        }
        let weight = weight.min(100);
        let revision = self.next_revision(candidate);
        let mut state = self.clone();
        state.last_generation = revision.generation;
        state.canary = Some(CanaryState {
            revision: revision.clone(),
            weight,
            budget,
        });
        Ok(Next {
            state,
            notes: vec![Note {
                transition: Transition::Activated,
                phase: Phase::Activate,
                revision,
                reason: Some(format!("canary, {weight}% of calls")),
            }],
        })
    }

    /// The canary `expect` now takes `weight` percent of calls.
    pub fn set_weight(&self, expect: &Digest, weight: u8) -> Result<Next, StateError> {
        let canary = self.canary_named(expect)?;
        let mut state = self.clone();
        state.canary = Some(CanaryState {
            weight: weight.min(100),
            ..canary.clone()
        });
        Ok(Next {
            state,
            notes: Vec::new(),
        })
    }

    /// The canary `expect` becomes the active revision; the active one
    /// drains and becomes the previous. It keeps its generation: promotion
    /// moves a revision, it does not activate a new one.
    pub fn promote(&self, expect: &Digest) -> Result<Next, StateError> {
        let canary = self.canary_named(expect)?.revision.clone();
        let mut notes = vec![Note {
            transition: Transition::Activated,
            phase: Phase::Activate,
            revision: canary.clone(),
            reason: Some("promoted from canary".into()),
        }];
        notes.extend(self.active.iter().map(|old| Note {
            transition: Transition::Draining,
            phase: Phase::Drain,
            revision: old.clone(),
            reason: None,
        }));
        let state = SlotState {
            previous: self.active.clone().map(|revision| Previous {
                revision,
                rolled_back: false,
            }),
            active: Some(canary),
            canary: None,
            last_generation: self.last_generation,
        };
        Ok(Next { state, notes })
    }

    /// Takes the canary `expect` out of service; the active revision takes
    /// every call again.
    pub fn abort(&self, expect: &Digest, reason: &str) -> Result<Next, StateError> {
        let canary = self.canary_named(expect)?.revision.clone();
        let mut state = self.clone();
        state.canary = None;
        Ok(Next {
            state,
            notes: vec![Note {
                transition: Transition::RolledBack,
                phase: Phase::Drain,
                revision: canary,
                reason: Some(reason.to_string()),
            }],
        })
    }

    /// Takes the active revision `expect` out of service and activates the
    /// previous one again, as a new generation; the rolled-back revision
    /// becomes the previous (so a second rollback rolls forward). With a
    /// canary on trial, rolls the canary back instead ([`SlotState::abort`]),
    /// and then `expect` names the canary.
    pub fn rollback(&self, expect: &Digest, reason: &str) -> Result<Next, StateError> {
        if self.canary.is_some() {
            return self.abort(expect, reason);
        }
        self.expect(Role::Active, self.active.as_ref(), expect)?;
        let Some(previous) = &self.previous else {
            return Err(StateError::NoPrevious);
        };
        let candidate = Candidate {
            digest: previous.revision.digest,
            manifest: previous.revision.manifest.clone(),
            kind: previous.revision.kind,
        };
        Ok(self.replace(candidate, Some(reason), Some("rollback".into())))
    }

    /// The revision a rollback would activate, if there is one.
    pub fn rollback_target(&self) -> Option<&Revision> {
        match &self.canary {
            Some(_) => self.active.as_ref(),
            None => self.previous.as_ref().map(|p| &p.revision),
        }
    }

    fn replace(&self, candidate: Candidate, rollback: Option<&str>, why: Option<String>) -> Next {
        let revision = self.next_revision(candidate);
        let mut notes = vec![Note {
            transition: Transition::Activated,
            phase: Phase::Activate,
            revision: revision.clone(),
            reason: why,
        }];
        notes.extend(self.active.iter().map(|old| Note {
            transition: match rollback {
                Some(_) => Transition::RolledBack,
                None => Transition::Draining,
            },
            phase: Phase::Drain,
            revision: old.clone(),
            reason: rollback.map(str::to_string),
        }));
        let state = SlotState {
            previous: self.active.clone().map(|revision| Previous {
                revision,
                rolled_back: rollback.is_some(),
            }),
            last_generation: revision.generation,
            active: Some(revision),
            canary: None,
        };
        Next { state, notes }
    }

    fn next_revision(&self, c: Candidate) -> Revision {
        Revision {
            digest: c.digest,
            manifest: c.manifest,
            kind: c.kind,
            generation: self.last_generation + 1,
        }
    }

    fn canary_named(&self, expect: &Digest) -> Result<&CanaryState, StateError> {
        let Some(canary) = &self.canary else {
            // A digest the books still know was a canary that has been
            // promoted meanwhile; any other means there was none to act on.
            return Err(match self.digests().any(|d| d == *expect) {
                true => StateError::Stale {
                    role: Role::Canary,
                    expected: *expect,
                    found: None,
                },
                false => StateError::NoCanary,
            });
        };
        self.expect(Role::Canary, Some(&canary.revision), expect)?;
        Ok(canary)
    }

    fn expect(
        &self,
        role: Role,
        there: Option<&Revision>,
        expect: &Digest,
    ) -> Result<(), StateError> {
        match there {
            Some(r) if r.digest == *expect => Ok(()),
            _ => Err(StateError::Stale {
                role,
                expected: *expect,
                found: there.map(|r| r.digest),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(v: &str) -> Candidate {
        Candidate {
            digest: d(v),
            manifest: Manifest {
                name: "t".into(),
                version: v.into(),
                abi: 1,
                state_schema: 0,
            },
            kind: Kind::Wasm,
        }
    }

    fn d(v: &str) -> Digest {
        Digest::of(v.as_bytes())
    }

    fn schema(v: &str, state_schema: u32) -> Candidate {
        let mut c = candidate(v);
        c.manifest.state_schema = state_schema;
        c
    }

    #[test]
    fn error_budgets_count_in_parts_per_million() {
        let five_percent = ErrorBudget {
            max_failed_ppm: 50_000,
            window_secs: 30,
            min_calls: 20,
        };
        assert!(!five_percent.broken_by(19, 19), "too few calls to judge");
        assert!(!five_percent.broken_by(100, 5));
        assert!(five_percent.broken_by(100, 6));
        let s = SlotState::default().deploy(candidate("1")).unwrap().state;
        let c = s
            .start_canary(candidate("2"), 10, Some(five_percent))
            .unwrap()
            .state;
        let weighed = c.set_weight(&d("2"), 50).unwrap().state;
        assert_eq!(weighed.canary.unwrap().budget, Some(five_percent));
    }

    #[test]
    fn schemas_only_go_down_by_rollback_and_canaries_never_cross() {
        let v1 = SlotState::default().deploy(schema("1", 1)).unwrap().state;
        // A first activation has nothing to convert.
        assert_eq!(SlotState::default().schema_shift(&v1), SchemaShift::Keep);
        let v2 = v1.deploy(schema("2", 2)).unwrap().state;
        assert_eq!(
            v1.schema_shift(&v2),
            SchemaShift::Migrate { from: 1, to: 2 }
        );
        assert_eq!(
            v2.deploy(schema("old", 1)).unwrap_err(),
            StateError::SchemaDowngrade {
                active: 2,
                candidate: 1
            }
        );
        assert_eq!(
            v2.start_canary(schema("3", 3), 10, None).unwrap_err(),
            StateError::CanaryAcrossSchemas {
                active: 2,
                candidate: 3
            }
        );
        assert!(v2.start_canary(schema("2b", 2), 10, None).is_ok());
        let back = v2.rollback(&d("2"), "bad").unwrap().state;
        assert_eq!(
            v2.schema_shift(&back),
            SchemaShift::Restore { from: 2, to: 1 }
        );
        // Rolling forward again migrates again.
        let forward = back.rollback(&d("1"), "fine after all").unwrap().state;
        assert_eq!(
            back.schema_shift(&forward),
            SchemaShift::Migrate { from: 1, to: 2 }
        );
    }

    fn transitions(next: &Next) -> Vec<(Transition, String)> {
        next.notes
            .iter()
            .map(|n| (n.transition, n.revision.manifest.version.clone()))
            .collect()
    }

    #[test]
    fn deploys_number_activations_and_keep_one_previous() {
        let s1 = SlotState::default().deploy(candidate("1")).unwrap();
        assert_eq!(transitions(&s1), [(Transition::Activated, "1".into())]);
        let s2 = s1.state.deploy(candidate("2")).unwrap();
        assert_eq!(
            transitions(&s2),
            [
                (Transition::Activated, "2".into()),
                (Transition::Draining, "1".into())
            ]
        );
        let s = s2.state;
        assert_eq!(s.active.as_ref().unwrap().generation, 2);
        assert_eq!(s.previous.as_ref().unwrap().revision.generation, 1);
        assert!(!s.previous.as_ref().unwrap().rolled_back);
        assert_eq!(s.last_generation, 2);
    }

    #[test]
    fn rollback_activates_the_previous_as_a_new_generation() {
        let s = SlotState::default().deploy(candidate("1")).unwrap().state;
        let s = s.deploy(candidate("2")).unwrap().state;
        let back = s.rollback(&d("2"), "bad").unwrap();
        assert_eq!(
            transitions(&back),
            [
                (Transition::Activated, "1".into()),
                (Transition::RolledBack, "2".into())
            ]
        );
        let b = back.state;
        assert_eq!(b.active.as_ref().unwrap().generation, 3);
        assert_eq!(b.previous.as_ref().unwrap().revision.generation, 2);
        assert!(b.previous.as_ref().unwrap().rolled_back);
        // A second rollback rolls forward.
        let fwd = b.rollback(&d("1"), "forward").unwrap().state;
        assert_eq!(fwd.active.unwrap().manifest.version, "2");
    }

    #[test]
    fn stale_digests_are_refused() {
        let s = SlotState::default().deploy(candidate("1")).unwrap().state;
        let s = s.deploy(candidate("2")).unwrap().state;
        assert_eq!(
            s.rollback(&d("1"), "x").unwrap_err(),
            StateError::Stale {
                role: Role::Active,
                expected: d("1"),
                found: Some(d("2"))
            }
        );
        let c = s.start_canary(candidate("3"), 10, None).unwrap().state;
        assert!(matches!(
            c.promote(&d("2")),
            Err(StateError::Stale {
                role: Role::Canary,
                ..
            })
        ));
        assert!(matches!(
            c.set_weight(&d("9"), 5),
            Err(StateError::Stale { .. })
        ));
    }

    /// The error budget judged canary 3; an operator promoted it first. The
    /// budget aborts "the canary 3", which is no longer a canary, so it is
    /// refused and the promoted revision stays active. (A plain rollback
    /// naming 3 would be right to roll back the active revision: that is
    /// why the budget aborts instead.)
    #[test]
    fn a_budget_abort_racing_a_promote_is_refused() {
        let s = SlotState::default().deploy(candidate("1")).unwrap().state;
        let c = s.start_canary(candidate("3"), 10, None).unwrap().state;
        let promoted = c.promote(&d("3")).unwrap().state;
        let err = promoted.abort(&d("3"), "over budget").unwrap_err();
        assert_eq!(
            err,
            StateError::Stale {
                role: Role::Canary,
                expected: d("3"),
                found: None,
            }
        );
        assert!(err.to_string().contains("changed since you looked"));
        // A newer canary is not the one judged either.
        let newer = promoted
            .start_canary(candidate("4"), 10, None)
            .unwrap()
            .state;
        assert!(matches!(
            newer.abort(&d("3"), "over budget"),
            Err(StateError::Stale { found: Some(_), .. })
        ));
    }

    #[test]
    fn canaries_keep_their_generation_when_promoted() {
        let s = SlotState::default().deploy(candidate("1")).unwrap().state;
        let c = s.start_canary(candidate("2"), 200, None).unwrap();
        assert_eq!(c.state.canary.as_ref().unwrap().weight, 100);
        assert_eq!(
            c.state.deploy(candidate("x")).unwrap_err(),
            StateError::CanaryInProgress
        );
        let w = c.state.set_weight(&d("2"), 30).unwrap();
        assert!(w.notes.is_empty());
        let p = w.state.promote(&d("2")).unwrap();
        assert_eq!(
            transitions(&p),
            [
                (Transition::Activated, "2".into()),
                (Transition::Draining, "1".into())
            ]
        );
        assert_eq!(p.state.active.as_ref().unwrap().generation, 2);
        assert_eq!(p.state.last_generation, 2);
        assert!(p.state.canary.is_none());
    }

    #[test]
    fn aborting_a_canary_keeps_the_active_revision() {
        let s = SlotState::default().deploy(candidate("1")).unwrap().state;
        let c = s.start_canary(candidate("2"), 10, None).unwrap().state;
        let a = c.rollback(&d("2"), "bad canary").unwrap();
        assert_eq!(transitions(&a), [(Transition::RolledBack, "2".into())]);
        assert_eq!(a.state.active, s.active);
        assert_eq!(a.state.previous, s.previous);
        // Its generation stays used.
        assert_eq!(a.state.last_generation, 2);
        assert_eq!(
            a.state
                .deploy(candidate("3"))
                .unwrap()
                .state
                .last_generation,
            3
        );
    }

    #[test]
    fn refusals_say_what_is_missing() {
        let empty = SlotState::default();
        assert_eq!(
            empty.start_canary(candidate("1"), 5, None).unwrap_err(),
            StateError::NoActive
        );
        assert_eq!(empty.promote(&d("1")).unwrap_err(), StateError::NoCanary);
        let s = empty.deploy(candidate("1")).unwrap().state;
        assert_eq!(
            s.rollback(&d("1"), "x").unwrap_err(),
            StateError::NoPrevious
        );
    }

    #[test]
    fn the_state_reads_back_as_written() {
        let s = SlotState::default().deploy(candidate("1")).unwrap().state;
        let s = s.deploy(candidate("2")).unwrap().state;
        let s = s.start_canary(candidate("3"), 25, None).unwrap().state;
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<SlotState>(&json).unwrap(), s);
    }
}
