//! A restart restores every slot from the store as it was, without
//! compiling anything (compiled code survives in the store's compile
//! cache), and without re-enacting history.

use hotswap_core::{RevisionState, Transition};
use hotswap_server::{CallFailure, Gateway, GatewayOptions};
use hotswap_store::Store;
use hotswap_wasm::WasmConfig;

fn open(dir: &std::path::Path) -> Gateway {
    Gateway::open(
        Store::open(dir).unwrap(),
        WasmConfig::default(),
        true,
        GatewayOptions::default(),
    )
    .unwrap()
}

#[test]
fn a_restart_restores_slots_as_they_were_without_recompiling() {
    let dir = tempfile::tempdir().unwrap();
    let (before, history) = {
        let gateway = open(dir.path());
        gateway
            .deploy("greet", hotswap_examples::GREET_V1.to_vec(), None)
            .unwrap();
        let v2 = gateway
            .deploy("greet", hotswap_examples::GREET_V2.to_vec(), None)
            .unwrap();
        gateway
            .rollback("greet", Some(v2.digest), "v2 is loud")
            .unwrap();
        gateway
            .deploy("count", hotswap_examples::COUNTER.to_vec(), None)
            .unwrap();
        assert_eq!(gateway.tiers().wasm().cache_stats().compiles, 3);
        (gateway.list(), gateway.events().recent())
    };
    let gateway = open(dir.path());
    let stats = gateway.tiers().wasm().cache_stats();
    assert_eq!(stats.compiles, 0, "{stats:?}");
    // Only what serves is prepared: greet's v1 and count.
    assert_eq!(stats.disk_hits, 2, "{stats:?}");

    // The same slots, generations and states: v1 active as generation 3,
    // v2 rolled back (not "retired", not renumbered).
    let mut after = gateway.list();
    for s in &mut after {
        // Drained since: a draining revision comes back retired.
        if let Some(p) = &mut s.previous {
            assert_ne!(p.state, RevisionState::Draining);
        }
    }
    assert_eq!(after, before);
    let greet = gateway.show("greet").unwrap();
    assert_eq!(greet.active.as_ref().unwrap().generation, 3);
    assert_eq!(
        greet.previous.as_ref().unwrap().state,
        RevisionState::RolledBack
    );

    // The log goes on from where it was, with one `restored` per slot.
    let recent = gateway.events().recent();
    assert_eq!(&recent[..history.len()], &history[..]);
    let new = &recent[history.len()..];
    assert_eq!(new.len(), 2, "{new:?}");
    assert!(new.iter().all(|e| e.transition == Transition::Restored));

    let (reply, served) = gateway.call("greet", b"again", None).unwrap();
    assert_eq!(reply, b"hello, again!");
    assert_eq!(served.generation, 3);
}

#[test]
fn a_damaged_artifact_leaves_its_slot_visibly_failed() {
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2) = {
        let gateway = open(dir.path());
        let v1 = gateway
            .deploy("greet", hotswap_examples::GREET_V1.to_vec(), None)
            .unwrap();
        let v2 = gateway
            .deploy("greet", hotswap_examples::GREET_V2.to_vec(), None)
            .unwrap();
        (v1, v2)
    };
    let artifact =
        |d: &hotswap_core::Digest| dir.path().join("artifacts").join(format!("{d}.wasm"));
    std::fs::write(artifact(&v2.digest), b"damaged").unwrap();
    // And its compiled form, so nothing can stand in for the bytes.
    let _ = std::fs::remove_dir_all(dir.path().join("compiled"));

    let gateway = open(dir.path());
    assert!(!gateway.is_empty(), "a damaged store is not an empty one");
    let status = gateway.show("greet").unwrap();
    assert_eq!(status.active.as_ref().unwrap().state, RevisionState::Failed);
    assert_eq!(status.active.as_ref().unwrap().generation, 2);
    let previous = status.previous.as_ref().unwrap();
    assert_eq!(
        (previous.state, previous.generation),
        (RevisionState::Active, 1)
    );
    let fault = status.fault.clone().unwrap();
    assert!(fault.contains(&v2.digest.to_string()), "{fault}");
    assert!(fault.contains("corrupt"), "{fault}");
    let (reply, served) = gateway.call("greet", b"x", None).unwrap();
    assert_eq!(reply, b"hello, x!");
    assert_eq!(served.digest, v1.digest);
    let restored = gateway.events().recent().pop().unwrap();
    assert_eq!(restored.transition, Transition::Restored);
    assert!(restored.reason.unwrap().contains("corrupt"));
    drop(gateway);

    // With both damaged, nothing serves, and calls say why.
    std::fs::write(artifact(&v1.digest), b"damaged too").unwrap();
    let _ = std::fs::remove_dir_all(dir.path().join("compiled"));
    let gateway = open(dir.path());
    match gateway.call("greet", b"x", None) {
        Err(CallFailure::Call(e)) => {
            let text = e.to_string();
            assert!(
                text.contains("cannot serve") && text.contains("corrupt"),
                "{text}"
            );
        }
        other => panic!(
            "expected the slot to be unavailable, got {:?}",
            other.map(|r| r.1)
        ),
    }
    assert_eq!(gateway.show("greet").unwrap().active.unwrap().generation, 2);
}
