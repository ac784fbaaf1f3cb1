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
use hdrhistogram::Histogram;
use hotswap_server::{Server, ServerConfig};

use super::proto;
use serde::Serialize;

#[derive(clap::Args)]
pub struct Args {
    /// Seconds of load for each side, split into alternating rounds.
    #[arg(long, default_value_t = 6)]
    seconds: u64,
    /// Client threads, each with one keep-alive connection [default: 2 × cores].
    #[arg(long)]
    clients: Option<usize>,
    /// Deploys per second in the "while deploying" phase.
    #[arg(long, default_value_t = 10)]
    deploy_rate: u32,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
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

/// What one stretch of load measured.
#[derive(Default)]
pub(super) struct Tally {
    pub ok: u64,
    pub failed: u64,
    pub elapsed: Duration,
    pub hist: Option<Histogram<u64>>,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.elapsed += other.elapsed;
        match (&mut self.hist, other.hist) {
            (Some(h), Some(o)) => h.add(o).expect("same bounds"),
            (h @ None, o) => *h = o,
            _ => {}
        }
    }

    fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn p99_ms(&self) -> f64 {
        self.hist
            .as_ref()
            .map_or(0.0, |h| h.value_at_quantile(0.99) as f64 / 1e6)
    }
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let clients = args.clients.unwrap_or(2 * cores);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let store = tempfile::tempdir().context("cannot make a temporary store")?;

    // Both servers in one runtime, so they share the machine alike.
    let (bare, plugins, admin, stop) = runtime.block_on(async {
        let bare = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let bare_addr = bare.local_addr()?;
        // It reads the request body, as the plugin route does: a handler
        // that leaves it unread makes hyper close the connection after each
        // response, which would handicap the baseline.
        let app = axum::Router::new().route(
            "/greet",
            axum::routing::post(|body: axum::body::Bytes| async move {
                drop(body);
                "hello, world!"
            }),
        );
        tokio::spawn(async move { axum::serve(bare, app).await });

        let server = Server::bind(
            ServerConfig {
                listen: "127.0.0.1:0".parse()?,
                admin: "127.0.0.1:0".parse()?,
                data_dir: store.path().to_path_buf(),
                ..ServerConfig::default()
            },
            Some(hotswap_server::FirstStart::new(
                hotswap_examples::GREET_SLOT,
                hotswap_examples::GREET_V1,
            )),
        )
        .await?;
        let (data, admin) = (server.data_addr(), server.admin_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        anyhow::Ok((bare_addr, data, admin, tx))
    })?;

    let bare_url = format!("http://{bare}/greet");
    let plugin_url = format!("http://{plugins}/greet");
    // Warm both up (connections, instances, caches).
    load(&bare_url, clients, Duration::from_millis(300));
    load(&plugin_url, clients, Duration::from_millis(300));

    // Alternating rounds: noise from the rest of the machine lands on both.
    let rounds = 3;
    let round = Duration::from_secs(args.seconds).div_f64(rounds as f64);
    let (mut base, mut hot) = (Tally::default(), Tally::default());
    for r in 0..rounds {
        eprint!(
            "\rround {}/{rounds}: bare server, then hotswap serve   ",
            r + 1
        );
        base.add(load(&bare_url, clients, round));
        hot.add(load(&plugin_url, clients, round));
    }
    eprint!(
        "\rwhile deploying {} times a second...                ",
        args.deploy_rate
    );
    let (during, deploys) = load_while_deploying(
        &plugin_url,
        admin,
        clients,
        Duration::from_secs(args.seconds),
        args.deploy_rate,
    );
    eprintln!("\r{:60}", "");
    let _ = stop.send(());

    let certs = tempfile::tempdir().context("cannot make a temporary directory")?;
    let cert = proto::TestCert::new(certs.path())?;
    let h2 = proto::Proto {
        h2: true,
        tls: None,
    };
    let tls = proto::Proto {
        h2: false,
        tls: Some(cert.client.clone()),
    };
    let (h2_base, h2_hot) = protocol_run(&runtime, "HTTP/2", &h2, None, clients, args.seconds)?;
    let (tls_base, tls_hot) = protocol_run(
        &runtime,
        "TLS",
        &tls,
        Some(&cert.server),
        clients,
        args.seconds,
    )?;
    eprintln!("\r{:60}", "");
    drop(runtime);
    let ratio = |hot: &Tally, base: &Tally| hot.rps() / base.rps().max(1e-9);

    let report = Report {
        rps: hot.rps(),
        baseline_rps: base.rps(),
        ratio: hot.rps() / base.rps().max(1e-9),
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

/// `clients` threads, each with its own keep-alive connection, posting
/// "world" for `duration`. A request that is not `200 hello, world!`
/// (or `HELLO, WORLD!! (v2)`) counts as failed.
fn load(url: &str, clients: usize, duration: Duration) -> Tally {
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let mut total = Tally::default();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .build()
                        .into();
                    let mut hist = super::hist();
                    let (mut ok, mut failed) = (0, 0);
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        let good = agent
                            .post(url)
                            .send(&b"world"[..])
                            .ok()
                            .filter(|r| r.status() == 200)
                            .and_then(|mut r| r.body_mut().read_to_string().ok())
                            .is_some_and(|b| b == "hello, world!" || b == "HELLO, WORLD!! (v2)");
                        hist.saturating_record(t.elapsed().as_nanos() as u64);
                        if good {
                            ok += 1
                        } else {
                            failed += 1
                        }
                    }
                    (ok, failed, hist)
                })
            })
            .collect();
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            let (ok, failed, hist) = w.join().expect("client thread");
            total.add(Tally {
                ok,
                failed,
                elapsed: Duration::ZERO,
                hist: Some(hist),
            });
        }
    });
    total.elapsed = started.elapsed();
    total
}

