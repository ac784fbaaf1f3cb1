//! `hotswap serve`: an HTTP gateway whose handlers are plugins, and the admin
//! API that deploys, lists and rolls them back while they serve.
//!
//! Two listeners: the **data plane** (`POST /{slot}`, or configured routes)
//! calls plugins; the **admin API** (`/v1/...`, docs/admin-api.md) changes
//! them. Both run over one [`Gateway`]: the slots, a WASM tier, and the
//! persistent store, kept in step so that a restart, or a crash, comes back
//! serving what was deployed.
//!
//! The process itself can be replaced while it serves: an upgrade
//! ([`Controller::upgrade`], `POST /v1/upgrade`, SIGUSR2 in `hotswap serve`)
//! starts the binary again with the same listening sockets, drains this
//! process, and hands the store and the counters over (see
//! `hotswap-upgrade`). A reload ([`Controller::reload`]) applies a changed
//! config in place.
//!
//! ```no_run
//! # async fn f() -> Result<(), hotswap_server::ServerError> {
//! use hotswap_server::{Server, ServerConfig};
//!
//! let server = Server::bind(ServerConfig::default(), None).await?;
//! println!("plugins on {}, admin on {}", server.data_addr(), server.admin_addr());
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(())
//! # }
//! ```

mod config;
mod control;
mod domain;
mod http;
mod metrics;
mod plan;
mod process;

/// ed25519 keys and signature files (shared with the CLI).
pub use domain::signing;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hotswap_store::Store;
use hotswap_upgrade::{UpgradeError, Upgrader};
use tokio::net::TcpListener;

pub use config::{
    CanaryConfig, ComponentSection, ConfigError, EbpfConfig, Limits, NativeConfig, Route,
    ServerConfig, UpgradeConfig,
};
pub use control::{ControlError, Controller, ProcessInfo, ReloadReport, UpgradeReport};
pub use domain::ebpf::{Expect, PlacedView, ProgramError, ProgramView, Programs};
pub use domain::gateway::{CallFailure, Gateway, GatewayError, GatewayOptions, SlotView};
pub use domain::tiers::{AnyCode, NativeDisabled, Tiers};
pub use http::tls::{crypto_provider, TlsConfig, TlsError};
pub use http::{connection_builder, PROCESS_HEADER};
pub use metrics::{Exposition, Metrics, Restored};
pub use plan::{plan, PlanError, ReloadPlan, Setting};

/// What a first start (an empty store) deploys, so that a new server has
/// something to answer. The library embeds no plugin: `hotswap serve`
/// passes its example, and `deploy_example = false` in the config turns
/// it off.
#[derive(Debug, Clone)]
pub struct FirstStart {
    /// The slot to deploy to.
    pub slot: String,
    /// The plugin.
    pub artifact: Vec<u8>,
}

impl FirstStart {
    /// `artifact` to `slot`.
    pub fn new(slot: &str, artifact: &[u8]) -> FirstStart {
        FirstStart {
            slot: slot.to_string(),
            artifact: artifact.to_vec(),
        }
    }
}

