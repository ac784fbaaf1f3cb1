//! The process tier through the real binary: `hotswap serve` upgrading
//! itself under load, draining a long request, surviving bad new binaries,
//! reloading its config, and keeping its plugins, kv and counters.

mod process;

use std::io::{Read, Write};
use std::net::TcpStream;

use process::{agent, post, Load, Serve};

#[test]
fn twenty_upgrades_under_load_refuse_nothing_and_fail_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let load = Load::start(format!("http://{}/greet", serve.data), 4);
    load.wait_for_generation(1);
    let mut pids = vec![serve.pid()];
    for n in 2..=21u64 {
        let report = serve.upgrade();
        assert_eq!(report["generation"], n);
        assert_eq!(report["old_pid"], *pids.last().unwrap());
        let pid = serve.pid();
        assert_eq!(report["new_pid"], pid, "the pid file names the new process");
        assert!(!pids.contains(&pid));
        pids.push(pid);
        // Some client was answered by the new process before the next upgrade.
        load.wait_for_generation(n);
    }
    let tally = load.stop();
    eprintln!("20 upgrades under load: {tally:?}");
    assert_eq!(tally.refused, 0, "{tally:?}");
    assert_eq!(tally.failed, 0, "{tally:?}");
    assert_eq!(
        tally.went_back, 0,
        "a client was answered by an older process after a newer one: {tally:?}"
    );
    assert!(tally.ok >= 20, "{tally:?}");
    // Every old process exits once it has answered what it had.
    for pid in &pids[..pids.len() - 1] {
        assert!(process::exits_within(*pid, 30), "pid {pid} still runs");
    }
}

#[test]
fn a_long_request_in_flight_completes_on_the_old_process() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    // Headers and half the body now; the rest once the upgrade is draining.
    let mut conn = TcpStream::connect(serve.data).unwrap();
    write!(
        conn,
        "POST /greet HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nslow-"
    )
    .unwrap();
    let upgrading = std::thread::scope(|s| {
        let upgrade = s.spawn(|| serve.upgrade());
        serve.wait_for_line("is ready after");
        conn.write_all(b"reqst").unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap(); // the old process closes it
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("x-hotswap-process: 1\r\n"), "{answer}");
        assert!(answer.contains("connection: close\r\n"), "{answer}");
        assert!(answer.ends_with("hello, slow-reqst!"), "{answer}");
        upgrade.join().unwrap()
    });
    assert_eq!(upgrading["generation"], 2);
    let a = serve.call("greet", "after");
    assert_eq!((a.status, a.processes), (200, vec![2]));
}

#[test]
fn a_new_binary_that_exits_or_never_gets_ready_leaves_the_old_one_serving() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let script = |name: &str, body: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    };
    let exits = script("exits", "exit 7");
    let hangs = script("hangs", "exec sleep 600");
    let config = dir.path().join("hotswap.toml");
    let write_config = |binary: &std::path::Path| {
        std::fs::write(
            &config,
            format!(
                "[upgrade]\nbinary = {:?}\nready_timeout_ms = 500\n",
                binary.to_str().unwrap()
            ),
        )
        .unwrap();
    };
    write_config(&exits);
    let serve = Serve::start(dir.path(), &["--config", config.to_str().unwrap()]);
    let pid = serve.pid();
    let load = Load::start(format!("http://{}/greet", serve.data), 4);
    load.wait_for_generation(1);

    let err = serve.upgrade_fails();
    assert!(
        err.contains("exited with status 7 before it was ready"),
        "{err}"
    );
    assert!(err.contains("this process serves on"), "{err}");

    write_config(&hangs);
    serve.cli_ok(&["reload"]);
    let err = serve.upgrade_fails();
    assert!(
        err.contains("did not become ready within 500ms; it was killed"),
        "{err}"
    );

    let tally = load.stop();
    assert_eq!((tally.failed, tally.refused), (0, 0), "{tally:?}");
    assert_eq!(serve.pid(), pid, "the old process still serves");
    let a = serve.call("greet", "still");
    assert_eq!((a.status, a.processes), (200, vec![1]));
}

