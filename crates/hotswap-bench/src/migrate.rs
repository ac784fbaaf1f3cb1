//! `hotswap bench migrate`: state migration of a slot with many keys under
//! load, and the restore of many slots on restart, over a real store.
//!
//! The slot runs `tally` v1 (schema 1, counts as text); the benchmark fills
//! it with `--keys` counts, then moves it between v2 (schema 2, integers)
//! and v1 `--migrations` times by rollback: each move up runs v2's
//! `hs_migrate` over every key, each move down restores the snapshot.
//! Caller threads call the slot all along and count what fails; the
//! longest call that started during a migration is how long that
//! migration kept calls waiting (activation start to resumed calls, as a
//! caller sees it).

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
use hotswap_testkit::Samples;

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
    /// From the pause (activation start) to resumed calls, per migration:
    /// the longest call that started during it.
    migrate_p50_ms: f64,
    migrate_p99_ms: f64,
    /// Drain and `hs_migrate` alone, as the slot's `migrated` events
    /// measure them (the commit follows).
    convert_p50_ms: f64,
    /// The longest call during a restore of the snapshot (2 → 1).
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
    gateway.deploy("tally", v1.to_vec(), None)?;
    let bar = progress(u64::from(args.keys));
    bar.set_message("filling the slot");
    for i in 0..args.keys {
        call(&gateway, &format!("user-{i:05}"))?;
        bar.inc(1);
    }
    bar.finish_and_clear();

    let stop = Arc::new(AtomicBool::new(false));
    let (calls, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let epoch = Instant::now();
    let callers: Vec<_> = (0..args.threads)
        .map(|t| {
            let (gateway, stop) = (gateway.clone(), stop.clone());
            let (calls, failed) = (calls.clone(), failed.clone());
            std::thread::spawn(move || {
                // (start, duration) of every call, in ns from `epoch`.
                let mut timed = Vec::new();
                let mut i = t as u32;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("user-{:05}", i % args.keys.max(1));
                    let start = epoch.elapsed();
                    if gateway.call("tally", name.as_bytes(), None).is_err() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    let took = epoch.elapsed() - start;
                    timed.push((start.as_nanos() as u64, took.as_nanos() as u64));
                    calls.fetch_add(1, Ordering::Relaxed);
                    i = i.wrapping_add(7919);
                }
                timed
            })
        })
        .collect();

    let bar = progress(u64::from(args.migrations));
    bar.set_message("migrating");
    // The windows (from, to) of the activations up and the restores down.
    let (mut ups, mut downs) = (Vec::new(), Vec::new());
    let window = |started: Instant| {
        let from = started.duration_since(epoch).as_nanos() as u64;
        (from, epoch.elapsed().as_nanos() as u64)
    };
    let started = Instant::now();
    let mut active = gateway.deploy("tally", v2.to_vec(), None)?.digest;
    ups.push(window(started));
    bar.inc(1);
    for _ in 1..args.migrations {
        let started = Instant::now();
        active = gateway
            .rollback("tally", Some(active), "bench: down")?
            .digest;
        downs.push(window(started));
        let started = Instant::now();
        active = gateway.rollback("tally", Some(active), "bench: up")?.digest;
        ups.push(window(started));
        bar.inc(1);
    }
    bar.finish_and_clear();
    stop.store(true, Ordering::Relaxed);
    let mut timed = Vec::new();
    for c in callers {
        timed.extend(
            c.join()
                .map_err(|_| anyhow::anyhow!("a caller thread panicked"))?,
        );
    }
    // The longest call that started inside each window.
    let longest = |windows: &[(u64, u64)]| -> Vec<u64> {
        let per = windows.iter().map(|&(from, to)| {
            let inside = timed.iter().filter(|(s, _)| (from..=to).contains(s));
            inside.map(|&(_, took)| took).max().unwrap_or(0)
        });
        per.collect()
    };
    let (paused, restored) = (longest(&ups), longest(&downs));
    let activations: Vec<u64> = ups.iter().map(|(from, to)| to - from).collect();

    // Drain and conversion, as the slot measured them in its events.
    let converted: Vec<u64> = gateway
        .events()
        .recent()
        .into_iter()
        .filter(|e| e.transition == Transition::Migrated)
        .filter(|e| {
            e.reason
                .as_deref()
                .is_some_and(|r| r.contains("by hs_migrate"))
        })
        .map(|e| e.duration_us.unwrap_or(0) * 1000)
        .collect();
    anyhow::ensure!(
        converted.len() == args.migrations as usize,
        "expected {} migrations in the event log, found {}",
        args.migrations,
        converted.len()
    );
    drop(gateway);

    let (restored_slots, restore_ms) = restore(args.slots)?;
    let ms = |ns: u64| ns as f64 / 1e6;
    let (paused, restored) = (Samples::new(paused), Samples::new(restored));
    let (converted, activations) = (Samples::new(converted), Samples::new(activations));
    let report = Report {
        keys: args.keys,
        migrations: args.migrations,
        migrate_p50_ms: ms(paused.pct(50.0)),
        migrate_p99_ms: ms(paused.pct(99.0)),
        convert_p50_ms: ms(converted.pct(50.0)),
        restore_snapshot_p50_ms: ms(restored.pct(50.0)),
        activation_p50_ms: ms(activations.pct(50.0)),
        calls: calls.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        restored_slots,
        restore_ms,
    };
    super::report(args.json, &report, "state migration", |r| {
        let ms = |v: f64| format!("{v:.2} ms");
        vec![
            ("keys", r.keys.to_string(), ""),
            ("migrations", r.migrations.to_string(), ""),
            (
                "migrate p50 (calls waited)",
                ms(r.migrate_p50_ms),
                "<= 50 ms",
            ),
            (
                "migrate p99 (calls waited)",
                ms(r.migrate_p99_ms),
                "<= 250 ms",
            ),
            ("drain + hs_migrate p50", ms(r.convert_p50_ms), ""),
            (
                "restore snapshot p50 (waited)",
                ms(r.restore_snapshot_p50_ms),
                "",
            ),
            ("activation p50", ms(r.activation_p50_ms), ""),
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
            gateway.deploy(&name, hotswap_examples::GREET_V1.to_vec(), None)?;
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
