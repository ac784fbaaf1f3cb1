//! The `hotswap` command as a user runs it: exit codes, text and JSON
//! output, and limits surfacing as clear errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn hotswap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hotswap"))
        .args(args)
        .env("RUST_LOG", "off")
        // Never the user's own cache.
        .env(
            "HOTSWAP_CACHE_DIR",
            concat!(env!("CARGO_TARGET_TMPDIR"), "/cache"),
        )
        .output()
        .expect("hotswap runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

const MANIFEST: &str =
    r#"(@custom "hotswap.manifest" "{\"name\":\"t\",\"version\":\"1\",\"abi\":1}")"#;

fn wat(process_body: &str) -> String {
    format!(
        r#"(module (memory (export "memory") 1)
             (func (export "hs_alloc") (param i32) (result i32) (i32.const 1024))
             (func (export "hs_process") (param i32 i32) (result i64) {process_body})
             {MANIFEST})"#
    )
}

#[test]
fn check_summarises_a_valid_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "greet.wasm", hotswap_examples::GREET_V1);
    let out = hotswap(&["check", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("valid ABI v1 WASM plugin"));
    assert!(stdout(&out).contains("version  1.0.0"));

    let out = hotswap(&["check", "--json", file.to_str().unwrap()]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "wasm");
    assert_eq!(v["valid"], true);
    assert_eq!(v["name"], "greet");
    assert_eq!(v["version"], "1.0.0");
    assert_eq!(v["abi"], 1);
}

