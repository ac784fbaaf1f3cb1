//! Native swaps under continuous calls from four threads fail no call, and
//! every library swapped out is unloaded and gone from the process.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use hotswap_testkit::{assert_no_call_failed, swaps_under_load};

const CALLERS: usize = 4;
const SWAPS: u64 = 1000;

#[test]
fn thousand_native_swaps_under_four_callers_fail_no_call() {
    let tier = tier();
    let slot = Arc::new(slot(&tier, "greet"));
    let tallies = swaps_under_load(
        &slot,
        [
            art(hotswap_examples::GREET_V1_NATIVE),
            art(hotswap_examples::GREET_V2_NATIVE),
        ],
        b"load",
        [b"hello, load!", b"HELLO, LOAD!! (v2)"],
        SWAPS,
        CALLERS,
    );
    assert_no_call_failed(&tallies, SWAPS);

    assert!(
        slot.wait_drained(Duration::from_secs(30)),
        "the last replaced library never drained"
    );
    let stats = tier.stats();
    assert_eq!(stats.loaded, SWAPS + 1, "one load per revision: {stats:?}");
    assert_eq!(
        stats.pinned, 0,
        "no library may stay mapped after dlclose: {stats:?}"
    );
    assert_eq!(
        stats.live(),
        1,
        "only the active library is loaded: {stats:?}"
    );
}
