//! `hotswap watch` against a running `hotswap serve`: a change to the
//! source changes what the server answers, while clients call it all along
//! and none fails; a broken change leaves the old revision serving.

mod process;

use std::ffi::OsStr;
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

/// A running `hotswap watch --json`, and its JSON lines as they come.
struct Watch {
    child: Child,
    lines: Receiver<serde_json::Value>,
}

impl Watch {
    /// `hotswap watch --json --debounce 50 ARGS`.
    fn start(args: &[&OsStr], envs: &[(&str, &OsStr)]) -> Watch {
        let mut child = hotswap()
            .args(["watch", "--json", "--debounce", "50"])
            .args(args)
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = channel();
        let out = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let _ = tx.send(serde_json::from_str(&line).expect("a JSON line"));
            }
        });
        Watch { child, lines }
    }

    /// Deploying to `serve`.
    fn to(serve: &Serve, source: &Path, envs: &[(&str, &OsStr)]) -> Watch {
        let admin = serve.admin.to_string();
        Watch::start(
            &[OsStr::new("--server"), admin.as_ref(), source.as_os_str()],
            envs,
        )
    }

    /// The next line (a cycle, or the server's addresses).
    fn next(&self) -> serde_json::Value {
        self.lines
            .recv_timeout(Duration::from_secs(120))
            .expect("a line from hotswap watch")
    }

    /// Ctrl-C, and its exit status.
    fn interrupt(mut self) -> std::process::ExitStatus {
        self.ctrl_c();
        self.child.wait().unwrap()
    }

    fn ctrl_c(&self) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
    }
}

impl Drop for Watch {
    /// Ctrl-C first, so that a test failing half-way still has its eBPF
    /// programs unloaded; a kill if that takes more than 10 s.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.ctrl_c();
            if !process::exits_within(self.child.id(), 10) {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }
}

/// Clients calling a slot all the while, counting calls and failures (a
/// failure is any error, or a body not among the expected ones).
struct Clients {
    stop: Arc<AtomicBool>,
    calls: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Clients {
    fn start(url: &str, expected: &'static [&'static str]) -> Clients {
        let stop = Arc::new(AtomicBool::new(false));
        let (calls, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let threads = (0..2)
            .map(|_| {
                let (url, stop, calls, failed) =
                    (url.to_string(), stop.clone(), calls.clone(), failed.clone());
                std::thread::spawn(move || {
                    let agent = ureq::Agent::new_with_defaults();
                    while !stop.load(Ordering::SeqCst) {
                        let ok = agent
                            .post(&url)
                            .send(b"")
                            .ok()
                            .and_then(|mut r| r.body_mut().read_to_string().ok())
                            .is_some_and(|body| expected.contains(&body.as_str()));
                        calls.fetch_add(1, Ordering::SeqCst);
                        failed.fetch_add(u64::from(!ok), Ordering::SeqCst);
                    }
                })
            })
            .collect();
        Clients {
            stop,
            calls,
            failed,
            threads,
        }
    }

    /// Stops them; asserts that they called, and that none failed.
    fn stop_and_check(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
        let (calls, failed) = (
            self.calls.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
        );
        assert!(calls > 0, "the clients made no call");
        assert_eq!(
            failed, 0,
            "{failed} of {calls} requests failed during the cycles"
        );
    }
}

/// What `POST url` answers.
fn served(url: &str) -> String {
    ureq::post(url)
        .send(b"")
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap()
}

#[test]
fn a_saved_change_is_served_without_a_failed_request() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let file = dir.path().join("word.wat");
    std::fs::write(&file, plugin("one")).unwrap();
    let watch = Watch::to(&serve, &file, &[]);
    let first = watch.next();
    assert_eq!(first["changed"], "start");
    assert_eq!(
        (first["slot"].as_str(), first["valid"].as_bool()),
        (Some("word"), Some(true))
    );
    assert_eq!(first["generation"], 1, "{first}");

    let url = format!("http://{}/word", serve.data);
    let clients = Clients::start(&url, &["one", "two"]);
    assert_eq!(served(&url), "one");

    // A real change: rebuilt, swapped, served.
    std::fs::write(&file, plugin("two")).unwrap();
    let swapped = watch.next();
    assert_eq!(swapped["changed"], "word.wat", "{swapped}");
    assert_eq!(swapped["generation"], 2, "{swapped}");
    assert!(swapped["swap_ms"].is_number(), "{swapped}");
    assert_eq!(served(&url), "two");

