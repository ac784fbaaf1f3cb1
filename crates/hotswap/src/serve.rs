//! `hotswap serve`: run the gateway and its admin API until told to stop,
//! reloading its config on SIGHUP and upgrading its binary on SIGUSR2.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use hotswap_server::{ConfigError, Controller, Exit, Server, ServerConfig};
use hotswap_upgrade::{Options, Upgrader};
use tokio::signal::unix::{signal, SignalKind};

#[derive(clap::Args, Clone)]
#[command(
    after_help = "Signals: SIGTERM or Ctrl-C drain and stop; SIGHUP reloads the config file \
in place; SIGUSR2 upgrades to the binary on disk with no connection refused (see `hotswap upgrade`)."
)]
pub struct Args {
    /// A TOML config file (see docs/admin-api.md); flags override it.
    #[arg(long, env = "HOTSWAP_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the data plane listens [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Where the admin API listens [default: 127.0.0.1:8081].
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    /// Where the store lives [default: .hotswap].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Keep the serving process's pid in this file, across upgrades.
    #[arg(long, value_name = "PATH")]
    pid_file: Option<PathBuf>,
    /// Join the fleet whose desired state is in this etcd
    /// (etcd://HOST:PORT): serve what its rollouts want, report, and
    /// campaign to be its controller (docs/fleet.md).
    #[arg(long, env = "HOTSWAP_FLEET", value_name = "URL", requires = "member")]
    fleet: Option<String>,
    /// This server's name in the fleet (unique in it).
    #[arg(long, env = "HOTSWAP_MEMBER", value_name = "NAME")]
    member: Option<String>,
}

impl Args {
    /// The config file with the flags applied on top: at start, and again
    /// at every reload.
    fn config(&self) -> Result<ServerConfig, ConfigError> {
        let mut config = match &self.config {
            Some(path) => ServerConfig::from_file(path)?,
            None => ServerConfig::default(),
        };
        if let Some(a) = self.listen {
            config.listen = a;
        }
        if let Some(a) = self.admin {
            config.admin = a;
        }
        if let Some(d) = &self.data_dir {
            config.data_dir = d.clone();
        }
        if let Ok(token) = std::env::var("HOTSWAP_TOKEN") {
            if !token.is_empty() {
                config.admin_token = Some(token);
            }
        }
        Ok(config)
    }
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.config()?;
    let upgrader = Upgrader::new(Options {
        pid_file: args.pid_file.clone(),
        ..Options::default()
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // Before anything can take long: a SIGHUP or SIGUSR2 must never
        // meet the default action, which is to die.
        let hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
        let usr2 = signal(SignalKind::user_defined2()).context("cannot listen for SIGUSR2")?;
        let generation = upgrader.generation();
        // As started; a reload that adds or drops `[tls]` says so in its plan.
        let scheme = if config.tls.is_some() { "https" } else { "http" };
        // What a fleet member needs of the config, which the server takes.
        let (data_dir, token) = (config.data_dir.clone(), config.admin_token.clone());
        let mut server = Server::start(config, Arc::new(upgrader), Some(example())).await?;
        if args.config.is_some() {
            let args = args.clone();
            server = server.reload_from(Box::new(move || args.config()));
        }
        // One line on stdout, for people and for scripts that started it on
        // port 0 and need to know where it went.
        println!(
            "hotswap serve: plugins on {scheme}://{}, admin API on http://{} (pid {}, generation {generation})",
            server.data_addr(),
            server.admin_addr(),
            std::process::id(),
        );
        tokio::spawn(signals(server.controller(), hangup, usr2));
        let fleet = match (&args.fleet, &args.member) {
            (Some(etcd), Some(name)) => {
                hotswap_fleet::parse_endpoints(etcd)?;
                Some(join_fleet(etcd, name, &server, &data_dir, token))
            }
            _ => None,
        };
        let exit = server.run(stop_signal()).await?;
        if let Some(fleet) = fleet {
            fleet.leave().await;
        }
        match exit {
            Exit::Stopped => eprintln!("hotswap serve: stopped"),
            Exit::Upgraded(r) => eprintln!(
                "hotswap serve: upgraded: pid {} (generation {}) took over after {:.1} ms; pid {} exits",
                r.new_pid, r.generation, r.handover_ms, r.old_pid
            ),
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// A member of a fleet and its candidate controller, running beside the
/// server until it stops.
struct Membership {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Membership {
    /// Leaves the fleet: the member's record and the candidacy vanish at once.
    async fn leave(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Joins the fleet at `etcd` as `name`, caching pulled plugins under
/// `data_dir` and calling the admin API with `token`.
fn join_fleet(
    etcd: &str,
    name: &str,
    server: &Server,
    data_dir: &std::path::Path,
    token: Option<String>,
) -> Membership {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut member = hotswap_fleet::member::MemberOptions::new(
        name,
        etcd,
        &server.admin_addr().to_string(),
        &server.data_addr().to_string(),
        data_dir.join("oci"),
    );
    member.admin_token = token;
    let controller = hotswap_fleet::controller::ControllerOptions::new(name, etcd);
    eprintln!("hotswap serve: member `{name}` of the fleet at {etcd}");
    Membership {
        tasks: vec![
            tokio::spawn(hotswap_fleet::member::run(
                member,
                until_stopped(stopped.clone()),
            )),
            tokio::spawn(hotswap_fleet::controller::run(
                controller,
                until_stopped(stopped),
            )),
        ],
        stop,
    }
}

/// SIGHUP reloads, SIGUSR2 upgrades; each outcome is one line on stderr.
async fn signals(
    controller: Controller,
    mut hangup: tokio::signal::unix::Signal,
    mut usr2: tokio::signal::unix::Signal,
) {
    loop {
        tokio::select! {
            Some(()) = hangup.recv() => {
                match controller.reload().await {
                    Ok(r) => eprintln!("hotswap serve: config reloaded: {} changed", r.changed_names()),
                    Err(e) => eprintln!("hotswap serve: config reload rejected, the old config stays: {e}"),
                }
            }
            Some(()) = usr2.recv() => {
                let controller = controller.clone();
                // Waits beside further signals; a second SIGUSR2 meanwhile
                // is refused as in progress (one upgrade runs at a time).
                tokio::spawn(async move {
                    if let Err(e) = controller.upgrade().await {
                        eprintln!("hotswap serve: upgrade failed: {e}");
                    }
                });
            }
            else => return,
        }
    }
}

/// Ctrl-C or SIGTERM: stop accepting, finish what is in flight, flush.
async fn stop_signal() {
    let mut term = signal(SignalKind::terminate()).expect("can listen for SIGTERM");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// What `hotswap serve` deploys on a first start: the `greet` example
/// plugin (unless the config says `deploy_example = false`).
pub(crate) fn example() -> hotswap_server::FirstStart {
    hotswap_server::FirstStart::new(hotswap_examples::GREET_SLOT, hotswap_examples::GREET_V1)
}
