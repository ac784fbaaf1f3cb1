//! The central claim: calls never fail while revisions are swapped under
//! them, and nobody sees time run backwards.

mod common;

use std::sync::Arc;

use common::*;
use hotswap_testkit::{assert_no_call_failed, swaps_under_load};
use hotswap_wasm::WasmConfig;

const CALLERS: usize = 4;
const SWAPS: u64 = 1000;

#[test]
fn thousand_swaps_under_four_callers_fail_no_call() {
    let tier = tier(WasmConfig::default());
    let slot = Arc::new(slot(&tier, "greet"));
    let tallies = swaps_under_load(
        &slot,
        [
            art(hotswap_examples::GREET_V1),
            art(hotswap_examples::GREET_V2),
        ],
        b"load",
        [b"hello, load!", b"HELLO, LOAD!! (v2)"],
        SWAPS,
        CALLERS,
    );
    assert_no_call_failed(&tallies, SWAPS);
    assert_eq!(
        tier.cache_stats().compiles,
        2,
        "two digests, two compilations"
    );
}
