//! `Tier` and `Code`: the one small contract every kind of code plugs in through.

use std::sync::Arc;
use std::time::Duration;

use crate::{Artifact, CallError, KvStore, Manifest};

/// An error a tier reports from validation or preparation. Tiers use their own
/// typed errors; callers recover them with
/// [`DeployError::tier_error`](crate::DeployError::tier_error).
pub type TierError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a slot hands to the tier when it prepares a revision: the things that
/// belong to the slot and outlive every revision of it.
#[derive(Clone)]
pub struct SlotContext {
    /// The slot's name.
    pub slot: Arc<str>,
    /// The slot's key-value state.
    pub kv: Arc<dyn KvStore>,
}

/// A kind of code hotswap can swap: WASM modules, native libraries, and so on.
///
/// The slot runs the protocol (stage → validate → prepare → activate → drain →
/// retire); the tier only answers the two questions that depend on what the
/// code is.
pub trait Tier: Send + Sync + 'static {
    /// A revision that is ready to serve calls.
    type Code: Code;

    /// Checks `artifact` against the tier's contract **without running any of
    /// it**, and returns the manifest it declares.
    fn validate(&self, artifact: &Artifact) -> Result<Manifest, TierError>;

    /// Turns a validated artifact into code that can serve: compile (or load a
    /// cached compilation), instantiate, initialise, health-check. Nothing the
    /// slot serves changes until this returns `Ok`.
    fn prepare(
        &self,
        artifact: &Artifact,
        manifest: &Manifest,
        slot: &SlotContext,
    ) -> Result<Self::Code, TierError>;
}

/// Prepared code: one revision, able to serve many calls at once.
pub trait Code: Send + Sync + 'static {
    /// Runs one call: `input` in, the reply appended to `output`.
    ///
    /// Called from many threads at once. An error fails this call only.
    fn call(&self, input: &[u8], output: &mut Vec<u8>) -> Result<(), CallError>;

    /// Whether it can convert the slot's state from an older schema (a
    /// plugin that exports `hs_migrate`).
    fn can_migrate(&self) -> bool {
        false
    }

    /// Converts the slot's state from `from_schema` to the schema this
    /// revision declares, within `deadline`. Runs once, on the deploying
    /// thread, after the revision it replaces has drained and before this
    /// one serves a call. Its key-value calls go to `state` (a
    /// [`Migration`](crate::Migration)), never to the slot's store.
    fn migrate(
        &self,
        from_schema: u32,
        state: Arc<dyn KvStore>,
        deadline: Duration,
    ) -> Result<(), CallError> {
        let _ = (state, deadline);
        Err(CallError::Host(format!(
            "this code cannot convert state from schema {from_schema}"
        )))
    }

    /// Runs once, after the last in-flight call has returned and before the
    /// revision is freed: on the swapping thread, or on the cleanup thread,
    /// never on a caller's.
    fn shutdown(&self) {}
}
