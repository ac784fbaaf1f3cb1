//! `hotswap bench compare`: the WASM tier against the native tier, on the
//! same plugin source (`greet`), in one run, with the seed's claims beside.
//!
//! Every measurement runs both tiers alternately or back to back in the
//! same process, so the two columns see the same machine; the ratio column
//! is what to read on a shared, noisy host.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hotswap_core::{Artifact, Code, EventBus, MemoryKv, Slot, SlotContext, Tier};
use hotswap_native::NativeTier;
use hotswap_wasm::{WasmConfig, WasmTier};
use serde::Serialize;

use super::{hist, progress};
use hotswap_testkit::{memory_kib, rss_kib, Samples};

#[derive(clap::Args)]
pub struct Args {
    /// Loads to time per tier, each of a revision never seen before.
    #[arg(long, default_value_t = 200)]
    loads: u32,
    /// Revisions held loaded at once, to measure resident memory per revision.
    #[arg(long, default_value_t = 50)]
    resident: u32,
    /// Load/unload cycles (slot swaps) after which resident memory is compared.
    #[arg(long, default_value_t = 1000)]
    cycles: u32,
    /// Single-thread calls to time per tier.
    #[arg(long, default_value_t = 100_000)]
    calls: u32,
    /// Seconds of continuous calls while replacing, per tier.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Replacements per second in that phase.
    #[arg(long, default_value_t = 50)]
    swap_rate: u32,
    /// Caller threads in that phase [default: one fewer than the cores, so
    /// the replacing thread has one].
    #[arg(long)]
    threads: Option<usize>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Draw the load and call latency distributions of both tiers into this
    /// SVG file.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
}

/// One tier's results; the field names are the stable JSON keys.
#[derive(Serialize, Default)]
struct TierReport {
    /// Bytes on disk → ready to call: read, hash, validate, compile or
    /// dlopen, resolve, init, health. Every load is of a new revision.
    load_p50_us: f64,
    load_p99_us: f64,
    load_mean_us: f64,
    load_sd_us: f64,
    /// WASM only: the same, for a revision whose compiled code is cached
    /// (the usual case for a rollback or a restart).
    #[serde(skip_serializing_if = "Option::is_none")]
    load_cached_p50_us: Option<f64>,
    /// Resident memory each loaded revision adds (RSS, as `ps` shows it).
    rss_per_revision_kib: f64,
    /// Memory each loaded revision holds, counting shared memory whole: a
    /// native library's memfd is resident in full, mapped or not, and RSS
    /// shows only its touched pages (`stats::memory_kib`).
    memory_per_revision_kib: f64,
    /// Resident memory growth over `cycles` load/unload cycles.
    rss_after_cycles_kib: i64,
    /// Looking up the exports the call path needs (p50).
    resolve_us: f64,
    /// One call with a 64-byte input, on one thread, each timed alone.
    call_p50_ns: u64,
    call_p99_ns: u64,
    /// The same, timed in batches: no clock reading in it.
    call_mean_ns: f64,
    /// While replacing `swap_rate` times a second under continuous calls,
    /// between two versions: for WASM their compiled code is cached after
    /// the first time (as for a server swapping between versions it has
    /// seen), for native every replacement is a `dlopen` and a `dlclose`.
    swaps: u64,
    swap_p50_us: f64,
    swap_p99_us: f64,
    calls_while_swapping: u64,
    call_p99_while_swapping_ns: u64,
    failed_calls: u64,
    /// The artifact's size.
    size_bytes: usize,
}

#[derive(Serialize)]
struct Report {
    wasm: TierReport,
    native: TierReport,
    /// What the seed claimed, for the same rows.
    seed: Seed,
    loads: u32,
    resident: u32,
    cycles: u32,
    calls: u32,
    seconds: u64,
    swap_rate: u32,
    threads: usize,
    machine: Machine,
}

#[derive(Serialize)]
struct Seed {
    wasm_load_us: f64,
    native_load_us: f64,
    wasm_rss_per_revision_kib: f64,
    native_rss_per_revision_kib: f64,
    wasm_resolve_us: f64,
    native_resolve_us: f64,
}

