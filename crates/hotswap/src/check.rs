//! `hotswap check`: validate a module against ABI v1 without running it.

use std::path::PathBuf;
use std::process::ExitCode;

use hotswap_core::{Artifact, Digest};
use hotswap_wasm::{WasmConfig, WasmTier};
use serde::Serialize;

use crate::input::read_module;

#[derive(clap::Args)]
pub struct Args {
    /// The module: a `.wasm` file, or a `.wat` text file.
    file: PathBuf,
    /// Allow imports from WASI preview 1 (sandboxed: no files, no network,
    /// no environment; output goes to the log).
    #[arg(long)]
    allow_wasi: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    file: String,
    valid: bool,
    digest: Digest,
    size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    abi: Option<u32>,
    optional_exports: Vec<&'static str>,
    imports: Vec<String>,
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    let bytes = read_module(&args.file)?;
    let tier = WasmTier::new(WasmConfig {
        total_instances: 1,
        instance_cap: 1,
        allow_wasi: args.allow_wasi,
        ..WasmConfig::default()
    })
    .map_err(|e| anyhow::anyhow!(e))?;
    let artifact = Artifact::new(bytes);
    let mut report = Report {
        file: args.file.display().to_string(),
        valid: false,
        digest: artifact.digest(),
        size: artifact.bytes().len(),
        error: None,
        name: None,
        version: None,
        abi: None,
        optional_exports: Vec::new(),
        imports: Vec::new(),
    };
    match tier.inspect(&artifact) {
        Ok(info) => {
            report.valid = true;
            report.name = Some(info.manifest.name.clone());
            report.version = Some(info.manifest.version.clone());
            report.abi = Some(info.manifest.abi);
            for (present, name) in [
                (info.has_init, "hs_init"),
                (info.has_health, "hs_health"),
                (info.has_shutdown, "hs_shutdown"),
            ] {
                if present {
                    report.optional_exports.push(name);
                }
            }
            report.imports = info.imports.clone();
        }
        Err(e) => report.error = Some(e.to_string()),
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report.valid {
        println!(
            "{}: valid ABI v{} plugin",
            report.file,
            report.abi.unwrap_or(0)
        );
        println!("  name     {}", report.name.as_deref().unwrap_or(""));
        println!("  version  {}", report.version.as_deref().unwrap_or(""));
        println!("  digest   sha256:{}", report.digest);
        println!("  size     {} bytes", report.size);
        let optional = if report.optional_exports.is_empty() {
            "none".to_string()
        } else {
            report.optional_exports.join(", ")
        };
        println!("  optional {optional}");
        let imports = if report.imports.is_empty() {
            "none".to_string()
        } else {
            report.imports.join(", ")
        };
        println!("  imports  {imports}");
    } else {
        eprintln!(
            "{}: invalid: {}",
            report.file,
            report.error.as_deref().unwrap_or("")
        );
    }
    Ok(if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
