//! wasi:http components in `hotswap serve`, end to end through real
//! sockets: deployed, swapped under load, restored, refused, sandboxed.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};

use common::*;
use hotswap_examples::{HELLO_V1, HELLO_V2};

fn deploy(admin: &str, slot: &str, module: &[u8]) -> Reply {
    post(
        &client(),
        &format!("{admin}/v1/slots/{slot}/revisions"),
        module,
    )
}

/// A server with `config`, `hello` v1 deployed to slot `hello`, and its
/// admin API's base URL.
fn serving_hello(config: hotswap_server::ServerConfig) -> (Running, String) {
    let server = start(config);
    let admin = format!("http://{}", server.admin);
    let r = deploy(&admin, "hello", HELLO_V1);
    assert_eq!(r.status, 201, "{}", r.body);
    (server, admin)
}

#[test]
fn a_component_swaps_v1_v2_and_back_under_load_failing_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path()));
    let admin = format!("http://{}", server.admin);
    let r = deploy(&admin, "hello", HELLO_V1);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["revision"]["version"], "1.0.0");
    let url = format!("http://{}/hello/", server.data);

    const CLIENTS: usize = 4;
    let done = Arc::new(AtomicBool::new(false));
    let (failed, v2) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let start = Arc::new(Barrier::new(CLIENTS + 1));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (done, failed, v2, start, url) = (
                done.clone(),
                failed.clone(),
                v2.clone(),
                start.clone(),
                url.clone(),
            );
            std::thread::spawn(move || {
                let http = client();
                let mut ok = 0u64;
                start.wait();
                while !done.load(Ordering::SeqCst) {
                    let r = get(&http, &url);
                    match (r.status, r.body.as_str()) {
                        (200, "hello from v1\n") => ok += 1,
                        (200, "HELLO FROM V2\n") => {
                            ok += 1;
                            v2.fetch_add(1, Ordering::SeqCst);
                        }
                        other => {
                            eprintln!("failed request: {other:?}");
                            failed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                ok
            })
        })
        .collect();
    start.wait();
    let http = client();
    for _ in 0..5 {
        let r = deploy(&admin, "hello", HELLO_V2);
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(get(&http, &url).body, "HELLO FROM V2\n");
        let r = post(&http, &format!("{admin}/v1/slots/hello/rollback"), b"");
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(get(&http, &url).body, "hello from v1\n");
    }
    done.store(true, Ordering::SeqCst);
    let total: u64 = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    assert!(total > 0);
    assert!(v2.load(Ordering::SeqCst) > 0, "no client was served by v2");
}

#[test]
fn state_is_kept_across_swaps_and_restarts_and_answers_name_their_revision() {
    let dir = tempfile::tempdir().unwrap();
    let http = client();
    let (server, admin) = serving_hello(config(dir.path()));
    let count = format!("http://{}/hello/count", server.data);
    let mut r = http.get(&count).call().unwrap();
    assert_eq!(r.headers()[hotswap_api::headers::GENERATION], "1");
    assert_eq!(
        r.body_mut().read_to_string().unwrap(),
        "count 1, hello from v1\n"
    );
    assert_eq!(deploy(&admin, "hello", HELLO_V2).status, 201);
    assert_eq!(get(&http, &count).body, "count 2, HELLO FROM V2\n");
    server.stop();

    let server = start(config(dir.path()));
    let count = format!("http://{}/hello/count", server.data);
    assert_eq!(get(&http, &count).body, "count 3, HELLO FROM V2\n");
    // The path below the slot is the component's own, percent-encoding
    // and all (`%3F` is not a query, `%20` no bad request).
    for path in ["where", "where/a%20b%3Fc?x=1", "where/a%2Fb"] {
        let r = get(&http, &format!("http://{}/hello/{path}", server.data));
        assert_eq!((r.status, r.body), (200, format!("/{path}")), "{path}");
    }
}

#[test]
fn a_hostile_handler_fails_its_own_request_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.component.deadline_ms = 300;
    cfg.component.memory_cap_mib = 16;
    let (server, _) = serving_hello(cfg);
    let http = client();
    for (path, status, kind) in [
        ("trap", 502, "trap"),
        ("loop", 504, "deadline"),
        ("eat", 502, "memory-limit"),
    ] {
        let r = http
            .get(&format!("http://{}/hello/{path}", server.data))
            .call()
            .unwrap();
        assert_eq!(r.status(), status, "/{path}");
        assert_eq!(r.headers()[hotswap_api::headers::ERROR], kind, "/{path}");
        assert_eq!(
            get(&http, &format!("http://{}/hello/", server.data)).body,
            "hello from v1\n"
        );
    }
}

#[test]
fn a_deploy_that_is_not_a_serveable_component_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path()));
    let admin = format!("http://{}", server.admin);
    let files = wat::parse_str(
        r#"(component
             (import "wasi:filesystem/preopens@0.2.0" (instance))
           )"#,
    )
    .unwrap();
    let r = deploy(&admin, "hello", &files);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body.contains("wasi:filesystem/preopens@0.2.0"),
        "{}",
        r.body
    );
    let r = deploy(&admin, "hello", &wat::parse_str("(component)").unwrap());
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("wasi:http/incoming-handler"), "{}", r.body);
    // Nothing was stored: the slot does not exist.
    let r = get(&client(), &format!("{admin}/v1/slots/hello"));
    assert_eq!(r.status, 404, "{}", r.body);
}