const SEED: Seed = Seed {
    wasm_load_us: 820.0,
    native_load_us: 3470.0,
    wasm_rss_per_revision_kib: 124.0,
    native_rss_per_revision_kib: 489.0,
    wasm_resolve_us: 90.0,
    native_resolve_us: 1210.0,
};

#[derive(Serialize)]
struct Machine {
    cpus: usize,
    cpu: String,
    kernel: String,
}

/// The samples behind the plot.
pub(super) struct Distributions {
    pub load_us: Vec<f64>,
    pub call_ns: Vec<f64>,
}

use super::{batch_calls, timed_calls, INPUT};

/// One tier under test: loads through the `Tier` API, calls through a slot.
struct Bench<T: Tier> {
    name: &'static str,
    tier: Arc<T>,
    v1: &'static [u8],
    v2: &'static [u8],
    resolve: fn(&T::Code) -> Duration,
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
    });
    // No disk cache: a load of a new revision compiles, as it would the
    // first time a server sees it.
    let wasm = Bench {
        name: "wasm",
        tier: Arc::new(WasmTier::new(WasmConfig::default()).map_err(|e| anyhow::anyhow!(e))?),
        v1: hotswap_examples::GREET_V1,
        v2: hotswap_examples::GREET_V2,
        resolve: |c: &hotswap_wasm::WasmCode| c.resolve_time(),
    };
    let native = Bench {
        name: "native",
        tier: Arc::new(NativeTier::new()),
        v1: hotswap_examples::GREET_V1_NATIVE,
        v2: hotswap_examples::GREET_V2_NATIVE,
        resolve: |c: &hotswap_native::NativeCode| c.resolve_time(),
    };
    let (mut w, mut n) = (TierReport::default(), TierReport::default());
    w.size_bytes = wasm.v1.len();
    n.size_bytes = native.v1.len();
    let phase = progress(5);

    phase.set_message("loads from disk, alternating tiers");
    let dir = tempfile::tempdir()?;
    let (w_dist, n_dist) = loads(&args, dir.path(), &wasm, &native, &mut w, &mut n)?;
    w.load_cached_p50_us = Some(cached_loads(&wasm, args.loads)?);
    phase.inc(1);

    phase.set_message("resident memory per loaded revision");
    (w.rss_per_revision_kib, w.memory_per_revision_kib) = resident(&wasm, args.resident)?;
    (n.rss_per_revision_kib, n.memory_per_revision_kib) = resident(&native, args.resident)?;
    phase.inc(1);

    phase.set_message(format!("{} load/unload cycles per tier", args.cycles));
    w.rss_after_cycles_kib = cycles(&wasm, args.cycles)?;
    n.rss_after_cycles_kib = cycles(&native, args.cycles)?;
    phase.inc(1);

    phase.set_message("single calls, alternating tiers");
    let (w_calls, n_calls, w_mean, n_mean) = calls(&wasm, &native, args.calls)?;
    (w.call_mean_ns, n.call_mean_ns) = (w_mean, n_mean);
    w.call_p50_ns = w_calls.value_at_quantile(0.5);
    w.call_p99_ns = w_calls.value_at_quantile(0.99);
    n.call_p50_ns = n_calls.value_at_quantile(0.5);
    n.call_p99_ns = n_calls.value_at_quantile(0.99);
    phase.inc(1);

    phase.set_message(format!(
        "calls on {threads} threads while replacing {} times a second",
        args.swap_rate
    ));
    let duration = Duration::from_secs(args.seconds);
    under_swaps(&wasm, threads, duration, args.swap_rate, &mut w)?;
    under_swaps(&native, threads, duration, args.swap_rate, &mut n)?;
    phase.inc(1);
    phase.finish_and_clear();

    if let Some(path) = &args.plot {
        let dist = |load_us: Vec<f64>, calls: &hdrhistogram::Histogram<u64>| Distributions {
            load_us,
            call_ns: calls
                .iter_recorded()
                .flat_map(|v| {
                    std::iter::repeat_n(v.value_iterated_to() as f64, v.count_at_value() as usize)
                })
                .collect(),
        };
        super::plot::draw(path, &dist(w_dist, &w_calls), &dist(n_dist, &n_calls))?;
        eprintln!("plot written to {}", path.display());
    }

    let failed = w.failed_calls + n.failed_calls;
    let report = Report {
        wasm: w,
        native: n,
        seed: SEED,
        loads: args.loads,
        resident: args.resident,
        cycles: args.cycles,
        calls: args.calls,
        seconds: args.seconds,
        swap_rate: args.swap_rate,
        threads,
        machine: machine(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

impl<T: Tier> Bench<T> {
    /// A slot of this tier with its own empty store.
    fn slot(&self, name: &str) -> Slot<T> {
        Slot::new(
            name,
            self.tier.clone(),
            Arc::new(MemoryKv::default()),
            EventBus::new(),
        )
    }

    /// Its two versions, to swap between.
    fn versions(&self) -> [Artifact; 2] {
        [
            Artifact::new(self.v1.to_vec()),
            Artifact::new(self.v2.to_vec()),
        ]
    }
}

fn context(name: &str) -> SlotContext {
    SlotContext {
        slot: name.into(),
        kv: Arc::new(MemoryKv::default()),
    }
}

/// Reads, hashes, validates and prepares the file at `path`: one load.
fn load<T: Tier>(tier: &T, path: &Path, ctx: &SlotContext) -> anyhow::Result<T::Code> {
    prepare(tier, &Artifact::new(std::fs::read(path)?), ctx)
}

/// Validates and prepares `artifact`, as a slot's deploy does.
fn prepare<T: Tier>(tier: &T, artifact: &Artifact, ctx: &SlotContext) -> anyhow::Result<T::Code> {
    let manifest = tier.validate(artifact).map_err(|e| anyhow::anyhow!(e))?;
    tier.prepare(artifact, &manifest, ctx)
        .map_err(|e| anyhow::anyhow!(e))
}

/// `args.loads` loads per tier, of new revisions written to disk first,
/// alternating which tier goes first. Returns each tier's load times (µs).
fn loads<A: Tier, B: Tier>(
    args: &Args,
    dir: &Path,
    a: &Bench<A>,
    b: &Bench<B>,
    ar: &mut TierReport,
    br: &mut TierReport,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let write = |name: &str, bytes: &[u8], i: u32| -> std::io::Result<PathBuf> {
        let path = dir.join(format!("{name}-{i}"));
        std::fs::write(&path, hotswap_examples::variant(bytes, 1_000_000 + i))?;
        Ok(path)
    };
    let ctx = context("bench");
    let (mut at, mut bt) = (Vec::new(), Vec::new());
    let (mut ar_us, mut br_us) = (Vec::new(), Vec::new());
    for i in 0..args.loads {
        let (pa, pb) = (write(a.name, a.v1, i)?, write(b.name, b.v1, i)?);
        let mut time_a = || -> anyhow::Result<()> {
            let t = Instant::now();
            let code = load(&*a.tier, &pa, &ctx)?;
            at.push(t.elapsed().as_nanos() as u64);
            ar_us.push((a.resolve)(&code).as_nanos() as u64);
            Ok(())
        };
        if i % 2 == 0 {
            time_a()?;
        }
        let t = Instant::now();
        let code = load(&*b.tier, &pb, &ctx)?;
        bt.push(t.elapsed().as_nanos() as u64);
        br_us.push((b.resolve)(&code).as_nanos() as u64);
        drop(code);
        if i % 2 == 1 {
            time_a()?;
        }
    }
    let summarise = |ns: Vec<u64>, resolve: Vec<u64>, r: &mut TierReport| {
        let us: Vec<f64> = ns.iter().map(|&v| v as f64 / 1e3).collect();
        let mean = us.iter().sum::<f64>() / us.len().max(1) as f64;
        let var = us.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / us.len().max(1) as f64;
        let s = Samples::new(ns);
        r.load_p50_us = s.pct(50.0) as f64 / 1e3;
        r.load_p99_us = s.pct(99.0) as f64 / 1e3;
        r.load_mean_us = mean;
        r.load_sd_us = var.sqrt();
        r.resolve_us = Samples::new(resolve).pct(50.0) as f64 / 1e3;
        us
    };
    Ok((summarise(at, ar_us, ar), summarise(bt, br_us, br)))
}

/// WASM loads of one revision whose compiled code is in the memory cache.
fn cached_loads<T: Tier>(bench: &Bench<T>, n: u32) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cached");
    std::fs::write(&path, bench.v1)?;
    let ctx = context("bench");
    drop(load(&*bench.tier, &path, &ctx)?);
    let mut ns = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let code = load(&*bench.tier, &path, &ctx)?;
        ns.push(t.elapsed().as_nanos() as u64);
        drop(code);
    }
    Ok(Samples::new(ns).pct(50.0) as f64 / 1e3)
}

