//! Hostile and broken modules: each gets the right typed error, the active
//! revision keeps serving, and the host carries on.

mod common;

use std::sync::Arc;

use common::*;
use hotswap_core::{CallError, DeployError, ManifestError, Phase};
use hotswap_wasm::{PrepareError, Rejection};

/// A slot serving greet v1, which every test checks is still serving after
/// the hostile deploy.
fn serving() -> (Arc<hotswap_wasm::WasmTier>, WasmSlot) {
    let tier = strict_tier();
    let slot = slot(&tier, "victim");
    slot.deploy(art(hotswap_examples::GREET_V1), None).unwrap();
    (tier, slot)
}

fn still_serving(slot: &WasmSlot) {
    assert_eq!(slot.call(b"still").unwrap(), b"hello, still!");
    assert_eq!(slot.active().unwrap().version, "1.0.0");
}

fn rejected(bytes: &[u8]) -> Rejection {
    let (_tier, slot) = serving();
    let err = slot.deploy(art(bytes), None).unwrap_err();
    assert_eq!(err.phase(), Phase::Validate, "{err}");
    still_serving(&slot);
    err.tier_error::<Rejection>()
        .unwrap_or_else(|| panic!("not a Rejection: {err:?}"))
        .clone()
}

fn prepare_failure(bytes: &[u8]) -> PrepareError {
    let (_tier, slot) = serving();
    let err = slot.deploy(art(bytes), None).unwrap_err();
    assert_eq!(err.phase(), Phase::Prepare, "{err}");
    still_serving(&slot);
    err.tier_error::<PrepareError>()
        .unwrap_or_else(|| panic!("not a PrepareError: {err:?}"))
        .clone()
}

/// Deploys `bytes` to a second slot of the same tier, calls it, and checks
/// that the first slot serves normally while the bad call runs.
fn call_failure(bytes: &[u8]) -> CallError {
    let (tier, good) = serving();
    let bad = Arc::new(slot(&tier, "bad"));
    bad.deploy(art(bytes), None)
        .expect("the module itself is valid");
    let bad2 = bad.clone();
    let handle = std::thread::spawn(move || bad2.call(b"input"));
    for _ in 0..100 {
        still_serving(&good);
    }
    let err = handle.join().expect("the host survives").unwrap_err();
    // The bad slot's revision is still active, and a fresh instance serves the next call.
    assert!(bad.active().is_some());
    err
}

#[test]
fn garbage_bytes() {
    assert!(matches!(
        rejected(b"this is not wasm at all"),
        Rejection::NotWasm(_)
    ));
    assert!(matches!(rejected(b""), Rejection::NotWasm(_)));
}

#[test]
fn truncated_module() {
    let v1 = hotswap_examples::GREET_V1;
    assert!(matches!(
        rejected(&v1[..v1.len() / 2]),
        Rejection::Malformed(_)
    ));
}

#[test]
fn missing_export() {
    let bytes = wat_module("", Some(""));
    assert_eq!(
        rejected(&bytes),
        Rejection::MissingExport {
            name: "hs_process",
            expected: "a function func(i32, i32) -> (i64)".into()
        }
    );
}

#[test]
fn wrong_signature() {
    let bytes = wat_module(
        "",
        Some(r#"(func (export "hs_process") (param i32) (result i32) (i32.const 0))"#),
    );
    let Rejection::WrongExport { name, found, .. } = rejected(&bytes) else {
        panic!("expected WrongExport")
    };
    assert_eq!(name, "hs_process");
    assert_eq!(found, "func(i32) -> (i32)");
}

#[test]
fn forbidden_import() {
    let text = r#"(module
        (import "env" "system" (func (param i32)))
        (memory (export "memory") 1)
        (func (export "hs_alloc") (param i32) (result i32) (i32.const 8))
        (func (export "hs_process") (param i32 i32) (result i64) (i64.const 0))
        (@custom "hotswap.manifest" "{\"name\":\"t\",\"version\":\"1\",\"abi\":1}"))"#;
    let Rejection::ForbiddenImport { module, name, .. } = rejected(&wat::parse_str(text).unwrap())
    else {
        panic!("expected ForbiddenImport")
    };
    assert_eq!((module.as_str(), name.as_str()), ("env", "system"));

    let wasi = text.replace(
        r#""env" "system""#,
        r#""wasi_snapshot_preview1" "fd_write""#,
    );
    assert!(matches!(
        rejected(&wat::parse_str(wasi).unwrap()),
        Rejection::ForbiddenImport { .. }
    ));
    let bad_host_sig = text.replace(r#""env" "system""#, r#""hotswap" "log""#);
    assert!(matches!(
        rejected(&wat::parse_str(bad_host_sig).unwrap()),
        Rejection::ForbiddenImport { .. }
    ));
}

#[test]
fn bad_manifests() {
    let no_manifest = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "hs_alloc") (param i32) (result i32) (i32.const 8))
             (func (export "hs_process") (param i32 i32) (result i64) (i64.const 0)))"#,
    )
    .unwrap();
    assert_eq!(
        rejected(&no_manifest),
        Rejection::Manifest(ManifestError::Missing)
    );
    assert!(matches!(
        rejected(&wat_module_with("", None, "not json")),
        Rejection::Manifest(ManifestError::Malformed(_))
    ));
    assert!(matches!(
        rejected(&wat_module_with(
            "",
            None,
            r#"{"name":"a b","version":"1","abi":1}"#
        )),
        Rejection::Manifest(ManifestError::Malformed(_))
    ));
    assert_eq!(
        rejected(&wat_module_with(
            "",
            None,
            r#"{"name":"t","version":"1","abi":2}"#
        )),
        Rejection::Manifest(ManifestError::UnsupportedAbi { found: 2 })
    );
}

