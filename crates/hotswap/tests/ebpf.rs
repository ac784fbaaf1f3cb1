//! The eBPF tier through the real binary: `hotswap ebpf` against a running
//! `hotswap serve`, its map state across a restart of the server, its
//! events, its counters on `/metrics`, and its errors.

mod process;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use process::{hotswap, Serve};
use serde_json::Value;

/// A config with a pin root of its own; the pins are removed on drop.
struct Setup {
    dir: tempfile::TempDir,
    pins: PathBuf,
}

impl Setup {
    fn new(enabled: bool) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pins = PathBuf::from(format!(
            "/sys/fs/bpf/hotswap-cli-test-{}-{n}",
            std::process::id()
        ));
        std::fs::write(
            dir.path().join("config.toml"),
            format!(
                "listen = \"127.0.0.1:0\"\ndeploy_example = false\n[ebpf]\nenabled = {enabled}\npin_root = \"{}\"\n",
                pins.display()
            ),
        )
        .unwrap();
        Setup { dir, pins }
    }

    fn serve(&self) -> Serve {
        Serve::start_with_config(self.dir.path(), &self.dir.path().join("config.toml"))
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.pins);
    }
}

const HOOK: &str = "tracepoint:raw_syscalls:sys_enter";

/// Loads the example tracer as `name` on [`HOOK`].
fn load_tracer(serve: &Serve, name: &str) {
    serve.cli_ok(&["ebpf", "load", name, "example:tracer-v1", "--attach", HOOK]);
}

/// A server with the eBPF tier on, when this machine can run it.
fn with_ebpf() -> Option<(Setup, Serve)> {
    let setup = Setup::new(true);
    let serve = setup.serve();
    available(&serve).then_some((setup, serve))
}

/// Whether the server can load eBPF programs; says why not and skips
/// (fails under `CI=true`) when it cannot.
fn available(serve: &Serve) -> bool {
    let out = serve.cli(&["ebpf", "list"]);
    if out.status.success() {
        return true;
    }
    let why = String::from_utf8_lossy(&out.stderr).to_string();
    hotswap_testkit::cannot_run_here(why);
    false
}

fn json(out: std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

fn getppid(n: u64) {
    for _ in 0..n {
        // SAFETY: getppid has no preconditions.
        unsafe { libc::getppid() };
    }
}

fn tid() -> String {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }.to_string()
}

fn pins_of(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn map_state_and_the_program_survive_a_restart_of_the_server() {
    let Some((setup, serve)) = with_ebpf() else {
        return;
    };
    let placed = json(serve.cli_ok(&[
        "ebpf",
        "load",
        "tracer",
        "example:tracer-v1",
        "--attach",
        HOOK,
        "--json",
    ]));
    assert_eq!(placed["attached"], true);
    assert_eq!(placed["program"]["revision"], 1);
    let tid = tid();
    let getppid_nr = libc::SYS_getppid.to_string();
    serve.cli_ok(&["ebpf", "map", "set", "tracer", "watch", &tid, &getppid_nr]);
    getppid(300);
    let entry = json(serve.cli_ok(&["ebpf", "map", "get", "tracer", "counts", &tid, "--json"]));
    assert_eq!(entry["value"], 300);

    // The server stops; the program keeps counting without it.
    drop(serve);
    getppid(20);
    let serve = setup.serve();
    let list = json(serve.cli_ok(&["ebpf", "list", "--json"]));
    let program = &list["programs"][0];
    assert_eq!(
        (program["name"].as_str(), program["state"].as_str()),
        (Some("tracer"), Some("running"))
    );
    assert_eq!(program["hook"], HOOK);
    assert_eq!(program["revision"], 1);
    let entry = json(serve.cli_ok(&["ebpf", "map", "get", "tracer", "counts", &tid, "--json"]));
    assert_eq!(entry["value"], 320, "counted while no server ran");

    // A replacement by the new server keeps the maps, and its hook.
    let placed = json(serve.cli_ok(&["ebpf", "replace", "tracer", "example:tracer-v2", "--json"]));
    assert_eq!(placed["attached"], false);
    assert_eq!(placed["program"]["revision"], 2);
    getppid(5);
    let entry = json(serve.cli_ok(&["ebpf", "map", "get", "tracer", "counts", &tid, "--json"]));
    assert_eq!(entry["value"], 325);

    // Counters on /metrics.
    let metrics = ureq::get(&format!("http://{}/metrics", serve.admin))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let line =
        format!("hotswap_ebpf_map_value{{program=\"tracer\",map=\"counts\",key=\"{tid}\"}} 325");
    assert!(metrics.contains(&line), "{line} not in:\n{metrics}");
    assert!(metrics.contains("hotswap_ebpf_missed{program=\"tracer\"} 0"));
    // Placements count in the same swap metrics as plugin swaps (the first
    // load, carried over the clean restart, and the replacement)...
    let swaps = "hotswap_swaps_total{slot=\"ebpf/tracer\",result=\"activated\"} 2";
    assert!(metrics.contains(swaps), "{swaps} not in:\n{metrics}");

    // ...and are in the same event log: the first load, one `restored`
    // by the new server (no load re-enacted), the replacement.
    let events = json(serve.cli_ok(&["events", "--json"]));
    let tracer: Vec<(String, u64)> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["slot"] == "ebpf/tracer")
        .map(|e| {
            (
                e["transition"].as_str().unwrap().to_string(),
                e["generation"].as_u64().unwrap(),
            )
        })
        .collect();
    let want = [("activated", 1), ("restored", 1), ("activated", 2)];
    let want: Vec<(String, u64)> = want.iter().map(|(t, g)| (t.to_string(), *g)).collect();
    assert_eq!(tracer, want);

    let out = serve.cli_ok(&["ebpf", "unload", "tracer"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("unloaded `tracer`"));
    assert!(
        pins_of(&setup.pins).is_empty(),
        "left behind: {:?}",
        pins_of(&setup.pins)
    );
    let list = json(serve.cli_ok(&["ebpf", "list", "--json"]));
    assert_eq!(list["programs"], serde_json::json!([]));
}

#[test]
fn events_stream_as_json_lines() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc};

    let Some((_setup, serve)) = with_ebpf() else {
        return;
    };
    load_tracer(&serve, "tracer");
    // A thread of its own makes the calls, from the moment it is watched
    // until three events arrived (calls before the stream began are not news).
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let caller = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            tx.send(tid()).unwrap();
            while !stop.load(Ordering::Relaxed) {
                getppid(1);
            }
        })
    };
    let caller_tid = rx.recv().unwrap();
    let mut events = hotswap()
        .args(["ebpf", "events", "tracer", "--json"])
        .env("HOTSWAP_ADMIN", serve.admin.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    serve.cli_ok(&[
        "ebpf",
        "map",
        "set",
        "tracer",
        "watch",
        &caller_tid,
        &libc::SYS_getppid.to_string(),
    ]);
    let lines = BufReader::new(events.stdout.take().unwrap()).lines();
    // The caller makes calls faster than a client reads them: `{"lagged": N}`
    // lines say how many this client missed, between the events.
    let seen: Vec<Value> = lines
        .map(|l| serde_json::from_str::<Value>(&l.unwrap()).unwrap())
        .filter(|v| v.get("lagged").is_none())
        .take(3)
        .collect();
    stop.store(true, Ordering::Relaxed);
    caller.join().unwrap();
    let _ = events.kill();
    let _ = events.wait();
    let want = serde_json::json!({
        "pid": caller_tid.parse::<u64>().unwrap(),
        "version": 1,
        "syscall": libc::SYS_getppid,
    });
    assert_eq!(seen, [want.clone(), want.clone(), want]);
}