/// Memory added per revision, with `n` new revisions loaded at once: RSS,
/// and memory counting shared memory whole.
fn resident<T: Tier>(bench: &Bench<T>, n: u32) -> anyhow::Result<(f64, f64)> {
    let ctx = context("bench");
    let new_revision = |i: u32| {
        let artifact = Artifact::new(hotswap_examples::variant(bench.v1, 2_000_000 + i));
        prepare(&*bench.tier, &artifact, &ctx)
    };
    let mut out = Vec::new();
    let mut held = Vec::with_capacity(n as usize);
    // One first, so one-time costs (the engine's first instance, the
    // loader's first link map) are not charged to the others.
    held.push(new_revision(0)?);
    let (before, memory_before) = (rss_kib(), memory_kib());
    for i in 1..=n {
        let code = new_revision(i)?;
        out.clear();
        code.call(&INPUT, &mut out)
            .map_err(|e| anyhow::anyhow!(e))?;
        held.push(code);
    }
    let (after, memory_after) = (rss_kib(), memory_kib());
    drop(held);
    let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / n.max(1) as f64;
    Ok((per(after, before), per(memory_after, memory_before)))
}

/// Resident memory growth over `n` swaps in a slot (each a load and an
/// unload), after a warm-up.
fn cycles<T: Tier>(bench: &Bench<T>, n: u32) -> anyhow::Result<i64> {
    let slot = bench.slot("cycles");
    let versions = bench.versions();
    for i in 0..100 {
        slot.deploy(versions[i % 2].clone(), None)?;
    }
    slot.wait_drained(Duration::from_secs(10));
    let before = rss_kib();
    for i in 0..n as usize {
        slot.deploy(versions[i % 2].clone(), None)?;
        slot.call(&INPUT)?;
    }
    slot.wait_drained(Duration::from_secs(10));
    Ok(rss_kib() as i64 - before as i64)
}

