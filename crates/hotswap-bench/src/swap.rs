//! `hotswap bench swap`: what a swap and a call cost on this machine, and
//! what swapping does to the callers.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::progress;
use hdrhistogram::Histogram;
use hotswap_core::{Artifact, EventBus, MemoryKv, Slot};
use hotswap_wasm::{WasmConfig, WasmTier};
use serde::Serialize;

use hotswap_testkit::{rss_kib, Samples};

#[derive(clap::Args)]
pub struct Args {
    /// Swaps between two precompiled revisions to time.
    #[arg(long, default_value_t = 2000)]
    swaps: u32,
    /// Swaps to a never-seen revision (compiled during the swap) to time.
    #[arg(long, default_value_t = 10)]
    compiles: u32,
    /// Single-thread calls to time one by one.
    #[arg(long, default_value_t = 200_000)]
    calls: u32,
    /// Seconds for each load phase (throughput, steady, swapping).
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Swaps per second during the "while swapping" phase.
    #[arg(long, default_value_t = 50)]
    swap_rate: u32,
    /// Caller threads in the load phases [default: the number of cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// The results; the field names are the stable JSON keys.
#[derive(Serialize)]
struct Report {
    swap_p50_us: f64,
    swap_p99_us: f64,
    swap_compile_p50_us: f64,
    call_p50_ns: u64,
    call_p99_ns: u64,
    call_mean_ns: f64,
    greet_call_p50_ns: u64,
    greet_call_p99_ns: u64,
    greet_call_mean_ns: f64,
    clock_overhead_ns: u64,
    throughput_calls_per_s: f64,
    threads: usize,
    steady_p99_ns: u64,
    swapping_p99_ns: u64,
    swapping_p99_ratio: f64,
    swaps_while_loaded: u64,
    failed_calls: u64,
    rss_before_kib: u64,
    rss_after_kib: u64,
    rss_growth_kib: i64,
    swaps: u32,
}

use super::INPUT;

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let tier = Arc::new(WasmTier::new(WasmConfig::default()).map_err(|e| anyhow::anyhow!(e))?);
    let slot = Arc::new(Slot::new(
        "bench",
        tier.clone(),
        Arc::new(MemoryKv::default()),
        EventBus::new(),
    ));
    let versions = [
        Artifact::new(hotswap_examples::GREET_V1.to_vec()),
        Artifact::new(hotswap_examples::GREET_V2.to_vec()),
    ];
    let phase = progress(5);

    // 1. Swaps between precompiled revisions, and memory across them.
    phase.set_message("swapping precompiled revisions");
    for i in 0..200 {
        slot.deploy(versions[i % 2].clone(), None)?;
    }
    slot.wait_drained(Duration::from_secs(10));
    let rss_before_kib = rss_kib();
    let mut swap_ns = Vec::with_capacity(args.swaps as usize);
    for i in 0..args.swaps as usize {
        let t = Instant::now();
        slot.deploy(versions[i % 2].clone(), None)?;
        swap_ns.push(t.elapsed().as_nanos() as u64);
    }
    slot.wait_drained(Duration::from_secs(10));
    let rss_after_kib = rss_kib();
    let swaps = Samples::new(swap_ns);
    phase.inc(1);

    // 2. Swaps that compile: each revision is new (a unique custom section).
    phase.set_message("swapping to revisions that must compile");
    let mut compile_ns = Vec::new();
    for i in 0..args.compiles {
        let fresh = Artifact::new(hotswap_examples::variant(hotswap_examples::GREET_V1, i));
        let t = Instant::now();
        slot.deploy(fresh, None)?;
        compile_ns.push(t.elapsed().as_nanos() as u64);
    }
    let compiles = Samples::new(compile_ns);
    slot.deploy(versions[0].clone(), None)?;
    phase.inc(1);

    // 3. One thread, one call at a time: the echo module (what hotswap
    // itself costs), then the greet plugin (plus a real plugin's work).
    phase.set_message("timing single calls");
    let clock_overhead_ns = clock_overhead();
    let echo = Slot::new(
        "echo",
        tier.clone(),
        Arc::new(MemoryKv::default()),
        EventBus::new(),
    );
    echo.deploy(Artifact::new(wat::parse_str(ECHO_WAT)?), None)?;
    let (single, call_mean_ns) = time_calls(&echo, args.calls)?;
    let (greet_single, greet_mean_ns) = time_calls(&slot, args.calls)?;
    phase.inc(1);

