//! A restart restores every slot from the store without compiling anything:
//! compiled code survives in the store's compile cache.

use hotswap_server::Gateway;
use hotswap_store::Store;
use hotswap_wasm::WasmConfig;

#[test]
fn a_restart_restores_slots_without_recompiling() {
    let dir = tempfile::tempdir().unwrap();
    {
        let gateway = Gateway::open(
            Store::open(dir.path()).unwrap(),
            WasmConfig::default(),
            true,
        )
        .unwrap();
        gateway
            .deploy("greet", hotswap_examples::GREET_V1.to_vec(), None, None)
            .unwrap();
        gateway
            .deploy("greet", hotswap_examples::GREET_V2.to_vec(), None, None)
            .unwrap();
        gateway
            .deploy("count", hotswap_examples::COUNTER.to_vec(), None, None)
            .unwrap();
        assert_eq!(gateway.tiers().wasm().cache_stats().compiles, 3);
    }
    let gateway = Gateway::open(
        Store::open(dir.path()).unwrap(),
        WasmConfig::default(),
        true,
    )
    .unwrap();
    let stats = gateway.tiers().wasm().cache_stats();
    assert_eq!(stats.compiles, 0, "{stats:?}");
    assert_eq!(stats.disk_hits, 3, "{stats:?}");
    let (reply, _) = gateway.call("greet", b"again", None).unwrap();
    assert_eq!(reply, b"HELLO, AGAIN!! (v2)");
    assert_eq!(
        gateway.show("greet").unwrap().previous.unwrap().version,
        "1.0.0"
    );
}
