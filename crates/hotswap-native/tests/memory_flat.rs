//! 1000 native load/unload cycles leave resident memory flat: each library
//! is really unmapped. Alone in its own test binary so no other test's
//! allocations blur the process-wide resident set it measures.

mod common;

use std::time::Duration;

use common::*;
use hotswap_testkit::rss_kib;

const CYCLES: usize = 1000;
/// Allowed growth over the 1000 cycles: 2 MiB. A library left behind would
/// cost its mapped size (~350 KiB for greet) per cycle, 350 MiB in all, so
/// the bound fails on a leak of more than ~2 KiB per cycle. What is allowed
/// is noise from malloc's arenas and the loader's own small allocations,
/// which settle during the warm-up.
const BOUND_KIB: u64 = 2048;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("Linux /proc")
        .count()
}

#[test]
fn thousand_load_unload_cycles_leave_memory_flat() {
    let tier = tier();
    let slot = slot(&tier, "greet");
    let versions = [
        art(hotswap_examples::GREET_V1_NATIVE),
        art(hotswap_examples::GREET_V2_NATIVE),
    ];

    // Warm-up: malloc arenas, the loader's caches, the reaper thread.
    for i in 0..100 {
        slot.deploy(versions[i % 2].clone(), None).unwrap();
        slot.call(b"warm").unwrap();
    }
    let before = rss_kib();
    let fds_before = open_fds();
    for i in 0..CYCLES {
        slot.deploy(versions[i % 2].clone(), None).unwrap();
        slot.call(b"x").unwrap();
    }
    assert!(
        slot.wait_drained(Duration::from_secs(30)),
        "the last replaced library never drained"
    );
    let after = rss_kib();
    // A memfd left open holds its whole library in memory without
    // counting in RSS: count descriptors too.
    let fds_after = open_fds();
    assert_eq!(
        fds_after, fds_before,
        "file descriptors leaked over {CYCLES} cycles"
    );

    let stats = tier.stats();
    assert_eq!(
        stats.loaded,
        100 + CYCLES as u64,
        "one load per cycle: {stats:?}"
    );
    assert_eq!(
        stats.pinned, 0,
        "libraries still mapped after dlclose: {stats:?}"
    );
    assert_eq!(
        stats.live(),
        1,
        "only the active library is loaded: {stats:?}"
    );
    let growth = after.saturating_sub(before);
    eprintln!("resident: {before} KiB -> {after} KiB over {CYCLES} cycles");
    assert!(
        growth <= BOUND_KIB,
        "resident memory grew {growth} KiB over {CYCLES} load/unload cycles ({before} -> {after} KiB)"
    );
}
