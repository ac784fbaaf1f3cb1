//! `hotswap bench upgrade`: binary upgrades of a real `hotswap serve`
//! process under continuous load, timing each handover (upgrade asked →
//! new process serving → old process gone) and counting every request that
//! was refused or failed.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command as Process, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hotswap_server::UpgradeReport;
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::process::{kill_process, pidfd_open, Pid, PidfdFlags, Signal};
use serde::Serialize;

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
    let server = start(dir.path(), &pid_file)?;
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..args.clients)
        .map(|i| {
            let (stop, url) = (stop.clone(), format!("http://{}/greet", server.data));
            std::thread::spawn(move || client(&url, i.is_multiple_of(2), &stop))
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

struct Started {
    data: SocketAddr,
    admin: SocketAddr,
}

/// Starts this very binary as `hotswap serve` on free ports.
fn start(dir: &std::path::Path, pid_file: &std::path::Path) -> anyhow::Result<Started> {
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let mut child = Process::new(exe)
        .args(["serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.join("store"))
        .arg("--pid-file")
        .arg(pid_file)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start hotswap serve")?;
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    // Each generation prints a line here; keep the pipe drained.
    std::thread::spawn(move || for _ in stdout.lines() {});
    std::thread::spawn(move || child.wait());
    let addrs: Vec<SocketAddr> = line
        .split("http://")
        .skip(1)
        .filter_map(|s| s.split([',', ' ', '\n']).next()?.parse().ok())
        .collect();
    match addrs[..] {
        [data, admin] => Ok(Started { data, admin }),
        _ => bail!("hotswap serve did not start: {line:?}"),
    }
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

fn read_pid(pid_file: &std::path::Path) -> anyhow::Result<Pid> {
    let text = std::fs::read_to_string(pid_file).context("cannot read the pid file")?;
    text.trim()
        .parse()
        .ok()
        .and_then(Pid::from_raw)
        .context("the pid file holds no pid")
}

/// SIGTERM to whichever generation serves, and wait for it to go.
fn stop_server(pid_file: &std::path::Path) {
    let Ok(pid) = read_pid(pid_file) else { return };
    let Ok(fd) = pidfd_open(pid, PidfdFlags::empty()) else {
        return;
    };
    let _ = kill_process(pid, Signal::TERM);
    if !exits_within(&fd, 10) {
        let _ = kill_process(pid, Signal::KILL);
    }
}

/// Waits up to `secs` for the process behind `pidfd` to exit; whether it did.
fn exits_within(pidfd: &std::os::fd::OwnedFd, secs: i64) -> bool {
    let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&timeout)).unwrap_or(0) > 0
}

#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
    refused: u64,
    errors: Vec<String>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.refused += other.refused;
        self.errors.extend(other.errors.into_iter().take(5));
    }
}

/// Calls until `stop`, counting answers that are not exactly right.
fn client(url: &str, keep_alive: bool, stop: &AtomicBool) -> Tally {
    let mut config = ureq::Agent::config_builder().http_status_as_error(false);
    if !keep_alive {
        config = config.max_idle_connections(0);
    }
    let agent = config.build().new_agent();
    let mut tally = Tally::default();
    while !stop.load(Ordering::Acquire) {
        let result = agent.post(url).send(b"bench" as &[u8]).and_then(|mut r| {
            let status = r.status().as_u16();
            let one_process = r
                .headers()
                .get_all(hotswap_server::PROCESS_HEADER)
                .iter()
                .count()
                == 1;
            Ok((status, one_process, r.body_mut().read_to_string()?))
        });
        match result {
            Ok((200, true, body)) if body == "hello, bench!" => tally.ok += 1,
            Ok(other) => {
                tally.failed += 1;
                if tally.errors.len() < 5 {
                    tally.errors.push(format!("{other:?}"));
                }
            }
            Err(ureq::Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                tally.refused += 1
            }
            Err(e) => {
                tally.failed += 1;
                if tally.errors.len() < 5 {
                    tally.errors.push(e.to_string());
                }
            }
        }
    }
    tally
}
