//! Signed deploys: a missing, wrong or malformed signature is refused before
//! anything is stored or compiled, and the active revision is untouched.

mod common;

use common::*;
use hotswap_server::{signing, ServerConfig};

#[test]
fn only_modules_signed_by_a_trusted_key_deploy() {
    let dir = tempfile::tempdir().unwrap();
    let trusted = signing::generate().unwrap();
    let stranger = signing::generate().unwrap();
    let server = start(ServerConfig {
        trusted_keys: vec![signing::public_hex(&trusted)],
        require_signature: true,
        ..config(dir.path())
    });
    let http = client();
    let admin = format!("http://{}", server.admin);
    let deploy = format!("{admin}/v1/slots/greet/revisions");
    let v2 = hotswap_examples::GREET_V2;
    let before = get(&http, &format!("{admin}/v1/slots/greet")).json();

    let cases = [
        ("unsigned", None, 403, "signature-required"),
        (
            "signed by a stranger",
            Some(signing::sign(&stranger, v2)),
            403,
            "bad-signature",
        ),
        (
            "signed other bytes",
            Some(signing::sign(&trusted, b"other")),
            403,
            "bad-signature",
        ),
        (
            "not a signature",
            Some("zz".to_string()),
            400,
            "bad-request",
        ),
    ];
    for (what, sig, status, kind) in cases {
        let mut req = http.post(&deploy);
        if let Some(sig) = &sig {
            req = req.header("x-hotswap-signature", sig);
        }
        let mut r = req.send(v2).unwrap();
        let body: serde_json::Value =
            serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        assert_eq!(r.status().as_u16(), status, "{what}: {body}");
        assert_eq!(body["kind"], kind, "{what}");
    }
    assert_eq!(
        get(&http, &format!("{admin}/v1/slots/greet")).json(),
        before,
        "nothing changed"
    );
    assert!(
        std::fs::read_dir(dir.path().join("artifacts"))
            .unwrap()
            .count()
            == 1,
        "a refused module was stored"
    );

    let r = http
        .post(&deploy)
        .header("x-hotswap-signature", signing::sign(&trusted, v2))
        .send(v2)
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(
        post(&http, &format!("http://{}/greet", server.data), b"s").body,
        "HELLO, S!! (v2)"
    );
}

#[test]
fn require_signature_without_keys_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        require_signature: true,
        ..config(dir.path())
    };
    let err = config.check().unwrap_err().to_string();
    assert!(err.contains("trusted_keys is empty"), "{err}");
}
