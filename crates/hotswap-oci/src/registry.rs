//! `Registry`: push, resolve and pull plugins, every digest checked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use hotswap_core::{Digest, Kind};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::Client;
use serde_json::json;

use crate::media;
use crate::reference::PluginRef;

/// How a [`Registry`] works.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Where pulled blobs are kept by digest (none: nothing is kept).
    pub cache_dir: Option<PathBuf>,
    /// How long one push, resolve or pull may take in all; a registry
    /// slower than that fails it with [`OciError::Slow`].
    pub timeout: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            cache_dir: None,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Talks to OCI registries: over HTTPS, or plain HTTP to a registry on
/// this machine (a loopback address or `localhost`), never elsewhere.
pub struct Registry {
    options: RegistryOptions,
    clients: Mutex<HashMap<String, Client>>,
}

/// What a push left in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The plugin, pinned to its manifest's digest.
    pub reference: PluginRef,
    /// The module's own digest (what hotswap names its revisions by).
    pub module: Digest,
    /// The signature artifact, when one was pushed.
    pub signature: Option<PluginRef>,
}

/// A plugin as pulled: its bytes, checked against the digests on the way.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The module.
    pub module: Vec<u8>,
    /// Its digest.
    pub digest: Digest,
    /// Its signature (hex), when the registry holds one.
    pub signature: Option<String>,
    /// Whether the module came from the blob cache.
    pub cached: bool,
}

/// Why a registry operation failed. Nothing is deployed from a failed
/// pull.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The registry refused or could not be reached.
    #[error("the registry {registry} failed: {why}")]
    Registry { registry: String, why: String },
    /// A pull needs a digest: tags move, and a member must get the bytes
    /// the rollout was made of.
    #[error("{0} is not pinned: pull by digest (oci://HOST/REPO@sha256:...), after resolving the tag once")]
    NotPinned(String),
    /// A push goes to a tag.
    #[error("{0} names a digest: push to a tag (oci://HOST/REPO:TAG); the digest is the registry's answer")]
    PushToDigest(String),
    /// No such tag or manifest.
    #[error("{0} is not in the registry")]
    NotFound(String),
    /// What the registry answered is not what was asked for.
    #[error("{reference}: {what} has digest sha256:{got}, not the sha256:{expected} it must have")]
    Digest {
        reference: String,
        what: &'static str,
        expected: Digest,
        got: Digest,
    },
    /// The artifact is not a plugin in the layout hotswap pushes.
    #[error("{reference} is not a WebAssembly plugin: {why}")]
    NotAPlugin { reference: String, why: String },
    /// Only WebAssembly goes into registries.
    #[error("OCI artifacts carry WebAssembly plugins; a native library (ELF) cannot be pushed")]
    Native,
    /// The registry did not finish in time.
    #[error("the registry {registry} did not answer within {after:?}")]
    Slow { registry: String, after: Duration },
    /// The blob cache could not be read or written.
    #[error("the blob cache {path}: {why}")]
    Cache { path: PathBuf, why: String },
}

impl Registry {
    /// A client with `options`.
    pub fn new(options: RegistryOptions) -> Registry {
        // The registry client is built without a crypto provider of its
        // own; it uses the process's, which is ring, as for the gateway.
        // An error means one was installed already.
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
        Registry {
            options,
            clients: Mutex::default(),
        }
    }

    /// The client for `reference`'s registry: one per registry, kept, so
    /// that its connections and its TLS set-up (loading the roots takes
    /// milliseconds) serve every later operation.
    fn client(&self, reference: &PluginRef) -> Client {
        let mut clients = self.clients.lock().expect("the client table");
        let host = reference.registry().to_string();
        clients
            .entry(host)
            .or_insert_with(|| {
                let protocol = if reference.is_loopback() {
                    ClientProtocol::HttpsExcept(vec![reference.registry().to_string()])
                } else {
                    ClientProtocol::Https
                };
                Client::new(ClientConfig {
                    protocol,
                    connect_timeout: Some(self.options.timeout),
                    ..ClientConfig::default()
                })
            })
            .clone()
    }

