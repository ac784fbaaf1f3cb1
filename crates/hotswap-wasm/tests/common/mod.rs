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

/// A module that satisfies ABI v1, to break one rule at a time: `imports`
/// first (WAT wants them before any definition), `pages` of memory (1 if
/// 0), a bump allocator from 1024, `hs_process` (an echo unless given),
/// `extra` definitions, and a manifest (`{"name":"t",...}` unless given).
#[derive(Default)]
pub struct Wat<'a> {
    pub imports: &'a str,
    pub pages: u32,
    pub extra: &'a str,
    pub process: Option<&'a str>,
    pub manifest: Option<&'a str>,
}

impl Wat<'_> {
    pub fn build(&self) -> Vec<u8> {
        let process = self.process.unwrap_or(
            r#"(func (export "hs_process") (param $p i32) (param $l i32) (result i64)
                 (i64.or (i64.shl (i64.extend_i32_u (local.get $l)) (i64.const 32))
                         (i64.extend_i32_u (local.get $p))))"#,
        );
        let manifest = self
            .manifest
            .unwrap_or(r#"{"name":"t","version":"1","abi":1}"#)
            .replace('\\', "\\\\")
            .replace('"', "\\\"");
        let (imports, extra, pages) = (self.imports, self.extra, self.pages.max(1));
        let text = format!(
            r#"(module
                 {imports}
                 (memory (export "memory") {pages})
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
}

/// [`Wat`] with only `extra` and `process` set.
pub fn wat_module(extra: &str, process: Option<&str>) -> Vec<u8> {
    Wat {
        extra,
        process,
        ..Wat::default()
    }
    .build()
}

/// [`Wat`] with `extra`, `process` and a manifest.
pub fn wat_module_with(extra: &str, process: Option<&str>, manifest: &str) -> Vec<u8> {
    Wat {
        extra,
        process,
        manifest: Some(manifest),
        ..Wat::default()
    }
    .build()
}
