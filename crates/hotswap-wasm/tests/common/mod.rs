//! Shared helpers for the WASM tier's tests: slots over the example plugins,
//! and WAT modules built to break one rule each.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use hotswap_core::{Artifact, EventBus, MemoryKv, Slot};
use hotswap_wasm::{WasmConfig, WasmTier};

pub type WasmSlot = Slot<WasmTier>;

pub fn tier(config: WasmConfig) -> Arc<WasmTier> {
    Arc::new(WasmTier::new(config).expect("engine starts"))
}

/// A tier with a short deadline, so hostile tests finish quickly.
pub fn strict_tier() -> Arc<WasmTier> {
    tier(WasmConfig {
        deadline: Duration::from_millis(200),
        memory_cap: 4 << 20,
        ..WasmConfig::default()
    })
}

pub fn slot(tier: &Arc<WasmTier>, name: &str) -> WasmSlot {
    Slot::new(
        name,
        tier.clone(),
        Arc::new(MemoryKv::default()),
        EventBus::new(),
    )
}

pub fn art(bytes: &[u8]) -> Artifact {
    Artifact::new(bytes.to_vec())
}

/// A module that satisfies ABI v1, with `extra` spliced into its body. It
/// has a bump allocator, echoes its input, and a manifest. `(@process ...)`
/// replaces the default `hs_process` when `process` is given.
pub fn wat_module(extra: &str, process: Option<&str>) -> Vec<u8> {
    wat_module_with(extra, process, r#"{"name":"t","version":"1","abi":1}"#)
}

pub fn wat_module_with(extra: &str, process: Option<&str>, manifest: &str) -> Vec<u8> {
    let process = process.unwrap_or(
        r#"(func (export "hs_process") (param $p i32) (param $l i32) (result i64)
             (i64.or (i64.shl (i64.extend_i32_u (local.get $l)) (i64.const 32))
                     (i64.extend_i32_u (local.get $p))))"#,
    );
    let manifest = manifest.replace('\\', "\\\\").replace('"', "\\\"");
    let text = format!(
        r#"(module
             (memory (export "memory") 1)
             (global $next (mut i32) (i32.const 1024))
             (func (export "hs_alloc") (param $n i32) (result i32)
               (local $p i32)
               (local.set $p (global.get $next))
               (global.set $next (i32.add (global.get $next) (local.get $n)))
               (local.get $p))
             {process}
             {extra}
             (@custom "hotswap.manifest" "{manifest}"))"#
    );
    wat::parse_str(&text).unwrap_or_else(|e| panic!("bad test WAT: {e}\n{text}"))
}
