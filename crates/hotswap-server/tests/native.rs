//! Native slots under `hotswap serve`: the same admin API as WASM, signed by
//! default, swappable to and from WASM, restored after a restart.

mod common;

use common::*;
use hotswap_server::{signing, NativeConfig, ServerConfig};

fn deploy(http: &ureq::Agent, admin: &str, slot: &str, bytes: &[u8], sig: Option<String>) -> Reply {
    let mut req = http.post(&format!("http://{admin}/v1/slots/{slot}/revisions"));
    if let Some(sig) = sig {
        req = req.header("x-hotswap-signature", sig);
    }
    let mut r = req.send(bytes).expect("request goes through");
    Reply {
        status: r.status().as_u16(),
        body: r.body_mut().read_to_string().unwrap(),
    }
}

#[test]
fn native_slots_are_served_like_wasm_and_must_be_signed() {
    let dir = tempfile::tempdir().unwrap();
    let key = signing::generate().unwrap();
    let settings = ServerConfig {
        trusted_keys: vec![signing::public_hex(&key)],
        ..config(dir.path())
    };
    let server = start(settings.clone());
    let http = client();
    let admin = server.admin.to_string();
    let call = |body: &[u8]| post(&http, &format!("http://{}/greet", server.data), body);
    let native_v2 = hotswap_examples::GREET_V2_NATIVE;

    // Unsigned: refused before anything is stored or loaded, though WASM
    // modules need no signature on this server.
    let r = deploy(&http, &admin, "greet", native_v2, None);
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["kind"], "signature-required");
    assert!(
        r.body.contains("native libraries run unsandboxed"),
        "{}",
        r.body
    );
    assert_eq!(
        call(b"ada").body,
        "hello, ada!",
        "the WASM example still serves"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("artifacts"))
            .unwrap()
            .count(),
        1
    );

    // Signed: WASM v1 → native v2, through the same endpoint.
    let r = deploy(
        &http,
        &admin,
        "greet",
        native_v2,
        Some(signing::sign(&key, native_v2)),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["revision"]["version"], "2.0.0");
    assert_eq!(r.json()["revision"]["kind"], "native");
    assert_eq!(call(b"ada").body, "HELLO, ADA!! (v2)");
    // The slot's view says which tier runs each revision.
    let r = get(&http, &format!("http://{admin}/v1/slots/greet"));
    assert_eq!(
        (
            r.json()["active"]["kind"].as_str(),
            r.json()["previous"]["kind"].as_str()
        ),
        (Some("native"), Some("wasm")),
        "{}",
        r.body
    );

    // Rollback goes back across tiers, to WASM v1, and forward again.
    let r = post(
        &http,
        &format!("http://{admin}/v1/slots/greet/rollback"),
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(call(b"ada").body, "hello, ada!");
    post(
        &http,
        &format!("http://{admin}/v1/slots/greet/rollback"),
        b"",
    );
    assert_eq!(call(b"ada").body, "HELLO, ADA!! (v2)");

    // A native slot of its own, with state in the store.
    let counter = hotswap_examples::COUNTER_NATIVE;
    let r = deploy(
        &http,
        &admin,
        "counter",
        counter,
        Some(signing::sign(&key, counter)),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    for n in 1..=3 {
        let r = post(&http, &format!("http://{}/counter", server.data), b"");
        assert_eq!(r.body, n.to_string());
    }

    // Garbage that claims to be ELF: rejected with the validator's reason.
    let mut fake = b"\x7fELF".to_vec();
    fake.extend_from_slice(&[0; 60]);
    let r = deploy(
        &http,
        &admin,
        "greet",
        &fake,
        Some(signing::sign(&key, &fake)),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("not a native library"), "{}", r.body);
    assert_eq!(call(b"ada").body, "HELLO, ADA!! (v2)");

    let metrics = get(&http, &format!("http://{admin}/metrics")).body;
    assert!(
        metrics.contains("hotswap_native_pinned_libraries 0"),
        "{metrics}"
    );

    // A restart brings the native revisions back from the store.
    server.stop();
    let server = start(settings);
    assert_eq!(
        post(&http, &format!("http://{}/greet", server.data), b"bo").body,
        "HELLO, BO!! (v2)"
    );
    assert_eq!(
        post(&http, &format!("http://{}/counter", server.data), b"").body,
        "4"
    );
}

#[test]
fn a_server_with_native_off_refuses_libraries() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(ServerConfig {
        native: NativeConfig {
            enabled: false,
            require_signature: false,
        },
        ..config(dir.path())
    });
    let http = client();
    let r = deploy(
        &http,
        &server.admin.to_string(),
        "greet",
        hotswap_examples::GREET_V2_NATIVE,
        None,
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("[native] enabled = false"), "{}", r.body);
    assert_eq!(
        post(&http, &format!("http://{}/greet", server.data), b"ada").body,
        "hello, ada!"
    );
}
