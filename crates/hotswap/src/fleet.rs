//! `hotswap fleet`: staged rollouts across every server of a fleet, through
//! its etcd (docs/fleet.md).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use hotswap_fleet::ops::{self, FleetStatus, RolloutOptions};
use hotswap_fleet::{Fleet, Phase, Rollout, Wave};
use hotswap_oci::{PluginRef, Registry, RegistryOptions};

/// Where the fleet's etcd is, and how to answer.
#[derive(clap::Args)]
pub struct Conn {
    /// The fleet's etcd.
    #[arg(
        long,
        env = "HOTSWAP_ETCD",
        default_value = "etcd://127.0.0.1:2379",
        value_name = "URL",
        global = true
    )]
    etcd: String,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Roll a plugin out to every member, wave by wave, and follow it.
    Rollout(RolloutArgs),
    /// Show the members, each slot's rollout and what each member serves.
    Status(StatusArgs),
    /// Stop a slot's rollout where it is (members keep what they have).
    Pause(SlotArgs),
    /// Let a paused rollout move again.
    Resume(SlotArgs),
    /// Halt a slot's rollout and roll every member back.
    Abort(AbortArgs),
    /// Show a slot's rollouts, oldest first, with their logs.
    History(SlotArgs),
    /// Run a controller alone (members run one each already; one leads).
    Controller(ControllerArgs),
}

#[derive(clap::Args)]
pub struct RolloutArgs {
    /// The slot to roll out to.
    slot: String,
    /// The plugin: oci://HOST/REPO:TAG (resolved to its digest now, once)
    /// or oci://HOST/REPO@sha256:DIGEST.
    reference: PluginRef,
    /// The waves: member counts or shares of the fleet, the last 100%.
    #[arg(long, default_value = hotswap_fleet::defaults::WAVES, value_parser = hotswap_fleet::parse_waves)]
    waves: Waves,
    /// How long each wave must hold, every member healthy and the budget kept.
    #[arg(long, default_value = hotswap_fleet::defaults::SOAK, value_parser = hotswap_fleet::spec::parse_soak)]
    soak: Duration,
    /// The share of calls that may fail on the members that took it, fleet-wide.
    #[arg(long, default_value = hotswap_fleet::defaults::BUDGET, value_parser = hotswap_fleet::spec::parse_budget)]
    budget: u32,
    /// Calls a wave must serve before the budget judges it.
    #[arg(long, default_value_t = hotswap_fleet::defaults::MIN_CALLS)]
    min_calls: u64,
    /// The first wave's in-slot canary weight, percent of its calls.
    #[arg(long, default_value_t = hotswap_fleet::defaults::CANARY_WEIGHT, value_parser = clap::value_parser!(u8).range(1..=100))]
    canary_weight: u8,
    /// Require the module to be signed by this ed25519 public key (hex;
    /// repeat for several): checked now, and by every member before it
    /// deploys, on top of each server's own policy.
    #[arg(long, value_name = "PUBLIC_KEY")]
    signer: Vec<String>,
    /// Return once the rollout is written, without following it.
    #[arg(long)]
    detach: bool,
    #[command(flatten)]
    conn: Conn,
}

type Waves = Vec<Wave>;

/// How long `rollout` waits, once the rollout ended, for every member to
/// serve its outcome.
const SETTLE_WITHIN: Duration = Duration::from_secs(60);

#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args)]
pub struct SlotArgs {
    /// The slot.
    slot: String,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args)]
pub struct AbortArgs {
    /// The slot.
    slot: String,
    /// Why, for the rollout's log.
    #[arg(long, default_value = "no reason given")]
    reason: String,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args)]
pub struct ControllerArgs {
    /// Its name in the election.
    #[arg(long, default_value = "controller")]
    name: String,
    #[command(flatten)]
    conn: Conn,
}

/// `1%`, `0.5%` or `2`: a share in parts per million.
pub fn main(command: Command) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(command))
}

