//! `hotswap check`: validate a plugin (WASM or native, against ABI v1) or a
//! wasi:http component, without running it.

use std::path::PathBuf;
use std::process::ExitCode;

use hotswap_core::{Artifact, Digest, Kind};
use hotswap_wasm::{WasmConfig, WasmTier};
use serde::Serialize;

use crate::input::read_module;

#[derive(clap::Args)]
pub struct Args {
    /// The plugin: a `.wasm` file (a core module or a wasi:http component),
    /// a `.wat` text file, or a native library (`.so`, read without loading
    /// it).
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
    kind: Kind,
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
    let artifact = Artifact::new(read_module(&args.file)?);
    let mut report = Report {
        file: args.file.display().to_string(),
        kind: artifact.kind(),
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
    // What validation found: the manifest, which optional exports are there.
    let found = if report.kind == Kind::Native {
        // Read from the ELF file; the library is not loaded.
        hotswap_native::validate(artifact.bytes())
            .map(|i| (i.optional.names().collect(), i.manifest))
            .map_err(|e| e.to_string())
    } else if report.kind == Kind::Component {
        hotswap_component::validate(artifact.bytes())
            .map(|i| {
                report.imports = i.imports;
                (Vec::new(), i.manifest)
            })
            .map_err(|e| e.to_string())
    } else {
        let tier = WasmTier::new(WasmConfig {
            total_instances: 1,
            instance_cap: 1,
            allow_wasi: args.allow_wasi,
            ..WasmConfig::default()
        })
        .map_err(|e| anyhow::anyhow!(e))?;
        tier.inspect(&artifact)
            .map(|i| {
                report.imports = i.imports.clone();
                (i.optional.names().collect(), i.manifest.clone())
            })
            .map_err(|e| e.to_string())
    };
    match found {
        Ok((optional, manifest)) => {
            report.valid = true;
            report.name = Some(manifest.name);
            report.version = Some(manifest.version);
            report.abi = Some(manifest.abi);
            report.optional_exports = optional;
        }
        Err(e) => report.error = Some(e),
    }
    print(args.json, report)
}

fn print(json: bool, report: Report) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report.valid {
        match report.kind {
            Kind::Component => println!("{}: valid wasi:http component", report.file),
            kind => println!(
                "{}: valid ABI v{} {} plugin",
                report.file,
                report.abi.unwrap_or(0),
                if kind == Kind::Native {
                    "native (unsandboxed)"
                } else {
                    "WASM"
                }
            ),
        }
        println!("  name     {}", report.name.as_deref().unwrap_or(""));
        println!("  version  {}", report.version.as_deref().unwrap_or(""));
        println!("  digest   sha256:{}", report.digest);
        println!("  size     {} bytes", report.size);
        let optional = if report.optional_exports.is_empty() {
            "none".to_string()
        } else {
            report.optional_exports.join(", ")
        };
        if report.kind != Kind::Component {
            println!("  optional {optional}");
        }
        if report.kind != Kind::Native {
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
