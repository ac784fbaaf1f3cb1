//! `SlotRecord`: what a slot served, in the format of releases before slot
//! states (digests only, no generations); read once to convert.

use hotswap_core::Digest;
use serde::{Deserialize, Serialize};

/// A slot as releases before [`hotswap_core::SlotState`] stored it: which
/// revisions it served, by digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRecord {
    /// The revision serving calls.
    #[serde(default)]
    pub active: Option<Digest>,
    /// The revision before it, kept for rollback.
    #[serde(default)]
    pub previous: Option<Digest>,
    /// A canary revision taking part of the calls.
    #[serde(default)]
    pub canary: Option<CanaryRecord>,
}

/// A canary: a revision and the share of calls it takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryRecord {
    /// The canary revision.
    pub digest: Digest,
    /// Its share of calls, 0–100.
    pub weight: u8,
}

impl SlotRecord {
    /// Every artifact this record needs, so none is ever pruned from under it.
    pub fn digests(&self) -> impl Iterator<Item = Digest> + '_ {
        self.active
            .iter()
            .chain(self.previous.iter())
            .chain(self.canary.iter().map(|c| &c.digest))
            .copied()
    }
}