    /// Pushes `module` to the tag `to`, and its `signature` (hex) beside
    /// it. Blobs the registry has already are not sent again.
    pub async fn push(
        &self,
        module: &[u8],
        to: &PluginRef,
        signature: Option<&str>,
    ) -> Result<Pushed, OciError> {
        self.bounded(to, self.push_now(module, to, signature)).await
    }

    async fn push_now(
        &self,
        module: &[u8],
        to: &PluginRef,
        signature: Option<&str>,
    ) -> Result<Pushed, OciError> {
        if to.digest().is_some() || to.tag().is_none() {
            return Err(OciError::PushToDigest(to.to_string()));
        }
        if Kind::of(module) == Kind::Native {
            return Err(OciError::Native);
        }
        let client = self.client(to);
        let module_digest = Digest::of(module);
        let config = serde_json::to_vec(&json!({
            "architecture": "wasm",
            "os": "wasip1",
            "layerDigests": [format!("sha256:{module_digest}")],
        }))
        .expect("JSON of strings");
        let manifest = push_artifact(
            &client,
            to,
            (media::WASM_CONFIG, &config),
            (media::WASM_LAYER, module),
        )
        .await?;
        let reference = to.at(manifest);
        let signature = match signature {
            None => None,
            Some(hex) => {
                let sig = to.tagged(&signature_tag(manifest));
                push_artifact(
                    &client,
                    &sig,
                    (media::SIGNATURE_CONFIG, b"{}"),
                    (media::SIGNATURE_LAYER, hex.trim().as_bytes()),
                )
                .await?;
                Some(sig)
            }
        };
        Ok(Pushed {
            reference,
            module: module_digest,
            signature,
        })
    }

    /// The digest `reference`'s tag points at now, as a pinned reference
    /// (a pinned one is returned as it is).
    pub async fn resolve(&self, reference: &PluginRef) -> Result<PluginRef, OciError> {
        self.bounded(reference, self.resolve_now(reference)).await
    }

    async fn resolve_now(&self, reference: &PluginRef) -> Result<PluginRef, OciError> {
        if reference.digest().is_some() {
            return Ok(reference.clone());
        }
        let client = self.client(reference);
        let digest = client
            .fetch_manifest_digest(reference.oci(), &RegistryAuth::Anonymous)
            .await
            .map_err(|e| failed(reference, e))?;
        let digest: Digest = digest.parse().map_err(|_| OciError::Registry {
            registry: reference.registry().to_string(),
            why: format!("it answered a digest that is not sha256: {digest}"),
        })?;
        Ok(reference.at(digest))
    }

    /// The plugin at the pinned `reference`: its manifest checked against
    /// the pin, its layer against the manifest, and its signature, when the
    /// registry has one. The module comes from the cache when it is there.
    pub async fn pull(&self, reference: &PluginRef) -> Result<Pulled, OciError> {
        self.bounded(reference, self.pull_now(reference)).await
    }

    /// `op` on `reference`'s registry, given [`RegistryOptions::timeout`].
    async fn bounded<T>(
        &self,
        reference: &PluginRef,
        op: impl std::future::Future<Output = Result<T, OciError>>,
    ) -> Result<T, OciError> {
        let after = self.options.timeout;
        tokio::time::timeout(after, op).await.unwrap_or_else(|_| {
            Err(OciError::Slow {
                registry: reference.registry().to_string(),
                after,
            })
        })
    }

    async fn pull_now(&self, reference: &PluginRef) -> Result<Pulled, OciError> {
        let Some(pin) = reference.digest() else {
            return Err(OciError::NotPinned(reference.to_string()));
        };
        let client = self.client(reference);
        let manifest = pull_manifest(&client, reference, pin).await?;
        let layer = only_layer(reference, &manifest, media::WASM_CONFIG, media::WASM_LAYER)?;
        let digest = layer_digest(reference, &layer.digest)?;
        let (module, cached) = match self.cached(digest)? {
            Some(module) => (module, true),
            None => {
                let module = pull_blob(&client, reference, &layer, digest).await?;
                self.keep(digest, &module)?;
                (module, false)
            }
        };
        let signature = self.signature(&client, reference, pin).await?;
        Ok(Pulled {
            module,
            digest,
            signature,
            cached,
        })
    }

