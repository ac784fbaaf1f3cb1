//! 10 000 swaps leave resident memory flat: old revisions are really freed.
//! Alone in its own test binary so no other test's allocations blur the
//! process-wide resident set it measures.

mod common;

use std::time::Duration;

use common::*;
use hotswap_testkit::rss_kib;
use hotswap_wasm::WasmConfig;

const SWAPS: usize = 10_000;
/// Allowed growth. Allocator arenas and the pooling allocator's warm slots
/// settle during the warm-up; what is left is noise.
const BOUND_KIB: u64 = 1024;

#[test]
fn ten_thousand_swaps_leave_memory_flat() {
    let tier = tier(WasmConfig::default());
    let slot = slot(&tier, "greet");
    let versions = [
        art(hotswap_examples::GREET_V1),
        art(hotswap_examples::GREET_V2),
    ];

    // Warm-up: compile both, fill allocator arenas and pool slots.
    for i in 0..500 {
        slot.deploy(versions[i % 2].clone(), None).unwrap();
        slot.call(b"warm").unwrap();
    }
    let before = rss_kib();
    for i in 0..SWAPS {
        slot.deploy(versions[i % 2].clone(), None).unwrap();
        slot.call(b"x").unwrap();
    }
    // The deploy above waited for the one before to retire; wait for the
    // last replaced one too. Then only the active revision may be alive.
    assert!(
        slot.wait_drained(Duration::from_secs(30)),
        "the last replaced revision never drained"
    );
    assert_eq!(
        tier.live_revisions(),
        1,
        "old revisions still alive after draining"
    );
    let after = rss_kib();
    let growth = after.saturating_sub(before);
    assert!(
        growth <= BOUND_KIB,
        "resident memory grew {growth} KiB over {SWAPS} swaps ({before} -> {after} KiB)"
    );
}
