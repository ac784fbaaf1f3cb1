//! `FleetError`: why a fleet operation failed, with what to do about it.

use hotswap_oci::OciError;

/// Why a fleet operation failed. A failed operation changes nothing in etcd.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The etcd address is not `etcd://HOST:PORT`.
    #[error("`{0}` is not an etcd address (etcd://HOST:PORT, or several joined by commas)")]
    BadEndpoint(String),
    /// etcd could not be reached.
    #[error("cannot reach etcd at {endpoints}: {source} (is it running? --etcd or HOTSWAP_ETCD names it)")]
    Connect {
        /// Where it was looked for.
        endpoints: String,
        /// What the client said.
        source: etcd_client::Error,
    },
    /// etcd refused or failed a request.
    #[error("etcd: {0}")]
    Etcd(etcd_client::Error),
    /// A key holds something that is not what it should.
    #[error("{0}")]
    Garbage(String),
    /// A session with etcd ended (its members and controllers start a new one).
    #[error("{0}")]
    Interrupted(&'static str),
    /// The rollout being followed was replaced by a newer one.
    #[error("rollout {id} was replaced by {by} while it was followed")]
    Replaced {
        /// The rollout followed.
        id: String,
        /// The one that replaced it.
        by: String,
    },
    /// The slot has no rollout.
    #[error("slot `{0}` has no rollout in this fleet")]
    NoRollout(String),
    /// A rollout is already moving the slot.
    #[error(
        "slot `{slot}` is being rolled out ({id}); wait for it, or `hotswap fleet abort {slot}`"
    )]
    InProgress {
        /// The slot.
        slot: String,
        /// The rollout there.
        id: String,
    },
    /// The operation does not apply to a rollout in this phase.
    #[error("rollout {id} is {phase}: {why}")]
    Phase {
        /// The rollout.
        id: String,
        /// Its phase.
        phase: crate::Phase,
        /// What cannot be done.
        why: &'static str,
    },
    /// Someone else changed the rollout between the read and the write.
    #[error("the rollout of `{0}` changed while this was written; nothing was written, try again")]
    Raced(String),
    /// The module's signature does not check against the rollout's keys.
    #[error("{reference}: {source}")]
    Signature {
        /// The plugin.
        reference: String,
        /// Why.
        source: hotswap_core::signing::SignatureError,
    },
    /// A rollout's spec is not one.
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] OciError),
    /// The reference is not one.
    #[error(transparent)]
    Reference(#[from] hotswap_oci::ParseRefError),
}

impl FleetError {
    pub(crate) fn connect(endpoints: &[String], source: etcd_client::Error) -> FleetError {
        FleetError::Connect {
            endpoints: endpoints.join(","),
            source,
        }
    }
}