    async fn signature(
        &self,
        client: &Client,
        reference: &PluginRef,
        pin: Digest,
    ) -> Result<Option<String>, OciError> {
        let sig = reference.tagged(&signature_tag(pin));
        let digest = match client
            .fetch_manifest_digest(sig.oci(), &RegistryAuth::Anonymous)
            .await
        {
            Ok(d) => d,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(failed(&sig, e)),
        };
        let digest = layer_digest(&sig, &digest)?;
        let sig = sig.at(digest);
        let manifest = pull_manifest(client, &sig, digest).await?;
        let layer = only_layer(
            &sig,
            &manifest,
            media::SIGNATURE_CONFIG,
            media::SIGNATURE_LAYER,
        )?;
        let text = pull_blob(client, &sig, &layer, layer_digest(&sig, &layer.digest)?).await?;
        String::from_utf8(text)
            .map(|s| Some(s.trim().to_string()))
            .map_err(|_| OciError::NotAPlugin {
                reference: sig.to_string(),
                why: "its signature is not text".into(),
            })
    }

    fn cache_path(&self, digest: Digest) -> Option<PathBuf> {
        let dir = self.options.cache_dir.as_ref()?;
        Some(dir.join("sha256").join(digest.to_string()))
    }

    /// The cached blob of `digest`, if the cache has it intact (a damaged
    /// one is pulled again).
    fn cached(&self, digest: Digest) -> Result<Option<Vec<u8>>, OciError> {
        let Some(path) = self.cache_path(digest) else {
            return Ok(None);
        };
        match std::fs::read(&path) {
            Ok(bytes) if Digest::of(&bytes) == digest => Ok(Some(bytes)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(cache_error(&path, e)),
        }
    }

    /// Keeps a checked blob, whole or not at all (written aside, then
    /// renamed).
    fn keep(&self, digest: Digest, bytes: &[u8]) -> Result<(), OciError> {
        let Some(path) = self.cache_path(digest) else {
            return Ok(());
        };
        let dir = path.parent().expect("a file in the cache");
        std::fs::create_dir_all(dir).map_err(|e| cache_error(dir, e))?;
        let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|e| cache_error(dir, e))?;
        std::io::Write::write_all(&mut file, bytes).map_err(|e| cache_error(&path, e))?;
        file.persist(&path)
            .map_err(|e| cache_error(&path, e.error))?;
        Ok(())
    }
}

/// The tag a signature artifact is pushed under, beside its plugin.
fn signature_tag(manifest: Digest) -> String {
    format!("sha256-{manifest}.sig")
}

/// Pushes one artifact (a config and one layer) to `to`; its manifest's
/// digest, computed over the very bytes sent.
async fn push_artifact(
    client: &Client,
    to: &PluginRef,
    (config_type, config): (&str, &[u8]),
    (layer_type, layer): (&str, &[u8]),
) -> Result<Digest, OciError> {
    let descriptor = |media_type: &str, bytes: &[u8]| {
        json!({
            "mediaType": media_type,
            "digest": format!("sha256:{}", Digest::of(bytes)),
            "size": bytes.len(),
        })
    };
    for blob in [config, layer] {
        let digest = format!("sha256:{}", Digest::of(blob));
        let known = client.blob_exists(to.oci(), &digest).await.unwrap_or(false);
        if !known {
            client
                .push_blob(to.oci(), blob.to_vec(), &digest)
                .await
                .map_err(|e| failed(to, e))?;
        }
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media::MANIFEST,
        "config": descriptor(config_type, config),
        "layers": [descriptor(layer_type, layer)],
    }))
    .expect("JSON of strings and numbers");
    let digest = Digest::of(&manifest);
    client
        .push_manifest_raw(
            to.oci(),
            manifest,
            media::MANIFEST.parse().expect("a valid header value"),
        )
        .await
        .map_err(|e| failed(to, e))?;
    Ok(digest)
}

