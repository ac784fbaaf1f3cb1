//! State migration over the real store, in both tiers: `tally` v1 keeps
//! counts as text (schema 1), v2 as integers (schema 2). Deploying v2
//! converts the state once; a rollback returns it byte for byte; a
//! migration that fails writes nothing; calls under load never fail.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hotswap_core::{DeployError, KvStore, Phase, StateError, Transition};
use hotswap_server::{Gateway, GatewayError, GatewayOptions};
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

/// The two tiers' builds of the pair.
fn builds() -> [(&'static str, &'static [u8], &'static [u8]); 2] {
    use hotswap_examples::*;
    [
        ("wasm", TALLY_V1, TALLY_V2),
        ("native", TALLY_V1_NATIVE, TALLY_V2_NATIVE),
    ]
}

fn call(gateway: &Gateway, name: &str) -> String {
    let (reply, _) = gateway.call("tally", name.as_bytes(), None).unwrap();
    String::from_utf8(reply).unwrap()
}

#[test]
fn a_new_schema_migrates_once_and_a_rollback_restores_the_old_state() {
    for (tier, v1, v2) in builds() {
        let dir = tempfile::tempdir().unwrap();
        let gateway = open(dir.path());
        gateway.deploy("tally", v1.to_vec(), None).unwrap();
        for _ in 0..3 {
            call(&gateway, "ann");
        }
        assert_eq!(call(&gateway, "bob"), "bob seen 1 times");

        let v2 = gateway.deploy("tally", v2.to_vec(), None).unwrap();
        assert_eq!(call(&gateway, "ann"), "ann: visit 4", "{tier}");
        let events = gateway.events().recent();
        let migrated: Vec<_> = events
            .iter()
            .filter(|e| e.transition == Transition::Migrated)
            .collect();
        assert_eq!(migrated.len(), 1, "{tier}: {events:?}");
        let reason = migrated[0].reason.as_deref().unwrap();
        assert!(
            reason.contains("from schema 1 to 2") && reason.contains("2 keys written"),
            "{reason}"
        );

        // A restart keeps the migrated state and the snapshot: nothing is
        // migrated again, and the rollback still finds v1's state.
        drop(gateway);
        let gateway = open(dir.path());
        assert_eq!(call(&gateway, "ann"), "ann: visit 5", "{tier}");
        gateway
            .rollback("tally", Some(v2.digest), "v2 misbehaves")
            .unwrap();
        // v1's state as it was at the migration: ann at 3, v2's visits gone.
        assert_eq!(call(&gateway, "ann"), "ann seen 4 times", "{tier}");
        assert_eq!(call(&gateway, "bob"), "bob seen 2 times", "{tier}");
    }
}

#[test]
fn a_failed_migration_writes_nothing_and_v1_serves_on() {
    for (tier, v1, v2) in builds() {
        let dir = tempfile::tempdir().unwrap();
        {
            // A count v2 cannot read, written before the slot serves.
            let store = Store::open(dir.path()).unwrap();
            store
                .kv("tally")
                .unwrap()
                .put(b"visits/eve", b"many")
                .unwrap();
            store.flush().unwrap();
        }
        let gateway = open(dir.path());
        let v1 = gateway.deploy("tally", v1.to_vec(), None).unwrap();
        call(&gateway, "ann");
        let err = gateway.deploy("tally", v2.to_vec(), None).unwrap_err();
        let GatewayError::Deploy(DeployError::Migrate(_)) = &err else {
            panic!("{tier}: {err}");
        };
        assert!(err.to_string().contains("visits/eve"), "{tier}: {err}");
        assert_eq!(
            gateway.show("tally").unwrap().active.unwrap().digest,
            v1.digest
        );
        // v1's state is untouched: its text count goes on.
        assert_eq!(call(&gateway, "ann"), "ann seen 2 times", "{tier}");
        let failed = gateway.events().recent();
        let failed = failed
            .iter()
            .rev()
            .find(|e| e.transition == Transition::Failed);
        assert_eq!(failed.unwrap().phase, Phase::Migrate, "{tier}");
    }
}

#[test]
fn canaries_and_deploys_never_cross_schemas_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = open(dir.path());
    let (v1, v2) = (hotswap_examples::TALLY_V1, hotswap_examples::TALLY_V2);
    gateway.deploy("tally", v1.to_vec(), None).unwrap();
    let err = gateway
        .deploy_canary("tally", v2.to_vec(), None, 10, None)
        .unwrap_err();
    assert!(
        matches!(
            err,
            GatewayError::Deploy(DeployError::Refused(StateError::CanaryAcrossSchemas {
                active: 1,
                candidate: 2
            }))
        ),
        "{err}"
    );
    assert!(err.to_string().contains("same state schema"), "{err}");
    gateway.deploy("tally", v2.to_vec(), None).unwrap();
    let err = gateway.deploy("tally", v1.to_vec(), None).unwrap_err();
    assert!(err.to_string().contains("roll back instead"), "{err}");
}

#[test]
fn calls_under_load_never_fail_while_the_state_moves_between_schemas() {
    for (tier, v1, v2) in builds() {
        let dir = tempfile::tempdir().unwrap();
        let gateway = Arc::new(open(dir.path()));
        gateway.deploy("tally", v1.to_vec(), None).unwrap();
        let v2 = gateway.deploy("tally", v2.to_vec(), None).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let callers: Vec<_> = (0..3)
            .map(|i| {
                let (gateway, stop) = (gateway.clone(), stop.clone());
                std::thread::spawn(move || {
                    let (mut ok, mut failed) = (0u64, Vec::new());
                    let name = format!("caller-{i}");
                    while !stop.load(Ordering::Relaxed) {
                        match gateway.call("tally", name.as_bytes(), None) {
                            Ok(_) => ok += 1,
                            Err(e) => failed.push(format!("{e:?}")),
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        // Down (restore the snapshot) and up (migrate again), ten times each.
        let mut active = v2.digest;
        for _ in 0..20 {
            let back = gateway.rollback("tally", Some(active), "cycle").unwrap();
            active = back.digest;
        }
        stop.store(true, Ordering::Relaxed);
        let (mut ok, mut failed) = (0, Vec::new());
        for c in callers {
            let (o, f) = c.join().unwrap();
            ok += o;
            failed.extend(f);
        }
        assert!(
            failed.is_empty(),
            "{tier}: {} of {} calls failed: {:?}",
            failed.len(),
            ok,
            &failed[..failed.len().min(3)]
        );
        assert!(ok > 0, "{tier}");
        let migrated = gateway.events().recent();
        let migrated = migrated
            .iter()
            .filter(|e| e.transition == Transition::Migrated)
            .count();
        assert_eq!(migrated, 21, "{tier}");
    }
}