async fn connect(conn: &Conn) -> anyhow::Result<Fleet> {
    Ok(Fleet::connect(&conn.etcd).await?)
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Rollout(args) => rollout(args).await,
        Command::Status(args) => {
            let fleet = connect(&args.conn).await?;
            let status = ops::status(&fleet).await?;
            print(&args.conn, &status, status_text);
            Ok(ExitCode::SUCCESS)
        }
        Command::Pause(args) => {
            let r = ops::pause(&connect(&args.conn).await?, &args.slot).await?;
            print(&args.conn, &r, |r| {
                format!("paused {} at wave {}", r.id, r.wave + 1)
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Resume(args) => {
            let r = ops::resume(&connect(&args.conn).await?, &args.slot).await?;
            print(&args.conn, &r, |r| {
                format!("resumed {} at wave {}", r.id, r.wave + 1)
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Abort(args) => {
            let fleet = connect(&args.conn).await?;
            let r = ops::abort(&fleet, &args.slot, &args.reason).await?;
            print(&args.conn, &r, |r| {
                format!("aborted {}: every member rolls back", r.id)
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::History(args) => {
            let past = ops::history(&connect(&args.conn).await?, &args.slot).await?;
            print(&args.conn, &past, |past| {
                past.iter().map(rollout_text).collect::<Vec<_>>().join("\n")
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Controller(args) => {
            hotswap_fleet::parse_endpoints(&args.conn.etcd)?;
            eprintln!(
                "hotswap fleet controller: `{}` campaigns in the fleet at {}",
                args.name, args.conn.etcd
            );
            let options =
                hotswap_fleet::controller::ControllerOptions::new(&args.name, &args.conn.etcd);
            hotswap_fleet::controller::run(options, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn rollout(args: RolloutArgs) -> anyhow::Result<ExitCode> {
    let fleet = connect(&args.conn).await?;
    let registry = Registry::new(RegistryOptions::default());
    let options = RolloutOptions {
        waves: args.waves,
        canary_weight: args.canary_weight,
        soak: args.soak,
        budget: hotswap_fleet::spec::budget(args.budget, args.soak, args.min_calls),
        signers: args.signer,
        ..RolloutOptions::default()
    };
    let rollout = ops::start(&fleet, &registry, &args.slot, &args.reference, options).await?;
    if args.detach {
        print(&args.conn, &rollout, |r| {
            format!(
                "rollout {} of {} started (module sha256:{})",
                r.id, r.to.reference, r.to.module
            )
        });
        return Ok(ExitCode::SUCCESS);
    }
    if !args.conn.json {
        eprintln!(
            "rollout {} of {} (module sha256:{})",
            rollout.id, rollout.to.reference, rollout.to.module
        );
    }
    let mut shown = 0;
    let json = args.conn.json;
    let last = ops::follow(&fleet, &args.slot, &rollout.id, |r| {
        if !json {
            for step in &r.log[shown.min(r.log.len())..] {
                eprintln!("  {}", step.what);
            }
        }
        shown = r.log.len();
    })
    .await?;
    // The outcome is written; the members now take it.
    let behind = ops::settle(&fleet, &last, SETTLE_WITHIN).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&last)?);
    } else if behind.is_empty() {
        eprintln!(
            "every member serves {}",
            match last.phase {
                Phase::Succeeded => &last.to.reference,
                Phase::Stopped => "what it served when the rollout stopped",
                _ => last
                    .from
                    .as_ref()
                    .map_or("what it served before", |f| f.reference.as_str()),
            }
        );
    }
    if !behind.is_empty() {
        eprintln!(
            "not yet settled after {SETTLE_WITHIN:?}: {} (see `hotswap fleet status`)",
            behind.join(", ")
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(match last.phase {
        Phase::Succeeded => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

fn print<T: serde::Serialize>(conn: &Conn, value: &T, text: impl FnOnce(&T) -> String) {
    if conn.json {
        println!("{}", serde_json::to_string_pretty(value).expect("JSON"));
    } else {
        println!("{}", text(value));
    }
}

fn rollout_text(r: &Rollout) -> String {
    let mut out = format!(
        "{} {}: {} -> {} (module sha256:{})",
        r.id,
        r.phase,
        r.from.as_ref().map_or("-", |f| f.reference.as_str()),
        r.to.reference,
        r.to.module
    );
    for step in &r.log {
        out.push_str(&format!("\n    {}", step.what));
    }
    out
}

fn status_text(s: &FleetStatus) -> String {
    let mut out = format!(
        "controller: {}\n{} member(s):",
        s.controller.as_deref().unwrap_or("none leads"),
        s.members.len()
    );
    for m in s.members.values() {
        out.push_str(&format!(
            "\n  {}  admin {}  data {}  v{}",
            m.name, m.admin, m.data, m.version
        ));
    }
    for (slot, rollout) in &s.rollouts {
        match rollout {
            Ok(r) => out.push_str(&format!(
                "\nslot {slot}: rollout {} {} (wave {}/{}){}",
                r.id,
                r.phase,
                (r.wave + 1).min(r.waves.len()),
                r.waves.len(),
                r.reason
                    .as_ref()
                    .map(|why| format!(": {why}"))
                    .unwrap_or_default()
            )),
            Err(why) => out.push_str(&format!("\nslot {slot}: {why}")),
        }
        for (member, report) in s.reports.get(slot).into_iter().flatten() {
            let serving = report.active.map_or("nothing".to_string(), |d| {
                format!("sha256:{}", short(&d.to_string()))
            });
            let canary = report
                .canary
                .map(|(d, w)| format!(", canary sha256:{} at {w}%", short(&d.to_string())))
                .unwrap_or_default();
            let why = report
                .error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            out.push_str(&format!(
                "\n  {member}: {:?} serving {serving}{canary}{why}",
                report.state
            ));
        }
    }
    out
}

fn short(hex: &str) -> &str {
    &hex[..12.min(hex.len())]
}
