//! A uprobe on a function of this test binary, replaced 1000 times while a
//! thread calls the function: every call counted once.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use hotswap_ebpf::Hook;
use serde_json::json;

const V1: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/uprobe_counter_v1.o"));
const V2: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/uprobe_counter_v2.o"));

/// The probed function. Not inlined, and exported under this name, so the
/// uprobe finds it in this binary's symbol table.
#[no_mangle]
#[inline(never)]
pub extern "C" fn hotswap_test_probed(x: u64) -> u64 {
    std::hint::black_box(x) + 1
}

#[test]
fn calls_are_counted_exactly_while_the_uprobe_is_replaced_1000_times() {
    let Some(tier) = common::tier() else { return };
    let exe = std::env::current_exe().unwrap();
    let hook: Hook = format!("uprobe:{}:hotswap_test_probed", exe.display())
        .parse()
        .unwrap();
    tier.load("probe", V1, None, &hook).unwrap();

    // The caller counts its own calls until the replacements are done.
    let done = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let caller = {
        let done = done.clone();
        std::thread::spawn(move || {
            tx.send(common::gettid()).unwrap();
            let mut calls = 0u64;
            while !done.load(Ordering::Acquire) || calls < 1000 {
                std::hint::black_box(hotswap_test_probed(calls));
                calls += 1;
            }
            calls
        })
    };
    let tid = rx.recv().unwrap();
    for i in 0..1000 {
        let object = if i % 2 == 0 { V2 } else { V1 };
        let placed = tier.load("probe", object, None, &hook).unwrap();
        assert!(!placed.attached, "a replacement, not a new attachment");
    }
    done.store(true, Ordering::Release);
    let calls = caller.join().unwrap();

    let counted = tier
        .map("probe", "counts")
        .unwrap()
        .get(&tid.to_string())
        .unwrap();
    assert_eq!(
        counted.map(|e| e.value),
        Some(json!(calls)),
        "each of {calls} calls counted once"
    );
    assert_eq!(
        tier.missed("probe").unwrap(),
        0,
        "no call found the slot empty"
    );
    // The last replacement (the 1000th, i = 999) put version 1 in place:
    // one more call, from this thread, shows which version counts now.
    hotswap_test_probed(0);
    let last = tier
        .map("probe", "last")
        .unwrap()
        .get("0")
        .unwrap()
        .unwrap();
    assert_eq!(last.value, json!(1));
    tier.unload("probe").unwrap();
}
