//! `hotswap bench component`: what a fresh instance per request costs. In
//! one process, side by side in alternating rounds: a wasi:http request to
//! the `hello` component (a new instance each time) under each way the pool
//! can reset memory ([`Reset`]), and a call of the `greet` ABI v1 plugin (a
//! pooled instance, reused) as the baseline.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use hotswap_component::{ComponentConfig, ComponentTier, Reset, Scheme};
use hotswap_core::{Artifact, EventBus, MemoryKv, Slot};
use hotswap_wasm::{WasmConfig, WasmTier};
use serde::Serialize;

use crate::{hist, progress, timed_calls};

#[derive(clap::Args)]
pub struct Args {
    /// Requests (and plugin calls) per side, over all rounds.
    #[arg(long, default_value_t = 6_000)]
    requests: u32,
    /// Alternating rounds, so that machine noise lands on every side.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// The results; the field names are the stable JSON keys.
#[derive(Serialize)]
struct Report {
    requests: u32,
    /// A component request (fresh instance, handler, body read back) with
    /// the default reset (dirty pages only, batched).
    component_p50_us: f64,
    component_p99_us: f64,
    /// The same with wasmtime's default reset (`madvise` everything).
    madvise_p50_us: f64,
    madvise_p99_us: f64,
    /// The same keeping 1 MiB of each memory resident (`memset`).
    keep_resident_p50_us: f64,
    keep_resident_p99_us: f64,
    /// An ABI v1 plugin call (pooled instance), the baseline.
    plugin_p50_us: f64,
    plugin_p99_us: f64,
    /// component p50 / plugin p50.
    component_to_plugin: f64,
    /// Requests whose answer was not `200 hello from v1`.
    failed: u64,
}

fn component_slot(reset: Reset) -> anyhow::Result<Slot<ComponentTier>> {
    let tier = ComponentTier::new(ComponentConfig {
        max_instances: 8,
        reset,
        ..ComponentConfig::default()
    })
    .map_err(|e| anyhow::anyhow!(e))?;
    let slot = Slot::new(
        "hello",
        Arc::new(tier),
        Arc::new(MemoryKv::default()),
        EventBus::new(),
    );
    slot.deploy(Artifact::new(hotswap_examples::HELLO_V1.to_vec()), None)?;
    Ok(slot)
}

/// `n` requests to `slot`, one at a time, each timed into `h`; the count
/// of wrong answers.
fn requests(
    runtime: &tokio::runtime::Runtime,
    slot: &Slot<ComponentTier>,
    n: u32,
    h: &mut hdrhistogram::Histogram<u64>,
) -> anyhow::Result<u64> {
    runtime.block_on(async {
        let mut failed = 0;
        for _ in 0..n {
            let t = Instant::now();
            let lease = slot.lease(None)?;
            let body = http_body_util::Empty::<bytes::Bytes>::new();
            let request = http::Request::get("http://localhost/")
                .body(hotswap_component::request_body(body))
                .context("a request")?;
            let held = lease.clone();
            let finished = move |_: &hotswap_component::Outcome| drop(held);
            let answer = lease
                .code()
                .handle_whole(request, Scheme::Http, finished)
                .await
                .ok()
                .map(|a| a.body);
            h.saturating_record(t.elapsed().as_nanos() as u64);
            if answer.as_deref() != Some(&b"hello from v1\n"[..]) {
                failed += 1;
            }
        }
        Ok(failed)
    })
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    // One thread: what a request costs in CPU, without the wake-ups
    // between threads that a loaded server pays too (and that would be
    // most of what this measured on 2 cores).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let sides = [
        component_slot(ComponentConfig::default().reset)?,
        component_slot(Reset::Madvise)?,
        component_slot(Reset::KeepResident(1 << 20))?,
    ];
    let plugin = Slot::new(
        "greet",
        Arc::new(WasmTier::new(WasmConfig::default()).map_err(|e| anyhow::anyhow!(e))?),
        Arc::new(MemoryKv::default()),
        EventBus::new(),
    );
    plugin.deploy(Artifact::new(hotswap_examples::GREET_V1.to_vec()), None)?;

    let mut hs = [hist(), hist(), hist()];
    let mut hp = hist();
    let per_round = (args.requests / args.rounds.max(1)).max(1);
    // Warm-up: compile caches, the pool's first instances, the runtime.
    for side in &sides {
        requests(&runtime, side, 100, &mut hist())?;
    }
    timed_calls(&plugin, 100, &mut hist())?;
    let bar = progress(u64::from(args.rounds));
    let mut failed = 0;
    for _ in 0..args.rounds.max(1) {
        for (side, h) in sides.iter().zip(hs.iter_mut()) {
            failed += requests(&runtime, side, per_round, h)?;
        }
        timed_calls(&plugin, per_round, &mut hp)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let [hw, hm, hk] = &hs;
    let us = |h: &hdrhistogram::Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let report = Report {
        requests: per_round * args.rounds.max(1),
        component_p50_us: us(hw, 0.5),
        component_p99_us: us(hw, 0.99),
        madvise_p50_us: us(hm, 0.5),
        madvise_p99_us: us(hm, 0.99),
        keep_resident_p50_us: us(hk, 0.5),
        keep_resident_p99_us: us(hk, 0.99),
        plugin_p50_us: us(&hp, 0.5),
        plugin_p99_us: us(&hp, 0.99),
        component_to_plugin: us(hw, 0.5) / us(&hp, 0.5).max(0.001),
        failed,
    };
    crate::report(
        args.json,
        &report,
        "hotswap bench component: GET / to `hello` (fresh instance each), against a `greet` call",
        |r| {
            vec![
                (
                    "component request p50 / p99 (dirty pages)",
                    format!("{:.1} / {:.1} µs", r.component_p50_us, r.component_p99_us),
                    "",
                ),
                (
                    "  reset by madvise (wasmtime's default)",
                    format!("{:.1} / {:.1} µs", r.madvise_p50_us, r.madvise_p99_us),
                    "",
                ),
                (
                    "  1 MiB kept resident (memset)",
                    format!(
                        "{:.1} / {:.1} µs",
                        r.keep_resident_p50_us, r.keep_resident_p99_us
                    ),
                    "",
                ),
                (
                    "ABI v1 plugin call p50 / p99",
                    format!("{:.1} / {:.1} µs", r.plugin_p50_us, r.plugin_p99_us),
                    "",
                ),
                (
                    "component / plugin, p50",
                    format!("{:.1}x", r.component_to_plugin),
                    "",
                ),
                ("failed requests", r.failed.to_string(), "0"),
            ]
        },
    )?;
    Ok(if report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