#[test]
fn a_component_canary_takes_its_weight_sticks_to_keys_and_is_promoted() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = serving_hello(config(dir.path()));
    let r = post(
        &client(),
        &format!("{admin}/v1/slots/hello/revisions?canary=30"),
        HELLO_V2,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let http = client();
    let url = format!("http://{}/hello/", server.data);
    let ask = |key: &str| {
        let mut r = http.get(&url).header("x-hotswap-key", key).call().unwrap();
        let canary = r.headers().get(hotswap_api::headers::CANARY).is_some();
        let body = r.body_mut().read_to_string().unwrap();
        assert_eq!(body == "HELLO FROM V2\n", canary, "{body:?}");
        canary
    };
    let keys: Vec<String> = (0..300).map(|i| format!("client-{i}")).collect();
    let first: Vec<bool> = keys.iter().map(|k| ask(k)).collect();
    let share = first.iter().filter(|c| **c).count();
    assert!(
        (45..=135).contains(&share),
        "the canary took {share} of 300 keys"
    );
    // Each key stays on the revision it got.
    for (key, was) in keys.iter().zip(&first).take(50) {
        assert_eq!(ask(key), *was, "{key} moved");
    }
    let digest = hotswap_core::Digest::of(HELLO_V2);
    let r = post(
        &http,
        &format!("{admin}/v1/slots/hello/promote?expect={digest}"),
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(get(&http, &url).body, "HELLO FROM V2\n");
}

#[test]
fn a_component_canary_that_fails_breaks_its_error_budget_and_is_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = serving_hello(strict_budget(config(dir.path())));
    let http = client();
    let r = post(
        &http,
        &format!("{admin}/v1/slots/hello/revisions?canary=50"),
        HELLO_V2,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    // Every request traps, on either revision; the canary is judged on the
    // share that reaches it. Many keys, so about half do. Bounded, so a
    // monitor that never acts fails the test.
    let trap = format!("http://{}/hello/trap", server.data);
    let show = format!("{admin}/v1/slots/hello");
    let mut rolled_back = false;
    for i in 0..5_000 {
        let r = http
            .get(&trap)
            .header("x-hotswap-key", format!("client-{i}"))
            .call()
            .unwrap();
        assert_eq!(r.status(), 502);
        if i % 50 == 49 && get(&http, &show).json()["canary"].is_null() {
            rolled_back = true;
            break;
        }
    }
    assert!(rolled_back, "the canary was never rolled back");
    let slot = get(&http, &show).json();
    assert_eq!(slot["active"]["version"], "1.0.0", "{slot}");
    let events = get(&http, &format!("{admin}/v1/events")).body;
    assert!(events.contains("error budget exceeded"), "{events}");
}

#[test]
fn a_request_without_a_host_is_a_bad_request_not_a_component_failure() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = serving_hello(config(dir.path()));
    let mut conn = std::net::TcpStream::connect(server.data).unwrap();
    conn.write_all(b"GET /hello/ HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.0 400"), "{answer}");
    assert!(answer.contains("needs a Host header"), "{answer}");
}

#[test]
fn a_component_deploy_is_pinned_by_digest_and_signature_like_any_plugin() {
    use hotswap_server::signing;
    let dir = tempfile::tempdir().unwrap();
    let key = signing::generate().unwrap();
    let server = start(hotswap_server::ServerConfig {
        trusted_keys: vec![signing::public_hex(&key)],
        require_signature: true,
        ..config(dir.path())
    });
    let http = client();
    let deploy = format!("http://{}/v1/slots/hello/revisions", server.admin);
    let digest = hotswap_core::Digest::of(HELLO_V1);

    // Unsigned: refused. Signed but pinned to other bytes: refused.
    let r = http.post(&deploy).send(HELLO_V1).unwrap();
    assert_eq!(r.status(), 403);
    let other = hotswap_core::Digest::of(HELLO_V2);
    let r = http
        .post(format!("{deploy}?sha256={other}"))
        .header("x-hotswap-signature", signing::sign(&key, HELLO_V1))
        .send(HELLO_V1)
        .unwrap();
    assert_eq!(r.status(), 400);
    // Signed and pinned to its own digest: served.
    let r = http
        .post(format!("{deploy}?sha256={digest}"))
        .header("x-hotswap-signature", signing::sign(&key, HELLO_V1))
        .send(HELLO_V1)
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        get(&http, &format!("http://{}/hello/", server.data)).body,
        "hello from v1\n"
    );
}

#[test]
fn a_canary_of_another_kind_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = serving_hello(config(dir.path()));
    let r = post(
        &client(),
        &format!("{admin}/v1/slots/hello/revisions?canary=10"),
        hotswap_examples::GREET_V1,
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.json()["kind"], "canary-across-kinds");
    // Without a canary, a slot may change kind.
    assert_eq!(
        deploy(&admin, "hello", hotswap_examples::GREET_V1).status,
        201
    );
    let r = post(
        &client(),
        &format!("http://{}/hello", server.data),
        b"kinds",
    );
    assert_eq!(r.body, "hello, kinds!");
}
