//! Policy through typed map writes, events from the ring buffer, and a
//! revision the verifier rejects, on the syscall tracer.

mod common;

use hotswap_ebpf::{examples, EbpfError, Hook};
use serde_json::json;

fn hook() -> Hook {
    "tracepoint:raw_syscalls:sys_enter".parse().unwrap()
}

/// Makes `n` getppid calls from this thread.
fn getppid(n: u64) {
    for _ in 0..n {
        // SAFETY: getppid has no preconditions.
        unsafe { libc::getppid() };
    }
}

fn count(tier: &hotswap_ebpf::EbpfTier, tid: u32) -> i64 {
    let counts = tier.map("tracer", "counts").unwrap();
    counts
        .get(&tid.to_string())
        .unwrap()
        .map_or(0, |e| e.value.as_i64().unwrap())
}

#[test]
fn typed_writes_change_the_policy_and_typed_reads_see_the_counts() {
    let Some(tier) = common::tier() else { return };
    tier.load("tracer", examples::TRACER_V1, None, &hook())
        .unwrap();
    let tid = common::gettid();
    let watch = tier.map("tracer", "watch").unwrap();
    assert_eq!(watch.summary().key, "u32");
    assert_eq!(watch.summary().value, "i64");

    // Watch this thread's getppid calls only: the count is exact.
    let entry = watch
        .set(&tid.to_string(), &libc::SYS_getppid.to_string())
        .unwrap();
    assert_eq!(entry.key, json!(tid));
    assert_eq!(entry.value, json!(libc::SYS_getppid));
    getppid(250);
    assert_eq!(count(&tier, tid), 250);

    let (entries, more) = tier.map("tracer", "counts").unwrap().dump(100).unwrap();
    assert!(!more);
    assert!(entries
        .iter()
        .any(|e| e.key == json!(tid) && e.value == json!(250)));

    // Unwatched: not counted any more.
    assert!(watch.delete(&tid.to_string()).unwrap());
    assert!(!watch.delete(&tid.to_string()).unwrap(), "already gone");
    assert_eq!(watch.get(&tid.to_string()).unwrap(), None);
    getppid(100);
    assert_eq!(count(&tier, tid), 250);
}

#[test]
fn bad_keys_values_and_maps_get_errors_that_say_what_to_type() {
    let Some(tier) = common::tier() else { return };
    tier.load("tracer", examples::TRACER_V1, None, &hook())
        .unwrap();
    let watch = tier.map("tracer", "watch").unwrap();
    let err = watch.set("ten", "1").unwrap_err().to_string();
    assert!(err.contains("key: expected u32, a number"), "{err}");
    let err = watch
        .set("1", "99999999999999999999")
        .unwrap_err()
        .to_string();
    assert!(err.contains("value: expected i64"), "{err}");
    let err = watch.set("-1", "1").unwrap_err().to_string();
    assert!(err.contains("key: expected u32"), "{err}");
    let err = tier.map("tracer", "nope").err().unwrap().to_string();
    assert!(err.contains("no such map"), "{err}");
    let err = tier
        .map("tracer", "events")
        .unwrap()
        .get("1")
        .unwrap_err()
        .to_string();
    assert!(err.contains("hotswap ebpf events"), "{err}");
    let err = tier.map("absent", "watch").err().unwrap();
    assert!(matches!(err, EbpfError::NotLoaded(_)), "{err}");
    assert_eq!(watch.get("1").unwrap(), None, "nothing was written");
}

#[test]
fn events_stream_decoded_with_the_programs_own_struct() {
    let Some(tier) = common::tier() else { return };
    tier.load("tracer", examples::TRACER_V1, None, &hook())
        .unwrap();
    let tid = common::gettid();
    let mut events = tier.events("tracer", None).unwrap();
    while events.next().is_some() {}
    let watch = tier.map("tracer", "watch").unwrap();
    watch
        .set(&tid.to_string(), &libc::SYS_getppid.to_string())
        .unwrap();
    getppid(3);
    tier.load("tracer", examples::TRACER_V2, None, &hook())
        .unwrap();
    getppid(2);
    let got: Vec<_> = events.by_ref().collect();
    let event =
        |version: u32| json!({"pid": tid, "version": version, "syscall": libc::SYS_getppid});
    assert_eq!(got, [event(1), event(1), event(1), event(2), event(2)]);

    let err = tier
        .events("tracer", Some("counts"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not a ring buffer"), "{err}");
}

#[test]
fn a_revision_the_verifier_rejects_leaves_the_old_one_attached() {
    let Some(tier) = common::tier() else { return };
    tier.load("tracer", examples::TRACER_V1, None, &hook())
        .unwrap();
    let tid = common::gettid();
    tier.map("tracer", "watch")
        .unwrap()
        .set(&tid.to_string(), &libc::SYS_getppid.to_string())
        .unwrap();
    getppid(10);

    let rejected = include_bytes!(concat!(env!("OUT_DIR"), "/rejected.o"));
    let err = tier.load("tracer", rejected, None, &hook()).unwrap_err();
    assert!(matches!(err, EbpfError::Verifier { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("the running program is untouched"), "{text}");
    assert!(
        text.contains("invalid mem access"),
        "the verifier's reason is shown: {text}"
    );

    // The old revision still runs, and still counts into the same map.
    getppid(15);
    assert_eq!(count(&tier, tid), 25);
}