type Hist = hdrhistogram::Histogram<u64>;

/// Single calls, timed one by one, in alternating blocks of the two tiers;
/// then the mean of each, timed in whole blocks.
fn calls<A: Tier, B: Tier>(
    a: &Bench<A>,
    b: &Bench<B>,
    n: u32,
) -> anyhow::Result<(Hist, Hist, f64, f64)> {
    let (sa, sb) = (a.slot("calls"), b.slot("calls"));
    sa.deploy(Artifact::new(a.v1.to_vec()), None)?;
    sb.deploy(Artifact::new(b.v1.to_vec()), None)?;
    let (mut warm, mut ha, mut hb) = (hist(), hist(), hist());
    timed_calls(&sa, 10_000, &mut warm)?;
    timed_calls(&sb, 10_000, &mut warm)?;
    const BLOCK: u32 = 1000;
    let blocks = n.div_ceil(BLOCK);
    for _ in 0..blocks {
        timed_calls(&sa, BLOCK, &mut ha)?;
        timed_calls(&sb, BLOCK, &mut hb)?;
    }
    let (mut ta, mut tb) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..blocks {
        ta += batch_calls(&sa, BLOCK)?;
        tb += batch_calls(&sb, BLOCK)?;
    }
    let mean = |t: Duration| t.as_nanos() as f64 / f64::from(blocks * BLOCK);
    Ok((ha, hb, mean(ta), mean(tb)))
}

