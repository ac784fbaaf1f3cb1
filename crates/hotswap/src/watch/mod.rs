//! `hotswap watch`: the dev loop. Watches plugin and eBPF sources, rebuilds
//! on a change, validates, and deploys to a `hotswap serve` (a running one,
//! or one it starts itself), which swaps in place: the server never
//! restarts and no request in flight is cut.

mod build;
mod cycle;
mod deploy;
mod server;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use hotswap_wasm::{WasmConfig, WasmTier};
use notify::Watcher;

use crate::client::{request, segment, Conn};
use build::{Scratch, Source};
use deploy::{Context, Placement, Watched};
use server::OwnServer;

#[derive(clap::Args)]
#[command(after_help = "Examples:
  hotswap watch examples/plugins/greet-v1          # a plugin crate, on a server of its own
  hotswap watch plugin.c --server 127.0.0.1:8081   # to a running `hotswap serve`
  hotswap watch tracer.bpf.c --attach tracepoint:raw_syscalls:sys_enter

Ctrl-C stops it; a server it started drains, and the eBPF programs it loaded are unloaded.")]
pub struct Args {
    /// What to watch: a plugin crate's directory (or its Cargo.toml), a C
    /// plugin (`.c`), WebAssembly text (`.wat`), a built module (`.wasm`),
    /// or an eBPF program (`.bpf.c`).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Where to deploy: the slot of a plugin [default: its name, from its
    /// manifest], the name of an eBPF program [default: the file's name
    /// before `.bpf.c`]. Only with a single PATH.
    #[arg(long, visible_alias = "name")]
    slot: Option<String>,
    /// The hook for an eBPF program's first load: tracepoint:CATEGORY:NAME,
    /// raw_tracepoint:NAME, uprobe:/ABSOLUTE/PATH:SYMBOL or xdp:INTERFACE.
    /// A replacement keeps the running program's hook.
    #[arg(long, value_name = "HOOK")]
    attach: Option<String>,
    /// The program to run from an eBPF object that has several.
    #[arg(long, value_name = "NAME")]
    program: Option<String>,
    /// The admin API of a running `hotswap serve` to deploy to. Without it,
    /// watch starts a server of its own, which stops with it.
    #[arg(long, alias = "admin", env = "HOTSWAP_ADMIN", value_name = "ADDR")]
    server: Option<String>,
    /// Where the watch's own server serves plugins (without --server).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// Build and deploy each PATH once, then exit: 0 if all deployed.
    #[arg(long)]
    once: bool,
    /// Quiet time after the last change before rebuilding.
    #[arg(long, default_value_t = 150, value_name = "MS")]
    debounce: u64,
    /// One JSON object per line instead of text: first the server's
    /// addresses, then one per cycle.
    #[arg(long)]
    json: bool,
}

/// What wakes the loop.
enum Wake {
    Changed(notify::Result<notify::Event>),
    /// Ctrl-C or SIGTERM, with a server of our own to stop in order.
    Stop,
    /// The server of our own stopped by itself (its error is printed).
    ServerEnded,
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    if args.slot.is_some() && args.paths.len() > 1 {
        bail!("--slot names one slot; watch one PATH with it, or leave it out so each plugin goes to the slot of its own name");
    }
    let sources = args
        .paths
        .iter()
        .map(|p| Source::of(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if (args.attach.is_some() || args.program.is_some())
        && sources.iter().filter(|s| s.is_ebpf()).count() != 1
    {
        bail!(
            "--attach and --program are about one eBPF program: watch exactly one .bpf.c with them"
        );
    }
    let mut watched: Vec<Watched> = sources
        .into_iter()
        .map(|s| {
            let placement = if s.is_ebpf() {
                Placement {
                    attach: args.attach.clone(),
                    program: args.program.clone(),
                }
            } else {
                Placement::default()
            };
            Watched::new(s, args.slot.clone(), placement)
        })
        .collect();
    // Validation only, so the smallest engine.
    let validator = WasmTier::new(WasmConfig {
        total_instances: 1,
        instance_cap: 1,
        ..WasmConfig::default()
    })
    .map_err(|e| anyhow::anyhow!(e))?;
    let scratch = Scratch::new()?;

    let (tx, rx) = mpsc::channel();
    let (own, conn) = match &args.server {
        Some(admin) => (None, Conn::to(admin.clone(), args.json)),
        None => {
            let own = OwnServer::start(args.listen, tx.clone())?;
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({ "server": { "data": own.data, "admin": own.admin } })
                );
            } else {
                eprintln!(
                    "serving plugins on http://{} (admin API on http://{}): this watch's own server, which stops with it",
                    own.data, own.admin
                );
            }
            let conn = Conn::to(own.admin.to_string(), args.json);
            (Some(own), conn)
        }
    };
    let cx = Context {
        validator: &validator,
        scratch: &scratch,
        conn: &conn,
    };