#[test]
fn bad_requests_get_clear_errors_and_change_nothing() {
    let Some((setup, serve)) = with_ebpf() else {
        return;
    };
    let fails = |args: &[&str], says: &str| {
        let out = serve.cli(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: `{says}` not in: {err}");
    };
    let garbage = setup.dir.path().join("garbage.o");
    std::fs::write(&garbage, b"\x7fELF but not really an object").unwrap();
    fails(
        &[
            "ebpf",
            "load",
            "t",
            garbage.to_str().unwrap(),
            "--attach",
            HOOK,
        ],
        "not a usable BPF object",
    );
    fails(
        &["ebpf", "load", "t", "example:nope", "--attach", HOOK],
        "no example `nope`",
    );
    fails(
        &[
            "ebpf",
            "load",
            "t",
            "example:tracer-v1",
            "--attach",
            "kprobe:x",
        ],
        "hook",
    );
    fails(
        &[
            "ebpf",
            "load",
            "t",
            "example:xdp-filter-v1",
            "--attach",
            HOOK,
        ],
        "needs a tracepoint program",
    );
    fails(
        &["ebpf", "replace", "t", "example:tracer-v1"],
        "no eBPF program named `t`",
    );
    fails(
        &[
            "ebpf",
            "load",
            "../t",
            "example:tracer-v1",
            "--attach",
            HOOK,
        ],
        "not a program name",
    );
    load_tracer(&serve, "t");
    fails(
        &["ebpf", "load", "t", "example:tracer-v1", "--attach", HOOK],
        "already loaded",
    );
    fails(
        &["ebpf", "replace", "t", "example:xdp-filter-v1"],
        "needs a tracepoint program",
    );
    fails(
        &["ebpf", "map", "set", "t", "watch", "ten", "1"],
        "expected u32",
    );
    fails(&["ebpf", "map", "get", "t", "nope", "1"], "no such map");
    fails(
        &["ebpf", "map", "delete", "t", "watch", "1.2.3.4"],
        "expected u32",
    );
    // Still the first revision, attached, and its maps untouched.
    let list = json(serve.cli_ok(&["ebpf", "list", "t", "--json"]));
    assert_eq!(
        (list["revision"].as_u64(), list["state"].as_str()),
        (Some(1), Some("running"))
    );
    let dump = json(serve.cli_ok(&["ebpf", "map", "dump", "t", "watch", "--json"]));
    assert_eq!(dump["entries"], serde_json::json!([]));
    serve.cli_ok(&["ebpf", "unload", "t"]);
}

#[test]
fn a_server_without_the_ebpf_tier_says_why() {
    let setup = Setup::new(false);
    let serve = setup.serve();
    let out = serve.cli(&["ebpf", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("(503)") && err.contains("eBPF is not available here"),
        "{err}"
    );
    assert!(err.contains("[ebpf] enabled = false"), "{err}");
}
