//! Callers while swapping: the central claim of every tier, that calls
//! never fail while revisions are swapped under them, as one load that any
//! tier's tests run and assert on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};

use hotswap_core::{Artifact, Slot, Tier};

/// What one caller saw during [`swaps_under_load`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CallerTally {
    /// Calls made.
    pub calls: u64,
    /// Calls that returned an error.
    pub failed: u64,
    /// Replies that do not match the revision that served them.
    pub wrong: u64,
    /// Calls served by an older revision than one already published, or
    /// than one this caller had already seen.
    pub backwards: u64,
}

/// Deploys `v1` to `slot`, then swaps `v2`, `v1`, `v2`, ... `swaps` times
/// while `callers` threads call it with `input`. Odd generations must
/// answer `replies[0]` and even ones `replies[1]`. Returns each caller's
/// tally, for the test to assert on; panics if a deploy fails or skips a
/// generation.
pub fn swaps_under_load<T: Tier>(
    slot: &Arc<Slot<T>>,
    versions: [Artifact; 2],
    input: &[u8],
    replies: [&[u8]; 2],
    swaps: u64,
    callers: usize,
) -> Vec<CallerTally> {
    let [v1, v2] = versions;
    assert_eq!(slot.deploy(v1.clone(), None).unwrap().generation, 1);
    // The generation of the last deploy that has returned.
    let published = Arc::new(AtomicU64::new(1));
    let done = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(callers + 1));
    let threads: Vec<_> = (0..callers)
        .map(|_| {
            let (slot, published, done, start) =
                (slot.clone(), published.clone(), done.clone(), start.clone());
            let input = input.to_vec();
            let replies = [replies[0].to_vec(), replies[1].to_vec()];
            std::thread::spawn(move || {
                let mut tally = CallerTally::default();
                let mut last_seen = 0;
                let mut out = Vec::new();
                start.wait();
                loop {
                    // Read before the call: a deploy that returned before
                    // this call started must be visible to it.
                    let floor = published.load(Ordering::SeqCst);
                    let finished = done.load(Ordering::SeqCst);
                    out.clear();
                    match slot.call_into(&input, &mut out) {
                        Ok(generation) => {
                            let expected = &replies[usize::from(generation % 2 == 0)];
                            tally.wrong += u64::from(&out != expected);
                            tally.backwards +=
                                u64::from(generation < floor || generation < last_seen);
                            last_seen = generation;
                        }
                        Err(_) => tally.failed += 1,
                    }
                    tally.calls += 1;
                    if finished {
                        return tally;
                    }
                }
            })
        })
        .collect();
    start.wait();
    for i in 0..swaps {
        let next = if i % 2 == 0 { &v2 } else { &v1 };
        let info = slot.deploy(next.clone(), None).expect("swap succeeds");
        assert_eq!(info.generation, i + 2);
        published.store(info.generation, Ordering::SeqCst);
    }
    done.store(true, Ordering::SeqCst);
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// Asserts what every tier promises of [`swaps_under_load`]: no failed,
/// wrong or backwards call, every caller called, and at least one call per
/// swap in all.
pub fn assert_no_call_failed(tallies: &[CallerTally], swaps: u64) {
    for t in tallies {
        assert_eq!(t.failed, 0, "failed calls: {t:?}");
        assert_eq!(
            t.wrong, 0,
            "replies that do not match the revision that served them: {t:?}"
        );
        assert_eq!(
            t.backwards, 0,
            "calls that saw an older revision than one already published or seen: {t:?}"
        );
        assert!(t.calls > 0, "a caller made no call: {t:?}");
    }
    let total: u64 = tallies.iter().map(|t| t.calls).sum();
    assert!(
        total >= swaps,
        "the callers made only {total} calls during {swaps} swaps"
    );
}
