//! `hotswap bench ebpf`: eBPF program replacement under a live event
//! stream, for each mechanism: the dispatcher's slot write (tracepoints)
//! and the link update (XDP). It times each swap, and counts the events
//! the program saw against the events that happened: lost or twice.
//!
//! - **tracepoint**: the example tracer on `raw_syscalls:sys_enter`,
//!   watching one thread that makes `getppid` calls all the while; the
//!   thread's own count is the truth.
//! - **xdp**: the example filter on the loopback of a private network
//!   namespace (so no other traffic), while UDP packets cross it; the
//!   packets sent are the truth.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use hotswap_ebpf::{examples, EbpfTier, Hook, Placed};
use serde::Serialize;

#[derive(clap::Args)]
pub struct Args {
    /// Replacements per mechanism.
    #[arg(long, default_value_t = 1000)]
    replacements: u32,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// One mechanism's results; the field names are the stable JSON keys.
#[derive(Serialize, Default, Clone)]
struct Mechanism {
    replacements: u64,
    /// Events that happened while it was replaced.
    expected_events: u64,
    /// Events the program counted.
    counted_events: u64,
    lost: u64,
    duplicated: u64,
    /// Calls into the dispatcher that found its slot empty (tracepoint only).
    missed: u64,
    /// The swap alone (slot write or link update).
    replace_p50_us: f64,
    replace_p99_us: f64,
    replace_max_us: f64,
    /// A whole replacement: parse, maps, verifier, swap.
    load_p50_us: f64,
}

/// Both mechanisms, and their totals at the top level.
#[derive(Serialize)]
struct Report {
    #[serde(flatten)]
    total: Mechanism,
    tracepoint: Mechanism,
    xdp: Mechanism,
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    if args.replacements == 0 {
        bail!("--replacements must be at least 1");
    }
    let root = PathBuf::from(format!("/sys/fs/bpf/hotswap-bench-{}", std::process::id()));
    let tier = EbpfTier::new(&root).context("`hotswap bench ebpf` loads eBPF programs")?;
    let _cleanup = Cleanup(root);
    let bar = super::progress(2 * args.replacements as u64);
    bar.set_message("tracepoint: slot writes");
    let tracepoint = tracepoint(&tier, args.replacements, &bar)?;
    bar.set_message("xdp: link updates");
    let xdp = xdp(&tier, args.replacements, &bar)?;
    bar.finish_and_clear();

