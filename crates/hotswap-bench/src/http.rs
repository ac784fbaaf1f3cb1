//! `hotswap bench http`: requests per second and latency through
//! `hotswap serve` against a bare hyper server answering the same bytes,
//! side by side in one run, and the same while deploying 10 times a second;
//! then the same comparison over HTTP/2 and over TLS (`proto`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hotswap_server::{Server, ServerConfig};

use super::proto;
use crate::tally::Tally;
use serde::Serialize;

#[derive(clap::Args)]
pub struct Args {
    /// Seconds of load for each side, split into alternating rounds.
    #[arg(long, default_value_t = 6)]
    seconds: u64,
    /// Client connections, each keep-alive, one request at a time [default: 2 × cores].
    #[arg(long)]
    clients: Option<usize>,
    /// Deploys per second in the "while deploying" phase.
    #[arg(long, default_value_t = 10)]
    deploy_rate: u32,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct BareArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:9080")]
    listen: SocketAddr,
    /// Serve HTTPS with this certificate chain (PEM), as `hotswap serve`'s `[tls]` does.
    #[arg(long, requires = "key")]
    cert: Option<std::path::PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, requires = "cert")]
    key: Option<std::path::PathBuf>,
}

/// `hotswap bench bare`: the bare server of [`main`] on its own, until
/// Ctrl-C, so that an outside load generator (h2load, wrk) can measure it
/// next to `hotswap serve`.
pub fn bare(args: BareArgs) -> anyhow::Result<ExitCode> {
    let tls = match (args.cert, args.key) {
        (Some(cert), Some(key)) => Some(hotswap_server::TlsConfig { cert, key }.load()?),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    runtime("the server's runtime")?.block_on(async {
        let addr = proto::bare_server(args.listen, tls).await?;
        eprintln!(
            "bare server: POST {scheme}://{addr}/greet answers \"hello, world!\" (Ctrl-C stops it)"
        );
        tokio::signal::ctrl_c().await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// The results; the field names are the stable JSON keys.
#[derive(Serialize)]
struct Report {
    rps: f64,
    baseline_rps: f64,
    ratio: f64,
    p99_ms: f64,
    baseline_p99_ms: f64,
    failed: u64,
    rps_while_deploying: f64,
    p99_ms_while_deploying: f64,
    failed_while_deploying: u64,
    deploys: u64,
    clients: usize,
    /// HTTP/2 with prior knowledge, one stream at a time per connection.
    h2_rps: f64,
    h2_baseline_rps: f64,
    h2_ratio: f64,
    h2_failed: u64,
    /// HTTPS (TLS 1.3, HTTP/1.1 keep-alive).
    tls_rps: f64,
    tls_baseline_rps: f64,
    tls_ratio: f64,
    tls_failed: u64,
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let clients = args.clients.unwrap_or(2 * cores);
    // The servers share one runtime, so they share the machine alike; the
    // load runs on a runtime of its own.
    let servers = runtime("the servers' runtime")?;
    let load_rt = runtime("the clients' runtime")?;
    let seconds = Duration::from_secs(args.seconds);

    let plain = Pair::start(&servers, None)?;
    let h1 = proto::Proto {
        h2: false,
        tls: None,
    };
    let (base, hot) = side_by_side(&load_rt, &plain, "HTTP/1.1", &h1, clients, seconds);
    eprint!(
        "\rwhile deploying {} times a second...                ",
        args.deploy_rate
    );
    let (during, deploys) =
        load_while_deploying(&load_rt, &plain, &h1, clients, seconds, args.deploy_rate);
    // The same listeners speak HTTP/2 (prior knowledge).
    let h2 = proto::Proto {
        h2: true,
        tls: None,
    };
    let (h2_base, h2_hot) = side_by_side(&load_rt, &plain, "HTTP/2", &h2, clients, seconds);
    plain.stop();

    let certs = tempfile::tempdir().context("cannot make a temporary directory")?;
    let cert = proto::TestCert::new(certs.path())?;
    let secure = Pair::start(&servers, Some(&cert.server))?;
    let tls = proto::Proto {
        h2: false,
        tls: Some(cert.client.clone()),
    };
    let (tls_base, tls_hot) = side_by_side(&load_rt, &secure, "TLS", &tls, clients, seconds);
    secure.stop();
    eprintln!("\r{:60}", "");
    drop(load_rt);
    drop(servers);
    let ratio = |hot: &Tally, base: &Tally| hot.rps() / base.rps().max(1e-9);

    let report = Report {
        rps: hot.rps(),
        baseline_rps: base.rps(),
        ratio: ratio(&hot, &base),
        p99_ms: hot.p99_ms(),
        baseline_p99_ms: base.p99_ms(),
        failed: hot.failed + base.failed,
        rps_while_deploying: during.rps(),
        p99_ms_while_deploying: during.p99_ms(),
        failed_while_deploying: during.failed,
        deploys,
        clients,
        h2_rps: h2_hot.rps(),
        h2_baseline_rps: h2_base.rps(),
        h2_ratio: ratio(&h2_hot, &h2_base),
        h2_failed: h2_hot.failed + h2_base.failed,
        tls_rps: tls_hot.rps(),
        tls_baseline_rps: tls_base.rps(),
        tls_ratio: ratio(&tls_hot, &tls_base),
        tls_failed: tls_hot.failed + tls_base.failed,
    };
    let title = format!(
        "hotswap bench http: POST /greet \"world\", {clients} keep-alive clients on loopback"
    );
    #[rustfmt::skip]
    super::report(args.json, &report, &title, |r| vec![
            ("bare hyper server, requests/s", format!("{:.0}", r.baseline_rps), ""),
            ("hotswap serve + greet plugin, requests/s", format!("{:.0}", r.rps), ""),
            ("ratio", format!("{:.2}x", r.ratio), "≥ 0.6x"),
            ("p99 latency, bare / hotswap", format!("{:.2} / {:.2} ms", r.baseline_p99_ms, r.p99_ms), ""),
            ("failed requests", r.failed.to_string(), "0"),
            ("while deploying, requests/s", format!("{:.0}", r.rps_while_deploying), ""),
            ("while deploying, p99", format!("{:.2} ms", r.p99_ms_while_deploying), ""),
            ("deploys during that phase", r.deploys.to_string(), ""),
            ("failed requests while deploying", r.failed_while_deploying.to_string(), "0"),
            ("HTTP/2, bare / hotswap, requests/s", format!("{:.0} / {:.0}", r.h2_baseline_rps, r.h2_rps), ""),
            ("HTTP/2 ratio", format!("{:.2}x", r.h2_ratio), "≥ 0.9x"),
            ("HTTP/2 failed requests", r.h2_failed.to_string(), "0"),
            ("TLS, bare / hotswap, requests/s", format!("{:.0} / {:.0}", r.tls_baseline_rps, r.tls_rps), ""),
            ("TLS ratio", format!("{:.2}x", r.tls_ratio), "≥ 0.9x"),
            ("TLS failed requests", r.tls_failed.to_string(), "0"),
    ])?;
    Ok(
        if report.failed == 0
            && report.failed_while_deploying == 0
            && report.h2_failed == 0
            && report.tls_failed == 0
        {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

fn runtime(what: &str) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .with_context(|| format!("cannot start {what}"))
}

/// A bare hyper server and `hotswap serve` (on its defaults, with the
/// greet example) on loopback, both with TLS when `tls` is given.
struct Pair {
    bare: SocketAddr,
    hot: SocketAddr,
    admin: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    _store: tempfile::TempDir,
}

impl Pair {
    fn start(
        runtime: &tokio::runtime::Runtime,
        tls: Option<&hotswap_server::TlsConfig>,
    ) -> anyhow::Result<Pair> {
        let store = tempfile::tempdir().context("cannot make a temporary store")?;
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse()?,
            admin: "127.0.0.1:0".parse()?,
            data_dir: store.path().to_path_buf(),
            tls: tls.cloned(),
            ..ServerConfig::default()
        };
        let example = hotswap_server::FirstStart::new(
            hotswap_examples::GREET_SLOT,
            hotswap_examples::GREET_V1,
        );
        let (bare, hot, admin, stop) = runtime.block_on(async {
            let tls = tls.map(|t| t.load()).transpose()?;
            let bare = proto::bare_server("127.0.0.1:0".parse()?, tls).await?;
            let server = Server::bind(config, Some(example)).await?;
            let (hot, admin) = (server.data_addr(), server.admin_addr());
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(server.run(async move {
                let _ = rx.await;
            }));
            anyhow::Ok((bare, hot, admin, tx))
        })?;
        Ok(Pair {
            bare,
            hot,
            admin,
            stop,
            _store: store,
        })
    }

    fn stop(self) {
        let _ = self.stop.send(());
    }
}

/// Both servers of `pair` under the same load in `proto`, in alternating
/// rounds so that noise from the rest of the machine lands on both:
/// (bare, hotswap).
fn side_by_side(
    load_rt: &tokio::runtime::Runtime,
    pair: &Pair,
    name: &str,
    proto: &proto::Proto,
    clients: usize,
    duration: Duration,
) -> (Tally, Tally) {
    // Warm both up (connections, instances, caches).
    let warm = Duration::from_millis(300);
    proto::load(load_rt, pair.bare, proto, clients, warm);
    proto::load(load_rt, pair.hot, proto, clients, warm);
    let rounds = 6;
    let round = duration.div_f64(rounds as f64);
    let (mut base, mut hot) = (Tally::default(), Tally::default());
    // Each side goes first in every other round (bare, hot, hot, bare,
    // ...), so that whatever the second of two back-to-back loads meets
    // (the machine warmer, the generator's allocator fuller) is shared.
    for r in 0..rounds {
        eprint!("\r{name} round {}/{rounds}   ", r + 1);
        let mut sides = [(pair.bare, &mut base), (pair.hot, &mut hot)];
        if r % 2 == 1 {
            sides.reverse();
        }
        for (addr, tally) in sides {
            tally.add(proto::load(load_rt, addr, proto, clients, round));
        }
    }
    (base, hot)
}

/// The load of [`side_by_side`] on `hotswap serve` alone, while another
/// thread deploys greet v2 and v1 in turn at `rate` per second through the
/// admin API.
fn load_while_deploying(
    load_rt: &tokio::runtime::Runtime,
    pair: &Pair,
    proto: &proto::Proto,
    clients: usize,
    duration: Duration,
    rate: u32,
) -> (Tally, u64) {
    let done = Arc::new(AtomicBool::new(false));
    let deploys = Arc::new(AtomicU64::new(0));
    let deployer = {
        let (done, deploys) = (done.clone(), deploys.clone());
        let admin = hotswap_api::Client::new(&pair.admin.to_string());
        std::thread::spawn(move || {
            let period = Duration::from_secs(1) / rate.max(1);
            let mut next = Instant::now();
            let mut i = 0usize;
            let query = hotswap_api::wire::DeployQuery::default();
            while !done.load(Ordering::Relaxed) {
                let module = [hotswap_examples::GREET_V2, hotswap_examples::GREET_V1][i % 2];
                if admin
                    .deploy(hotswap_examples::GREET_SLOT, module, &query)
                    .is_ok()
                {
                    deploys.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
                next += period;
                // Pacing to the rate, not synchronisation.
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        })
    };
    let tally = proto::load(load_rt, pair.hot, proto, clients, duration);
    done.store(true, Ordering::Relaxed);
    deployer.join().expect("deployer thread");
    (tally, deploys.load(Ordering::Relaxed))
}
