//! `hotswap demo`: the example plugin answers calls from several threads
//! while it is replaced back and forth between two versions, and every call
//! is counted.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hotswap_core::{Artifact, EventBus, MemoryKv, Slot};
use hotswap_wasm::{WasmConfig, WasmTier};
use serde::Serialize;

#[derive(clap::Args)]
pub struct Args {
    /// How many swaps to make.
    #[arg(long, default_value_t = 10)]
    swaps: u32,
    /// Pause between swaps, in milliseconds, so a person can follow along.
    #[arg(long, default_value_t = 300, value_name = "MS")]
    interval: u64,
    /// Threads calling the plugin all the while.
    #[arg(long, default_value_t = 2)]
    callers: usize,
    /// Print JSON lines instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Default)]
struct Counts {
    calls: AtomicU64,
    failed: AtomicU64,
    v1: AtomicU64,
    v2: AtomicU64,
}

#[derive(Serialize)]
struct SwapLine {
    swap: u32,
    from: String,
    to: String,
    generation: u64,
    swap_us: u64,
    calls: u64,
    failed: u64,
    reply: String,
}

#[derive(Serialize)]
struct Summary {
    swaps: u32,
    calls: u64,
    failed: u64,
    v1_replies: u64,
    v2_replies: u64,
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    let tier = Arc::new(WasmTier::new(WasmConfig::default()).map_err(|e| anyhow::anyhow!(e))?);
    let versions = [
        Artifact::new(hotswap_examples::GREET_V1.to_vec()),
        Artifact::new(hotswap_examples::GREET_V2.to_vec()),
    ];
    // Compile both up front: the swaps below then show what a swap costs,
    // not what compiling costs.
    for v in &versions {
        tier.precompile(v).map_err(|e| anyhow::anyhow!(e))?;
    }
    let slot = Arc::new(Slot::new(
        "greet",
        tier,
        Arc::new(MemoryKv::default()),
        EventBus::new(),
    ));
    let first = slot.deploy(versions[0].clone(), None)?;
    let reply = |slot: &Slot<WasmTier>| {
        slot.call(b"world")
            .map(|r| String::from_utf8_lossy(&r).into_owned())
            .unwrap_or_else(|e| format!("error: {e}"))
    };
    if !args.json {
        println!(
            "deployed greet {} ({}) to slot `greet`: \"{}\"",
            first.version,
            first.digest.short(),
            reply(&slot)
        );
        println!(
            "{} threads now call it non-stop while it is swapped {} times:",
            args.callers, args.swaps
        );
    }

    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..args.callers.max(1))
        .map(|_| {
            let (slot, counts, stop) = (slot.clone(), counts.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut out = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    out.clear();
                    counts.calls.fetch_add(1, Ordering::Relaxed);
                    match slot.call_into(b"world", &mut out) {
                        Ok(_) if out.starts_with(b"hello") => {
                            counts.v1.fetch_add(1, Ordering::Relaxed)
                        }
                        Ok(_) => counts.v2.fetch_add(1, Ordering::Relaxed),
                        Err(_) => counts.failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();

    let mut current = first;
    for swap in 1..=args.swaps {
        std::thread::sleep(Duration::from_millis(args.interval));
        let next = &versions[swap as usize % 2];
        let started = Instant::now();
        let info = slot.deploy(next.clone(), None)?;
        let took = started.elapsed();
        let line = SwapLine {
            swap,
            from: current.version.clone(),
            to: info.version.clone(),
            generation: info.generation,
            swap_us: took.as_micros() as u64,
            calls: counts.calls.load(Ordering::Relaxed),
            failed: counts.failed.load(Ordering::Relaxed),
            reply: reply(&slot),
        };
        if args.json {
            println!("{}", serde_json::to_string(&line)?);
        } else {
            println!(
                "  swap {:>3}: {} -> {}  in {:>5} µs   calls so far {:>10}, failed {}   now: \"{}\"",
                line.swap, line.from, line.to, line.swap_us, line.calls, line.failed, line.reply
            );
        }
        current = info;
    }
    stop.store(true, Ordering::Relaxed);
    for c in callers {
        c.join().expect("caller thread panicked");
    }
    let summary = Summary {
        swaps: args.swaps,
        calls: counts.calls.load(Ordering::Relaxed),
        failed: counts.failed.load(Ordering::Relaxed),
        v1_replies: counts.v1.load(Ordering::Relaxed),
        v2_replies: counts.v2.load(Ordering::Relaxed),
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "{} swaps, {} calls: {} answered by v1, {} by v2, {} failed.",
            summary.swaps, summary.calls, summary.v1_replies, summary.v2_replies, summary.failed
        );
    }
    Ok(if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