    let mut all = super::hist();
    let mut loads = super::hist();
    for (swaps, full) in [&tracepoint, &xdp].map(|m| (&m.1, &m.2)) {
        all.add(swaps).expect("same bounds");
        loads.add(full).expect("same bounds");
    }
    let (tracepoint, xdp) = (tracepoint.0, xdp.0);
    let sum = |f: fn(&Mechanism) -> u64| f(&tracepoint) + f(&xdp);
    let report = Report {
        total: Mechanism {
            replacements: sum(|m| m.replacements),
            expected_events: sum(|m| m.expected_events),
            counted_events: sum(|m| m.counted_events),
            lost: sum(|m| m.lost),
            duplicated: sum(|m| m.duplicated),
            missed: sum(|m| m.missed),
            replace_p50_us: us(all.value_at_quantile(0.5)),
            replace_p99_us: us(all.value_at_quantile(0.99)),
            replace_max_us: us(all.max()),
            load_p50_us: us(loads.value_at_quantile(0.5)),
        },
        tracepoint,
        xdp,
    };
    super::report(args.json, &report, "hotswap bench ebpf", |r| {
        let mut rows = rows(
            &r.tracepoint,
            [
                "tracepoint: swap p50 / p99 / max",
                "tracepoint: whole replacement p50",
                "tracepoint: calls counted / made",
                "tracepoint: lost / twice / slot empty",
            ],
        );
        rows.extend(rows_for_xdp(&r.xdp));
        rows
    })?;
    let clean = report.total.lost == 0 && report.total.duplicated == 0 && report.total.missed == 0;
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

type Measured = (
    Mechanism,
    hdrhistogram::Histogram<u64>,
    hdrhistogram::Histogram<u64>,
);

/// Table rows for one mechanism, labelled `labels`.
fn rows(m: &Mechanism, labels: [&'static str; 4]) -> Vec<(&'static str, String, &'static str)> {
    vec![
        (
            labels[0],
            format!(
                "{:.0} / {:.0} / {:.0} µs",
                m.replace_p50_us, m.replace_p99_us, m.replace_max_us
            ),
            "≤ 1 ms",
        ),
        (
            labels[1],
            format!("{:.2} ms", m.load_p50_us / 1000.0),
            "(verifier included)",
        ),
        (
            labels[2],
            format!(
                "{} / {} over {} replacements",
                m.counted_events, m.expected_events, m.replacements
            ),
            "equal",
        ),
        (
            labels[3],
            format!("{} / {} / {}", m.lost, m.duplicated, m.missed),
            "0 / 0 / 0",
        ),
    ]
}

fn rows_for_xdp(m: &Mechanism) -> Vec<(&'static str, String, &'static str)> {
    rows(
        m,
        [
            "xdp: swap p50 / p99 / max",
            "xdp: whole replacement p50",
            "xdp: packets counted / sent",
            "xdp: lost / twice / -",
        ],
    )
}

/// Replaces the tracer `n` times while a watched thread makes calls.
fn tracepoint(tier: &EbpfTier, n: u32, bar: &indicatif::ProgressBar) -> anyhow::Result<Measured> {
    let hook: Hook = "tracepoint:raw_syscalls:sys_enter".parse()?;
    tier.load("bench-tracer", examples::TRACER_V1, None, &hook)?;
    // The calling thread starts once it is watched, so every call it
    // makes is one the tracer must count.
    let stop = Arc::new(AtomicBool::new(false));
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let caller = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            let _ = tid_tx.send(unsafe { libc::gettid() } as u32);
            let mut calls = 0u64;
            if go_rx.recv().is_ok() {
                while !stop.load(Ordering::Acquire) {
                    // SAFETY: getppid has no preconditions.
                    unsafe { libc::getppid() };
                    calls += 1;
                }
            }
            calls
        })
    };
    let tid = tid_rx.recv().context("the calling thread died")?;
    tier.map("bench-tracer", "watch")?
        .set(&tid.to_string(), &libc::SYS_getppid.to_string())?;
    let _ = go_tx.send(());
    let measured = replace(
        tier,
        "bench-tracer",
        &hook,
        n,
        bar,
        [examples::TRACER_V2, examples::TRACER_V1],
    );
    stop.store(true, Ordering::Release);
    let calls = caller.join().expect("the calling thread does not panic");
    let (swaps, loads) = measured?;
    let counted = tier
        .map("bench-tracer", "counts")?
        .get(&tid.to_string())?
        .and_then(|e| e.value.as_u64())
        .unwrap_or(0);
    let missed = tier.missed("bench-tracer")?;
    tier.unload("bench-tracer")?;
    let mut m = mechanism(n, calls, counted, &swaps, &loads);
    m.missed = missed;
    Ok((m, swaps, loads))
}

