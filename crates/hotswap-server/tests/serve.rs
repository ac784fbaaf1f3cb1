//! `hotswap serve` end to end, through real sockets.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};

use common::*;

#[test]
fn first_start_serves_the_example_and_a_deploy_under_load_fails_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path()));
    let http = client();
    let greet = format!("http://{}/greet", server.data);
    let reply = post(&http, &greet, b"world");
    assert_eq!((reply.status, reply.body.as_str()), (200, "hello, world!"));

    const CLIENTS: usize = 4;
    let deployed = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let bad = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(CLIENTS + 1));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (deployed, done, bad, start, greet) = (
                deployed.clone(),
                done.clone(),
                bad.clone(),
                start.clone(),
                greet.clone(),
            );
            std::thread::spawn(move || {
                let http = client(); // one keep-alive connection per client
                let (mut v1, mut v2, mut after) = (0u64, 0u64, 0u64);
                start.wait();
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let was_deployed = deployed.load(Ordering::SeqCst);
                    let r = post(&http, &greet, b"load");
                    match (r.status, r.body.as_str()) {
                        (200, "hello, load!") if !was_deployed => v1 += 1,
                        (200, "HELLO, LOAD!! (v2)") => {
                            v2 += 1;
                            after += was_deployed as u64;
                        }
                        _ => {
                            bad.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    if finished {
                        return (v1, v2, after);
                    }
                }
            })
        })
        .collect();

    start.wait();
    let http = client();
    let reply = post(
        &http,
        &format!("http://{}/v1/slots/greet/revisions", server.admin),
        hotswap_examples::GREET_V2,
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.json()["revision"]["version"], "2.0.0");
    deployed.store(true, Ordering::SeqCst);
    // Let every client make requests after the deploy returned.
    let (mut total_after, mut total) = (0, 0);
    while total_after < 100 {
        let r = post(&http, &greet, b"load");
        assert_eq!(r.body, "HELLO, LOAD!! (v2)");
        total_after += 1;
    }
    done.store(true, Ordering::SeqCst);
    for c in clients {
        let (v1, v2, after) = c.join().unwrap();
        assert!(after > 0, "a client made no request after the deploy");
        total += v1 + v2;
    }
    assert_eq!(
        bad.load(Ordering::SeqCst),
        0,
        "non-2xx responses, or v1 after the deploy returned"
    );
    assert!(total > 0);
}

#[test]
fn state_and_revisions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let http = client();
    let server = start(config(dir.path()));
    let admin = format!("http://{}", server.admin);
    for module in [hotswap_examples::GREET_V1, hotswap_examples::COUNTER] {
        let r = post(&http, &format!("{admin}/v1/slots/count/revisions"), module);
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let count = format!("http://{}/count", server.data);
    for n in 1..=3 {
        assert_eq!(post(&http, &count, b"").body, n.to_string());
    }
    let before = get(&http, &format!("{admin}/v1/slots")).json();
    server.stop();

    let server = start(config(dir.path()));
    let admin = format!("http://{}", server.admin);
    let after = get(&http, &format!("{admin}/v1/slots")).json();
    let digests = |v: &serde_json::Value| -> Vec<(String, String)> {
        v["slots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["active"]["digest"].to_string(),
                    s["previous"]["digest"].to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        digests(&before),
        digests(&after),
        "same active and previous revisions"
    );
    let count = format!("http://{}/count", server.data);
    assert_eq!(post(&http, &count, b"").body, "4", "kv data survived");
    // The previous revision came back too: rollback works after a restart.
    let r = post(&http, &format!("{admin}/v1/slots/count/rollback"), b"");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(post(&http, &count, b"x").body, "hello, x!");
}

#[test]
fn bad_input_gets_a_clear_4xx_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(hotswap_server::ServerConfig {
        max_module_bytes: 1 << 20,
        ..config(dir.path())
    });
    let http = client();
    let admin = format!("http://{}", server.admin);
    let deploy = format!("{admin}/v1/slots/greet/revisions");
    let before = get(&http, &format!("{admin}/v1/slots/greet")).json();

    let cases: Vec<(&str, Reply, u16, &str)> = vec![
        (
            "garbage module",
            post(&http, &deploy, b"not wasm"),
            422,
            "invalid-module",
        ),
        (
            "wrong sha256",
            post(
                &http,
                &format!("{deploy}?sha256={}", "ab".repeat(32)),
                hotswap_examples::GREET_V2,
            ),
            400,
            "digest-mismatch",
        ),
        (
            "canary out of range",
            post(
                &http,
                &format!("{deploy}?canary=300"),
                hotswap_examples::GREET_V2,
            ),
            400,
            "bad-request",
        ),
        (
            "malformed sha256",
            post(
                &http,
                &format!("{deploy}?sha256=zz"),
                hotswap_examples::GREET_V2,
            ),
            400,
            "bad-request",
        ),
        (
            "unknown slot",
            post(&http, &format!("{admin}/v1/slots/nope/rollback"), b""),
            404,
            "unknown-slot",
        ),
        (
            "bad slot name",
            post(
                &http,
                &format!("{admin}/v1/slots/a%20b/revisions"),
                hotswap_examples::GREET_V2,
            ),
            400,
            "bad-slot-name",
        ),
        (
            "nothing to roll back to",
            post(&http, &format!("{admin}/v1/slots/greet/rollback"), b""),
            409,
            "no-previous",
        ),
    ];
    for (what, reply, status, kind) in cases {
        assert_eq!(reply.status, status, "{what}: {}", reply.body);
        let body = reply.json();
        assert_eq!(body["kind"], kind, "{what}: {body}");
        assert!(
            !body["error"].as_str().unwrap().is_empty(),
            "{what}: no message"
        );
    }
    // Oversize: the server answers from Content-Length alone, without
    // reading a byte of the body (and then closes the connection, so a
    // client still writing would see a broken pipe instead of the answer;
    // curl avoids that with `Expect: 100-continue`). Send only the headers.
    {
        use std::io::{Read, Write};
        let mut raw = std::net::TcpStream::connect(server.admin).unwrap();
        raw.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(
            raw,
            "POST /v1/slots/greet/revisions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            2 << 20
        )
        .unwrap();
        let mut answer = [0u8; 12];
        raw.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"HTTP/1.1 413", "oversize upload");
    }

    let after = get(&http, &format!("{admin}/v1/slots/greet")).json();
    assert_eq!(before, after, "a rejected request changed the slot");
    assert_eq!(
        post(&http, &format!("http://{}/greet", server.data), b"ok").body,
        "hello, ok!"
    );
    assert_eq!(
        get(&http, &format!("{admin}/v1/slots")).json()["slots"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        post(&http, &format!("http://{}/nope", server.data), b"").status,
        404
    );
}