    // A change that does not build: the error, and `two` still served.
    std::fs::write(&file, "(module (func $oops").unwrap();
    let broken = watch.next();
    assert_eq!(broken["failed"], "build", "{broken}");
    assert!(
        broken["error"]
            .as_str()
            .unwrap()
            .contains("not valid WebAssembly text"),
        "{broken}"
    );
    assert_eq!(served(&url), "two");

    // One that builds but breaks the ABI: the validator's reason.
    std::fs::write(&file, plugin("two").replace("hs_process", "hs_proc")).unwrap();
    let invalid = watch.next();
    assert_eq!(invalid["failed"], "validate", "{invalid}");
    assert!(
        invalid["error"].as_str().unwrap().contains("hs_process"),
        "{invalid}"
    );
    assert_eq!(served(&url), "two");

    // Back to the deployed source: a cached build, the same digest, no swap.
    std::fs::write(&file, plugin("two")).unwrap();
    let same = watch.next();
    assert_eq!(
        (same["cached"].as_bool(), same["unchanged"].as_bool()),
        (Some(true), Some(true)),
        "{same}"
    );
    assert!(same.get("generation").is_none(), "{same}");
    clients.stop_and_check();
}

/// A plugin crate answering `word`, depending on the SDK in this repository.
fn write_crate(dir: &Path, word: &str) {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hotswap-guest");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"word\"\nversion = \"1.2.0\"\nedition = \"2021\"\n\n\
             [lib]\ncrate-type = [\"cdylib\"]\n\n\
             [dependencies]\nhotswap-guest = {{ path = {:?} }}\n\n[workspace]\n",
            sdk.canonicalize().unwrap()
        ),
    )
    .unwrap();
    write_lib(dir, word);
}

fn write_lib(dir: &Path, word: &str) {
    std::fs::write(
        dir.join("src/lib.rs"),
        format!(
            "fn process(_input: &[u8]) -> Result<Vec<u8>, String> {{\n    Ok(b\"{word}\".to_vec())\n}}\n\n\
             hotswap_guest::plugin!(process, name = \"word\");\n"
        ),
    )
    .unwrap();
}

#[test]
fn a_plugin_crate_is_rebuilt_and_served_without_a_failed_request() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let project = dir.path().join("word");
    write_crate(&project, "one");
    // One target directory for every run of this test, so the SDK is
    // built once, not once per run.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("watch-plugin-crate");
    let watch = Watch::to(
        &serve,
        &project,
        &[("CARGO_TARGET_DIR", target.as_os_str())],
    );
    let first = watch.next();
    assert_eq!(
        (first["slot"].as_str(), first["version"].as_str()),
        (Some("word"), Some("1.2.0")),
        "{first}"
    );
    assert_eq!(first["generation"], 1, "{first}");

    let url = format!("http://{}/word", serve.data);
    let clients = Clients::start(&url, &["one", "two"]);
    assert_eq!(served(&url), "one");

    write_lib(&project, "two");
    let swapped = watch.next();
    assert_eq!(swapped["changed"], "lib.rs", "{swapped}");
    assert_eq!(swapped["generation"], 2, "{swapped}");
    assert_eq!(served(&url), "two");

    // Rust that does not compile: rustc's own error, `two` still served.
    std::fs::write(project.join("src/lib.rs"), "fn process( {").unwrap();
    let broken = watch.next();
    assert_eq!(broken["failed"], "build", "{broken}");
    assert!(
        broken["error"].as_str().unwrap().contains("src/lib.rs"),
        "{broken}"
    );
    assert_eq!(served(&url), "two");

    // Fixed back to what is deployed: nothing built, nothing swapped.
    write_lib(&project, "two");
    let same = watch.next();
    assert_eq!(
        (same["cached"].as_bool(), same["unchanged"].as_bool()),
        (Some(true), Some(true)),
        "{same}"
    );
    clients.stop_and_check();
}

#[test]
fn without_a_server_it_starts_its_own_and_stops_it_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("word.wat");
    std::fs::write(&file, plugin("own")).unwrap();
    let watch = Watch::start(
        &[
            OsStr::new("--listen"),
            OsStr::new("127.0.0.1:0"),
            file.as_os_str(),
        ],
        &[],
    );
    let server = watch.next();
    let data = server["server"]["data"].as_str().expect("its address");
    let url = format!("http://{data}/word");
    let first = watch.next();
    assert_eq!(first["generation"], 1, "{first}");
    assert_eq!(served(&url), "own");

    std::fs::write(&file, plugin("own, changed")).unwrap();
    assert_eq!(watch.next()["generation"], 2);
    assert_eq!(served(&url), "own, changed");

    let status = watch.interrupt();
    assert!(status.success(), "{status}");
    assert!(
        ureq::post(&url).send(b"").is_err(),
        "its server is gone with it"
    );
}

