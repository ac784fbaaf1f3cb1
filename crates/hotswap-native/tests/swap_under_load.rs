//! Native swaps under continuous calls from four threads fail no call, and
//! every library swapped out is unloaded and gone from the process.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::*;

const CALLERS: usize = 4;
const SWAPS: u64 = 1000;

#[test]
fn thousand_native_swaps_under_four_callers_fail_no_call() {
    let tier = tier();
    let slot = Arc::new(slot(&tier, "greet"));
    let v1 = art(hotswap_examples::GREET_V1_NATIVE);
    let v2 = art(hotswap_examples::GREET_V2_NATIVE);
    assert_eq!(slot.deploy(v1.clone(), None).unwrap().generation, 1);

    let v1_reply = b"hello, load!".to_vec();
    let v2_reply = b"HELLO, LOAD!! (v2)".to_vec();
    assert_eq!(slot.call(b"load").unwrap(), v1_reply);

    // The generation of the last deploy that has returned.
    let published = Arc::new(AtomicU64::new(1));
    let done = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(CALLERS + 1));

    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (slot, published, done, start) =
                (slot.clone(), published.clone(), done.clone(), start.clone());
            let (v1_reply, v2_reply) = (v1_reply.clone(), v2_reply.clone());
            std::thread::spawn(move || {
                let (mut calls, mut failed, mut wrong, mut backwards) = (0u64, 0u64, 0u64, 0u64);
                let mut out = Vec::new();
                start.wait();
                loop {
                    // Read before the call: a deploy that returned before
                    // this call started must be visible to it.
                    let floor = published.load(Ordering::SeqCst);
                    let finished = done.load(Ordering::SeqCst);
                    out.clear();
                    match slot.call_into(b"load", &mut out) {
                        Ok(generation) => {
                            // Odd generations are v1, even ones v2.
                            let expected = if generation % 2 == 1 {
                                &v1_reply
                            } else {
                                &v2_reply
                            };
                            wrong += u64::from(&out != expected);
                            backwards += u64::from(generation < floor);
                        }
                        Err(_) => failed += 1,
                    }
                    calls += 1;
                    if finished {
                        return (calls, failed, wrong, backwards);
                    }
                }
            })
        })
        .collect();

    start.wait();
    for i in 0..SWAPS {
        let next = if i % 2 == 0 { &v2 } else { &v1 };
        let info = slot.deploy(next.clone(), None).expect("swap succeeds");
        assert_eq!(info.generation, i + 2);
        published.store(info.generation, Ordering::SeqCst);
    }
    done.store(true, Ordering::SeqCst);

    let mut total = 0;
    for c in callers {
        let (calls, failed, wrong, backwards) = c.join().unwrap();
        assert_eq!(failed, 0, "failed calls");
        assert_eq!(
            wrong, 0,
            "replies that do not match the revision that served them"
        );
        assert_eq!(
            backwards, 0,
            "calls that saw an older revision than one already published"
        );
        total += calls;
    }
    assert!(
        total >= SWAPS,
        "the callers made only {total} calls during {SWAPS} swaps"
    );

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
