//! State belongs to the slot and survives swaps; rollback restores the
//! previous revision.

mod common;

use common::*;
use hotswap_core::{DeployError, RevisionState, StateError};
use hotswap_wasm::WasmConfig;

#[test]
fn kv_state_survives_swaps_and_rollback_restores_the_previous_revision() {
    let tier = tier(WasmConfig::default());
    let slot = slot(&tier, "counter");
    let counter = art(hotswap_examples::COUNTER);
    let other = art(hotswap_examples::GREET_V1);

    slot.deploy(counter.clone(), None).unwrap();
    for expected in 1..=3 {
        assert_eq!(slot.call(b"").unwrap(), expected.to_string().as_bytes());
    }

    // A different revision in between: the state is not its business.
    slot.deploy(other.clone(), None).unwrap();
    assert_eq!(slot.call(b"x").unwrap(), b"hello, x!");

    let back = slot.rollback(&other.digest(), "testing rollback").unwrap();
    assert_eq!(back.digest, counter.digest());
    assert_eq!(back.generation, 3);
    assert_eq!(
        slot.call(b"").unwrap(),
        b"4",
        "the count carried on across both swaps"
    );
    let status = slot.status();
    assert_eq!(status.active.unwrap().digest, counter.digest());
    let previous = status.previous.unwrap();
    assert_eq!(previous.digest, other.digest());
    assert!(matches!(
        previous.state,
        RevisionState::RolledBack | RevisionState::Draining
    ));

    // The same revision again (a restart of the code): state still there.
    slot.deploy(counter.clone(), None).unwrap();
    assert_eq!(slot.call(b"").unwrap(), b"5");
    assert_eq!(slot.call(b"reset").unwrap(), b"0");
}

#[test]
fn rollback_without_a_previous_revision_is_an_error() {
    let tier = tier(WasmConfig::default());
    let slot = slot(&tier, "lonely");
    let greet = art(hotswap_examples::GREET_V1);
    assert!(matches!(
        slot.rollback(&greet.digest(), "why"),
        Err(DeployError::Refused(StateError::Stale { found: None, .. }))
    ));
    slot.deploy(greet.clone(), None).unwrap();
    assert!(matches!(
        slot.rollback(&greet.digest(), "why"),
        Err(DeployError::Refused(StateError::NoPrevious))
    ));
    assert_eq!(slot.call(b"x").unwrap(), b"hello, x!");
}

#[test]
fn the_c_plugin_runs_under_the_same_abi() {
    let tier = tier(WasmConfig::default());
    let slot = slot(&tier, "upper");
    let info = slot.deploy(art(hotswap_examples::C_UPPER), None).unwrap();
    assert_eq!(info.abi, 1);
    assert_eq!(slot.call(b"abc").unwrap(), b"C: ABC");
}

#[test]
fn the_same_digest_compiles_once_and_the_disk_cache_survives_a_new_host() {
    let dir = tempfile::tempdir().unwrap();
    let config = WasmConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..WasmConfig::default()
    };
    let first = tier(config.clone());
    let a = slot(&first, "a");
    let b = slot(&first, "b");
    a.deploy(art(hotswap_examples::GREET_V1), None).unwrap();
    a.deploy(art(hotswap_examples::GREET_V1), None).unwrap();
    b.deploy(art(hotswap_examples::GREET_V1), None).unwrap();
    let stats = first.cache_stats();
    assert_eq!(stats.compiles, 1, "{stats:?}");
    assert_eq!(stats.memory_hits, 2, "{stats:?}");

    // A new host (as after a restart) loads the compiled module from disk.
    let second = tier(config.clone());
    let c = slot(&second, "c");
    c.deploy(art(hotswap_examples::GREET_V1), None).unwrap();
    assert_eq!(c.call(b"disk").unwrap(), b"hello, disk!");
    assert_eq!(second.cache_stats().compiles, 0);
    assert_eq!(second.cache_stats().disk_hits, 1);

    // A corrupted cache file is recompiled, never loaded.
    for entry in walk(dir.path()) {
        let mut bytes = std::fs::read(&entry).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&entry, bytes).unwrap();
    }
    let third = tier(config);
    let d = slot(&third, "d");
    d.deploy(art(hotswap_examples::GREET_V1), None).unwrap();
    assert_eq!(d.call(b"again").unwrap(), b"hello, again!");
    assert_eq!(third.cache_stats().compiles, 1);
    assert_eq!(third.cache_stats().disk_hits, 0);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn a_cache_directory_others_can_write_is_not_trusted() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = WasmConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..WasmConfig::default()
    };
    let first = tier(config.clone());
    slot(&first, "a")
        .deploy(art(hotswap_examples::GREET_V1), None)
        .unwrap();
    assert!(
        walk(dir.path()).is_empty(),
        "compiled code was written to a world-writable directory"
    );
    let second = tier(config);
    slot(&second, "b")
        .deploy(art(hotswap_examples::GREET_V1), None)
        .unwrap();
    assert_eq!(second.cache_stats().disk_hits, 0);
    assert_eq!(second.cache_stats().compiles, 1);
}
