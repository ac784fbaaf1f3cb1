//! The same plugin source gives the same outputs in both tiers: each example
//! built for wasm32 and as a native library, called with the same inputs.

use std::sync::Arc;

use hotswap_core::{Artifact, CallError, EventBus, MemoryKv, Slot, Tier};
use hotswap_native::NativeTier;
use hotswap_wasm::{WasmConfig, WasmTier};

/// Inputs that exercise the edges: empty, ASCII, multi-byte UTF-8, invalid
/// UTF-8, a 64-byte and a 64 KiB input, and the counter's `reset`.
fn inputs() -> Vec<Vec<u8>> {
    vec![
        b"".to_vec(),
        b"world".to_vec(),
        "zoë, 世界".as_bytes().to_vec(),
        vec![0xff, 0xfe, b'x', 0x80],
        vec![b'a'; 64],
        (0..65_536).map(|i| b'a' + (i % 26) as u8).collect(),
        b"reset".to_vec(),
        b"again".to_vec(),
    ]
}

fn outputs<T: Tier>(tier: Arc<T>, plugin: &[u8]) -> Vec<Result<Vec<u8>, CallError>> {
    let slot = Slot::new(
        "parity",
        tier,
        Arc::new(MemoryKv::default()),
        EventBus::new(),
    );
    slot.deploy(Artifact::new(plugin.to_vec()), None).unwrap();
    inputs().iter().map(|i| slot.call(i)).collect()
}

#[test]
fn every_example_answers_the_same_in_both_tiers() {
    let wasm = Arc::new(WasmTier::new(WasmConfig::default()).unwrap());
    let native = Arc::new(NativeTier::new());
    let wasm_builds: std::collections::HashMap<_, _> =
        hotswap_examples::ALL.iter().copied().collect();
    assert_eq!(hotswap_examples::ALL_NATIVE.len(), 5);
    for &(name, native_build) in hotswap_examples::ALL_NATIVE {
        let from_wasm = outputs(wasm.clone(), wasm_builds[name]);
        let from_native = outputs(native.clone(), native_build);
        assert_eq!(from_wasm.len(), inputs().len());
        for ((input, w), n) in inputs().iter().zip(&from_wasm).zip(&from_native) {
            assert!(w.is_ok(), "{name}: WASM failed on {input:?}: {w:?}");
            assert_eq!(
                w,
                n,
                "{name}: the tiers differ on input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
}

#[test]
fn the_counter_counts_the_same_in_both_tiers() {
    // State lives in the slot's store, reached through the host functions,
    // so this also checks the native tier's kv_get/kv_put.
    let from_wasm = outputs(
        Arc::new(WasmTier::new(WasmConfig::default()).unwrap()),
        hotswap_examples::COUNTER,
    );
    let from_native = outputs(
        Arc::new(NativeTier::new()),
        hotswap_examples::COUNTER_NATIVE,
    );
    let counts: Vec<_> = from_native
        .iter()
        .map(|r| String::from_utf8(r.clone().unwrap()).unwrap())
        .collect();
    assert_eq!(counts, ["1", "2", "3", "4", "5", "6", "0", "1"]);
    assert_eq!(from_wasm, from_native);
}
