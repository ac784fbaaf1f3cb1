//! State belongs to the slot and survives swaps; rollback restores the
//! previous revision.

mod common;

use common::*;
use hotswap_core::{DeployError, RevisionState};
use hotswap_wasm::WasmConfig;

#[test]
fn kv_state_survives_swaps_and_rollback_restores_the_previous_revision() {
    let tier = tier(WasmConfig::default());
    let slot = slot(&tier, "counter");
    let counter = art(hotswap_examples::COUNTER);
    let other = art(hotswap_examples::GREET_V1);

    slot.deploy(counter.clone(), None).unwrap();
    for expected in 1..=3 {
        assert_eq!(slot.call(b"").unwrap(), expected.to_string().as_bytes());
    }

    // A different revision in between: the state is not its business.
    slot.deploy(other.clone(), None).unwrap();
    assert_eq!(slot.call(b"x").unwrap(), b"hello, x!");

    let back = slot.rollback("testing rollback").unwrap();
    assert_eq!(back.digest, counter.digest());
    assert_eq!(back.generation, 3);
    assert_eq!(
        slot.call(b"").unwrap(),
        b"4",
        "the count carried on across both swaps"
    );
    let status = slot.status();
    assert_eq!(status.active.unwrap().digest, counter.digest());
    let previous = status.previous.unwrap();
    assert_eq!(previous.digest, other.digest());
    assert!(matches!(
        previous.state,
        RevisionState::RolledBack | RevisionState::Draining
    ));

    // The same revision again (a restart of the code): state still there.
    slot.deploy(counter.clone(), None).unwrap();
    assert_eq!(slot.call(b"").unwrap(), b"5");
    assert_eq!(slot.call(b"reset").unwrap(), b"0");
}

#[test]
fn rollback_without_a_previous_revision_is_an_error() {
    let tier = tier(WasmConfig::default());
    let slot = slot(&tier, "lonely");
    assert!(matches!(
        slot.rollback("why"),
        Err(DeployError::NoPrevious { .. })
    ));
    slot.deploy(art(hotswap_examples::GREET_V1), None).unwrap();
    assert!(matches!(
        slot.rollback("why"),
        Err(DeployError::NoPrevious { .. })
    ));
    assert_eq!(slot.call(b"x").unwrap(), b"hello, x!");
}

#[test]
fn the_c_plugin_runs_under_the_same_abi() {
    let tier = tier(WasmConfig::default());
    let slot = slot(&tier, "upper");
    let info = slot.deploy(art(hotswap_examples::C_UPPER), None).unwrap();
    assert_eq!(info.abi, 1);
    assert_eq!(slot.call(b"abc").unwrap(), b"C: ABC");
}
