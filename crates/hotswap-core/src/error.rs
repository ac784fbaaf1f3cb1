//! The errors of the swap protocol and of calls.

use std::time::Duration;

use crate::{Digest, JournalError, Phase, StateError, TierError};

/// Why a call failed. A failed call never affects other calls, the slot, or
/// the host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The slot has no active revision yet.
    #[error("slot `{slot}` has no active revision; deploy one first")]
    NoRevision {
        /// The slot.
        slot: String,
    },
    /// The slot's revisions could not be restored after a restart, so
    /// nothing serves; `reason` says why.
    #[error("slot `{slot}` cannot serve: {reason}")]
    Unavailable {
        /// The slot.
        slot: String,
        /// Why.
        reason: String,
    },
    /// The plugin ran and reported an error of its own.
    #[error("plugin error: {0}")]
    Plugin(String),
    /// The plugin trapped (a panic, an unreachable, a division by zero...).
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The call ran past its deadline and was interrupted.
    #[error("plugin ran past its deadline of {0:?}")]
    Deadline(Duration),
    /// The plugin tried to grow its memory past the cap.
    #[error("plugin tried to use more than its memory cap of {limit} bytes")]
    MemoryLimit {
        /// The cap, in bytes.
        limit: u64,
    },
    /// The plugin called a host function with arguments the host refused,
    /// such as a pointer outside its memory.
    #[error("plugin called host function `{function}` wrongly: {reason}")]
    HostCall {
        /// The host function.
        function: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The plugin broke the ABI (returned an output outside its memory...).
    #[error("plugin broke the ABI: {0}")]
    Abi(String),
    /// Every instance the revision may have is busy and none came free in time.
    #[error("all {cap} instances are busy; raise the instance cap or send fewer concurrent calls")]
    Overloaded {
        /// The instance cap.
        cap: usize,
    },
    /// The host cannot run this call where it was made (for instance, code
    /// that needs a blocking thread, called from a single-threaded async
    /// runtime).
    #[error("the host cannot run this call here: {0}")]
    Host(String),
    /// A fresh instance failed to start (its `init` failed).
    #[error("a new instance failed to start: {0}")]
    Instantiate(String),
}

/// Why a deploy or rollback failed. The active revision is untouched in every
/// case.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The artifact's digest is not the one the caller expected.
    #[error("digest mismatch: expected sha256:{expected}, the artifact is sha256:{actual}")]
    DigestMismatch {
        /// What the caller said it should be.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// The artifact does not satisfy the tier's contract.
    #[error("invalid artifact: {0}")]
    Invalid(#[source] TierError),
    /// The artifact validated but failed to compile, start, or pass its health check.
    #[error("prepare failed: {0}")]
    Prepare(#[source] TierError),
    /// The revision before the active one still has calls in flight, and a
    /// third live revision is not allowed.
    #[error("the previous revision sha256:{digest} still has calls in flight after {waited:?}; retry when they finish")]
    StillDraining {
        /// The revision still draining.
        digest: Digest,
        /// How long the deploy waited for it.
        waited: Duration,
    },
    /// The slot's books refuse the change (a stale digest, no canary, no
    /// previous revision...).
    #[error(transparent)]
    Refused(#[from] StateError),
    /// The change could not be recorded durably; nothing changed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The slot's state could not be converted to the new revision's
    /// schema; the active revision serves on with its state.
    #[error("state migration failed: {0}")]
    Migrate(#[from] crate::MigrateError),
    /// The books name a revision whose artifact this process does not have
    /// (it could not be read back after a restart).
    #[error("the artifact of sha256:{digest} is not available (see the slot's fault)")]
    ArtifactUnavailable {
        /// The revision.
        digest: Digest,
    },
}

impl DeployError {
    /// The protocol phase the deploy failed in.
    pub fn phase(&self) -> Phase {
        match self {
            DeployError::DigestMismatch { .. } => Phase::Stage,
            DeployError::Invalid(_) => Phase::Validate,
            DeployError::Prepare(_) => Phase::Prepare,
            DeployError::ArtifactUnavailable { .. } => Phase::Prepare,
            DeployError::Migrate(_) => Phase::Migrate,
            DeployError::StillDraining { .. }
            | DeployError::Refused(_)
            | DeployError::Journal(_) => Phase::Activate,
        }
    }

    /// The tier's own typed error, if this failure came from the tier and was
    /// of type `E`.
    pub fn tier_error<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            DeployError::Invalid(e) | DeployError::Prepare(e) => e.downcast_ref::<E>(),
            _ => None,
        }
    }
}

/// The error's message followed by its sources', so one line says everything.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut msg = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}