/// Reads the config again, for a reload (the file, with the flags that
/// override it applied on top).
pub type ConfigSource = Box<dyn Fn() -> Result<ServerConfig, ConfigError> + Send + Sync>;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store or the tier could not be opened.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] hotswap_store::StoreError),
    /// A listener could not be bound or inherited, or the hand-over from
    /// the previous process failed.
    #[error(transparent)]
    Upgrade(#[from] UpgradeError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// How a server's run ended.
#[derive(Debug)]
pub enum Exit {
    /// Told to stop: it drained and flushed.
    Stopped,
    /// A new process took over; this one drained.
    Upgraded(UpgradeReport),
}

/// A server with its listeners bound and its slots restored, ready to run.
pub struct Server {
    config: ServerConfig,
    source: Option<ConfigSource>,
    upgrader: Arc<Upgrader>,
    gateway: Arc<Gateway>,
    programs: Arc<Programs>,
    metrics: Arc<Metrics>,
    data: TcpListener,
    admin: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    controller: Controller,
    commands: tokio::sync::mpsc::Receiver<control::Command>,
}

impl Server {
    /// [`Server::start`] with an upgrader of its own (no upgrades expected:
    /// tests, embedding).
    pub async fn bind(
        config: ServerConfig,
        first_start: Option<FirstStart>,
    ) -> Result<Server, ServerError> {
        let upgrader = Upgrader::new(hotswap_upgrade::Options::default())?;
        Server::start(config, Arc::new(upgrader), first_start).await
    }

    /// Checks the config, takes the listeners (inherited from the previous
    /// process of an upgrade, or bound), waits for the previous process to
    /// let go, opens the store, restores every slot (deploying the example
    /// plugin on a first start) and carries over the previous process's
    /// counters; then tells the previous process it may exit, and writes the
    /// pid file. Call [`Server::run`] right after: connections wait in the
    /// backlog until it accepts. Port 0 picks a free port
    /// ([`Server::data_addr`] tells which).
    pub async fn start(
        config: ServerConfig,
        upgrader: Arc<Upgrader>,
        first_start: Option<FirstStart>,
    ) -> Result<Server, ServerError> {
        config.check()?;
        // Before anything binds: a missing or bad certificate is an error
        // at start, not at the first handshake.
        let tls = config
            .tls
            .as_ref()
            .map(TlsConfig::load)
            .transpose()
            .map_err(ConfigError::from)?;
        upgrader.configure(|o| process::apply_upgrade_options(o, &config));
        let listen = |name: &'static str, addr: SocketAddr| {
            process::to_tokio(upgrader.listen(name, addr)?)
                .map_err(|source| ServerError::Bind { addr, source })
        };
        let data = listen("data", config.listen)?;
        let admin = listen("admin", config.admin)?;

        let (store_dir, kv_sync, wasm, native, options) = (
            config.data_dir.clone(),
            config.kv_sync,
            config.wasm(),
            config.native.enabled,
            config.gateway_options(),
        );
        let example = first_start.filter(|_| config.deploy_example);
        let outgoing = config.component.outgoing()?;
        let up = upgrader.clone();
        // Waiting for the parent, and opening the store (which may compile),
        // block.
        let (gateway, state) = tokio::task::spawn_blocking(move || -> Result<_, ServerError> {
            let state = match up.ready() {
                Ok(state) => state,
                Err(UpgradeError::ParentGone) => {
                    tracing::warn!("the previous process went away before handing over; starting without its counters");
                    Vec::new()
                }
                Err(e) => return Err(e.into()),
            };
            let gateway = Gateway::open(Store::open(&store_dir)?.with_kv_sync(kv_sync), wasm, native, options)?;
            gateway.set_all_outgoing(outgoing);
            if let Some(first) = example.filter(|_| gateway.is_empty()) {
                let info = gateway.deploy(&first.slot, first.artifact, None)?;
                tracing::info!(slot = %first.slot, version = %info.version, "deployed the first-start plugin");
            }
            Ok((gateway, state))
        })
        .await
        .expect("the start-up task does not panic")?;
        let gateway = Arc::new(gateway);
        // The eBPF programs kept running while no server was up (their
        // pins hold them); this picks up their records and maps.
        let programs = Arc::new(Programs::open(&config.ebpf, gateway.clone()));
        let mut metrics = Metrics::new();
        metrics.register_collector(Box::new(domain::ebpf::MapCollector(programs.clone())));
        let metrics = Arc::new(metrics);
        // From the previous process of an upgrade, or else from the last
        // clean stop; either is taken once.
        let kept = gateway.take_counters().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not read the counters the last stop kept");
            None
        });
        let carried = match state.is_empty() {
            false => Some((state, "the previous process")),
            true => kept.map(|text| (text.into_bytes(), "the last clean stop")),
        };
        if let Some((counters, from)) = carried {
            let restored = metrics.restore(&counters);
            tracing::info!(
                counters = restored.counters,
                skipped = restored.skipped,
                from,
                "carried over the counters"
            );
        }
        // The store is ours and the slots are up: the previous process may
        // go, and the pid file names us. Connections that arrive before
        // `run` accepts them wait in the listeners' backlogs.
        if let Err(e) = upgrader.serving() {
            tracing::warn!(error = %e, "could not tell the previous process that we serve");
        }
        let (tx, commands) = tokio::sync::mpsc::channel(8);
        let controller = Controller {
            commands: tx,
            upgrader: upgrader.clone(),
            upgrading: Arc::default(),
        };
        Ok(Server {
            data,
            admin,
            gateway,
            programs,
            metrics,
            source: None,
            upgrader,
            controller,
            commands,
            config,
            tls,
        })
    }

    /// Where reloads (SIGHUP, `POST /v1/reload`) read the config from.
    /// Without it, a reload is refused.
    pub fn reload_from(mut self, source: ConfigSource) -> Server {
        self.source = Some(source);
        self
    }

    /// Where the data plane listens.
    pub fn data_addr(&self) -> SocketAddr {
        self.data
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Where the admin API listens.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The slots it serves.
    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// Its eBPF programs.
    pub fn programs(&self) -> &Arc<Programs> {
        &self.programs
    }

    /// Its metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Asks it to upgrade or reload while it runs.
    pub fn controller(&self) -> Controller {
        self.controller.clone()
    }

    /// Serves until `shutdown` completes (then stops accepting, lets
    /// requests in flight finish, and makes every key-value write durable)
    /// or until an upgrade hands over to a new process.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Exit, ServerError> {
        process::Running {
            source: self.source,
            upgrader: self.upgrader,
            gateway: self.gateway,
            programs: self.programs,
            metrics: self.metrics,
            commands: self.commands,
            controller: self.controller,
        }
        .run(self.config, self.tls, self.data, self.admin, shutdown)
        .await
    }
}
