//! `hotswap serve` as a process, driven by the CLI clients, and killed with
//! SIGKILL in the middle of deploys.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::mpsc::channel;

mod process;

use process::{hotswap, Serve};

/// Starts `hotswap serve` on free ports, with the store under `dir`.
fn serve(dir: &Path) -> Serve {
    Serve::start(dir, &[])
}

/// Fails the test, showing the command's stderr, unless it succeeded.
fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn call(server: &Serve, slot: &str, input: &str) -> (u16, String) {
    let answer = server.call(slot, input);
    (answer.status, answer.body)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn the_cli_deploys_shows_rolls_back_and_lists_events() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let server = serve(data.path());
    assert_eq!(call(&server, "greet", "cli"), (200, "hello, cli!".into()));

    let v2 = write(files.path(), "v2.wasm", hotswap_examples::GREET_V2);
    let out = server.cli(&["deploy", "greet", &v2, "--json"]);
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["revision"]["version"], "2.0.0");
    assert_eq!(
        call(&server, "greet", "cli"),
        (200, "HELLO, CLI!! (v2)".into())
    );

    let out = server.cli(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let slot = &v["slots"][0];
    assert_eq!(slot["name"], "greet");
    assert_eq!(slot["active"]["version"], "2.0.0");
    assert_eq!(slot["active"]["state"], "active");
    assert_eq!(slot["previous"]["version"], "1.0.0");

    let out = server.cli(&["rollback", "greet", "--reason", "v2 shouts"]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("rolled back to 1.0.0"));
    let out = server.cli(&["events"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("rolled-back 2.0.0: v2 shouts"), "{text}");

    // A canary, its weight, and its promotion.
    let out = server.cli(&["deploy", "greet", &v2, "--canary", "30"]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("as a canary taking 30% of calls"));
    let out = server.cli(&["canary", "greet", "--weight", "60"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("now takes 60% of calls"));
    let out = server.cli(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["slots"][0]["canary"]["weight"], 60);
    assert_eq!(v["slots"][0]["active"]["weight"], 40);
    let out = server.cli(&["status"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("2.0.0 at 60%"));
    let out = server.cli(&["promote", "greet"]);
    assert_ok(&out);
    assert_eq!(
        call(&server, "greet", "cli"),
        (200, "HELLO, CLI!! (v2)".into())
    );
    let out = server.cli(&["canary", "greet", "--weight", "101"]);
    assert_eq!(out.status.code(), Some(2), "out of range is a usage error");

    let junk = write(files.path(), "junk.wasm", b"junk");
    let out = server.cli(&["deploy", "greet", &junk]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused (422)"));
    let out = hotswap()
        .args(["status", "--admin", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is `hotswap serve` running?"));
}

/// Follows the server's event stream and reports when `transition` happens
/// to `slot`.
fn when(server: &Serve, slot: &str, transition: &str) -> std::sync::mpsc::Receiver<()> {
    let (tx, rx) = channel();
    let url = format!("http://{}/v1/events?follow=true", server.admin);
    let (slot, transition) = (slot.to_string(), transition.to_string());
    let (ready_tx, ready_rx) = channel();
    std::thread::spawn(move || {
        let Ok(mut r) = ureq::get(&url).call() else {
            return;
        };
        let _ = ready_tx.send(());
        let reader = BufReader::new(r.body_mut().as_reader());
        for line in reader.lines().map_while(Result::ok) {
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            let Ok(e) = serde_json::from_str::<serde_json::Value>(data.trim()) else {
                continue;
            };
            if e["slot"] == slot.as_str() && e["transition"] == transition.as_str() {
                let _ = tx.send(());
                return;
            }
        }
    });
    ready_rx.recv().expect("subscribed to the event stream");
    rx
}

#[test]
fn kill_9_at_any_phase_of_a_deploy_leaves_old_or_new_never_broken() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    // Each round deploys a never-compiled variant, alternating v1 and v2
    // behaviour, and kills the server when the deploy reaches a phase.
    for (round, phase) in ["staged", "validated", "prepared", "activated", "draining"]
        .into_iter()
        .enumerate()
    {
        let server = serve(data.path());
        let (status, before) = call(&server, "greet", "x");
        assert_eq!(
            status, 200,
            "round {round}: not serving after restart: {before}"
        );
        let base = if round % 2 == 0 {
            hotswap_examples::GREET_V2
        } else {
            hotswap_examples::GREET_V1
        };
        let next = write(
            files.path(),
            &format!("r{round}.wasm"),
            &hotswap_examples::variant(base, round as u32),
        );
        let reached = when(&server, "greet", phase);
        let mut deploy = hotswap()
            .args(["deploy", "greet", &next])
            .env("HOTSWAP_ADMIN", server.admin.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        reached
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("round {round}: the deploy never reached {phase}"));
        server.kill(); // SIGKILL, mid-deploy
        let _ = deploy.wait();
        drop(server);

        let server = serve(data.path());
        let (status, after) = call(&server, "greet", "x");
        assert_eq!(
            status, 200,
            "round {round} ({phase}): broken after the crash: {after}"
        );
        assert!(
            after == "hello, x!" || after == "HELLO, X!! (v2)",
            "round {round} ({phase}): neither version answered: {after}"
        );
    }

    // A deploy that was acknowledged survives a SIGKILL right after it.
    let server = serve(data.path());
    let (_, before) = call(&server, "greet", "x");
    let (base, expected) = if before == "hello, x!" {
        (hotswap_examples::GREET_V2, "HELLO, X!! (v2)")
    } else {
        (hotswap_examples::GREET_V1, "hello, x!")
    };
    let last = write(
        files.path(),
        "last.wasm",
        &hotswap_examples::variant(base, 99),
    );
    let out = server.cli(&["deploy", "greet", &last]);
    assert_ok(&out);
    server.kill();
    drop(server);
    let server = serve(data.path());
    assert_eq!(call(&server, "greet", "x"), (200, expected.to_string()));
}

#[test]
fn keygen_sign_and_a_signed_deploy_through_the_cli() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let key = files.path().join("k.key");
    let out = hotswap()
        .args(["keygen", "--json", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let public = v["public_key"].as_str().unwrap().to_string();
    let again = hotswap()
        .args(["keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1), "keygen overwrote a key");

    let module = write(files.path(), "v2.wasm", hotswap_examples::GREET_V2);
    let out = hotswap()
        .args(["sign", &module, "--key"])
        .arg(&key)
        .output()
        .unwrap();
    assert_ok(&out);
    let sig = format!("{module}.sig");

    let config = files.path().join("hotswap.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\ndata_dir = {:?}\ntrusted_keys = [\"{public}\"]\nrequire_signature = true\n",
            data.path()
        ),
    )
    .unwrap();
    let server = Serve::start_with_config(data.path(), &config);
    let out = server.cli(&["deploy", "greet", &module]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("requires signed modules"));
    let out = server.cli(&["deploy", "greet", &module, "--signature", &sig]);
    assert_ok(&out);
    assert_eq!(call(&server, "greet", "k"), (200, "HELLO, K!! (v2)".into()));
}
