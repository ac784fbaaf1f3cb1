//! The syscall tracer replaced while it counts: nothing lost, nothing
//! counted twice, its maps kept; bad revisions change nothing.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use hotswap_ebpf::{examples, EbpfError, Hook};

fn hook() -> Hook {
    "tracepoint:raw_syscalls:sys_enter".parse().unwrap()
}

#[test]
fn a_thread_s_syscalls_are_counted_exactly_while_the_tracer_is_replaced_1000_times() {
    let Some(tier) = common::tier() else { return };
    let first = tier
        .load("tracer", examples::TRACER_V1, None, &hook())
        .unwrap();
    assert!(first.attached);

    // A thread calls getppid in a loop, counting its own calls, until told
    // to stop; the tracer watches that thread for that syscall only.
    let stop = Arc::new(AtomicBool::new(false));
    let (tid_tx, tid_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let worker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            tid_tx.send(common::gettid()).unwrap();
            go_rx.recv().unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Acquire) {
                // SAFETY: getppid takes no arguments and cannot fail.
                unsafe { libc::syscall(libc::SYS_getppid) };
                n += 1;
            }
            n
        })
    };
    let tid = tid_rx.recv().unwrap();
    let mut watch = common::hash::<u32, i64>(&tier, "tracer", "watch");
    watch.insert(tid, libc::SYS_getppid, 0).unwrap();
    go_tx.send(()).unwrap();

    let mut swaps = Vec::with_capacity(1000);
    for i in 0..1000 {
        let object = if i % 2 == 0 {
            examples::TRACER_V2
        } else {
            examples::TRACER_V1
        };
        let placed = tier.load("tracer", object, None, &hook()).unwrap();
        assert!(!placed.attached);
        swaps.push(placed.swap);
    }
    stop.store(true, Ordering::Release);
    let made = worker.join().unwrap();

    let counts = common::hash::<u32, u64>(&tier, "tracer", "counts");
    let counted = counts.get(&tid, 0).unwrap();
    assert!(
        made > 1000,
        "the thread made only {made} calls during the replacements"
    );
    assert_eq!(
        counted, made,
        "the kernel counted {counted} of {made} syscalls"
    );
    assert_eq!(
        tier.missed("tracer").unwrap(),
        0,
        "calls found the slot empty"
    );
    swaps.sort();
    eprintln!(
        "1000 replacements: slot write p50 {:?}, max {:?}; {made} syscalls counted exactly",
        swaps[500], swaps[999]
    );
}

#[test]
fn maps_survive_a_replacement_and_a_new_tier_as_after_a_restart() {
    let Some(tier) = common::tier() else { return };
    tier.load("tracer", examples::TRACER_V1, None, &hook())
        .unwrap();
    let mut watch = common::hash::<u32, i64>(&tier, "tracer", "watch");
    watch.insert(4242, -1, 0).unwrap();
    tier.load("tracer", examples::TRACER_V2, None, &hook())
        .unwrap();
    // A new tier, as a restarted hotswap makes, over the same pins.
    let again = hotswap_ebpf::EbpfTier::new(&tier.root).unwrap();
    again
        .load("tracer", examples::TRACER_V1, None, &hook())
        .unwrap();
    let watch = common::hash::<u32, i64>(&again, "tracer", "watch");
    assert_eq!(watch.get(&4242, 0).unwrap(), -1);
}

#[test]
fn an_incompatible_map_or_a_rejected_program_changes_nothing() {
    let Some(tier) = common::tier() else { return };
    tier.load("tracer", examples::TRACER_V1, None, &hook())
        .unwrap();
    let mut watch = common::hash::<u32, i64>(&tier, "tracer", "watch");
    watch.insert(7, -1, 0).unwrap();

    // Put a map of another shape where the tracer's `counts` is pinned:
    // the dispatcher's miss counter (an array, not a hash).
    let counts_pin = tier.map_pin("tracer", "counts").unwrap();
    std::fs::remove_file(&counts_pin).unwrap();
    std::fs::hard_link(tier.root.join("tracer/hs_missed"), &counts_pin).unwrap();
    let err = tier
        .load("tracer", examples::TRACER_V2, None, &hook())
        .unwrap_err();
    assert!(
        matches!(err, EbpfError::IncompatibleMap { ref map, .. } if map == "counts"),
        "{err}"
    );
    assert!(err.to_string().contains("the running program is untouched"));

    // A program of the wrong type for the hook.
    let err = tier
        .load("tracer", examples::XDP_FILTER_V1, None, &hook())
        .unwrap_err();
    assert!(matches!(err, EbpfError::WrongType { .. }), "{err}");
    // A hook of another kind: refused before anything is loaded.
    let xdp: Hook = "xdp:lo".parse().unwrap();
    let err = tier
        .load("tracer", examples::XDP_FILTER_V1, None, &xdp)
        .unwrap_err();
    assert!(matches!(err, EbpfError::OtherHook { .. }), "{err}");
    let watch = common::hash::<u32, i64>(&tier, "tracer", "watch");
    assert_eq!(
        watch.get(&7, 0).unwrap(),
        -1,
        "the running revision's maps are intact"
    );

    // And the running revision still runs: it reports this thread's calls
    // (through its ring buffer; the `counts` pin is the impostor now).
    let tid = common::gettid();
    let mut events = tier.events("tracer", None).unwrap();
    while events.next().is_some() {}
    let mut watch = common::hash::<u32, i64>(&tier, "tracer", "watch");
    watch.insert(tid, libc::SYS_getppid, 0).unwrap();
    for _ in 0..40 {
        // SAFETY: getppid has no preconditions.
        unsafe { libc::getppid() };
    }
    let seen: Vec<_> = events.by_ref().collect();
    assert_eq!(seen.len(), 40);
    assert!(seen.iter().all(|e| e["version"] == 1 && e["pid"] == tid));
}

#[test]
fn unload_leaves_no_pins() {
    let Some(tier) = common::tier() else { return };
    tier.load("tracer", examples::TRACER_V1, None, &hook())
        .unwrap();
    assert!(tier.root.join("tracer/maps/counts").exists());
    tier.unload("tracer").unwrap();
    assert!(!tier.root.join("tracer").exists());
    assert!(matches!(
        tier.unload("tracer"),
        Err(EbpfError::NotLoaded(_))
    ));
}
