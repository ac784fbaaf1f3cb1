//! `hotswap bench`: the benchmarks, each printed as a table, or as JSON for
//! scripts: swaps (`swap`), WASM against native on one source (`compare`),
//! HTTP through `hotswap serve` against bare hyper (`http`), a component's
//! fresh instance per request against a plugin call (`component`), binary
//! upgrades (`upgrade`), state migration (`migrate`) and eBPF replacement
//! (`ebpf`). docs/numbers.md records what they measured.
//!
//! A crate of its own so that its plot, histogram and progress-bar
//! dependencies stay out of the crates that serve traffic; the `hotswap`
//! binary is its entry point.

mod compare;
mod component;
mod ebpf;
mod fleet;
mod http;
mod migrate;
mod plot;
mod proto;
mod serve_child;
mod swap;
mod tally;
mod upgrade;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Swap latency, call latency, throughput, and caller latency while swapping.
    Swap(swap::Args),
    /// The WASM tier against the native tier on the same plugin source: load latency, resident memory per revision, export lookup, call latency, and failed calls while replacing 50 times a second.
    Compare(compare::Args),
    /// A wasi:http component request (a fresh instance each) against an ABI v1 plugin call, and what keeping memory resident saves.
    Component(component::Args),
    /// HTTP throughput through `hotswap serve` against a bare hyper server, and while deploying.
    Http(http::Args),
    /// Only the bare hyper server that `bench http` compares against, for an outside load generator (h2load, wrk).
    Bare(http::BareArgs),
    /// Binary upgrades of a running `hotswap serve` under load: handover time and failed requests.
    Upgrade(upgrade::Args),
    /// State migration of a slot with many keys under load, and restoring many slots on restart.
    Migrate(migrate::Args),
    /// A fleet of `hotswap serve` members on real etcd and a real OCI registry, under load: rollout convergence, fleet-wide rollback, failed requests.
    Fleet(fleet::Args),
    /// eBPF program replacement (tracepoint slot writes, XDP link updates) under live events: swap latency, events lost or counted twice. Needs root.
    Ebpf(ebpf::Args),
}

pub fn main(cmd: Command) -> anyhow::Result<std::process::ExitCode> {
    match cmd {
        Command::Swap(args) => swap::main(args),
        Command::Compare(args) => compare::main(args),
        Command::Component(args) => component::main(args),
        Command::Http(args) => http::main(args),
        Command::Bare(args) => http::bare(args),
        Command::Upgrade(args) => upgrade::main(args),
        Command::Migrate(args) => migrate::main(args),
        Command::Fleet(args) => fleet::main(args),
        Command::Ebpf(args) => ebpf::main(args),
    }
}

/// Prints `report` as pretty JSON, or as the table `rows` makes of it.
pub(crate) fn report<R: serde::Serialize>(
    json: bool,
    report: &R,
    title: &str,
    rows: impl FnOnce(&R) -> Vec<(&'static str, String, &'static str)>,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print_table(title, &rows(report));
    }
    Ok(())
}

/// Prints rows of (what, measured, target) as an aligned table.
fn print_table(title: &str, rows: &[(&str, String, &str)]) {
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(8);
    println!("{title}");
    println!("  {:<w0$}  {:>w1$}  target", "metric", "measured");
    println!(
        "  {}  {}  {}",
        "-".repeat(w0),
        "-".repeat(w1),
        "-".repeat(12)
    );
    for (what, value, target) in rows {
        println!("  {what:<w0$}  {value:>w1$}  {target}");
    }
}

/// A latency histogram in nanoseconds, 1 ns to 60 s at 3 significant
/// figures. The bounds are explicit: `saturating_record` clamps to the upper
/// bound rather than growing the histogram.
pub(crate) fn hist() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

/// A progress bar on stderr for `steps` steps.
pub(crate) fn progress(steps: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(steps);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{pos}/{len}] {msg} ({elapsed})")
            .expect("valid template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// The input of every timed call: 64 bytes, as a small request body.
pub(crate) const INPUT: [u8; 64] = [b'x'; 64];

/// `n` calls of `slot`, each timed on its own into `h` (so each carries
/// the clock's cost: read p50/p99 from these, the mean from
/// [`batch_calls`]).
pub(crate) fn timed_calls<T: hotswap_core::Tier>(
    slot: &hotswap_core::Slot<T>,
    n: u32,
    h: &mut hdrhistogram::Histogram<u64>,
) -> anyhow::Result<()> {
    let mut out = Vec::with_capacity(128);
    for _ in 0..n {
        out.clear();
        let t = std::time::Instant::now();
        slot.call_into(&INPUT, &mut out)?;
        h.saturating_record(t.elapsed().as_nanos() as u64);
    }
    Ok(())
}

/// `n` calls of `slot`, timed as a whole: no clock inside the loop.
pub(crate) fn batch_calls<T: hotswap_core::Tier>(
    slot: &hotswap_core::Slot<T>,
    n: u32,
) -> anyhow::Result<std::time::Duration> {
    let mut out = Vec::with_capacity(128);
    let t = std::time::Instant::now();
    for _ in 0..n {
        out.clear();
        slot.call_into(&INPUT, &mut out)?;
    }
    Ok(t.elapsed())
}