#[test]
fn check_and_run_take_native_libraries() {
    let dir = tempfile::tempdir().unwrap();
    let lib = write(
        dir.path(),
        "libcounter.so",
        hotswap_examples::COUNTER_NATIVE,
    );
    let out = hotswap(&["check", "--json", lib.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "native");
    assert_eq!(
        (v["valid"].clone(), v["name"].clone()),
        (true.into(), "counter".into())
    );
    assert_eq!(v["optional_exports"], serde_json::json!(["hs_init"]));

    let out = hotswap(&["run", lib.to_str().unwrap(), "--input", "x"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "1");

    // An ELF file that is not a plugin: the native validator's reason.
    let exe = std::fs::read(env!("CARGO_BIN_EXE_hotswap")).unwrap();
    let exe = write(dir.path(), "hotswap-copy", &exe);
    let out = hotswap(&["check", exe.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a shared library"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_rejects_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "junk.wasm", b"definitely not wasm");
    let out = hotswap(&["check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a WebAssembly module"),
        "{}",
        stderr(&out)
    );

    let out = hotswap(&["check", "--json", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert!(v["error"].as_str().unwrap().contains("magic"));

    let out = hotswap(&["check", "/no/such/file.wasm"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read /no/such/file.wasm"));
}

#[test]
fn run_calls_the_plugin_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "greet2.wasm", hotswap_examples::GREET_V2);
    let out = hotswap(&["run", file.to_str().unwrap(), "--input", "there"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "HELLO, THERE!! (v2)");

    let input = write(dir.path(), "input.txt", b"file");
    let c = write(dir.path(), "upper.wasm", hotswap_examples::C_UPPER);
    let out = hotswap(&[
        "run",
        c.to_str().unwrap(),
        "--input-file",
        input.to_str().unwrap(),
    ]);
    assert_eq!(stdout(&out), "C: FILE");
}

#[test]
fn run_ends_a_looping_plugin_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "loop.wat",
        wat("(loop (br 0)) (i64.const 0)").as_bytes(),
    );
    let out = hotswap(&["run", file.to_str().unwrap(), "--deadline", "100"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("plugin ran past its deadline of 100ms"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn run_stops_a_plugin_at_its_memory_cap() {
    let dir = tempfile::tempdir().unwrap();
    let body = "(drop (memory.grow (i32.const 1000))) (i64.const 0)";
    let file = write(dir.path(), "hog.wat", wat(body).as_bytes());
    let out = hotswap(&["run", file.to_str().unwrap(), "--memory-cap", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("memory cap of 1048576 bytes"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(hotswap(&["run"]).status.code(), Some(2));
    assert_eq!(hotswap(&["frobnicate"]).status.code(), Some(2));
    for sub in [
        &["--help"][..],
        &["check", "--help"],
        &["run", "--help"],
        &["demo", "--help"],
        &["bench", "swap", "--help"],
    ] {
        let out = hotswap(sub);
        assert!(out.status.success(), "{sub:?}");
        assert!(stdout(&out).contains("Usage"), "{sub:?}");
    }
}

#[test]
fn demo_counts_every_call_and_fails_none() {
    let out = hotswap(&[
        "demo",
        "--swaps",
        "6",
        "--interval",
        "20",
        "--callers",
        "2",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 7, "six swaps and a summary");
    for (i, swap) in lines[..6].iter().enumerate() {
        let expected = if i % 2 == 0 { "2.0.0" } else { "1.0.0" };
        assert_eq!(swap["to"], expected);
    }
    let summary = &lines[6];
    assert_eq!(summary["failed"], 0);
    let calls = summary["calls"].as_u64().unwrap();
    assert!(calls > 0);
    assert_eq!(
        summary["v1_replies"].as_u64().unwrap() + summary["v2_replies"].as_u64().unwrap(),
        calls
    );
}

#[test]
fn bench_compare_prints_both_tiers_and_plots_them() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("compare.svg");
    let out = hotswap(&[
        "bench",
        "compare",
        "--json",
        "--loads",
        "4",
        "--resident",
        "4",
        "--cycles",
        "20",
        "--calls",
        "2000",
        "--seconds",
        "1",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for tier in ["wasm", "native"] {
        for key in [
            "load_p50_us",
            "load_p99_us",
            "rss_per_revision_kib",
            "resolve_us",
            "call_p50_ns",
            "failed_calls",
        ] {
            assert!(
                v[tier][key].is_number(),
                "{tier}.{key} missing or not a number in {v}"
            );
        }
        assert_eq!(v[tier]["failed_calls"], 0, "{tier}");
        assert!(
            v[tier]["swaps"].as_u64().unwrap() > 0,
            "{tier}: no replacements in {v}"
        );
        assert!(
            v[tier]["calls_while_swapping"].as_u64().unwrap() > 0,
            "{tier}"
        );
    }
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("native"),
        "not the plot: {svg:.200}"
    );
}

#[test]
fn bench_swap_prints_the_documented_json() {
    let out = hotswap(&[
        "bench",
        "swap",
        "--json",
        "--swaps",
        "20",
        "--compiles",
        "1",
        "--calls",
        "1000",
        "--seconds",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "swap_p50_us",
        "swap_p99_us",
        "swap_compile_p50_us",
        "call_p50_ns",
        "call_p99_ns",
        "steady_p99_ns",
        "swapping_p99_ns",
        "failed_calls",
        "rss_growth_kib",
    ] {
        assert!(v[key].is_number(), "{key} missing or not a number in {v}");
    }
    assert_eq!(v["failed_calls"], 0);
}

#[test]
fn bench_migrate_prints_the_documented_json() {
    let out = hotswap(&[
        "bench",
        "migrate",
        "--json",
        "--keys",
        "300",
        "--migrations",
        "4",
        "--slots",
        "5",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "keys",
        "migrate_p50_ms",
        "migrations",
        "failed",
        "restored_slots",
        "restore_ms",
    ] {
        assert!(v[key].is_number(), "{key} missing or not a number in {v}");
    }
    assert_eq!(
        (v["keys"].as_u64(), v["migrations"].as_u64()),
        (Some(300), Some(4))
    );
    assert_eq!(v["failed"], 0);
    assert_eq!(v["restored_slots"], 5);
    assert!(v["calls"].as_u64().unwrap() > 0, "{v}");
}

#[test]
fn run_json_reports_output_or_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "greet.wasm", hotswap_examples::GREET_V1);
    let out = hotswap(&["run", "--json", file.to_str().unwrap(), "--input", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["output"], "hello, json!");
    assert_eq!(v["version"], "1.0.0");
    assert!(v["call_us"].is_number());

    // Bytes that are not UTF-8 come back as hex.
    let raw = write(dir.path(), "raw.bin", &[0xff, 0xfe]);
    let echo = write(dir.path(), "echo.wat", wat(
        "(i64.or (i64.shl (i64.extend_i32_u (local.get 1)) (i64.const 32)) (i64.extend_i32_u (local.get 0)))",
    ).as_bytes());
    let out = hotswap(&[
        "run",
        "--json",
        echo.to_str().unwrap(),
        "--input-file",
        raw.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["output_hex"], "fffe");

    let looping = write(
        dir.path(),
        "loop.wat",
        wat("(loop (br 0)) (i64.const 0)").as_bytes(),
    );
    let out = hotswap(&[
        "run",
        "--json",
        looping.to_str().unwrap(),
        "--deadline",
        "50",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("deadline"));
}

#[test]
fn bench_http_prints_the_documented_json() {
    let out = hotswap(&[
        "bench",
        "http",
        "--json",
        "--seconds",
        "1",
        "--clients",
        "2",
        "--deploy-rate",
        "5",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "rps",
        "baseline_rps",
        "ratio",
        "p99_ms",
        "failed",
        "rps_while_deploying",
        "failed_while_deploying",
        "h2_rps",
        "h2_baseline_rps",
        "h2_ratio",
        "h2_failed",
        "tls_rps",
        "tls_baseline_rps",
        "tls_ratio",
        "tls_failed",
    ] {
        assert!(v[key].is_number(), "{key} missing or not a number in {v}");
    }
    assert_eq!(v["failed"], 0);
    assert_eq!(v["failed_while_deploying"], 0);
    // Zero failed requests over HTTP/2 and TLS, and both really served.
    assert_eq!(v["h2_failed"], 0);
    assert_eq!(v["tls_failed"], 0);
    assert!(v["h2_rps"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["tls_rps"].as_f64().unwrap() > 0.0, "{v}");
    assert!(
        v["deploys"].as_u64().unwrap() > 0,
        "no deploy happened under load"
    );
    assert!(
        v["p99_ms"].as_f64().unwrap() > 0.001,
        "latencies were not recorded: {v}"
    );
}

#[test]
fn bench_upgrade_prints_the_documented_json() {
    let out = hotswap(&[
        "bench",
        "upgrade",
        "--json",
        "--upgrades",
        "3",
        "--clients",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "upgrades",
        "requests",
        "failed",
        "handover_p50_ms",
        "handover_max_ms",
    ] {
        assert!(v[key].is_number(), "{key} missing or not a number in {v}");
    }
    assert_eq!(v["upgrades"], 3);
    assert_eq!(v["failed"], 0);
    assert_eq!(v["refused"], 0);
    assert!(v["requests"].as_u64().unwrap() > 0, "no load: {v}");
    assert!(v["handover_max_ms"].as_f64().unwrap() > 0.0, "{v}");
}

#[test]
fn bench_ebpf_prints_the_documented_json_and_loses_nothing() {
    let out = hotswap(&["bench", "ebpf", "--json", "--replacements", "20"]);
    if !out.status.success() && stderr(&out).contains("eBPF is not available here") {
        hotswap_testkit::cannot_run_here(stderr(&out));
        return;
    }
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "replacements",
        "expected_events",
        "counted_events",
        "replace_p50_us",
        "replace_p99_us",
    ] {
        assert!(v[key].is_number(), "{key} missing or not a number in {v}");
    }
    assert_eq!(v["replacements"], 40, "20 per mechanism: {v}");
    for mechanism in ["tracepoint", "xdp"] {
        let m = &v[mechanism];
        assert_eq!(m["replacements"], 20, "{v}");
        assert!(m["expected_events"].as_u64().unwrap() > 0, "no events: {v}");
        assert_eq!(
            m["counted_events"], m["expected_events"],
            "{mechanism}: {v}"
        );
        assert_eq!(
            (m["lost"].as_u64(), m["duplicated"].as_u64()),
            (Some(0), Some(0))
        );
    }
    assert_eq!(v["tracepoint"]["missed"], 0);
}

#[test]
fn push_signs_and_pushes_a_plugin_that_pulls_back_by_its_digest() {
    let Some(server) = hotswap_testkit::OciRegistry::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let module = write(dir.path(), "greet.wasm", hotswap_examples::GREET_V1);
    let key = dir.path().join("k.key");
    let made = hotswap(&["keygen", "--out", key.to_str().unwrap(), "--json"]);
    assert!(made.status.success(), "{}", stderr(&made));
    let tag = format!("oci://{}/plugins/greet:v1", server.host());

    let pushed = hotswap(&[
        "push",
        module.to_str().unwrap(),
        &tag,
        "--key",
        key.to_str().unwrap(),
        "--json",
    ]);
    assert!(pushed.status.success(), "{}", stderr(&pushed));
    let answer: serde_json::Value = serde_json::from_str(&stdout(&pushed)).unwrap();
    let digest = hotswap_core::Digest::of(hotswap_examples::GREET_V1).to_string();
    assert_eq!(answer["digest"], digest.as_str());
    let reference: hotswap_oci::PluginRef = answer["reference"].as_str().unwrap().parse().unwrap();
    assert!(answer["signature"].as_str().unwrap().ends_with(".sig"));

    let pulled = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(hotswap_oci::Registry::new(Default::default()).pull(&reference))
        .unwrap();
    assert_eq!(pulled.module, hotswap_examples::GREET_V1);
    assert_eq!(pulled.signature.unwrap().len(), 128, "ed25519, in hex");

    // Garbage in the reference: a clear usage error, nothing pushed.
    let bad = hotswap(&["push", module.to_str().unwrap(), "127.0.0.1:1/greet:v1"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("must start with oci://"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn check_and_run_take_wasi_http_components() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "hello.wasm", hotswap_examples::HELLO_V1);
    let out = hotswap(&["check", "--json", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["kind"].clone(), v["name"].clone(), v["version"].clone()),
        ("component".into(), "hello".into(), "1.0.0".into())
    );
    let out = hotswap(&["check", file.to_str().unwrap()]);
    assert!(
        stdout(&out).contains("valid wasi:http component"),
        "{}",
        stdout(&out)
    );

    let out = hotswap(&["run", file.to_str().unwrap(), "--path", "/count"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "count 1, hello from v1\n");
    let out = hotswap(&[
        "run",
        file.to_str().unwrap(),
        "--path",
        "/echo",
        "--input",
        "abc",
    ]);
    assert_eq!(stdout(&out), "abc");
    let out = hotswap(&[
        "run",
        file.to_str().unwrap(),
        "--path",
        "/loop",
        "--deadline",
        "100",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("deadline"), "{}", stderr(&out));

    // A component that is not a handler: the component validator says why.
    let wat = write(dir.path(), "empty.wat", b"(component)");
    let out = hotswap(&["check", wat.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("incoming-handler"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bench_component_prints_the_documented_json() {
    let out = hotswap(&["bench", "component", "--json", "--requests", "90"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "component_p50_us",
        "component_p99_us",
        "madvise_p50_us",
        "keep_resident_p50_us",
        "plugin_p50_us",
        "component_to_plugin",
    ] {
        assert!(
            v[key].as_f64().is_some_and(|x| x > 0.0),
            "{key} missing or not positive in {v}"
        );
    }
    assert_eq!(
        (v["requests"].as_u64(), v["failed"].as_u64()),
        (Some(90), Some(0))
    );
}