    // 4. Throughput on all threads, untimed calls.
    phase.set_message("measuring throughput");
    let seconds = Duration::from_secs(args.seconds);
    let load = run_callers(&slot, threads, seconds);
    let throughput = load.calls as f64 / load.elapsed.as_secs_f64();
    phase.inc(1);

    // 5. Caller latency at steady state and while swapping, in alternating
    // windows so that both see the same background noise on this machine.
    phase.set_message(format!(
        "caller latency, steady and swapping {} times a second",
        args.swap_rate
    ));
    let compare = compare_callers(&slot, threads, seconds, args.swap_rate, &versions);
    let (steady, swapping) = (compare.steady, compare.swapping);
    phase.inc(1);
    phase.finish_and_clear();

    let steady_p99 = steady.value_at_quantile(0.99);
    let swapping_p99 = swapping.value_at_quantile(0.99);
    let report = Report {
        swap_p50_us: swaps.pct(50.0) as f64 / 1e3,
        swap_p99_us: swaps.pct(99.0) as f64 / 1e3,
        swap_compile_p50_us: compiles.pct(50.0) as f64 / 1e3,
        call_p50_ns: single.value_at_quantile(0.5),
        call_p99_ns: single.value_at_quantile(0.99),
        call_mean_ns,
        greet_call_p50_ns: greet_single.value_at_quantile(0.5),
        greet_call_p99_ns: greet_single.value_at_quantile(0.99),
        greet_call_mean_ns: greet_mean_ns,
        clock_overhead_ns,
        throughput_calls_per_s: throughput,
        threads,
        steady_p99_ns: steady_p99,
        swapping_p99_ns: swapping_p99,
        swapping_p99_ratio: swapping_p99 as f64 / steady_p99.max(1) as f64,
        swaps_while_loaded: compare.swaps,
        failed_calls: load.failed + compare.failed,
        rss_before_kib,
        rss_after_kib,
        rss_growth_kib: rss_after_kib as i64 - rss_before_kib as i64,
        swaps: args.swaps,
    };

    let title = format!(
                "hotswap bench swap: greet plugin (echo for single calls), 64-byte input, {} swaps, {} caller threads",
                swaps.len(),
                threads
            );
    #[rustfmt::skip]
    super::report(args.json, &report, &title, |r| vec![
            ("swap, precompiled, p50", format!("{:.1} µs", r.swap_p50_us), "≤ 50 µs"),
            ("swap, precompiled, p99", format!("{:.1} µs", r.swap_p99_us), ""),
            ("swap, compiling, p50", format!("{:.0} µs", r.swap_compile_p50_us), ""),
            ("call, echo, 1 thread, p50", format!("{} ns", r.call_p50_ns), "≤ 100 ns"),
            ("call, echo, 1 thread, p99", format!("{} ns", r.call_p99_ns), ""),
            ("call, echo, mean (batch-timed)", format!("{:.0} ns", r.call_mean_ns), ""),
            ("call, greet, 1 thread, p50", format!("{} ns", r.greet_call_p50_ns), ""),
            ("call, greet, 1 thread, p99", format!("{} ns", r.greet_call_p99_ns), ""),
            ("call, greet, mean (batch-timed)", format!("{:.0} ns", r.greet_call_mean_ns), ""),
            ("  (clock overhead per timing)", format!("{} ns", r.clock_overhead_ns), ""),
            ("throughput, all threads", format!("{:.2} M/s", r.throughput_calls_per_s / 1e6), ""),
            ("caller p99, steady", format!("{} ns", r.steady_p99_ns), ""),
            ("caller p99, swapping", format!("{} ns ({:.2}x)", r.swapping_p99_ns, r.swapping_p99_ratio), "≤ 1.5x steady"),
            ("swaps during that phase", r.swaps_while_loaded.to_string(), ""),
            ("failed calls", r.failed_calls.to_string(), "0"),
            ("RSS growth over the swaps", format!("{} KiB ({} -> {})", r.rss_growth_kib, r.rss_before_kib, r.rss_after_kib), "≤ 1024 KiB"),
    ])?;
    Ok(if report.failed_calls == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The smallest ABI v1 module: its output is its input, in place. Timing it
/// measures what hotswap adds to a call, and nothing a plugin does.
const ECHO_WAT: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "hs_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "hs_process") (param $p i32) (param $l i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $l)) (i64.const 32))
            (i64.extend_i32_u (local.get $p))))
  (@custom "hotswap.manifest" "{\"name\":\"echo\",\"version\":\"1\",\"abi\":1}"))"#;

