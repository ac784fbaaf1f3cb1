//! `hotswap check`: validate a plugin (WASM or native) against ABI v1 without running it.

use std::path::PathBuf;
use std::process::ExitCode;

use hotswap_core::{Artifact, Digest};
use hotswap_wasm::{WasmConfig, WasmTier};
use serde::Serialize;

use crate::input::read_module;

#[derive(clap::Args)]
pub struct Args {
    /// The plugin: a `.wasm` file, a `.wat` text file, or a native library
    /// (`.so`, read without loading it).
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
    /// `wasm` or `native`.
    kind: &'static str,
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
    if hotswap_native::is_native(&bytes) {
        return print(args.json, native_report(&args.file, bytes));
    }
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
        kind: "wasm",
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
    print(args.json, report)
}

/// The report for a native library: what its ELF file says, without loading it.
fn native_report(file: &std::path::Path, bytes: Vec<u8>) -> Report {
    let artifact = Artifact::new(bytes);
    let mut report = Report {
        file: file.display().to_string(),
        kind: "native",
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
    match hotswap_native::validate(artifact.bytes()) {
        Ok(info) => {
            report.valid = true;
            report.name = Some(info.manifest.name);
            report.version = Some(info.manifest.version);
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
        }
        Err(e) => report.error = Some(e.to_string()),
    }
    report
}

fn print(json: bool, report: Report) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report.valid {
        println!(
            "{}: valid ABI v{} {} plugin",
            report.file,
            report.abi.unwrap_or(0),
            if report.kind == "native" {
                "native (unsandboxed)"
            } else {
                "WASM"
            }
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
        if report.kind == "wasm" {
            let imports = if report.imports.is_empty() {
                "none".to_string()
            } else {
                report.imports.join(", ")
            };
            println!("  imports  {imports}");
        }
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