#[test]
fn trap_in_init() {
    let bytes = wat_module(
        r#"(func (export "hs_init") (result i32) unreachable)"#,
        None,
    );
    assert!(matches!(
        prepare_failure(&bytes),
        PrepareError::InitTrapped(CallError::Trap(_))
    ));
    let bytes = wat_module(
        r#"(func (export "hs_init") (result i32) (i32.const 7))"#,
        None,
    );
    assert_eq!(
        prepare_failure(&bytes),
        PrepareError::InitFailed { code: 7 }
    );
}

#[test]
fn failing_health_check() {
    let bytes = wat_module(
        r#"(func (export "hs_health") (result i32) (i32.const 1))"#,
        None,
    );
    assert_eq!(prepare_failure(&bytes), PrepareError::Unhealthy { code: 1 });
}

#[test]
fn infinite_loop_in_init_hits_the_deadline() {
    let bytes = wat_module(
        r#"(func (export "hs_init") (result i32) (loop (br 0)) (i32.const 0))"#,
        None,
    );
    assert!(matches!(
        prepare_failure(&bytes),
        PrepareError::InitTrapped(CallError::Deadline(_))
    ));
}

#[test]
fn infinite_loop_in_process_hits_the_deadline() {
    let bytes = wat_module(
        "",
        Some(
            r#"(func (export "hs_process") (param i32 i32) (result i64) (loop (br 0)) (i64.const 0))"#,
        ),
    );
    assert!(matches!(call_failure(&bytes), CallError::Deadline(_)));
}

#[test]
fn memory_growth_past_the_cap() {
    // 4 MiB cap = 64 pages; ask for 100 more.
    let bytes = wat_module(
        "",
        Some(
            r#"(func (export "hs_process") (param i32 i32) (result i64)
                  (drop (memory.grow (i32.const 100))) (i64.const 0))"#,
        ),
    );
    assert_eq!(
        call_failure(&bytes),
        CallError::MemoryLimit { limit: 4 << 20 }
    );
}

#[test]
fn host_call_with_out_of_bounds_pointer() {
    let module = Wat {
        imports: r#"(import "hotswap" "kv_get" (func $kv_get (param i32 i32 i32 i32) (result i64)))"#,
        process: Some(
            r#"(func (export "hs_process") (param i32 i32) (result i64)
                 (drop (call $kv_get (i32.const 0) (i32.const 4) (i32.const 65530) (i32.const 100)))
                 (i64.const 0))"#,
        ),
        ..Wat::default()
    };
    let err = call_failure(&module.build());
    let CallError::HostCall { function, reason } = err else {
        panic!("expected HostCall, got {err:?}")
    };
    assert_eq!(function, "kv_get");
    assert!(reason.contains("outside the plugin's memory"), "{reason}");
}

#[test]
fn output_outside_memory_is_an_abi_error() {
    let bytes = wat_module(
        "",
        Some(
            r#"(func (export "hs_process") (param i32 i32) (result i64) (i64.const 0x0000_0010_ffff_fff0))"#,
        ),
    );
    assert!(matches!(call_failure(&bytes), CallError::Abi(_)));
}

#[test]
fn plugin_errors_fail_only_their_call() {
    // Bit 63 set: the output is an error message ("boom" at offset 16).
    let bytes = wat_module(
        r#"(data (i32.const 16) "boom")"#,
        Some(
            r#"(func (export "hs_process") (param i32 i32) (result i64) (i64.const 0x8000_0004_0000_0010))"#,
        ),
    );
    assert_eq!(call_failure(&bytes), CallError::Plugin("boom".into()));
}