/// Times `calls` single calls one by one (p50/p99), after a warm-up, and
/// returns the batch mean as well, which carries no clock overhead.
fn time_calls(slot: &Slot<WasmTier>, calls: u32) -> anyhow::Result<(Histogram<u64>, f64)> {
    super::batch_calls(slot, 10_000)?; // warm-up
    let mut h = super::hist();
    super::timed_calls(slot, calls, &mut h)?;
    let batch = super::batch_calls(slot, calls)?;
    Ok((h, batch.as_nanos() as f64 / calls as f64))
}

struct Load {
    calls: u64,
    failed: u64,
    elapsed: Duration,
}

/// `threads` callers making untimed calls for `duration`.
fn run_callers(slot: &Arc<Slot<WasmTier>>, threads: usize, duration: Duration) -> Load {
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|s| {
        let callers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let (mut calls, mut failed) = (0u64, 0u64);
                    let mut out = Vec::with_capacity(128);
                    while !stop.load(Ordering::Relaxed) {
                        out.clear();
                        failed += slot.call_into(&INPUT, &mut out).is_err() as u64;
                        calls += 1;
                    }
                    (calls, failed)
                })
            })
            .collect();
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        let mut load = Load {
            calls: 0,
            failed: 0,
            elapsed: started.elapsed(),
        };
        for c in callers {
            let (calls, failed) = c.join().expect("caller panicked");
            load.calls += calls;
            load.failed += failed;
        }
        load
    })
}

struct Compare {
    steady: Histogram<u64>,
    swapping: Histogram<u64>,
    swaps: u64,
    failed: u64,
}

/// Window length for [`compare_callers`]: long enough for several swaps at
/// 50 per second, short enough that many windows of each kind interleave.
const WINDOW: Duration = Duration::from_millis(200);

/// `threads` callers time every call for `duration`, while the main thread
/// alternates windows of doing nothing and windows of swapping at `rate` per
/// second. Each call is counted in the histogram of the window it started in.
fn compare_callers(
    slot: &Arc<Slot<WasmTier>>,
    threads: usize,
    duration: Duration,
    rate: u32,
    versions: &[Artifact; 2],
) -> Compare {
    let stop = AtomicBool::new(false);
    let swapping_now = AtomicBool::new(false);
    let swaps = AtomicU64::new(0);
    std::thread::scope(|s| {
        let callers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let (mut steady, mut swapping, mut failed) =
                        (super::hist(), super::hist(), 0u64);
                    let mut out = Vec::with_capacity(128);
                    while !stop.load(Ordering::Relaxed) {
                        out.clear();
                        let during_swaps = swapping_now.load(Ordering::Relaxed);
                        let t = Instant::now();
                        failed += slot.call_into(&INPUT, &mut out).is_err() as u64;
                        let ns = t.elapsed().as_nanos() as u64;
                        if during_swaps {
                            swapping.saturating_record(ns);
                        } else {
                            steady.saturating_record(ns);
                        }
                    }
                    (steady, swapping, failed)
                })
            })
            .collect();

        let period = Duration::from_secs(1) / rate.max(1);
        let windows = (duration.as_millis() / WINDOW.as_millis()).max(2) as usize;
        let mut i = 0usize;
        for w in 0..windows {
            let window_start = Instant::now();
            if w % 2 == 0 {
                std::thread::sleep(WINDOW);
                continue;
            }
            swapping_now.store(true, Ordering::Relaxed);
            let mut next = window_start;
            while window_start.elapsed() < WINDOW {
                if slot.deploy(versions[i % 2].clone(), None).is_ok() {
                    swaps.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
                next += period;
                // Pacing to the requested rate, not synchronisation.
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            swapping_now.store(false, Ordering::Relaxed);
        }
        stop.store(true, Ordering::Relaxed);

        let mut result = Compare {
            steady: super::hist(),
            swapping: super::hist(),
            swaps: swaps.load(Ordering::Relaxed),
            failed: 0,
        };
        for c in callers {
            let (steady, swapping, failed) = c.join().expect("caller panicked");
            result.steady.add(steady).expect("same histogram bounds");
            result
                .swapping
                .add(swapping)
                .expect("same histogram bounds");
            result.failed += failed;
        }
        result
    })
}

/// What one `Instant::now()` pair costs, which every timed call includes.
fn clock_overhead() -> u64 {
    let mut h = super::hist();
    for _ in 0..100_000 {
        let t = Instant::now();
        h.saturating_record(t.elapsed().as_nanos() as u64);
    }
    h.value_at_quantile(0.5)
}