#[test]
fn plugins_their_kv_and_the_counters_are_the_same_after_an_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let files = tempfile::tempdir().unwrap();
    let module = |name: &str, bytes: &[u8]| {
        let path = files.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    };
    let counter = module("counter.wasm", hotswap_examples::COUNTER);
    let v2 = module("v2.wasm", hotswap_examples::GREET_V2);
    for args in [["deploy", "count", &counter], ["deploy", "greet", &v2]] {
        serve.cli_ok(&args);
    }
    let agent = agent(true);
    let count = |n: &str| {
        let a = post(&agent, &format!("http://{}/count", serve.data), "").unwrap();
        assert_eq!(a.status, 200);
        assert_eq!(a.body, n);
    };
    for n in ["1", "2", "3"] {
        count(n);
    }
    // Exactly, generations included: an upgrade restores, it does not
    // renumber.
    let status = |serve: &Serve| status_json(serve);
    let (before, counted) = (status(&serve), counters(&serve));
    assert!(
        counted
            .iter()
            .any(|l| l.starts_with("hotswap_calls_total{slot=\"count\"") && l.ends_with(" 3")),
        "{counted:?}"
    );

    serve.upgrade();
    assert_eq!(status(&serve), before, "the same revisions serve");
    assert_eq!(counters(&serve), counted, "the counters carried over");
    count("4"); // the kv data too
    let a = post(&agent, &format!("http://{}/greet", serve.data), "x").unwrap();
    assert_eq!((a.body.as_str(), a.processes[0]), ("HELLO, X!! (v2)", 2));
    // And the previous revision is still there to roll back to.
    serve.cli_ok(&["rollback", "greet"]);
    let a = post(&agent, &format!("http://{}/greet", serve.data), "x").unwrap();
    assert_eq!(a.body, "hello, x!");
}

