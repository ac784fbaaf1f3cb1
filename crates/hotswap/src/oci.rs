//! The CLI's side of OCI registries: `hotswap push` (a plugin and its
//! signature into a registry) and the pull behind `hotswap deploy oci://...`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use hotswap_oci::{PluginRef, Pulled, Registry, RegistryOptions};
use hotswap_server::signing;
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// The plugin: a WebAssembly module.
    file: PathBuf,
    /// Where to push it: oci://HOST/REPO:TAG (plain HTTP only to a registry on this machine).
    reference: PluginRef,
    /// Its signature file (from `hotswap sign`), pushed beside it as REPO:sha256-DIGEST.sig.
    #[arg(long, value_name = "FILE", conflicts_with = "key")]
    signature: Option<PathBuf>,
    /// Sign it with this secret key (from `hotswap keygen`) and push the signature.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    let module = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let signature = match &args.key {
        Some(key) => {
            let secret = std::fs::read_to_string(key)
                .with_context(|| format!("cannot read the key {}", key.display()))?;
            let key = signing::parse_secret(&secret).with_context(|| key.display().to_string())?;
            Some(signing::sign(&key, &module))
        }
        None => crate::client::read_signature(args.signature.as_deref())?,
    };
    let registry = Registry::new(RegistryOptions::default());
    let pushed = runtime()?
        .block_on(registry.push(&module, &args.reference, signature.as_deref()))
        .with_context(|| format!("cannot push {}", args.file.display()))?;
    if args.json {
        println!(
            "{}",
            json!({
                "reference": pushed.reference.to_string(),
                "digest": pushed.module.to_string(),
                "signature": pushed.signature.map(|s| s.to_string()),
            })
        );
    } else {
        println!("pushed {} as {}", args.file.display(), pushed.reference);
        println!("module digest sha256:{}", pushed.module);
        if let Some(sig) = pushed.signature {
            println!("signature {sig}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Pulls the plugin at `reference` for a deploy: a tag is resolved to its
/// digest first (and the answer says which), then the plugin is pulled by
/// digest, every digest checked on the way.
pub(crate) fn pull(reference: &PluginRef) -> anyhow::Result<(PluginRef, Pulled)> {
    let registry = Registry::new(RegistryOptions::default());
    runtime()?.block_on(async {
        let pinned = registry
            .resolve(reference)
            .await
            .with_context(|| format!("cannot resolve {reference}"))?;
        let pulled = registry
            .pull(&pinned)
            .await
            .with_context(|| format!("cannot pull {pinned}"))?;
        Ok((pinned, pulled))
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