/// The example tracer, counting `step` per syscall it is told to watch.
fn tracer(step: u64) -> String {
    let source = include_str!("../../../ebpf/tracer.bpf.c");
    let counting = "__sync_fetch_and_add(n, 1);";
    assert!(source.contains(counting), "the tracer counts as expected");
    source.replacen(counting, &format!("__sync_fetch_and_add(n, {step});"), 1)
}

#[test]
fn an_ebpf_source_change_replaces_the_program_and_keeps_its_maps() {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("watch-test-{}", std::process::id());
    let file = dir.path().join("counter.bpf.c");
    std::fs::write(&file, tracer(1)).unwrap();
    let watch = Watch::start(
        &[
            OsStr::new("--listen"),
            OsStr::new("127.0.0.1:0"),
            OsStr::new("--name"),
            OsStr::new(&name),
            OsStr::new("--attach"),
            OsStr::new("tracepoint:raw_syscalls:sys_enter"),
            OsStr::new("--program"),
            OsStr::new("trace_sys_enter"),
            file.as_os_str(),
        ],
        &[],
    );
    let admin = watch.next()["server"]["admin"]
        .as_str()
        .expect("its admin address")
        .to_string();
    let first = watch.next();
    let cli = |args: &[&str]| {
        hotswap()
            .args(args)
            .env("HOTSWAP_ADMIN", &admin)
            .output()
            .unwrap()
    };
    let list = cli(&["ebpf", "list"]);
    if !list.status.success() {
        let why = String::from_utf8_lossy(&list.stderr).to_string();
        hotswap_testkit::cannot_run_here(why);
        return;
    }
    assert_eq!(
        (first["tier"].as_str(), first["attached"].as_bool()),
        (Some("ebpf"), Some(true)),
        "{first}"
    );
    assert_eq!(first["revision"], 1, "{first}");

    // Its policy and its counts: this thread's getppid calls, one each.
    let tid = unsafe { libc::gettid() }.to_string();
    let nr = libc::SYS_getppid.to_string();
    let set = cli(&["ebpf", "map", "set", &name, "watch", &tid, &nr]);
    assert!(set.status.success(), "{set:?}");
    let count = || {
        let out = cli(&["ebpf", "map", "get", &name, "counts", &tid, "--json"]);
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["value"]
            .as_u64()
            .unwrap()
    };
    let getppid = |n| {
        for _ in 0..n {
            unsafe { libc::getppid() };
        }
    };
    getppid(100);
    assert_eq!(count(), 100);

    // The new source counts 1000 a call: replaced, with the policy and the
    // count kept (a fresh map would count nothing: no policy).
    std::fs::write(&file, tracer(1000)).unwrap();
    let replaced = watch.next();
    assert_eq!(
        (
            replaced["attached"].as_bool(),
            replaced["revision"].as_u64()
        ),
        (Some(false), Some(2)),
        "{replaced}"
    );
    assert!(
        replaced["maps"].as_array().unwrap().len() == 3,
        "{replaced}"
    );
    getppid(5);
    assert_eq!(count(), 100 + 5 * 1000);

    // One the verifier refuses (a map value read without a null check):
    // a validation failure with the verifier's reason; the last one runs on.
    let unchecked = tracer(1000).replace("if (!want || (*want", "if ((*want");
    std::fs::write(&file, unchecked).unwrap();
    let refused = watch.next();
    assert_eq!(refused["failed"], "validate", "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("verifier"),
        "{refused}"
    );
    getppid(1);
    assert_eq!(count(), 6100);

    // Ctrl-C unloads what it loaded.
    let status = watch.interrupt();
    assert!(status.success(), "{status}");
    assert!(
        !Path::new("/sys/fs/bpf/hotswap-watch").join(&name).exists(),
        "its pins are gone"
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

    // A C plugin: clang to wasm32 with the SDK's header, wherever it is.
    let upper = dir.path().join("upper.c");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/plugins/c-upper/upper.c"),
        &upper,
    )
    .unwrap();
    let out = hotswap()
        .args(["watch", "--once", "--server"])
        .arg(serve.admin.to_string())
        .arg(&upper)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let body = ureq::post(&format!("http://{}/c-upper", serve.data))
        .send(b"shout")
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert_eq!(body, "C: SHOUT");

    // A cycle that fails: exit code 1.
    std::fs::write(&file, "(module (func $oops").unwrap();
    let out = hotswap()
        .args(["watch", "--once", "--server"])
        .arg(serve.admin.to_string())
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("✗ start: build failed"));

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
