//! `hotswap watch`: the dev loop. Watches plugin sources, rebuilds on a
//! change, validates, and deploys to a running `hotswap serve`, which swaps
//! in place: the server never restarts and no request in flight is cut.

mod build;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hotswap_core::{Artifact, Digest};
use hotswap_wasm::{WasmConfig, WasmTier};
use notify::Watcher;
use serde::Serialize;

use crate::client::{request, Conn};
use build::Source;

#[derive(clap::Args)]
pub struct Args {
    /// What to watch: a plugin crate's directory (or its Cargo.toml), a C
    /// plugin (`.c`), WebAssembly text (`.wat`) or a built module (`.wasm`).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// The slot to deploy to [default: the plugin's name, from its manifest].
    /// Only with a single PATH.
    #[arg(long)]
    slot: Option<String>,
    /// Build and deploy each PATH once, then exit: 0 if all deployed.
    #[arg(long)]
    once: bool,
    /// Quiet time after the last change before rebuilding.
    #[arg(long, default_value_t = 150, value_name = "MS")]
    debounce: u64,
    #[command(flatten)]
    conn: Conn,
}

/// One cycle: what changed, and what came of it. The field names are the
/// stable keys of `--json`, one object per line.
#[derive(Serialize, Default)]
struct Cycle {
    /// The watched source.
    source: String,
    /// The file whose change started the cycle, or `start`.
    changed: String,
    /// The slot deployed to, once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    slot: Option<String>,
    /// How long the build took (0 when a cached build was used).
    build_ms: f64,
    /// The build came from the cache: this source was built before.
    cached: bool,
    /// Whether the module passed validation.
    valid: bool,
    /// The build's digest is the one already deployed: nothing was swapped.
    unchanged: bool,
    /// How long the deploy took, upload to active.
    #[serde(skip_serializing_if = "Option::is_none")]
    swap_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generation: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<Digest>,
    /// What failed: `build`, `validate` or `deploy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    failed: Option<&'static str>,
    /// Why, in full (the compiler's or validator's own words); the
    /// revision that served before keeps serving.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// A source and what was last deployed from it.
struct Watched {
    source: Source,
    slot: Option<String>,
    deployed: Option<Digest>,
    /// Modules built so far, by the source's fingerprint: a save without a
    /// real change, or a change undone, builds nothing.
    built: BTreeMap<Digest, Artifact>,
}

/// How many builds each source keeps.
const KEPT_BUILDS: usize = 16;

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    if args.slot.is_some() && args.paths.len() > 1 {
        anyhow::bail!("--slot names one slot; watch one PATH with it, or leave it out so each plugin goes to the slot of its own name");
    }
    let mut watched = args
        .paths
        .iter()
        .map(|p| {
            Ok(Watched {
                source: Source::of(p)?,
                slot: args.slot.clone(),
                deployed: None,
                built: BTreeMap::new(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Validation only, so the smallest engine.
    let tier = WasmTier::new(WasmConfig {
        total_instances: 1,
        instance_cap: 1,
        ..WasmConfig::default()
    })
    .map_err(|e| anyhow::anyhow!(e))?;

    if args.once {
        let mut all_ok = true;
        for w in &mut watched {
            all_ok &= cycle(w, "start", &tier, &args.conn);
        }
        return Ok(if all_ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }

    // Watching starts before the first build, so a change made while it
    // runs (or right after its line is printed) is not missed.
    let (tx, rx) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(tx).context("cannot watch files")?;
    for w in &watched {
        // A file's directory, not the file: editors save by renaming a new
        // file over the old one, which a watch on the file itself loses.
        let (target, mode) = match &w.source {
            Source::Cargo(dir) => (dir.clone(), notify::RecursiveMode::Recursive),
            other => (
                other.path().parent().unwrap_or(other.path()).to_path_buf(),
                notify::RecursiveMode::NonRecursive,
            ),
        };
        watcher
            .watch(&target, mode)
            .with_context(|| format!("cannot watch {}", target.display()))?;
    }
    for w in &mut watched {
        cycle(w, "start", &tier, &args.conn);
    }
    if !args.conn.json {
        eprintln!("watching {} source(s); Ctrl-C to stop", watched.len());
    }
    let debounce = Duration::from_millis(args.debounce);
    loop {
        let Ok(first) = rx.recv() else {
            return Ok(ExitCode::FAILURE);
        };
        // Debounce: collect what changes until it has been quiet a while.
        let mut changed: BTreeMap<usize, PathBuf> = BTreeMap::new();
        let mut note = |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if event.kind.is_access() {
                return;
            }
            for path in event.paths {
                for (i, w) in watched.iter().enumerate() {
                    if w.source.concerns(&path) {
                        changed.insert(i, path.clone());
                    }
                }
            }
        };
        note(first);
        while let Ok(event) = rx.recv_timeout(debounce) {
            note(event);
        }
        for (i, path) in changed {
            let name = path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            cycle(&mut watched[i], &name, &tier, &args.conn);
        }
    }
}

/// Builds, validates and deploys one source, prints the cycle's line, and
/// says whether it ended with the source's code serving.
fn cycle(w: &mut Watched, changed: &str, tier: &WasmTier, conn: &Conn) -> bool {
    let mut c = Cycle {
        source: w.source.path().display().to_string(),
        changed: changed.to_string(),
        slot: w.slot.clone(),
        ..Cycle::default()
    };
    let ok = run(w, tier, conn, &mut c);
    print(&c, conn.json);
    ok
}

fn run(w: &mut Watched, tier: &WasmTier, conn: &Conn, c: &mut Cycle) -> bool {
    let mut fail = |stage, error: String| {
        c.failed = Some(stage);
        c.error = Some(error);
        false
    };
    let fingerprint = match w.source.fingerprint() {
        Ok(f) => f,
        Err(e) => return fail("build", format!("cannot read the source: {e}")),
    };
    let artifact = match w.built.get(&fingerprint) {
        Some(a) => {
            c.cached = true;
            a.clone()
        }
        None => {
            let started = Instant::now();
            let built = w.source.build();
            c.build_ms = ms(started.elapsed());
            match built {
                Ok(bytes) => {
                    let artifact = Artifact::new(bytes);
                    if w.built.len() >= KEPT_BUILDS {
                        w.built.pop_first();
                    }
                    w.built.insert(fingerprint, artifact.clone());
                    artifact
                }
                Err(e) => return fail("build", format!("{e:#}")),
            }
        }
    };
    c.digest = Some(artifact.digest());
    let info = match tier.inspect(&artifact) {
        Ok(info) => info,
        Err(e) => return fail("validate", e.to_string()),
    };
    c.valid = true;
    c.version = Some(info.manifest.version.clone());
    let slot = w
        .slot
        .get_or_insert_with(|| info.manifest.name.clone())
        .clone();
    c.slot = Some(slot.clone());
    if w.deployed == Some(artifact.digest()) {
        c.unchanged = true;
        return true;
    }
    let started = Instant::now();
    let answer = request(
        conn,
        "POST",
        &format!("/v1/slots/{}/revisions", crate::client::encode(&slot)),
        Some(artifact.bytes()),
    );
    let answer = match answer {
        Ok(a) => a,
        Err(e) => return fail("deploy", format!("{e:#}")),
    };
    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap_or_default();
    if answer.status != 201 {
        let why = body["error"].as_str().unwrap_or(&answer.body).to_string();
        return fail(
            "deploy",
            format!("the server refused it ({}): {why}", answer.status),
        );
    }
    c.swap_ms = Some(ms(started.elapsed()));
    c.generation = body["revision"]["generation"].as_u64();
    w.deployed = Some(artifact.digest());
    true
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

fn print(c: &Cycle, json: bool) {
    if json {
        println!("{}", serde_json::to_string(c).expect("a cycle serialises"));
        return;
    }
    let slot = c.slot.as_deref().unwrap_or("?");
    let digest = c.digest.map(|d| d.short()).unwrap_or_default();
    match (&c.error, c.unchanged) {
        (Some(e), _) => {
            println!(
                "✗ {}: {} failed; slot `{slot}` keeps serving what it served",
                c.changed,
                c.failed.unwrap_or("cycle")
            );
            for line in e.lines() {
                println!("    {line}");
            }
        }
        (None, true) => println!(
            "= {}: same code as deployed (sha256:{digest}); nothing swapped",
            c.changed
        ),
        (None, false) => println!(
            "✓ {}: built in {} ms, valid, swapped in {} ms → `{slot}` {} (sha256:{digest}, generation {})",
            c.changed,
            c.build_ms,
            c.swap_ms.unwrap_or(0.0),
            c.version.as_deref().unwrap_or("?"),
            c.generation.unwrap_or(0),
        ),
    }
}