#[test]
fn with_a_token_requests_without_it_get_401_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(hotswap_server::ServerConfig {
        admin_token: Some("s3cret".into()),
        ..config(dir.path())
    });
    let http = client();
    let deploy = format!("http://{}/v1/slots/greet/revisions", server.admin);
    // Refused requests carry tiny bodies: the server answers 401 without
    // reading an unauthenticated upload, and closes the connection, so a
    // client still writing a large one could see a reset instead of the 401.
    let r = post(&http, &deploy, b"\0asm");
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["kind"], "unauthorized");
    let wrong = client()
        .post(&deploy)
        .header("authorization", "Bearer nope")
        .send(&b"\0asm"[..])
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let listing = client()
        .get(&format!("http://{}/v1/slots", server.admin))
        .call()
        .unwrap();
    assert_eq!(listing.status().as_u16(), 401, "reads need the token too");
    assert_eq!(
        post(&client(), &format!("http://{}/greet", server.data), b"x").body,
        "hello, x!"
    );
    let right = client()
        .post(&deploy)
        .header("authorization", "Bearer s3cret")
        .send(hotswap_examples::GREET_V2)
        .unwrap();
    assert_eq!(right.status().as_u16(), 201);
}

#[test]
fn plugin_failures_map_to_5xx_with_a_safe_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(hotswap_server::ServerConfig {
        limits: hotswap_server::Limits {
            deadline_ms: 100,
            ..hotswap_server::Limits::default()
        },
        ..config(dir.path())
    });
    let http = client();
    let manifest =
        r#"(@custom "hotswap.manifest" "{\"name\":\"bad\",\"version\":\"1\",\"abi\":1}")"#;
    let module = |body: &str| {
        wat::parse_str(format!(
            r#"(module (memory (export "memory") 1)
                 (data (i32.const 16) "secret internal detail")
                 (func (export "hs_alloc") (param i32) (result i32) (i32.const 1024))
                 (func (export "hs_process") (param i32 i32) (result i64) {body})
                 {manifest})"#
        ))
        .unwrap()
    };
    for (slot, body, status, kind) in [
        ("loop", "(loop (br 0)) (i64.const 0)", 504, "deadline"),
        ("trap", "unreachable", 502, "trap"),
        (
            "err",
            "(i64.const 0x8000_0016_0000_0010)",
            500,
            "plugin-error",
        ),
    ] {
        let r = post(
            &http,
            &format!("http://{}/v1/slots/{slot}/revisions", server.admin),
            &module(body),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        let mut resp = http
            .post(&format!("http://{}/{slot}", server.data))
            .send(&b""[..])
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{slot}");
        assert_eq!(resp.headers().get("x-hotswap-error").unwrap(), kind);
        let text = resp.body_mut().read_to_string().unwrap();
        assert!(
            !text.contains("secret"),
            "{slot}: the plugin's own message leaked: {text}"
        );
    }
}

