//! WASI preview 1, when the host allows it: the plugin runs, its output goes
//! to the log, and the sandbox holds no files and no environment.
#![cfg(feature = "wasi")]

mod common;

use common::*;
use hotswap_core::Phase;
use hotswap_wasm::{Rejection, WasmConfig};

/// Writes a line to stdout, looks for a preopened directory and counts
/// the environment; replies with what it found.
fn wasi_probe() -> Vec<u8> {
    Wat {
        imports: r#"(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
                    (import "wasi_snapshot_preview1" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))
                    (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env (param i32 i32) (result i32)))"#,
        extra: r#"(data (i32.const 100) "hi from wasi\n")"#,
        process: Some(
            r#"(func (export "hs_process") (param i32 i32) (result i64)
                 ;; one iovec at 200 pointing at the 13-byte line at 100
                 (i32.store (i32.const 200) (i32.const 100))
                 (i32.store (i32.const 204) (i32.const 13))
                 ;; reply byte 0: fd_write's errno; byte 1: bytes written
                 (i32.store8 (i32.const 300) (call $fd_write (i32.const 1) (i32.const 200) (i32.const 1) (i32.const 208)))
                 (i32.store8 (i32.const 301) (i32.load (i32.const 208)))
                 ;; byte 2: errno of asking for preopened directory fd 3 (8 = EBADF: none)
                 (i32.store8 (i32.const 302) (call $prestat (i32.const 3) (i32.const 400)))
                 ;; byte 3: the number of environment variables
                 (drop (call $env (i32.const 404) (i32.const 408)))
                 (i32.store8 (i32.const 303) (i32.load (i32.const 404)))
                 (i64.or (i64.shl (i64.const 4) (i64.const 32)) (i64.const 300)))"#,
        ),
        manifest: Some(r#"{"name":"wasi-probe","version":"1","abi":1}"#),
        ..Wat::default()
    }
    .build()
}

#[test]
fn wasi_runs_sandboxed_when_allowed() {
    let tier = tier(WasmConfig {
        allow_wasi: true,
        ..WasmConfig::default()
    });
    let slot = slot(&tier, "wasi");
    let info = slot.deploy(art(&wasi_probe()), None).unwrap();
    assert_eq!(info.name, "wasi-probe");
    let reply = slot.call(b"").unwrap();
    assert_eq!(
        reply,
        [0, 13, 8, 0],
        "errno, written, preopen errno, env count"
    );
    // Every instance gets its own sandbox; a second call works the same.
    assert_eq!(slot.call(b"").unwrap(), [0, 13, 8, 0]);
}

#[test]
fn wasi_is_rejected_unless_allowed() {
    let tier = tier(WasmConfig::default());
    let slot = slot(&tier, "wasi");
    let err = slot.deploy(art(&wasi_probe()), None).unwrap_err();
    assert_eq!(err.phase(), Phase::Validate);
    let Some(Rejection::ForbiddenImport { module, reason, .. }) = err.tier_error::<Rejection>()
    else {
        panic!("expected ForbiddenImport, got {err}")
    };
    assert_eq!(module, "wasi_snapshot_preview1");
    assert!(reason.contains("allow_wasi"), "{reason}");
}

#[test]
fn wasi_plugins_can_be_called_from_async_tasks() {
    let tier = tier(WasmConfig {
        allow_wasi: true,
        ..WasmConfig::default()
    });
    let slot = std::sync::Arc::new(slot(&tier, "wasi"));
    slot.deploy(art(&wasi_probe()), None).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let reply =
        rt.block_on(async move { tokio::spawn(async move { slot.call(b"") }).await.unwrap() });
    assert_eq!(reply.unwrap(), [0, 13, 8, 0]);

    let single = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let slot2 = std::sync::Arc::new(common::slot(&tier, "wasi2"));
    slot2.deploy(art(&wasi_probe()), None).unwrap();
    let err = single.block_on(async move { slot2.call(b"") }).unwrap_err();
    assert!(matches!(err, hotswap_core::CallError::Host(_)), "{err}");
}

#[test]
fn wasi_clock_waits_are_refused_so_deadlines_hold() {
    // poll_oneoff asking to sleep answers ENOSYS (52) at once.
    let module = Wat {
        imports: r#"(import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))"#,
        process: Some(
            r#"(func (export "hs_process") (param i32 i32) (result i64)
                 ;; subscription at 100: userdata, tag 0 (clock), clock id 1, timeout 5 s
                 ;; (were the wait not refused, it would return 0 after 5 s and fail the test)
                 (i32.store8 (i32.const 108) (i32.const 0))
                 (i32.store (i32.const 112) (i32.const 1))
                 (i64.store (i32.const 120) (i64.const 5000000000))
                 (i32.store8 (i32.const 16) (call $poll (i32.const 100) (i32.const 400) (i32.const 1) (i32.const 500)))
                 (i64.or (i64.shl (i64.const 1) (i64.const 32)) (i64.const 16)))"#,
        ),
        ..Wat::default()
    };
    let tier = tier(WasmConfig {
        allow_wasi: true,
        ..WasmConfig::default()
    });
    let slot = slot(&tier, "sleepy");
    slot.deploy(art(&module.build()), None).unwrap();
    assert_eq!(slot.call(b"").unwrap(), [52]);
}
