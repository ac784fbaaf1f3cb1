//! `hotswap bench migrate`: state migration of a slot with many keys under
//! load, and the restore of many slots on restart, over a real store.
//!
//! The slot runs `tally` v1 (schema 1, counts as text); the benchmark fills
//! it with `--keys` counts, then moves it between v2 (schema 2, integers)
//! and v1 `--migrations` times by rollback: each move up runs v2's
//! `hs_migrate` over every key, each move down restores the snapshot.
//! Caller threads call the slot all along and count what fails.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use hotswap_core::Transition;
use hotswap_server::{Gateway, GatewayOptions};
use hotswap_store::Store;
use hotswap_wasm::WasmConfig;
use serde::Serialize;

use super::progress;
use crate::stats::Samples;

#[derive(clap::Args)]
pub struct Args {
    /// Keys in the migrating slot.
    #[arg(long, default_value_t = 10_000)]
    keys: u32,
    /// Migrations (schema 1 → 2) to run, each followed by a restore (2 → 1)
    /// but the last.
    #[arg(long, default_value_t = 100)]
    migrations: u32,
    /// Slots to restore on the restart.
    #[arg(long, default_value_t = 100)]
    slots: u32,
    /// Caller threads during the migrations.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// The results; the field names are the stable JSON keys.
#[derive(Serialize)]
struct Report {
    keys: u32,
    migrations: u32,
    /// From the pause (activation start) to resumed calls, per migration.
    migrate_p50_ms: f64,
    migrate_p99_ms: f64,
    /// The same for the restores of the snapshot (2 → 1).
    restore_snapshot_p50_ms: f64,
    /// The whole rollback call that migrated, preparing the code included.
    activation_p50_ms: f64,
    calls: u64,
    failed: u64,
    restored_slots: u32,
    /// Opening the gateway over `restored_slots` slots, warm compile cache.
    restore_ms: f64,
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    let (v1, v2) = (hotswap_examples::TALLY_V1, hotswap_examples::TALLY_V2);
    let gateway = Arc::new(open(dir.path())?);
    gateway.deploy("tally", v1.to_vec(), None, None)?;
    let bar = progress(u64::from(args.keys));
    bar.set_message("filling the slot");
    for i in 0..args.keys {
        call(&gateway, &format!("user-{i:05}"))?;
        bar.inc(1);
    }
    bar.finish_and_clear();

    let stop = Arc::new(AtomicBool::new(false));
    let (calls, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let callers: Vec<_> = (0..args.threads)
        .map(|t| {
            let (gateway, stop) = (gateway.clone(), stop.clone());
            let (calls, failed) = (calls.clone(), failed.clone());
            std::thread::spawn(move || {
                let mut i = t as u32;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("user-{:05}", i % args.keys.max(1));
                    if gateway.call("tally", name.as_bytes(), None).is_err() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    calls.fetch_add(1, Ordering::Relaxed);
                    i = i.wrapping_add(7919);
                }
            })
        })
        .collect();

    let bar = progress(u64::from(args.migrations));
    bar.set_message("migrating");
    let mut activations = Vec::new();
    let started = Instant::now();
    let mut active = gateway.deploy("tally", v2.to_vec(), None, None)?.digest;
    activations.push(started.elapsed().as_nanos() as u64);
    bar.inc(1);
    for _ in 1..args.migrations {
        active = gateway
            .rollback("tally", Some(active), "bench: down")?
            .digest;
        let started = Instant::now();
        active = gateway.rollback("tally", Some(active), "bench: up")?.digest;
        activations.push(started.elapsed().as_nanos() as u64);
        bar.inc(1);
    }
    bar.finish_and_clear();
    stop.store(true, Ordering::Relaxed);
    for c in callers {
        c.join()
            .map_err(|_| anyhow::anyhow!("a caller thread panicked"))?;
    }

    // The pauses, as the slot measured them, from its `migrated` events.
    let (mut up, mut down) = (Vec::new(), Vec::new());
    for e in gateway.events().recent() {
        if e.transition != Transition::Migrated {
            continue;
        }
        let pause = e.duration_us.unwrap_or(0) * 1000;
        match e
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("by hs_migrate"))
        {
            true => up.push(pause),
            false => down.push(pause),
        }
    }
    anyhow::ensure!(
        up.len() == args.migrations as usize,
        "expected {} migrations in the event log, found {}",
        args.migrations,
        up.len()
    );
    drop(gateway);

    let (restored_slots, restore_ms) = restore(args.slots)?;
    let ms = |ns: u64| ns as f64 / 1e6;
    let (up, down, activations) = (
        Samples::new(up),
        Samples::new(down),
        Samples::new(activations),
    );
    let report = Report {
        keys: args.keys,
        migrations: args.migrations,
        migrate_p50_ms: ms(up.pct(50.0)),
        migrate_p99_ms: ms(up.pct(99.0)),
        restore_snapshot_p50_ms: ms(down.pct(50.0)),
        activation_p50_ms: ms(activations.pct(50.0)),
        calls: calls.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        restored_slots,
        restore_ms,
    };
    super::report(args.json, &report, "state migration", |r| {
        vec![
            ("keys", r.keys.to_string(), ""),
            ("migrations", r.migrations.to_string(), ""),
            (
                "migrate p50 (pause)",
                format!("{:.2} ms", r.migrate_p50_ms),
                "<= 50 ms",
            ),
            (
                "migrate p99 (pause)",
                format!("{:.2} ms", r.migrate_p99_ms),
                "<= 250 ms",
            ),
            (
                "restore snapshot p50",
                format!("{:.2} ms", r.restore_snapshot_p50_ms),
                "",
            ),
            (
                "activation p50",
                format!("{:.2} ms", r.activation_p50_ms),
                "",
            ),
            ("calls under load", r.calls.to_string(), ""),
            ("failed calls", r.failed.to_string(), "0"),
            ("restored slots", r.restored_slots.to_string(), ""),
            (
                "restore on restart",
                format!("{:.1} ms", r.restore_ms),
                "<= 100 ms",
            ),
        ]
    })?;
    Ok(match report.failed {
        0 => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

fn open(dir: &std::path::Path) -> anyhow::Result<Gateway> {
    let store = Store::open(dir)?;
    Ok(Gateway::open(
        store,
        WasmConfig::default(),
        true,
        GatewayOptions::default(),
    )?)
}

fn call(gateway: &Gateway, name: &str) -> anyhow::Result<()> {
    gateway
        .call("tally", name.as_bytes(), None)
        .map(drop)
        .map_err(|e| anyhow::anyhow!("calling tally: {e:?}"))
}

/// `slots` slots of greet v1 (one compile, shared by digest), then the
/// time to open them again: restore with a warm compile cache.
fn restore(slots: u32) -> anyhow::Result<(u32, f64)> {
    let dir = tempfile::tempdir()?;
    {
        let gateway = open(dir.path())?;
        for i in 0..slots {
            let name = format!("s{i:03}");
            gateway.deploy(&name, hotswap_examples::GREET_V1.to_vec(), None, None)?;
        }
        gateway.flush()?;
    }
    let started = Instant::now();
    let gateway = open(dir.path())?;
    let took = started.elapsed();
    let restored = gateway.list().len() as u32;
    anyhow::ensure!(restored == slots, "restored {restored} of {slots} slots");
    Ok((restored, took.as_secs_f64() * 1e3))
}