/// `hotswap status --json`, with draining revisions waited out (a state of
/// this moment, not of the books).
fn status_json(serve: &Serve) -> serde_json::Value {
    loop {
        let out = serve.cli_ok(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if !v.to_string().contains("\"draining\"") {
            return v;
        }
        serve.cli_ok(&["events", "--json"]); // a round trip: let it drain
    }
}

/// Every counter series on `/metrics` (calls, swaps, rollbacks, ...), sorted.
fn counters(serve: &Serve) -> Vec<String> {
    let url = format!("http://{}/metrics", serve.admin);
    let text = ureq::get(&url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.contains("_total{"))
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

/// `hotswap events --json`: the event log.
fn events_json(serve: &Serve) -> Vec<serde_json::Value> {
    let out = serve.cli_ok(&["events", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["events"].as_array().unwrap().clone()
}

/// The history a user made (v2, rolled back, v2 again as a canary at 30 %)
/// comes back exactly after a restart and after an upgrade: the same status
/// JSON with the same generations, the same events, and one `restored`
/// event per slot each time, no history re-enacted.
#[test]
fn a_restart_and_an_upgrade_restore_slots_and_history_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let v2 = files.path().join("v2.wasm");
    std::fs::write(&v2, hotswap_examples::GREET_V2).unwrap();
    let v2 = v2.to_str().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    serve.cli_ok(&["deploy", "greet", v2]);
    serve.cli_ok(&["rollback", "greet", "--reason", "v2 shouts"]);
    serve.cli_ok(&["deploy", "greet", v2, "--canary", "30"]);
    let answered = serve.call("greet", "x");
    assert_eq!(answered.status, 200);
    let (before, history) = (status_json(&serve), events_json(&serve));
    let greet = &before["slots"][0];
    assert_eq!(greet["active"]["generation"], 3);
    assert_eq!(greet["previous"]["state"], "rolled-back");
    assert_eq!(greet["canary"]["weight"], 30);
    assert_eq!(greet["canary"]["generation"], 4);

    let expect_restored = |events: &[serde_json::Value], from: usize| {
        let new = &events[from..];
        assert_eq!(new.len(), 1, "one new event, `restored`: {new:?}");
        assert_eq!(new[0]["transition"], "restored");
        assert_eq!(new[0]["slot"], "greet");
        assert_eq!(new[0]["generation"], 3);
    };

    // A restart (SIGTERM, then a new process on the same data dir).
    let counted = counters(&serve);
    assert!(
        counted
            .iter()
            .any(|l| l.starts_with("hotswap_calls_total{")),
        "{counted:?}"
    );
    drop(serve);
    let serve = Serve::start(dir.path(), &[]);
    assert_eq!(status_json(&serve), before, "a restart restores, exactly");
    assert_eq!(counters(&serve), counted, "the counters carry on");
    let after = events_json(&serve);
    assert_eq!(after[..history.len()], history[..], "the log is the log");
    expect_restored(&after, history.len());
    let a = serve.call("greet", "x");
    assert_eq!(a.status, 200);

    // An upgrade.
    let history = events_json(&serve);
    serve.upgrade();
    assert_eq!(status_json(&serve), before, "an upgrade restores, exactly");
    let after = events_json(&serve);
    assert_eq!(after[..history.len()], history[..]);
    expect_restored(&after, history.len());

    // A rollback meant for the active revision, sent while a canary is on
    // trial (which a rollback would take out), is refused with a clear
    // message; the slot is unchanged.
    let v1 = before["slots"][0]["active"]["digest"].as_str().unwrap();
    let out = serve.cli(&["rollback", "greet", "--expect", v1]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("changed since you looked"), "{err}");
    assert_eq!(status_json(&serve), before);
}

#[test]
fn sighup_applies_a_valid_config_in_place_and_rejects_a_broken_one() {
    use rustix::process::{kill_process, Pid, Signal};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hotswap.toml");
    std::fs::write(&config, "[[routes]]\npath = \"/hello\"\nslot = \"greet\"\n").unwrap();
    let serve = Serve::start(dir.path(), &["--config", config.to_str().unwrap()]);
    let hup = || kill_process(Pid::from_raw(serve.pid() as i32).unwrap(), Signal::HUP).unwrap();
    let load = Load::start(format!("http://{}/hello", serve.data), 4);
    load.wait_for_generation(1);
    let hi = format!("http://{}/hi", serve.data);
    assert_eq!(post(&agent(true), &hi, "x").unwrap().status, 404);

    // A valid change: a second route and new canary settings.
    std::fs::write(
        &config,
        "[[routes]]\npath = \"/hello\"\nslot = \"greet\"\n\n[[routes]]\npath = \"/hi\"\nslot = \"greet\"\n\n[canary]\nmin_calls = 50\n",
    )
    .unwrap();
    hup();
    let line = serve.wait_for_line("config reload");
    assert!(
        line.contains("config reloaded: routes, canary changed"),
        "{line}"
    );
    let a = post(&agent(true), &hi, "x").unwrap();
    assert_eq!((a.status, a.body.as_str()), (200, "hello, x!"));

    // A dry run shows the plan and applies nothing: the real reload after
    // it still has the change to make.
    let both = "[[routes]]\npath = \"/hello\"\nslot = \"greet\"\n\n[[routes]]\npath = \"/hi\"\nslot = \"greet\"\n";
    std::fs::write(&config, format!("{both}\n[canary]\nmin_calls = 60\n")).unwrap();
    let out = serve.cli_ok(&["reload", "--dry-run", "--json"]);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["changed"], serde_json::json!(["canary"]), "{plan}");
    let out = serve.cli_ok(&["reload", "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("a reload would change: canary"), "{text}");
    hup();
    let line = serve.wait_for_line("config reload");
    assert!(line.contains("config reloaded: canary changed"), "{line}");

    // Broken: not TOML, then TOML that does not validate. Nothing changes.
    for broken in [
        "[[routes]\npath = ",
        "[[routes]]\npath = \"no-slash\"\nslot = \"greet\"\n",
        // Valid, but more memory than the engine was sized for at start.
        "[limits]\nmemory_cap_mib = 128\n",
    ] {
        std::fs::write(&config, broken).unwrap();
        hup();
        let line = serve.wait_for_line("config reload");
        assert!(
            line.contains("config reload rejected, the old config stays"),
            "{line}"
        );
        assert_eq!(post(&agent(true), &hi, "x").unwrap().status, 200);
    }
    let out = serve.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("limits: invalid WASM settings: memory_cap can only rise above 64 MiB"));

    let tally = load.stop();
    assert_eq!((tally.failed, tally.refused), (0, 0), "{tally:?}");
    assert!(tally.ok > 0);
}

#[test]
fn a_new_listen_address_is_opened_before_the_old_one_closes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hotswap.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\n").unwrap();
    // No --listen flag: the config file decides, so a reload can move it.
    let serve = Serve::start_with_config(dir.path(), &config);
    let old = serve.data;
    // A connection to the old address, open across the change.
    let mut open = TcpStream::connect(old).unwrap();
    let ask = |conn: &mut TcpStream| {
        write!(
            conn,
            "POST /greet HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\nopen"
        )
        .unwrap();
        let mut buf = [0u8; 512];
        let n = conn.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(ask(&mut open).ends_with("hello, open!"));
    // A free port for the new address.
    let new = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    std::fs::write(&config, format!("listen = \"{new}\"\n")).unwrap();
    let out = serve.cli_ok(&["reload", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["changed"], serde_json::json!(["listen"]));
    let a = post(&agent(false), &format!("http://{new}/greet"), "moved").unwrap();
    assert_eq!((a.status, a.body.as_str()), (200, "hello, moved!"));
    let refused = TcpStream::connect(old).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    // The connection made before the change still works.
    let answer = ask(&mut open);
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("hello, open!"),
        "{answer}"
    );
    // The next process inherits the new listener.
    serve.upgrade();
    let a = post(&agent(false), &format!("http://{new}/greet"), "again").unwrap();
    assert_eq!((a.status, a.processes), (200, vec![2]));
}

#[test]
fn a_new_process_killed_before_it_serves_gives_everything_back() {
    use rustix::process::{kill_process, Pid, Signal};
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let files = tempfile::tempdir().unwrap();
    let counter = files.path().join("counter.wasm");
    std::fs::write(&counter, hotswap_examples::COUNTER).unwrap();
    serve.cli_ok(&["deploy", "count", counter.to_str().unwrap()]);

    // A request held open keeps the old process draining while the new
    // one, ready, waits for the store; then the new one dies.
    let mut conn = TcpStream::connect(serve.data).unwrap();
    write!(
        conn,
        "POST /count HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nx"
    )
    .unwrap();
    let err = std::thread::scope(|s| {
        let upgrade = s.spawn(|| serve.upgrade_fails());
        let line = serve.wait_for_line("is ready after");
        let child: i32 = line
            .split("new process ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        kill_process(Pid::from_raw(child).unwrap(), Signal::KILL).unwrap();
        conn.write_all(b"y").unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("\r\n\r\n1"),
            "{answer}"
        );
        upgrade.join().unwrap()
    });
    assert!(
        err.contains("by signal 9 before it took over; this process serves on"),
        "{err}"
    );

    // The old process took the store back: kv and deploys work, and it
    // accepts new connections again.
    let a = serve.call("count", "");
    assert_eq!(
        (a.status, a.body.as_str(), a.processes),
        (200, "2", vec![1])
    );
    let v2 = files.path().join("v2.wasm");
    std::fs::write(&v2, hotswap_examples::GREET_V2).unwrap();
    serve.cli_ok(&["deploy", "greet", v2.to_str().unwrap()]);
    // And a later upgrade goes through.
    assert_eq!(serve.upgrade()["generation"], 2);
}

#[test]
fn a_new_process_too_slow_to_take_over_is_killed_and_the_old_one_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hotswap.toml");
    // The new process gets the store and must serve within 1 ms: it cannot
    // (it restores the slots first), so it is killed while it holds or
    // takes the store.
    std::fs::write(&config, "[upgrade]\nhandover_timeout_ms = 1\n").unwrap();
    let serve = Serve::start(dir.path(), &["--config", config.to_str().unwrap()]);
    let pid = serve.pid();
    let files = tempfile::tempdir().unwrap();
    let counter = files.path().join("counter.wasm");
    std::fs::write(&counter, hotswap_examples::COUNTER).unwrap();
    serve.cli_ok(&["deploy", "count", counter.to_str().unwrap()]);
    let load = Load::start(format!("http://{}/greet", serve.data), 4);
    load.wait_for_generation(1);

    let err = serve.upgrade_fails();
    assert!(
        err.contains("did not take over within 1ms; it was killed; this process serves on"),
        "{err}"
    );

    let tally = load.stop();
    assert_eq!((tally.failed, tally.refused), (0, 0), "{tally:?}");
    assert_eq!(serve.pid(), pid, "the pid file names the old process again");
    // The store is back: kv writes and deploys work.
    let a = serve.call("count", "");
    assert_eq!(
        (a.status, a.body.as_str(), a.processes),
        (200, "1", vec![1])
    );
    serve.cli_ok(&["deploy", "count", counter.to_str().unwrap()]);
}