#[test]
fn digest_mismatch_is_rejected_before_validation() {
    let (_tier, slot) = serving();
    let wrong = hotswap_core::Digest::of(b"something else");
    let err = slot
        .deploy(art(hotswap_examples::GREET_V2), Some(wrong))
        .unwrap_err();
    assert!(matches!(err, DeployError::DigestMismatch { .. }));
    assert_eq!(err.phase(), Phase::Stage);
    still_serving(&slot);
}

#[test]
fn start_function_is_rejected_before_anything_runs() {
    // The start function calls the host before the host has the instance's
    // memory: exactly what must never run.
    let module = Wat {
        imports: r#"(import "hotswap" "log" (func $log (param i32 i32 i32)))"#,
        extra: r#"(func $boot (call $log (i32.const 2) (i32.const 0) (i32.const 4)))
                  (start $boot)"#,
        ..Wat::default()
    };
    assert!(matches!(
        rejected(&module.build()),
        Rejection::StartFunction(_)
    ));
}

#[test]
fn oversized_kv_put_is_refused_without_copying_by_the_stores_own_limit() {
    // kv_put of 2 MiB (over the 1 MiB value limit) from a 2.5 MiB memory:
    // the host answers -1 (too large) and the plugin replies with that code.
    let module = Wat {
        imports: r#"(import "hotswap" "kv_put" (func $put (param i32 i32 i32 i32) (result i32)))"#,
        pages: 40,
        process: Some(
            r#"(func (export "hs_process") (param i32 i32) (result i64)
                 (i32.store8 (i32.const 16)
                   (call $put (i32.const 0) (i32.const 3) (i32.const 4096) (i32.const 0x200000)))
                 (i64.or (i64.shl (i64.const 1) (i64.const 32)) (i64.const 16)))"#,
        ),
        ..Wat::default()
    };
    let (tier, _good) = serving();
    let s = slot(&tier, "kv");
    s.deploy(art(&module.build()), None).unwrap();
    assert_eq!(s.call(b"").unwrap(), [(-1i32) as u8]);
    assert_eq!(s.kv().get(b"\0\0\0").unwrap(), None, "nothing was stored");

    // The limit is the slot's store's, not a default: one that allows
    // 4 MiB values takes the same put.
    let roomy = hotswap_core::MemoryKv::with_limits(hotswap_core::KvLimits {
        max_value: 4 << 20,
        ..hotswap_core::KvLimits::default()
    });
    let s = hotswap_core::Slot::new(
        "roomy",
        tier.clone(),
        std::sync::Arc::new(roomy),
        hotswap_core::EventBus::new(),
    );
    s.deploy(art(&module.build()), None).unwrap();
    assert_eq!(s.call(b"").unwrap(), [0]);
    assert_eq!(
        s.kv().get(b"\0\0\0").unwrap().map(|v| v.len()),
        Some(0x200000)
    );
}

#[test]
fn nonsense_settings_are_refused_at_start_up() {
    use hotswap_wasm::{WasmConfig, WasmTier};
    use std::time::Duration;
    for config in [
        WasmConfig {
            deadline: Duration::ZERO,
            ..WasmConfig::default()
        },
        WasmConfig {
            deadline: Duration::MAX,
            ..WasmConfig::default()
        },
        WasmConfig {
            memory_cap: 1,
            ..WasmConfig::default()
        },
        WasmConfig {
            instance_cap: 0,
            ..WasmConfig::default()
        },
        WasmConfig {
            instance_cap: 10,
            total_instances: 5,
            ..WasmConfig::default()
        },
    ] {
        let err = WasmTier::new(config).err().expect("refused");
        assert!(
            err.to_string().starts_with("invalid WASM settings"),
            "{err}"
        );
    }
}

#[test]
fn anything_but_one_32_bit_memory_is_rejected() {
    let two = Wat {
        extra: "(memory 1)",
        ..Wat::default()
    };
    let r = rejected(&two.build());
    assert!(matches!(r, Rejection::Memory(_)), "{r:?}");
    let wide = wat::parse_str(
        r#"(module (memory (export "memory") i64 1)
             (func (export "hs_alloc") (param i32) (result i32) (i32.const 8))
             (func (export "hs_process") (param i32 i32) (result i64) (i64.const 0))
             (@custom "hotswap.manifest" "{\"name\":\"t\",\"version\":\"1\",\"abi\":1}"))"#,
    )
    .unwrap();
    assert!(
        matches!(rejected(&wide), Rejection::Memory(_)),
        "{:?}",
        rejected(&wide)
    );
}
