//! Libraries that break the native ABI are rejected before activation, and
//! the revision that was serving keeps serving.

mod common;

use common::*;
use hotswap_core::{DeployError, ManifestError};
use hotswap_native::{PrepareError, Rejection};

/// Deploys `bad` over a serving echo plugin: the deploy must fail, and the
/// echo plugin must still answer.
fn rejected(bad: Vec<u8>) -> DeployError {
    let tier = tier();
    let slot = slot(&tier, "native");
    slot.deploy(art(&build_c("echo", ECHO)), None).unwrap();
    let err = slot.deploy(art(&bad), None).unwrap_err();
    assert_eq!(slot.call(b"still here").unwrap(), b"still here");
    let stats = tier.stats();
    assert_eq!(
        stats.live(),
        1,
        "only the serving library is loaded: {stats:?}"
    );
    assert_eq!(stats.pinned, 0);
    err
}

fn rejection(err: &DeployError) -> &Rejection {
    err.tier_error::<Rejection>()
        .unwrap_or_else(|| panic!("not a validation rejection: {err}"))
}

#[test]
fn missing_required_symbol() {
    let no_call = r#"
        MANIFEST("{\"name\":\"c-echo\",\"version\":\"1.0.0\",\"abi\":1}");
        int32_t hs_bind(const void *host) { return 0; }
    "#;
    let err = rejected(build_c("nocall", no_call));
    assert!(matches!(err, DeployError::Invalid(_)), "{err}");
    assert_eq!(rejection(&err), &Rejection::MissingExport("hs_call"));
    assert!(
        err.to_string().contains("does not export `hs_call`"),
        "{err}"
    );
}

#[test]
fn symbol_that_is_not_a_function() {
    let data = r#"
        MANIFEST("{\"name\":\"c-echo\",\"version\":\"1.0.0\",\"abi\":1}");
        int32_t hs_bind(const void *host) { return 0; }
        int hs_call = 5;
    "#;
    let err = rejected(build_c("datacall", data));
    assert_eq!(rejection(&err), &Rejection::NotAFunction("hs_call"));
}

#[test]
fn other_abi_version() {
    let v2 = ECHO.replace("\\\"abi\\\":1", "\\\"abi\\\":2");
    assert_ne!(v2, ECHO);
    let err = rejected(build_c("abi2", &v2));
    assert_eq!(
        rejection(&err),
        &Rejection::Manifest(ManifestError::UnsupportedAbi { found: 2 })
    );
    assert!(err.to_string().contains("ABI v2"), "{err}");
}

#[test]
fn no_manifest() {
    let source = ECHO.replace("MANIFEST(", "// MANIFEST(");
    let err = rejected(build_c("nomanifest", &source));
    assert_eq!(
        rejection(&err),
        &Rejection::Manifest(ManifestError::Missing)
    );
}

#[test]
fn not_a_shared_library() {
    assert!(matches!(
        rejection(&rejected(b"hello".to_vec())),
        Rejection::NotElf(_)
    ));
    assert!(matches!(
        rejection(&rejected(hotswap_examples::GREET_V1.to_vec())),
        Rejection::NotElf(_)
    ));
    // An ELF object file, not linked.
    let dir = tempfile::tempdir().unwrap();
    let (c, o) = (dir.path().join("x.c"), dir.path().join("x.o"));
    std::fs::write(&c, format!("{PRELUDE}\n{ECHO}")).unwrap();
    compile(&c, &o, &["-c"]);
    assert_eq!(
        rejection(&rejected(std::fs::read(&o).unwrap())),
        &Rejection::NotShared("an object file")
    );
    // Damaged: the right magic, then truncated.
    let mut cut = build_c("echo", ECHO);
    cut.truncate(200);
    assert!(matches!(rejection(&rejected(cut)), Rejection::NotElf(_)));
}

#[test]
fn failed_bind_init_or_health() {
    let with = |body: &str| format!("{ECHO}\n{body}");
    for (source, expect) in [
        (
            r#"
            MANIFEST("{\"name\":\"c\",\"version\":\"1\",\"abi\":1}");
            int32_t hs_bind(const void *host) { return 1; }
            int32_t hs_call(const uint8_t *in, size_t len, void *sink, hs_sink write) { return 0; }
            "#
            .to_string(),
            "hs_bind returned 1",
        ),
        (
            with("int32_t hs_init(void) { return 7; }"),
            "hs_init returned 7",
        ),
        (
            with("int32_t hs_health(void) { return 3; }"),
            "hs_health returned 3",
        ),
    ] {
        let err = rejected(build_c("failing", &source));
        assert!(matches!(err, DeployError::Prepare(_)), "{err}");
        assert!(err.tier_error::<PrepareError>().is_some(), "{err}");
        assert!(err.to_string().contains(expect), "{err} lacks {expect}");
    }
}
