//! `hotswap run`: load a plugin (WASM or native) and call it once, or a
//! wasi:http component and send it one request, under the usual limits.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hotswap_component::{ComponentConfig, ComponentTier};
use hotswap_core::{error_chain, Artifact, EventBus, Kind, MemoryKv, Slot};
use hotswap_server::{AnyCode, Tiers};
use hotswap_wasm::{WasmConfig, WasmTier};

use serde::Serialize;

use crate::input::read_module;

#[derive(clap::Args)]
pub struct Args {
    /// The plugin: a `.wasm` file (a core module or a wasi:http component),
    /// a `.wat` text file, or a native library (`.so`; it runs unsandboxed,
    /// and the limits below do not apply to it).
    file: PathBuf,
    /// For a component: the request's path and query.
    #[arg(long, default_value = "/", value_name = "PATH")]
    path: String,
    /// For a component: the request's method [default: POST with an input,
    /// else GET].
    #[arg(long, value_name = "METHOD")]
    method: Option<String>,
    /// Print one JSON object (the output, or the error, and the timings)
    /// instead of the raw output.
    #[arg(long)]
    json: bool,
    /// Allow imports from WASI preview 1 (sandboxed: no files, no network,
    /// no environment; output goes to the log).
    #[arg(long)]
    allow_wasi: bool,
    /// The input, as a string.
    #[arg(long, conflicts_with = "input_file")]
    input: Option<String>,
    /// The input, read from a file (`-` for standard input).
    #[arg(long)]
    input_file: Option<PathBuf>,
    /// The call's deadline, in milliseconds.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    deadline: u64,
    /// Where compiled modules are cached, so running the same module again
    /// skips compilation [default: $XDG_CACHE_HOME/hotswap or ~/.cache/hotswap].
    #[arg(long, env = "HOTSWAP_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile in memory only; read and write no cache.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
    /// The plugin's memory cap, in MiB.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    memory_cap: u64,
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    let bytes = read_module(&args.file)?;
    let input = match (&args.input, &args.input_file) {
        (Some(s), _) => s.clone().into_bytes(),
        (None, Some(p)) if p.as_os_str() == "-" => {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
            buf
        }
        (None, Some(p)) => {
            std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?
        }
        (None, None) => Vec::new(),
    };
    let tier = WasmTier::new(WasmConfig {
        deadline: Duration::from_millis(args.deadline),
        memory_cap: args.memory_cap << 20,
        total_instances: 2,
        instance_cap: 1,
        cache_dir: if args.no_cache {
            None
        } else {
            args.cache_dir.clone().or_else(default_cache_dir)
        },
        allow_wasi: args.allow_wasi,
    })
    .map_err(|e| anyhow::anyhow!(e))?;
    let components = ComponentTier::new(ComponentConfig {
        deadline: Duration::from_millis(args.deadline),
        memory_cap: args.memory_cap << 20,
        max_instances: 2,
        ..ComponentConfig::default()
    })
    .map_err(|e| anyhow::anyhow!(e))?;
    let is_component = Kind::of(&bytes) == Kind::Component;
    // The server's own dispatch, so a native library runs here as it would there.
    let slot = Slot::new(
        "run",
        Arc::new(Tiers::new(Arc::new(tier), components, true)),
        Arc::new(MemoryKv::default()),
        EventBus::new(),
    );
    let started = Instant::now();
    let deployed = slot.deploy(Artifact::new(bytes), None);
    let load_us = started.elapsed().as_micros() as u64;
    let (revision, result) = match deployed {
        Ok(info) => {
            let started = Instant::now();
            let result = if is_component {
                let method = args
                    .method
                    .clone()
                    .unwrap_or_else(|| if input.is_empty() { "GET" } else { "POST" }.into());
                request(&slot, &method, &args.path, input)
            } else {
                slot.call(&input).map_err(|e| e.to_string())
            };
            (
                Some(info),
                result.map(|out| (out, started.elapsed().as_micros() as u64)),
            )
        }
        Err(e) => (
            None,
            Err(format!("{}: {}", args.file.display(), error_chain(&e))),
        ),
    };

    if args.json {
        let (output, output_hex, call_us, error) = match &result {
            Ok((out, us)) => match std::str::from_utf8(out) {
                Ok(text) => (Some(text.to_string()), None, Some(*us), None),
                Err(_) => (None, Some(hex::encode(out)), Some(*us), None),
            },
            Err(e) => (None, None, None, Some(e.clone())),
        };
        let report = Report {
            ok: result.is_ok(),
            name: revision.as_ref().map(|r| r.name.clone()),
            version: revision.as_ref().map(|r| r.version.clone()),
            digest: revision.as_ref().map(|r| r.digest.to_string()),
            output,
            output_hex,
            error,
            load_us,
            call_us,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        match &result {
            Ok((output, _)) => {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(output)?;
                if std::io::IsTerminal::is_terminal(&stdout) && !output.ends_with(b"\n") {
                    stdout.write_all(b"\n")?;
                }
            }
            Err(e) => eprintln!("error: {e}"),
        }
    }
    Ok(if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One request to the component in `slot`: its answer's body, or why there
/// is none (a failed call, or an answer with an error status).
fn request(
    slot: &Slot<Tiers>,
    method: &str,
    path: &str,
    input: Vec<u8>,
) -> Result<Vec<u8>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let lease = slot.lease(None).map_err(|e| e.to_string())?;
        let AnyCode::Component(code) = lease.code() else {
            return Err("not a component".to_string());
        };
        let body = http_body_util::Full::new(bytes::Bytes::from(input));
        let request = http::Request::builder()
            .method(method)
            .uri(format!("http://localhost{path}"))
            .body(hotswap_component::request_body(body))
            .map_err(|e| format!("bad request: {e}"))?;
        let held = lease.clone();
        let finished = move |_: &hotswap_component::Outcome| drop(held);
        let answer = code
            .handle_whole(request, hotswap_component::Scheme::Http, finished)
            .await
            .map_err(|e| e.to_string())?;
        if answer.status >= 400 {
            return Err(format!(
                "the component answered {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            ));
        }
        Ok(answer.body.to_vec())
    })
}

/// `hotswap run --json`: the output as text when it is UTF-8, else as hex,
/// so no byte is lost.
#[derive(Serialize)]
struct Report {
    ok: bool,
    name: Option<String>,
    version: Option<String>,
    digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_hex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Loading: validation, compilation (or the cache), instantiation.
    load_us: u64,
    call_us: Option<u64>,
}

/// `$XDG_CACHE_HOME/hotswap`, else `$HOME/.cache/hotswap` (the XDG default).
fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("hotswap"))
}
