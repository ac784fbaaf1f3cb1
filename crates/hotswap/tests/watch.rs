//! `hotswap watch` against a running `hotswap serve`: a change to the
//! source changes what the server answers, while clients call it all along
//! and none fails; a broken change leaves the old revision serving.

mod process;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::Duration;

use process::{hotswap, Serve};

/// A plugin that answers `word`, as WebAssembly text.
fn plugin(word: &str) -> String {
    format!(
        r#"(module
  (memory (export "memory") 1)
  (data (i32.const 2048) "{word}")
  (func (export "hs_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "hs_process") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const {len}) (i64.const 32)) (i64.const 2048)))
  (@custom "hotswap.manifest" "{{\"name\":\"word\",\"version\":\"1.0.0\",\"abi\":1}}"))"#,
        len = word.len()
    )
}

/// `hotswap watch --json` on `file`, and its JSON lines as they come.
fn watch(file: &Path, serve: &Serve) -> (Child, Receiver<serde_json::Value>) {
    let mut child = hotswap()
        .args(["watch", "--json", "--debounce", "50", "--server"])
        .arg(serve.admin.to_string())
        .arg(file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = channel();
    let out = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str(&line).expect("a JSON line"));
        }
    });
    (child, rx)
}

fn next(cycles: &Receiver<serde_json::Value>) -> serde_json::Value {
    cycles
        .recv_timeout(Duration::from_secs(60))
        .expect("a cycle line from hotswap watch")
}

#[test]
fn a_saved_change_is_served_without_a_failed_request() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let file = dir.path().join("word.wat");
    std::fs::write(&file, plugin("one")).unwrap();
    let (mut watcher, cycles) = watch(&file, &serve);
    let first = next(&cycles);
    assert_eq!(first["changed"], "start");
    assert_eq!(
        (first["slot"].as_str(), first["valid"].as_bool()),
        (Some("word"), Some(true))
    );
    assert_eq!(first["generation"], 1, "{first}");

    // Clients call the slot all along, counting what they get.
    let url = format!("http://{}/word", serve.data);
    let stop = Arc::new(AtomicBool::new(false));
    let (calls, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (url, stop, calls, failed) =
                (url.clone(), stop.clone(), calls.clone(), failed.clone());
            std::thread::spawn(move || {
                let agent = ureq::Agent::new_with_defaults();
                while !stop.load(Ordering::SeqCst) {
                    let ok = agent
                        .post(&url)
                        .send(b"")
                        .ok()
                        .and_then(|mut r| r.body_mut().read_to_string().ok())
                        .is_some_and(|body| body == "one" || body == "two");
                    calls.fetch_add(1, Ordering::SeqCst);
                    failed.fetch_add(u64::from(!ok), Ordering::SeqCst);
                }
            })
        })
        .collect();
    let served = || {
        ureq::post(&url)
            .send(b"")
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    };
    assert_eq!(served(), "one");

    // A real change: rebuilt, swapped, served.
    std::fs::write(&file, plugin("two")).unwrap();
    let swapped = next(&cycles);
    assert_eq!(swapped["changed"], "word.wat", "{swapped}");
    assert_eq!(swapped["generation"], 2, "{swapped}");
    assert!(swapped["swap_ms"].is_number(), "{swapped}");
    assert_eq!(served(), "two");

    // A change that does not build: the error, and `two` still served.
    std::fs::write(&file, "(module (func $oops").unwrap();
    let broken = next(&cycles);
    assert_eq!(broken["failed"], "build", "{broken}");
    assert!(
        broken["error"]
            .as_str()
            .unwrap()
            .contains("not valid WebAssembly text"),
        "{broken}"
    );
    assert_eq!(served(), "two");

    // One that builds but breaks the ABI: the validator's reason.
    std::fs::write(&file, plugin("two").replace("hs_process", "hs_proc")).unwrap();
    let invalid = next(&cycles);
    assert_eq!(invalid["failed"], "validate", "{invalid}");
    assert!(
        invalid["error"].as_str().unwrap().contains("hs_process"),
        "{invalid}"
    );
    assert_eq!(served(), "two");

    // Back to the deployed source: a cached build, the same digest, no swap.
    std::fs::write(&file, plugin("two")).unwrap();
    let same = next(&cycles);
    assert_eq!(
        (same["cached"].as_bool(), same["unchanged"].as_bool()),
        (Some(true), Some(true)),
        "{same}"
    );
    assert!(same.get("generation").is_none(), "{same}");

    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    let (calls, failed) = (calls.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert!(calls > 0);
    assert_eq!(
        failed, 0,
        "{failed} of {calls} requests failed during the cycles"
    );
}

#[test]
fn once_builds_deploys_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let file = dir.path().join("word.wat");
    std::fs::write(&file, plugin("once")).unwrap();
    let out = hotswap()
        .args(["watch", "--once", "--slot", "other", "--server"])
        .arg(serve.admin.to_string())
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("✓ start:") && text.contains("`other`"),
        "{text}"
    );
    let body = ureq::post(&format!("http://{}/other", serve.data))
        .send(b"")
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert_eq!(body, "once");

    // Not a source it knows: said, and a failure.
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "hello").unwrap();
    let out = hotswap()
        .args(["watch", "--once"])
        .arg(&notes)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a source hotswap watch knows"));
}
