//! The central claim: calls never fail while revisions are swapped under
//! them, and nobody sees time run backwards.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};

use common::*;
use hotswap_wasm::WasmConfig;

const CALLERS: usize = 4;
const SWAPS: u64 = 1000;

#[test]
fn thousand_swaps_under_four_callers_fail_no_call() {
    let tier = tier(WasmConfig::default());
    let slot = Arc::new(slot(&tier, "greet"));
    let v1 = art(hotswap_examples::GREET_V1);
    let v2 = art(hotswap_examples::GREET_V2);
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
                let mut last_seen = 0;
                let mut out = Vec::new();
                start.wait();
                loop {
                    // Read before the call: a deploy that returned before this
                    // call started must be visible to it.
                    let floor = published.load(Ordering::SeqCst);
                    let finished = done.load(Ordering::SeqCst);
                    out.clear();
                    match slot.call_into(b"load", &mut out) {
                        Ok(generation) => {
                            // Odd generations are v1, even ones v2 (deploy order).
                            let expected = if generation % 2 == 1 {
                                &v1_reply
                            } else {
                                &v2_reply
                            };
                            if &out != expected {
                                wrong += 1;
                            }
                            if generation < floor || generation < last_seen {
                                backwards += 1;
                            }
                            last_seen = generation;
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
        assert!(calls > 0);
        total += calls;
    }
    assert!(
        total >= SWAPS,
        "the callers made only {total} calls during {SWAPS} swaps"
    );
    assert_eq!(
        tier.cache_stats().compiles,
        2,
        "two digests, two compilations"
    );
}