/// [`load`] while another thread deploys greet v1 and v2 in turn at `rate`
/// per second through the admin API.
fn load_while_deploying(
    url: &str,
    admin: SocketAddr,
    clients: usize,
    duration: Duration,
    rate: u32,
) -> (Tally, u64) {
    let done = Arc::new(AtomicBool::new(false));
    let deploys = Arc::new(AtomicU64::new(0));
    let deployer = {
        let (done, deploys) = (done.clone(), deploys.clone());
        let url = format!("http://{admin}/v1/slots/greet/revisions");
        std::thread::spawn(move || {
            let agent = ureq::Agent::new_with_defaults();
            let period = Duration::from_secs(1) / rate.max(1);
            let mut next = Instant::now();
            let mut i = 0usize;
            while !done.load(Ordering::Relaxed) {
                let module = [hotswap_examples::GREET_V2, hotswap_examples::GREET_V1][i % 2];
                if agent.post(&url).send(module).is_ok() {
                    deploys.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
                next += period;
                // Pacing to the rate, not synchronisation.
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        })
    };
    let tally = load(url, clients, duration);
    done.store(true, Ordering::Relaxed);
    deployer.join().expect("deployer thread");
    (tally, deploys.load(Ordering::Relaxed))
}

/// A bare hyper server and `hotswap serve` speaking `proto` (with `tls`,
/// the same certificate), loaded side by side in alternating rounds:
/// (bare, hotswap).
fn protocol_run(
    runtime: &tokio::runtime::Runtime,
    name: &str,
    proto: &proto::Proto,
    tls: Option<&hotswap_server::TlsConfig>,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<(Tally, Tally)> {
    let store = tempfile::tempdir().context("cannot make a temporary store")?;
    let (bare, hot, stop) = runtime.block_on(async {
        let bare = proto::bare_server(tls.map(|t| t.load()).transpose()?).await?;
        let server = Server::bind(
            ServerConfig {
                listen: "127.0.0.1:0".parse()?,
                admin: "127.0.0.1:0".parse()?,
                data_dir: store.path().to_path_buf(),
                tls: tls.cloned(),
                ..ServerConfig::default()
            },
            Some(hotswap_server::FirstStart::new(
                hotswap_examples::GREET_SLOT,
                hotswap_examples::GREET_V1,
            )),
        )
        .await?;
        let hot = server.data_addr();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        anyhow::Ok((bare, hot, tx))
    })?;
    // The load runs on a runtime of its own, apart from the servers'.
    let clients_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the client runtime")?;
    let warm = Duration::from_millis(300);
    proto::load(&clients_rt, bare, proto, clients, warm);
    proto::load(&clients_rt, hot, proto, clients, warm);
    let rounds = 3;
    let round = Duration::from_secs(seconds).div_f64(rounds as f64);
    let (mut base, mut hotswap) = (Tally::default(), Tally::default());
    for r in 0..rounds {
        eprint!(
            "\r{name} round {}/{rounds}: bare server, then hotswap serve   ",
            r + 1
        );
        base.add(proto::load(&clients_rt, bare, proto, clients, round));
        hotswap.add(proto::load(&clients_rt, hot, proto, clients, round));
    }
    let _ = stop.send(());
    Ok((base, hotswap))
}