/// `threads` callers on one slot for `duration` while it is replaced
/// `rate` times a second (v1 and v2 alternately; every replacement is a
/// load). Fills in the swap and failure rows.
fn under_swaps<T: Tier>(
    bench: &Bench<T>,
    threads: usize,
    duration: Duration,
    rate: u32,
    r: &mut TierReport,
) -> anyhow::Result<()> {
    let slot = Arc::new(bench.slot("swaps"));
    let versions = bench.versions();
    slot.deploy(versions[0].clone(), None)?;
    let stop = AtomicBool::new(false);
    let (calls, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    let mut swap_ns = Vec::new();
    let mut latency = hist();
    std::thread::scope(|s| -> anyhow::Result<()> {
        let callers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut h = hist();
                    let mut out = Vec::with_capacity(128);
                    while !stop.load(Ordering::Relaxed) {
                        out.clear();
                        let t = Instant::now();
                        let ok = slot.call_into(&INPUT, &mut out).is_ok();
                        h.saturating_record(t.elapsed().as_nanos() as u64);
                        calls.fetch_add(1, Ordering::Relaxed);
                        failed.fetch_add(u64::from(!ok), Ordering::Relaxed);
                    }
                    h
                })
            })
            .collect();
        let period = Duration::from_secs(1) / rate.max(1);
        let started = Instant::now();
        let mut next = started + period;
        let mut i = 1;
        let result = (|| -> anyhow::Result<()> {
            while started.elapsed() < duration {
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
                next += period;
                let t = Instant::now();
                slot.deploy(versions[i % 2].clone(), None)?;
                swap_ns.push(t.elapsed().as_nanos() as u64);
                i += 1;
            }
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        for c in callers {
            latency
                .add(c.join().expect("caller thread"))
                .expect("same bounds");
        }
        result
    })?;
    let swaps = Samples::new(swap_ns);
    r.swaps = swaps.len() as u64;
    r.swap_p50_us = swaps.pct(50.0) as f64 / 1e3;
    r.swap_p99_us = swaps.pct(99.0) as f64 / 1e3;
    r.calls_while_swapping = calls.into_inner();
    r.failed_calls = failed.into_inner();
    r.call_p99_while_swapping_ns = latency.value_at_quantile(0.99);
    Ok(())
}

fn machine() -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    Machine {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into()),
    }
}

