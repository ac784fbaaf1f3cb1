//! A migrating deploy survives `kill -9` at any point: a real `hotswap
//! serve` is killed at random moments while `tally` v2 converts v1's state
//! and writers update it under load. After every restart the slot is
//! all-old (v1, text counts) or all-new (v2, migrated counts), and every
//! write a client saw acknowledged is there.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod process;

use process::{agent, post, Serve};

const KILLS: u32 = 100;
const WRITERS: usize = 2;
/// Names per writer: each writer owns its names, so its acknowledgements
/// order its writes.
const NAMES: usize = 4;

/// The count a reply reports, and whether v2 wrote it: v1 answers
/// `NAME seen N times`, v2 `NAME: visit N`.
fn parse(reply: &str) -> Option<(u64, bool)> {
    if let Some((_, rest)) = reply.rsplit_once(": visit ") {
        return Some((rest.parse().ok()?, true));
    }
    let (_, rest) = reply.rsplit_once(" seen ")?;
    Some((rest.strip_suffix(" times")?.parse().ok()?, false))
}

/// A small generator, seeded from the clock (the seed is printed, so a
/// failure can be replayed by fixing it).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn status_version(server: &Serve) -> String {
    let out = server.cli_ok(&["status", "tally", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let slot = match v.get("slots") {
        Some(slots) => slots[0].clone(),
        None => v,
    };
    slot["active"]["version"].as_str().unwrap().to_string()
}

#[test]
fn kill_9_during_migrating_deploys_leaves_all_old_or_all_new_and_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let config = files.path().join("hotswap.toml");
    // Every acknowledged write durable: what the test checks.
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\ndeploy_example = false\nkv_sync = \"always\"\n",
    )
    .unwrap();
    let (v1, v2) = (files.path().join("v1.wasm"), files.path().join("v2.wasm"));
    std::fs::write(&v1, hotswap_examples::TALLY_V1).unwrap();
    std::fs::write(&v2, hotswap_examples::TALLY_V2).unwrap();
    let (v1, v2) = (v1.to_str().unwrap(), v2.to_str().unwrap());
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);
    let names: Vec<String> = (0..WRITERS * NAMES)
        .map(|i| format!("w{}-{}", i / NAMES, i % NAMES))
        .collect();

    // Both versions stored and compiled once, so a round's deploy is only
    // the protocol (and the migration); and how long one takes, to aim the
    // kills at it.
    let server = Serve::start_with_config(dir.path(), &config);
    server.cli_ok(&["deploy", "tally", v1]);
    server.cli_ok(&["deploy", "tally", v2]);
    server.cli_ok(&["rollback", "tally"]);
    let started = std::time::Instant::now();
    server.cli_ok(&["deploy", "tally", v2]);
    let deploy_ms = (started.elapsed().as_millis() as u64).max(1);
    server.cli_ok(&["rollback", "tally"]);
    eprintln!("a migrating deploy takes {deploy_ms} ms from the CLI");
    server.kill();
    drop(server);
    // The highest count a client saw acknowledged, per name.
    let acked: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let (mut new, mut old) = (0, 0);
    for round in 0..KILLS {
        let server = Serve::start_with_config(dir.path(), &config);
        let url = format!("http://{}/tally", server.data);
        let client = agent(true);
        let version = status_version(&server);
        // All-old or all-new: the reply's shape matches the active version,
        // and every count is there (this call adds one).
        for name in &names {
            let answer = post(&client, &url, name).unwrap();
            assert_eq!(
                answer.status, 200,
                "round {round} ({version}): {name}: {}",
                answer.body
            );
            let (count, by_v2) = parse(&answer.body).unwrap();
            assert_eq!(
                by_v2,
                version == "2.0.0",
                "round {round}: {version} answered {}",
                answer.body
            );
            let mut acked = acked.lock().unwrap();
            let before = acked.get(name).copied().unwrap_or(0);
            assert!(
                count > before,
                "round {round} ({version}): {name} is at {} but {before} was acknowledged",
                count - 1
            );
            acked.insert(name.clone(), count);
        }
        match version.as_str() {
            "2.0.0" => new += 1,
            _ => old += 1,
        }
        if version == "2.0.0" {
            // Back to v1 (its snapshot, by design without v2's writes),
            // with no kill, then count from there.
            server.cli_ok(&["rollback", "tally"]);
            for name in &names {
                let answer = post(&client, &url, name).unwrap();
                let (count, by_v2) = parse(&answer.body).unwrap();
                assert!(!by_v2, "round {round}: still v2 after the rollback");
                acked.lock().unwrap().insert(name.clone(), count);
            }
        }

        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (stop, acked, url) = (stop.clone(), acked.clone(), url.clone());
                let mine: Vec<String> = names[w * NAMES..(w + 1) * NAMES].to_vec();
                std::thread::spawn(move || {
                    let client = agent(true);
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let name = &mine[i % mine.len()];
                        i += 1;
                        match post(&client, &url, name) {
                            Ok(a) if a.status == 200 => {
                                let (count, _) = parse(&a.body).unwrap();
                                acked.lock().unwrap().insert(name.clone(), count);
                            }
                            Ok(a) => panic!(
                                "a write failed while the server lived: {} {}",
                                a.status, a.body
                            ),
                            // The server was killed.
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();
        let mut deploy = process::hotswap()
            .args(["deploy", "tally", v2])
            .env("HOTSWAP_ADMIN", server.admin.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // A random point: before, during or after the migration (a deploy
        // under this load takes longer than the quiet one measured).
        std::thread::sleep(Duration::from_micros(rng.below(deploy_ms * 3000)));
        server.kill();
        stop.store(true, Ordering::Relaxed);
        let _ = deploy.wait();
        for w in writers {
            w.join().unwrap();
        }
    }
    eprintln!("after {KILLS} kills: {new} restarts found v2, {old} found v1");
    // Both outcomes happened, so the kills did land on both sides.
    assert!(new > 0 && old > 0, "v2 {new} times, v1 {old} times");
}