#[test]
fn metrics_count_calls_swaps_and_rollbacks() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path()));
    let http = client();
    let admin = format!("http://{}", server.admin);
    let greet = format!("http://{}/greet", server.data);
    for _ in 0..5 {
        assert_eq!(post(&http, &greet, b"m").status, 200);
    }
    assert_eq!(
        post(&http, &format!("http://{}/nope", server.data), b"").status,
        404
    );
    assert_eq!(
        post(
            &http,
            &format!("{admin}/v1/slots/greet/revisions"),
            hotswap_examples::GREET_V2
        )
        .status,
        201
    );
    assert_eq!(
        post(&http, &format!("{admin}/v1/slots/greet/revisions"), b"junk").status,
        422
    );
    assert_eq!(
        post(&http, &format!("{admin}/v1/slots/greet/rollback"), b"").status,
        200
    );

    // Counting swaps follows the event stream; poll the scrape until it has
    // caught up (bounded), as a Prometheus server would see it.
    let mut text = String::new();
    for _ in 0..100 {
        text = get(&http, &format!("{admin}/metrics")).body;
        if text.contains(r#"hotswap_rollbacks_total{slot="greet"} 1"#) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Counted by revision digest too, so counters of different code never
    // merge, whatever their generation.
    let v1 = hotswap_core::Digest::of(hotswap_examples::GREET_V1);
    for line in [
        format!(r#"hotswap_calls_total{{slot="greet",revision="1",digest="{v1}",outcome="ok"}} 5"#),
        r#"hotswap_calls_total{slot="nope",revision="none",digest="none",outcome="unknown-slot"} 1"#.into(),
        r#"hotswap_swaps_total{slot="greet",result="failed"} 1"#.into(),
        r#"hotswap_swaps_total{slot="greet",result="rolled-back"} 1"#.into(),
        r#"hotswap_rollbacks_total{slot="greet"} 1"#.into(),
        format!(r#"hotswap_call_duration_seconds_count{{slot="greet",revision="1",digest="{v1}"}} 5"#),
        "hotswap_deploy_duration_seconds_count 1".into(),
        "hotswap_live_revisions 1".into(),
    ] {
        assert!(text.contains(&line), "missing `{line}` in:\n{text}");
    }
    promtool_accepts(&text);

    // A Prometheus server asks for OpenMetrics, and gets it.
    let mut r = http
        .get(format!("{admin}/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )
        .call()
        .unwrap();
    let kind = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    let open = r.body_mut().read_to_string().unwrap();
    assert!(open.contains("# TYPE hotswap_calls counter\n"), "{open}");
    assert!(open.ends_with("# EOF\n"), "{open}");
}

/// `promtool check metrics` (Debian's `prometheus` package) finds nothing
/// to say about `text`: every family has HELP text, names follow the
/// conventions. Skipped where promtool is missing, except under CI.
fn promtool_accepts(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            let why = format!("promtool not found (scripts/setup installs it): {e}");
            hotswap_testkit::cannot_run_here(why);
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\nin:\n{text}"
    );
}

#[test]
fn an_envelope_route_lets_a_plugin_do_auth() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(hotswap_server::ServerConfig {
        routes: vec![
            hotswap_server::Route {
                path: "/private".into(),
                slot: "auth".into(),
                envelope: true,
            },
            hotswap_server::Route {
                path: "/hello".into(),
                slot: "greet".into(),
                envelope: false,
            },
        ],
        ..config(dir.path())
    });
    let http = client();
    let r = post(
        &http,
        &format!("http://{}/v1/slots/auth/revisions", server.admin),
        hotswap_examples::AUTH,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let private = format!("http://{}/private?x=1", server.data);

    let mut denied = http.get(&private).call().unwrap();
    assert_eq!(denied.status().as_u16(), 401);
    assert_eq!(denied.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        denied.body_mut().read_to_string().unwrap(),
        "who are you?\n"
    );

    let mut allowed = http
        .get(&private)
        .header("authorization", "Bearer letmein")
        .call()
        .unwrap();
    assert_eq!(allowed.status().as_u16(), 200);
    assert_eq!(allowed.headers()["x-auth"], "ok");
    assert!(allowed.headers().get("x-hotswap-generation").is_some());
    assert_eq!(
        allowed.body_mut().read_to_string().unwrap(),
        "welcome: GET /private\n"
    );

    // A plain route beside it: body in, body out; `POST /{slot}` is off.
    assert_eq!(
        post(&http, &format!("http://{}/hello", server.data), b"r").body,
        "hello, r!"
    );
    assert_eq!(
        post(&http, &format!("http://{}/greet", server.data), b"r").status,
        404
    );

    // A plugin that answers something else than an envelope fails safely.
    let r = post(
        &http,
        &format!("http://{}/v1/slots/auth/revisions", server.admin),
        hotswap_examples::GREET_V1,
    );
    assert_eq!(r.status, 201);
    let mut broken = http.get(&private).call().unwrap();
    assert_eq!(broken.status().as_u16(), 502);
    assert_eq!(broken.headers()["x-hotswap-error"], "bad-envelope");
    assert_eq!(
        broken.body_mut().read_to_string().unwrap(),
        "plugin failed\n"
    );
}