/// Replaces the XDP filter `n` times while UDP packets cross the loopback
/// of a private network namespace.
fn xdp(tier: &EbpfTier, n: u32, bar: &indicatif::ProgressBar) -> anyhow::Result<Measured> {
    let hook: Hook = "xdp:lo".parse()?;
    // A thread of its own enters a new network namespace, brings its
    // loopback up, attaches there and makes the sockets (which stay in it).
    let (sender, receiver) = std::thread::scope(|s| {
        s.spawn(|| -> anyhow::Result<(UdpSocket, UdpSocket)> {
            // SAFETY: unshare affects this thread only.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                bail!(
                    "cannot make a network namespace: {}",
                    std::io::Error::last_os_error()
                );
            }
            loopback_up()?;
            tier.load("bench-xdp", examples::XDP_FILTER_V1, None, &hook)?;
            let receiver = UdpSocket::bind("127.0.0.1:0")?;
            let sender = UdpSocket::bind("127.0.0.1:0")?;
            sender.connect(receiver.local_addr()?)?;
            Ok((sender, receiver))
        })
        .join()
        .expect("the namespace thread does not panic")
    })?;
    receiver.set_read_timeout(Some(Duration::from_secs(10)))?;
    // Sender and receiver in step, a window apart, so no packet is lost to
    // a full socket buffer: every loss would be the filter's.
    const WINDOW: u64 = 64;
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let send = {
        let (received, stop, sent) = (received.clone(), stop.clone(), sent.clone());
        std::thread::spawn(move || -> std::io::Result<()> {
            let mut seq = 0u64;
            while !stop.load(Ordering::Acquire) {
                if seq - received.load(Ordering::Acquire) >= WINDOW {
                    std::thread::yield_now();
                    continue;
                }
                sender.send(&seq.to_be_bytes())?;
                seq += 1;
                sent.store(seq, Ordering::Release);
            }
            Ok(())
        })
    };
    let recv = {
        let (received, stop, sent) = (received.clone(), stop.clone(), sent.clone());
        std::thread::spawn(move || -> std::io::Result<()> {
            let mut buf = [0u8; 8];
            let mut got = 0u64;
            loop {
                if stop.load(Ordering::Acquire) && got == sent.load(Ordering::Acquire) {
                    return Ok(());
                }
                if got == sent.load(Ordering::Acquire) {
                    std::thread::yield_now();
                    continue;
                }
                receiver.recv(&mut buf)?;
                got += 1;
                received.store(got, Ordering::Release);
            }
        })
    };
    let measured = replace(
        tier,
        "bench-xdp",
        &hook,
        n,
        bar,
        [examples::XDP_FILTER_V2, examples::XDP_FILTER_V1],
    );
    stop.store(true, Ordering::Release);
    send.join()
        .expect("the sender does not panic")
        .context("sending")?;
    recv.join()
        .expect("the receiver does not panic")
        .context("a packet did not arrive")?;
    let (swaps, loads) = measured?;
    let stats = tier.map("bench-xdp", "stats")?;
    let count = |k: &str| -> anyhow::Result<u64> {
        Ok(stats.get(k)?.and_then(|e| e.value.as_u64()).unwrap_or(0))
    };
    let counted = count("0")? + count("1")?;
    tier.unload("bench-xdp")?;
    let sent = sent.load(Ordering::Acquire);
    Ok((mechanism(n, sent, counted, &swaps, &loads), swaps, loads))
}

/// `n` replacements of `name`, alternating between `objects`: the swap's
/// and the whole replacement's durations, in ns.
fn replace(
    tier: &EbpfTier,
    name: &str,
    hook: &Hook,
    n: u32,
    bar: &indicatif::ProgressBar,
    objects: [&[u8]; 2],
) -> anyhow::Result<(hdrhistogram::Histogram<u64>, hdrhistogram::Histogram<u64>)> {
    let (mut swaps, mut loads) = (super::hist(), super::hist());
    for i in 0..n {
        let Placed {
            swap,
            took,
            attached,
            ..
        } = tier.load(name, objects[i as usize % 2], None, hook)?;
        if attached {
            bail!("`{name}` was attached anew instead of replaced");
        }
        swaps.saturating_record(swap.as_nanos() as u64);
        loads.saturating_record(took.as_nanos() as u64);
        bar.inc(1);
    }
    Ok((swaps, loads))
}

fn mechanism(
    n: u32,
    expected: u64,
    counted: u64,
    swaps: &hdrhistogram::Histogram<u64>,
    loads: &hdrhistogram::Histogram<u64>,
) -> Mechanism {
    Mechanism {
        replacements: n as u64,
        expected_events: expected,
        counted_events: counted,
        lost: expected.saturating_sub(counted),
        duplicated: counted.saturating_sub(expected),
        missed: 0,
        replace_p50_us: us(swaps.value_at_quantile(0.5)),
        replace_p99_us: us(swaps.value_at_quantile(0.99)),
        replace_max_us: us(swaps.max()),
        load_p50_us: us(loads.value_at_quantile(0.5)),
    }
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// Brings `lo` up in this thread's network namespace.
fn loopback_up() -> anyhow::Result<()> {
    // SAFETY: a socket for the ioctl, closed below; `req` is a zeroed ifreq
    // with a NUL-terminated name, which the ioctls read and write.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            bail!("socket: {}", std::io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *d = *s as libc::c_char;
        }
        let ok = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) == 0 && {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) == 0
        };
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if !ok {
            bail!("cannot bring the namespace's loopback up: {err}");
        }
    }
    Ok(())
}

/// Removes the bench's pin root, whatever happened.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