    let code = if args.once {
        let mut all_ok = true;
        for w in &mut watched {
            if let Ok(Wake::Stop | Wake::ServerEnded) = rx.try_recv() {
                all_ok = false;
                break;
            }
            all_ok &= w.cycle("start", &cx);
        }
        if all_ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    } else {
        watch(&mut watched, &cx, tx, &rx, &args)?
    };
    if let Some(own) = own {
        stop(own, &watched, &conn);
    }
    Ok(code)
}

/// The loop: a cycle for every source at the start, then one for each
/// source a (debounced) change concerns, until a stop signal.
fn watch(
    watched: &mut [Watched],
    cx: &Context,
    tx: mpsc::Sender<Wake>,
    rx: &mpsc::Receiver<Wake>,
    args: &Args,
) -> anyhow::Result<ExitCode> {
    // Watching starts before the first build, so a change made while it
    // runs (or right after its line is printed) is not missed.
    let mut watcher = notify::recommended_watcher(move |e| {
        let _ = tx.send(Wake::Changed(e));
    })
    .context("cannot watch files")?;
    for w in watched.iter() {
        for (path, mode) in w.source.watch_points()? {
            watcher
                .watch(&path, mode)
                .with_context(|| format!("cannot watch {}", path.display()))?;
        }
    }
    for w in watched.iter_mut() {
        if let Ok(wake @ (Wake::Stop | Wake::ServerEnded)) = rx.try_recv() {
            return Ok(exit_code(&wake));
        }
        w.cycle("start", cx);
    }
    if !args.json {
        eprintln!("watching {} source(s); Ctrl-C to stop", watched.len());
    }
    let debounce = Duration::from_millis(args.debounce);
    loop {
        let first = match rx.recv() {
            Ok(Wake::Changed(event)) => event,
            Ok(wake) => return Ok(exit_code(&wake)),
            Err(_) => return Ok(ExitCode::FAILURE),
        };
        // Debounce: collect what changes until it has been quiet a while.
        let mut changed: BTreeMap<usize, String> = BTreeMap::new();
        let mut new_dirs = Vec::new();
        let mut note = |event: notify::Result<notify::Event>| {
            let event = match event {
                Ok(e) if !e.need_rescan() => e,
                // Events were lost (the kernel's queue overflowed): any
                // source may have changed.
                _ => {
                    for i in 0..watched.len() {
                        changed.insert(i, "(events lost)".to_string());
                    }
                    return;
                }
            };
            if event.kind.is_access() {
                return;
            }
            for path in event.paths {
                for (i, w) in watched.iter().enumerate() {
                    if w.source.concerns(&path) {
                        let name = path.file_name().map_or_else(
                            || path.display().to_string(),
                            |n| n.to_string_lossy().into_owned(),
                        );
                        changed.insert(i, name);
                    }
                    if event.kind.is_create() && w.source.is_new_watch_point(&path) {
                        new_dirs.push(path.clone());
                    }
                }
            }
        };
        note(first);
        loop {
            match rx.recv_timeout(debounce) {
                Ok(Wake::Changed(event)) => note(event),
                Ok(wake) => return Ok(exit_code(&wake)),
                Err(_) => break,
            }
        }
        for dir in new_dirs {
            if let Err(e) = watcher.watch(&dir, notify::RecursiveMode::Recursive) {
                eprintln!("cannot watch {}: {e}", dir.display());
            }
        }
        for (i, name) in changed {
            watched[i].cycle(&name, cx);
        }
    }
}

/// How a watch that was told to stop exits: 0 on a signal, 1 when its
/// server ended under it.
fn exit_code(wake: &Wake) -> ExitCode {
    match wake {
        Wake::ServerEnded => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    }
}

/// Stops a server of our own in order: the eBPF programs this watch
/// placed are unloaded (they would stay attached, pinned, otherwise; those
/// it did not place are left alone), then the server drains.
fn stop(own: OwnServer, watched: &[Watched], conn: &Conn) {
    for name in watched.iter().filter_map(Watched::placed_program) {
        let path = format!("/v1/ebpf/{}", segment(name));
        match request(conn, "DELETE", &path, None) {
            Ok(a) if a.status == 200 && !conn.json => {
                eprintln!("unloaded eBPF program `{name}`")
            }
            Ok(a) if a.status == 200 || a.status == 404 => {}
            Ok(a) => eprintln!("cannot unload eBPF program `{name}`: {}", a.body),
            Err(e) => eprintln!("cannot unload eBPF program `{name}`: {e:#}"),
        }
    }
    drop(own);
    // The shared root goes too, once no watch has programs under it.
    let _ = std::fs::remove_dir(server::PIN_ROOT);
    if !conn.json {
        eprintln!("stopped: the watch's server drained and stopped");
    }
}