fn print_table(r: &Report) {
    let (w, n, s) = (&r.wasm, &r.native, &r.seed);
    let ratio = |a: f64, b: f64| {
        if a > 0.0 {
            format!("{:.2}x", b / a)
        } else {
            "-".into()
        }
    };
    let us = |v: f64| {
        if v >= 1000.0 {
            format!("{:.2} ms", v / 1e3)
        } else {
            format!("{v:.1} µs")
        }
    };
    let rows: Vec<[String; 5]> = vec![
        [
            "load, p50 (new revision)".into(),
            us(w.load_p50_us),
            us(n.load_p50_us),
            ratio(w.load_p50_us, n.load_p50_us),
            format!("{} / {}", us(s.wasm_load_us), us(s.native_load_us)),
        ],
        [
            "load, mean ± sd".into(),
            format!("{} ± {}", us(w.load_mean_us), us(w.load_sd_us)),
            format!("{} ± {}", us(n.load_mean_us), us(n.load_sd_us)),
            ratio(w.load_mean_us, n.load_mean_us),
            String::new(),
        ],
        [
            "load, p99".into(),
            us(w.load_p99_us),
            us(n.load_p99_us),
            ratio(w.load_p99_us, n.load_p99_us),
            String::new(),
        ],
        [
            "load, p50, compiled code cached".into(),
            w.load_cached_p50_us.map_or("-".into(), us),
            "(no cache)".into(),
            w.load_cached_p50_us
                .map_or("-".into(), |c| ratio(c, n.load_p50_us)),
            String::new(),
        ],
        [
            "resident memory per loaded revision".into(),
            format!("{:.0} KiB", w.rss_per_revision_kib),
            format!("{:.0} KiB", n.rss_per_revision_kib),
            ratio(w.rss_per_revision_kib, n.rss_per_revision_kib),
            format!(
                "{:.0} / {:.0} KB",
                s.wasm_rss_per_revision_kib, s.native_rss_per_revision_kib
            ),
        ],
        [
            "memory per revision, shared memory whole".into(),
            format!("{:.0} KiB", w.memory_per_revision_kib),
            format!("{:.0} KiB", n.memory_per_revision_kib),
            ratio(w.memory_per_revision_kib, n.memory_per_revision_kib),
            String::new(),
        ],
        [
            format!("resident growth over {} load/unload cycles", r.cycles),
            format!("{} KiB", w.rss_after_cycles_kib),
            format!("{} KiB", n.rss_after_cycles_kib),
            String::new(),
            String::new(),
        ],
        [
            "export lookup / symbol resolution, p50".into(),
            us(w.resolve_us),
            us(n.resolve_us),
            ratio(w.resolve_us, n.resolve_us),
            format!("{} / {}", us(s.wasm_resolve_us), us(s.native_resolve_us)),
        ],
        [
            "call, 64-byte input, p50".into(),
            format!("{} ns", w.call_p50_ns),
            format!("{} ns", n.call_p50_ns),
            ratio(w.call_p50_ns as f64, n.call_p50_ns as f64),
            String::new(),
        ],
        [
            "call, 64-byte input, mean (batch-timed)".into(),
            format!("{:.0} ns", w.call_mean_ns),
            format!("{:.0} ns", n.call_mean_ns),
            ratio(w.call_mean_ns, n.call_mean_ns),
            String::new(),
        ],
        [
            "call, 64-byte input, p99".into(),
            format!("{} ns", w.call_p99_ns),
            format!("{} ns", n.call_p99_ns),
            ratio(w.call_p99_ns as f64, n.call_p99_ns as f64),
            String::new(),
        ],
        [
            format!("replacement at {}/s, p50 (WASM: code cached)", r.swap_rate),
            us(w.swap_p50_us),
            us(n.swap_p50_us),
            ratio(w.swap_p50_us, n.swap_p50_us),
            String::new(),
        ],
        [
            format!("call p99 while replacing ({} threads)", r.threads),
            format!("{} ns", w.call_p99_while_swapping_ns),
            format!("{} ns", n.call_p99_while_swapping_ns),
            ratio(
                w.call_p99_while_swapping_ns as f64,
                n.call_p99_while_swapping_ns as f64,
            ),
            String::new(),
        ],
        [
            "failed calls while replacing".into(),
            format!("{} of {}", w.failed_calls, w.calls_while_swapping),
            format!("{} of {}", n.failed_calls, n.calls_while_swapping),
            String::new(),
            "0 / 0".into(),
        ],
        [
            "artifact size".into(),
            format!("{} KiB", w.size_bytes / 1024),
            format!("{} KiB", n.size_bytes / 1024),
            ratio(w.size_bytes as f64, n.size_bytes as f64),
            String::new(),
        ],
    ];
    let header = [
        "metric",
        "WASM",
        "native",
        "native/WASM",
        "seed (WASM / native)",
    ];
    let widths: Vec<usize> = (0..5)
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    println!(
        "hotswap bench compare: greet from one source, WASM module vs native library, {} loads, {} calls, {} cpus ({})",
        r.loads, r.calls, r.machine.cpus, r.machine.cpu
    );
    let line = |cells: [&str; 5]| {
        let mut out = format!("  {:<w$}", cells[0], w = widths[0]);
        for c in 1..5 {
            let pad = widths[c] - cells[c].chars().count();
            out.push_str("  ");
            out.push_str(&" ".repeat(pad));
            out.push_str(cells[c]);
        }
        println!("{out}");
    };
    line(header);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line([&rule[0], &rule[1], &rule[2], &rule[3], &rule[4]]);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
}
