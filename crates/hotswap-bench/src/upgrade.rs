//! `hotswap bench upgrade`: binary upgrades of a real `hotswap serve`
//! process under continuous load, timing each handover (upgrade asked →
//! new process serving → old process gone) and counting every request that
//! was refused or failed.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hotswap_server::UpgradeReport;
use rustix::process::{pidfd_open, PidfdFlags};
use serde::Serialize;

use crate::serve_child::{client, exits_within, read_pid, start, stop_server, Tally};

#[derive(clap::Args)]
pub struct Args {
    /// Upgrades to run.
    #[arg(long, default_value_t = 100)]
    upgrades: u32,
    /// Client threads calling all the while; half keep one connection
    /// alive, half open a new connection per request.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// The results; the field names are the stable JSON keys.
#[derive(Serialize)]
struct Report {
    upgrades: u32,
    requests: u64,
    failed: u64,
    refused: u64,
    /// Upgrade asked → old process gone.
    handover_p50_ms: f64,
    handover_p99_ms: f64,
    handover_max_ms: f64,
    /// Upgrade asked → new process ready (before the old one drains).
    ready_p50_ms: f64,
    /// Upgrade asked → new process serving.
    took_over_p50_ms: f64,
    took_over_max_ms: f64,
    clients: usize,
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    if args.upgrades == 0 || args.clients == 0 {
        bail!("--upgrades and --clients must be at least 1");
    }
    let dir = tempfile::tempdir().context("cannot make a temporary directory")?;
    let pid_file = dir.path().join("hotswap.pid");
    let server = start(dir.path(), &pid_file, &[])?;
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..args.clients)
        .map(|i| {
            let (stop, url) = (stop.clone(), format!("http://{}/greet", server.data));
            std::thread::spawn(move || {
                client(
                    &url,
                    i.is_multiple_of(2),
                    &stop,
                    |b| b == "hello, bench!",
                    None,
                )
            })
        })
        .collect();

    let bar = super::progress(u64::from(args.upgrades));
    bar.set_message("upgrading under load");
    let admin = hotswap_api::Client::new(&server.admin.to_string());
    let (mut handover, mut ready, mut took_over) = (super::hist(), super::hist(), super::hist());
    let mut outcome = Ok(());
    for _ in 0..args.upgrades {
        match upgrade_once(&admin, &pid_file) {
            Ok((report, gone)) => {
                handover.saturating_record(gone.as_nanos() as u64);
                ready.saturating_record((report.ready_ms * 1e6) as u64);
                took_over.saturating_record((report.handover_ms * 1e6) as u64);
            }
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    stop.store(true, Ordering::Release);
    let mut tally = Tally::default();
    for c in clients {
        tally.add(c.join().expect("a client thread does not panic"));
    }
    stop_server(&pid_file);
    outcome?;

    let ms = |h: &hdrhistogram::Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1e6;
    let report = Report {
        upgrades: args.upgrades,
        requests: tally.ok + tally.failed + tally.refused,
        failed: tally.failed,
        refused: tally.refused,
        handover_p50_ms: ms(&handover, 0.5),
        handover_p99_ms: ms(&handover, 0.99),
        handover_max_ms: handover.max() as f64 / 1e6,
        ready_p50_ms: ms(&ready, 0.5),
        took_over_p50_ms: ms(&took_over, 0.5),
        took_over_max_ms: took_over.max() as f64 / 1e6,
        clients: args.clients,
    };
    super::report(args.json, &report, "hotswap bench upgrade", |r| {
        let ms = |what, value: f64, target| (what, format!("{value:.1} ms"), target);
        vec![
            ("upgrades", r.upgrades.to_string(), ""),
            ("requests under load", r.requests.to_string(), ""),
            ("failed requests", r.failed.to_string(), "0"),
            ("refused connections", r.refused.to_string(), "0"),
            ms("new process ready, p50", r.ready_p50_ms, ""),
            ms("new process serving, p50", r.took_over_p50_ms, ""),
            ms("new process serving, max", r.took_over_max_ms, ""),
            ms("old process gone, p50", r.handover_p50_ms, "≤ 100 ms"),
            ms("old process gone, p99", r.handover_p99_ms, "≤ 100 ms"),
            ms("old process gone, max", r.handover_max_ms, "≤ 100 ms"),
        ]
    })?;
    if tally.failed > 0 {
        eprintln!("first failures: {:?}", tally.errors);
    }
    Ok(ExitCode::SUCCESS)
}

/// One upgrade: asks for it, then waits until the old process is gone.
/// Returns the server's report and the time from asking to gone.
fn upgrade_once(
    admin: &hotswap_api::Client,
    pid_file: &std::path::Path,
) -> anyhow::Result<(UpgradeReport, Duration)> {
    let old = read_pid(pid_file)?;
    // Opened before asking, so the pid cannot be reused under us.
    let old_fd = pidfd_open(old, PidfdFlags::empty()).context("cannot watch the old process")?;
    let asked = Instant::now();
    let report: UpgradeReport = match admin.upgrade() {
        Ok(answer) => answer.value,
        Err(e) => bail!("the upgrade failed: {e}"),
    };
    if !exits_within(&old_fd, 30) {
        bail!("the old process {old:?} was still running 30 s after the upgrade");
    }
    Ok((report, asked.elapsed()))
}
