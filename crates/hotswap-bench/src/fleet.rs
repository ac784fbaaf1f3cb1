//! `hotswap bench fleet`: members of a fleet (real `hotswap serve`
//! processes, a real etcd, a real OCI registry) under load; times each
//! rollout from its desired-state write until every member serves it, and a
//! fleet-wide rollback from the breach until every member is back, counting
//! every failed request.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use hotswap_core::{Digest, ErrorBudget};
use hotswap_fleet::ops::{self, RolloutOptions};
use hotswap_fleet::{parse_waves, Fleet, Phase};
use hotswap_oci::{PluginRef, Registry, RegistryOptions};
use hotswap_server::signing;
use hotswap_testkit::{Etcd, OciRegistry};
use serde::Serialize;

use crate::serve_child::{client, start, stop_server, Tally};

#[derive(clap::Args)]
pub struct Args {
    /// Members in the fleet.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..=32))]
    members: u32,
    /// Rollouts to time (alternating between two plugins).
    #[arg(long, default_value_t = 20)]
    rollouts: u32,
    /// Client threads per member, calling all the while.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Each client's calls per second (0: as fast as it can, which leaves
    /// this 2-core machine no time for anything else).
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// The results; the field names are the stable JSON keys.
#[derive(Serialize)]
struct Report {
    members: u32,
    /// Calls per second per member client (0: unpaced).
    rate: u32,
    rollouts: u32,
    /// Desired-state write → every member reports the new revision active.
    converge_p50_ms: f64,
    converge_max_ms: f64,
    /// The breach → every member reports the previous revision back.
    rollback_ms: f64,
    requests: u64,
    failed: u64,
}

/// How long one rollout may take before the bench gives up.
const WITHIN: Duration = Duration::from_secs(60);

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    let (Some(etcd), Some(registry)) = (Etcd::start(), OciRegistry::start()) else {
        bail!("bench fleet needs etcd and docker-registry (scripts/setup installs them)");
    };
    let dir = tempfile::tempdir().context("cannot make a temporary directory")?;
    let trusted = signing::generate()?;
    let other = signing::generate()?;
    let endpoint = format!("etcd://{}", etcd.endpoint());
    // Every member trusts both keys but the last, which trusts only the
    // first: a plugin signed with the second is the breach to roll back.
    let mut servers = Vec::new();
    for i in 1..=args.members {
        let keys = if i == args.members {
            format!("{:?}", signing::public_hex(&trusted))
        } else {
            format!(
                "{:?}, {:?}",
                signing::public_hex(&trusted),
                signing::public_hex(&other)
            )
        };
        let home = dir.path().join(format!("m{i}"));
        std::fs::create_dir_all(&home)?;
        let config = home.join("hotswap.toml");
        std::fs::write(
            &config,
            format!("trusted_keys = [{keys}]\nrequire_signature = true\n"),
        )?;
        let name = format!("m{i}");
        let args = [
            "--config",
            config.to_str().unwrap_or_default(),
            "--fleet",
            &endpoint,
            "--member",
            &name,
        ];
        let pid_file = home.join("pid");
        servers.push((start(&home, &pid_file, &args)?, pid_file));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let right = |b: &str| b == "hello, bench!" || b == "HELLO, BENCH!! (v2)";
    let pace = (args.rate > 0).then(|| Duration::from_secs(1) / args.rate);
    let clients: Vec<_> = servers
        .iter()
        .flat_map(|(s, _)| (0..args.clients).map(move |i| (format!("http://{}/greet", s.data), i)))
        .map(|(url, i)| {
            let stop = stop.clone();
            std::thread::spawn(move || client(&url, i.is_multiple_of(2), &stop, right, pace))
        })
        .collect();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(measure(&args, &endpoint, &registry, &trusted, &other));
    stop.store(true, Ordering::Release);
    let mut tally = Tally::default();
    for c in clients {
        tally.add(c.join().expect("a client thread does not panic"));
    }
    for (_, pid_file) in &servers {
        stop_server(pid_file);
    }
    let (converge, rollback_ms) = outcome?;
    let ms = |h: &hdrhistogram::Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1e6;
    let report = Report {
        members: args.members,
        rate: args.rate,
        rollouts: args.rollouts,
        converge_p50_ms: ms(&converge, 0.5),
        converge_max_ms: converge.max() as f64 / 1e6,
        rollback_ms,
        requests: tally.ok + tally.failed + tally.refused,
        failed: tally.failed + tally.refused,
    };
    super::report(args.json, &report, "hotswap bench fleet", |r| {
        let ms = |what, value: f64, target| (what, format!("{value:.1} ms"), target);
        vec![
            ("members", r.members.to_string(), ""),
            ("rollouts", r.rollouts.to_string(), ""),
            ("calls/s per member client", r.rate.to_string(), ""),
            ms(
                "write → every member active, p50",
                r.converge_p50_ms,
                "≤ 100 ms",
            ),
            ms("write → every member active, max", r.converge_max_ms, ""),
            ms("breach → every member back", r.rollback_ms, "≤ 250 ms"),
            ("requests under load", r.requests.to_string(), ""),
            ("failed requests", r.failed.to_string(), "0"),
        ]
    })?;
    if report.failed > 0 {
        eprintln!("first failures: {:?}", tally.errors);
    }
    Ok(ExitCode::SUCCESS)
}

/// The rollouts, then the breach; the convergence times and the rollback's.
async fn measure(
    args: &Args,
    endpoint: &str,
    server: &OciRegistry,
    trusted: &ed25519_dalek::SigningKey,
    other: &ed25519_dalek::SigningKey,
) -> anyhow::Result<(hdrhistogram::Histogram<u64>, f64)> {
    let fleet = Fleet::connect(endpoint).await?;
    let registry = Registry::new(RegistryOptions::default());
    let repo = format!("oci://{}/bench/greet", server.host());
    let tag = |t: &str| -> anyhow::Result<PluginRef> { Ok(format!("{repo}:{t}").parse()?) };
    let plugins = [hotswap_examples::GREET_V2, hotswap_examples::GREET_V1];
    for (i, module) in plugins.iter().enumerate() {
        registry
            .push(
                module,
                &tag(&format!("p{i}"))?,
                Some(&signing::sign(trusted, module)),
            )
            .await?;
    }
    // Every member up and reporting before the clock starts.
    let (_, up) = ops::until(&fleet, WITHIN, |s| s.members.len() == args.members as usize).await?;
    if !up {
        bail!("not every member joined the fleet within {WITHIN:?}");
    }
    let options = |waves: &str| RolloutOptions {
        waves: parse_waves(waves).expect("valid waves"),
        canary_weight: 100,
        soak: Duration::ZERO,
        budget: ErrorBudget {
            max_failed_ppm: 10_000,
            window_secs: 1,
            min_calls: 1_000_000,
        },
        ..RolloutOptions::default()
    };
    let bar = super::progress(u64::from(args.rollouts));
    bar.set_message("rolling out under load");
    let mut converge = super::hist();
    for n in 0..args.rollouts {
        let module = plugins[n as usize % 2];
        let digest = Digest::of(module);
        let rollout = ops::start(
            &fleet,
            &registry,
            "greet",
            &tag(&format!("p{}", n % 2))?,
            options("100%"),
        )
        .await?;
        let (_, all) = ops::until(&fleet, WITHIN, |s| {
            s.members.keys().all(|m| {
                s.reports
                    .get("greet")
                    .and_then(|r| r.get(m))
                    .is_some_and(|r| r.active == Some(digest) && r.canary.is_none())
            })
        })
        .await?;
        let took_ms = ops::now_ms().saturating_sub(rollout.created_ms);
        if !all {
            bail!(
                "rollout {} did not reach every member within {WITHIN:?}",
                rollout.id
            );
        }
        converge.saturating_record(took_ms * 1_000_000);
        let done = ops::follow(&fleet, "greet", &rollout.id, |_| {}).await?;
        if done.phase != Phase::Succeeded {
            bail!(
                "rollout {} ended {}: {:?}",
                done.id,
                done.phase,
                done.reason
            );
        }
        bar.inc(1);
    }
    bar.finish_and_clear();

    // The breach: a plugin the last member does not trust.
    let module = plugins[args.rollouts as usize % 2];
    let bad = tag("breach")?;
    registry
        .push(module, &bad, Some(&signing::sign(other, module)))
        .await?;
    let rollout = ops::start(&fleet, &registry, "greet", &bad, options("100%")).await?;
    let ended = ops::follow(&fleet, "greet", &rollout.id, |_| {}).await?;
    if ended.phase != Phase::RolledBack {
        bail!("the breach was not rolled back: {}", ended.phase);
    }
    let behind = ops::settle(&fleet, &ended, WITHIN).await?;
    let back = ops::now_ms();
    if !behind.is_empty() {
        bail!("not back within {WITHIN:?}: {}", behind.join(", "));
    }
    let breach = ended.log.last().map_or(back, |s| s.at_ms);
    Ok((converge, back.saturating_sub(breach) as f64))
}
