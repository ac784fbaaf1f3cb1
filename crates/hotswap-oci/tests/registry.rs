//! Push, resolve and pull against a real registry (Debian's
//! docker-registry, started on loopback for the test).

use hotswap_core::Digest;
use hotswap_oci::{OciError, PluginRef, Registry, RegistryOptions};
use hotswap_testkit::OciRegistry;

/// A module's bytes; the registry neither knows nor cares what is inside.
fn module(version: u8) -> Vec<u8> {
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    m.extend(std::iter::repeat_n(version, 4096));
    m
}

/// A client that caches blobs in `dir`.
fn caching(dir: &std::path::Path) -> Registry {
    Registry::new(RegistryOptions {
        cache_dir: Some(dir.to_path_buf()),
        ..RegistryOptions::default()
    })
}

/// `oci://HOST/plugins/greet:v1` on `server`.
fn greet_v1(server: &OciRegistry) -> PluginRef {
    format!("oci://{}/plugins/greet:v1", server.host())
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_pushed_plugin_comes_back_by_digest_with_its_signature_and_from_the_cache() {
    let Some(server) = OciRegistry::start() else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let registry = caching(cache.path());
    let tag = greet_v1(&server);
    let v1 = module(1);
    let pushed = registry.push(&v1, &tag, Some("ab12")).await.unwrap();
    assert_eq!(pushed.module, Digest::of(&v1));
    assert!(pushed.signature.is_some());

    // The tag resolves to the pushed manifest; pulls take the pin only.
    let pinned = registry.resolve(&tag).await.unwrap();
    assert_eq!(pinned, pushed.reference);
    assert!(matches!(
        registry.pull(&tag).await,
        Err(OciError::NotPinned(_))
    ));

    let pulled = registry.pull(&pinned).await.unwrap();
    assert_eq!(pulled.module, v1);
    assert_eq!(pulled.digest, Digest::of(&v1));
    assert_eq!(pulled.signature.as_deref(), Some("ab12"));
    assert!(!pulled.cached);
    let again = registry.pull(&pinned).await.unwrap();
    assert!(again.cached, "the second pull reads the cache");
    assert_eq!(again.module, v1);

    // A damaged cache entry is not believed: the blob is pulled again.
    let entry = cache
        .path()
        .join("sha256")
        .join(Digest::of(&v1).to_string());
    std::fs::write(&entry, b"garbage").unwrap();
    let repaired = registry.pull(&pinned).await.unwrap();
    assert!(!repaired.cached);
    assert_eq!(repaired.module, v1);
    assert_eq!(std::fs::read(&entry).unwrap(), v1);

    // Moving the tag moves what it resolves to, never what a pin pulls.
    let v2 = module(2);
    let moved = registry.push(&v2, &tag, None).await.unwrap();
    assert_ne!(moved.reference, pinned);
    assert_eq!(registry.resolve(&tag).await.unwrap(), moved.reference);
    assert_eq!(registry.pull(&pinned).await.unwrap().module, v1);
    let unsigned = registry.pull(&moved.reference).await.unwrap();
    assert_eq!(unsigned.module, v2);
    assert_eq!(unsigned.signature, None);
}

#[tokio::test]
async fn what_is_not_there_or_not_a_plugin_is_a_clear_error() {
    let Some(server) = OciRegistry::start() else {
        return;
    };
    let registry = Registry::new(RegistryOptions::default());
    let tag: PluginRef = format!("oci://{}/plugins/greet:v1", server.host())
        .parse()
        .unwrap();

    let missing = registry.resolve(&tag).await.unwrap_err();
    assert!(matches!(missing, OciError::NotFound(_)), "{missing}");
    let unknown = registry
        .pull(&tag.at(Digest::of(b"no such manifest")))
        .await;
    assert!(matches!(unknown, Err(OciError::NotFound(_))), "{unknown:?}");

    let native = registry.push(b"\x7fELF\x02\x01\x01", &tag, None).await;
    assert!(matches!(native, Err(OciError::Native)), "{native:?}");
    let pinned = tag.at(Digest::of(b"x"));
    let to_digest = registry.push(&module(1), &pinned, None).await;
    assert!(
        matches!(to_digest, Err(OciError::PushToDigest(_))),
        "{to_digest:?}"
    );

    // The signature artifact is no plugin: pulling it says so.
    let pushed = registry.push(&module(1), &tag, Some("ab12")).await.unwrap();
    let sig_tag: PluginRef = pushed.signature.unwrap().to_string().parse().unwrap();
    let sig = registry.resolve(&sig_tag).await.unwrap();
    let e = registry.pull(&sig).await.unwrap_err();
    assert!(matches!(e, OciError::NotAPlugin { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("application/vnd.wasm.config.v0+json"),
        "{e}"
    );
}

#[tokio::test]
async fn a_tampered_blob_is_refused_and_never_cached() {
    let Some(server) = OciRegistry::start() else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let registry = caching(cache.path());
    let tag = greet_v1(&server);
    let v1 = module(1);
    let pushed = registry.push(&v1, &tag, None).await.unwrap();
    // Someone with access to the registry's disk swaps the module.
    let blob = server.blob_path(&Digest::of(&v1).to_string());
    std::fs::write(&blob, module(2)).unwrap();
    let e = registry.pull(&pushed.reference).await.unwrap_err();
    assert!(matches!(e, OciError::Digest { .. }), "{e}");
    assert!(e.to_string().contains(&Digest::of(&v1).to_string()), "{e}");
    let cached = cache
        .path()
        .join("sha256")
        .join(Digest::of(&v1).to_string());
    assert!(!cached.exists(), "nothing unverified is kept");
}

#[tokio::test]
async fn a_registry_that_never_answers_fails_within_the_timeout() {
    // Accepts connections and reads, never answers: a hung registry.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = hole.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in hole.incoming().flatten() {
            held.push(conn);
        }
    });
    let registry = Registry::new(RegistryOptions {
        timeout: std::time::Duration::from_millis(300),
        ..RegistryOptions::default()
    });
    let tag: PluginRef = format!("oci://{host}/plugins/greet:v1").parse().unwrap();
    let e = registry.resolve(&tag).await.unwrap_err();
    assert!(matches!(e, OciError::Slow { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        format!("the registry {host} did not answer within 300ms")
    );
    let e = registry.pull(&tag.at(Digest::of(b"x"))).await.unwrap_err();
    assert!(matches!(e, OciError::Slow { .. }), "{e}");
}