async fn pull_manifest(
    client: &Client,
    reference: &PluginRef,
    pin: Digest,
) -> Result<OciImageManifest, OciError> {
    let (bytes, _) = client
        .pull_manifest_raw(
            reference.oci(),
            &RegistryAuth::Anonymous,
            &[media::MANIFEST],
        )
        .await
        .map_err(|e| failed(reference, e))?;
    let got = Digest::of(&bytes);
    if got != pin {
        return Err(OciError::Digest {
            reference: reference.to_string(),
            what: "the manifest",
            expected: pin,
            got,
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| OciError::NotAPlugin {
        reference: reference.to_string(),
        why: format!("its manifest is not an OCI image manifest: {e}"),
    })
}

/// The one layer of an artifact of the given types.
fn only_layer(
    reference: &PluginRef,
    manifest: &OciImageManifest,
    config_type: &str,
    layer_type: &str,
) -> Result<oci_client::manifest::OciDescriptor, OciError> {
    let not = |why: String| OciError::NotAPlugin {
        reference: reference.to_string(),
        why,
    };
    if manifest.config.media_type != config_type {
        return Err(not(format!(
            "its config is {}, not {config_type}",
            manifest.config.media_type
        )));
    }
    match manifest.layers.as_slice() {
        [layer] if layer.media_type == layer_type => Ok(layer.clone()),
        [layer] => Err(not(format!(
            "its layer is {}, not {layer_type}",
            layer.media_type
        ))),
        layers => Err(not(format!("it has {} layers, not one", layers.len()))),
    }
}

fn layer_digest(reference: &PluginRef, digest: &str) -> Result<Digest, OciError> {
    match digest.strip_prefix("sha256:").map(str::parse::<Digest>) {
        Some(Ok(d)) => Ok(d),
        _ => Err(OciError::NotAPlugin {
            reference: reference.to_string(),
            why: format!("digest {digest} is not sha256"),
        }),
    }
}

async fn pull_blob(
    client: &Client,
    reference: &PluginRef,
    layer: &oci_client::manifest::OciDescriptor,
    digest: Digest,
) -> Result<Vec<u8>, OciError> {
    let mut bytes = Vec::new();
    client
        .pull_blob(reference.oci(), layer, &mut bytes)
        .await
        .map_err(|e| failed(reference, e))?;
    let got = Digest::of(&bytes);
    if got != digest {
        return Err(OciError::Digest {
            reference: reference.to_string(),
            what: "the layer",
            expected: digest,
            got,
        });
    }
    Ok(bytes)
}

fn is_not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown | OciErrorCode::NotFound
            )
        }),
        OciDistributionError::ServerError { code, .. } => *code == 404,
        _ => false,
    }
}

fn failed(reference: &PluginRef, e: OciDistributionError) -> OciError {
    if is_not_found(&e) {
        return OciError::NotFound(reference.to_string());
    }
    // The client checks digests as it reads; a mismatch is tampering or
    // corruption, never a reason to try again.
    if let OciDistributionError::DigestError(oci_client::errors::DigestError::VerificationError {
        expected,
        actual,
    }) = &e
    {
        let parse = |d: &str| {
            d.strip_prefix("sha256:")
                .and_then(|h| h.parse::<Digest>().ok())
        };
        if let (Some(expected), Some(got)) = (parse(expected), parse(actual)) {
            return OciError::Digest {
                reference: reference.to_string(),
                what: "what the registry served",
                expected,
                got,
            };
        }
    }
    OciError::Registry {
        registry: reference.registry().to_string(),
        why: e.to_string(),
    }
}

fn cache_error(path: &Path, e: std::io::Error) -> OciError {
    OciError::Cache {
        path: path.to_path_buf(),
        why: e.to_string(),
    }
}
