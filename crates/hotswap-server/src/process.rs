//! The running server's life: accept, reload the config in place, upgrade
//! the binary, drain and stop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::Router;
use hotswap_upgrade::Upgrader;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{CanaryConfig, ConfigError, ServerConfig};
use crate::control::{Command, Controller, ReloadReport, UpgradeReport};
use crate::domain::ebpf::Programs;
use crate::domain::gateway::Gateway;
use crate::http::{self, Connections, DrainTiming, Surface};
use crate::http::{admin, data};
use crate::metrics::Metrics;
use crate::plan::{plan, PlanError, Setting};
use crate::{ConfigSource, Exit, ServerError};

/// One listener and the task accepting on it, if any.
struct Accepting {
    listener: Arc<TcpListener>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Accepting {
    fn start(
        listener: Arc<TcpListener>,
        surface: &Surface,
        connections: &Arc<Connections>,
    ) -> Accepting {
        let mut accepting = Accepting {
            listener,
            stop: watch::Sender::new(true),
            task: None,
        };
        accepting.resume(surface, connections);
        accepting
    }

    /// Stops accepting; returns once no accept can happen any more. The
    /// socket stays open (connections queue in its backlog).
    async fn pause(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Accepts again.
    fn resume(&mut self, surface: &Surface, connections: &Arc<Connections>) {
        let (stop, rx) = watch::channel(false);
        self.stop = stop;
        self.task = Some(tokio::spawn(http::accept(
            self.listener.clone(),
            surface.clone(),
            connections.clone(),
            rx,
        )));
    }
}

/// What a running server keeps for its whole life. The config and the
/// listeners are not here: they change with reloads, so they live in
/// [`Live`], and only the accept loops hold the listeners (so that one a
/// reload replaced really closes).
pub(crate) struct Running {
    pub source: Option<ConfigSource>,
    pub upgrader: Arc<Upgrader>,
    pub gateway: Arc<Gateway>,
    pub programs: Arc<Programs>,
    pub metrics: Arc<Metrics>,
    pub commands: mpsc::Receiver<Command>,
    pub controller: Controller,
}

/// The mutable part of the loop.
struct Live {
    /// The config in force: the one at start, then each reload's.
    config: ServerConfig,
    data: Accepting,
    admin: Accepting,
    /// What the data plane serves: the gateway, over TLS when configured.
    data_surface: Surface,
    /// What the admin listener serves (plain HTTP).
    admin_surface: Surface,
    canary: Arc<ArcSwap<CanaryConfig>>,
}

impl Running {
    pub(crate) async fn run(
        mut self,
        config: ServerConfig,
        tls: Option<Arc<rustls::ServerConfig>>,
        data: TcpListener,
        admin: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<Exit, ServerError> {
        let connections = Connections::new(self.upgrader.generation());
        let (stop_tasks, stop_rx) = watch::channel(false);
        let canary = Arc::new(ArcSwap::from_pointee(config.canary.clone()));
        tokio::spawn(crate::metrics::count_events(
            self.metrics.clone(),
            self.gateway.events().clone(),
        ));
        tokio::spawn(crate::domain::budget::watch(
            self.gateway.clone(),
            canary.clone(),
            stop_rx,
        ));
        let data_surface = Surface::new(self.data_router(&config), tls);
        let admin_surface = Surface::new(self.admin_router(&config)?, None);
        let mut live = Live {
            data: Accepting::start(Arc::new(data), &data_surface, &connections),
            admin: Accepting::start(Arc::new(admin), &admin_surface, &connections),
            config,
            data_surface,
            admin_surface,
            canary,
        };

        tokio::pin!(shutdown);
        loop {
            let command = tokio::select! {
                _ = &mut shutdown => break,
                c = self.commands.recv() => c,
            };
            match command {
                None => break,
                Some(Command::Reload { dry_run, reply }) => {
                    let result = self.reload(&mut live, &connections, dry_run).await;
                    let _ = reply.send(result.map_err(|e| e.to_string()));
                }
                Some(Command::Upgrade(reply)) => {
                    match self.upgrade(&mut live, &connections).await {
                        Ok(report) => {
                            let _ = reply.send(Ok(report.clone()));
                            // The upgrade's own request is answered; let it
                            // (and any exempt connection) finish, briefly.
                            let _ = tokio::time::timeout(
                                Duration::from_secs(5),
                                connections.wait_exempt(),
                            )
                            .await;
                            let _ = stop_tasks.send(true);
                            return Ok(Exit::Upgraded(report));
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                }
            }
        }
        // Stopping for good.
        self.upgrader.stopping();
        live.data.pause().await;
        live.admin.pause().await;
        connections.drain(DrainTiming::from(&live.config)).await;
        let _ = stop_tasks.send(true);
        // The counters carry on at the next start, as across an upgrade.
        let counters = String::from_utf8_lossy(&self.metrics.snapshot()).into_owned();
        if let Err(e) = self.gateway.save_counters(&counters) {
            tracing::warn!(error = %e, "could not keep the counters for the next start");
        }
        self.gateway.flush()?;
        Ok(Exit::Stopped)
    }

    fn data_router(&self, config: &ServerConfig) -> Router {
        data::router(
            self.gateway.clone(),
            &config.routes,
            config
                .canary
                .key_policy()
                .expect("checked when the config was read"),
            self.metrics.clone(),
        )
    }

    fn admin_router(&self, config: &ServerConfig) -> Result<Router, ConfigError> {
        Ok(admin::router(
            self.gateway.clone(),
            self.programs.clone(),
            admin::Settings {
                token: config.admin_token.clone(),
                max_module_bytes: config.max_module_bytes,
                trust: config.trust()?,
                canary_budget: config.canary.budget(),
            },
            self.metrics.clone(),
            self.controller.clone(),
        ))
    }

    /// Starts the new binary; once it is ready, stops accepting, drains,
    /// hands over the store and the counters, and waits until it serves.
    /// Any failure leaves this process serving, listeners and all.
    async fn upgrade(
        &mut self,
        live: &mut Live,
        connections: &Arc<Connections>,
    ) -> Result<UpgradeReport, String> {
        let upgrader = self.upgrader.clone();
        let pending = tokio::task::spawn_blocking(move || upgrader.upgrade())
            .await
            .map_err(|e| format!("the upgrade task failed: {e}"))?
            .map_err(|e| format!("{e}; this process serves on"))?;
        let ready_ms = ms(pending.ready_after());

        // Stop accepting: from now on connections wait in the shared
        // backlog for the new process.
        live.data.pause().await;
        live.admin.pause().await;
        let drain_started = Instant::now();
        connections.start_draining(DrainTiming::from(&live.config));
        tracing::info!(
            pid = pending.pid(),
            ready_ms,
            "the new process is ready; draining"
        );
        eprintln!(
            "hotswap serve: upgrade: new process {} is ready after {ready_ms:.1} ms; draining",
            pending.pid()
        );
        connections.drained().await;
        let drain_ms = ms(drain_started.elapsed());

        let gateway = self.gateway.clone();
        let metrics = self.metrics.clone();
        let handover = tokio::task::spawn_blocking(move || {
            gateway.release_store().map_err(|e| e.to_string())?;
            pending
                .hand_over(&metrics.snapshot())
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| format!("the hand-over task failed: {e}"))
        .and_then(|r| r);
        match handover {
            Ok(done) => Ok(UpgradeReport {
                old_pid: std::process::id(),
                new_pid: done.pid,
                generation: done.generation,
                ready_ms,
                drain_ms,
                handover_ms: ms(done.took_over_after),
            }),
            Err(why) => {
                // Serve on, exactly as before.
                let gateway = self.gateway.clone();
                let reacquired = tokio::task::spawn_blocking(move || gateway.reacquire_store())
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()));
                if let Err(e) = &reacquired {
                    tracing::error!(error = %e, "cannot take the store back; deploys and kv calls fail until a restart");
                }
                connections.resume();
                live.data.resume(&live.data_surface, connections);
                live.admin.resume(&live.admin_surface, connections);
                Err(format!("{why}; this process serves on"))
            }
        }
    }

    /// Re-reads the config and plans the reload ([`crate::plan`]); unless
    /// `dry_run`, applies the plan. Either all of it applies or nothing.
    async fn reload(
        &mut self,
        live: &mut Live,
        connections: &Arc<Connections>,
        dry_run: bool,
    ) -> Result<ReloadReport, PlanError> {
        let Some(source) = &self.source else {
            return Err(PlanError::Invalid(ConfigError::Invalid(
                "this server was started without a config file to reload".into(),
            )));
        };
        let next = source()?;
        let report = plan(&live.config, &next)?;
        if dry_run {
            return Ok(report);
        }
        let wasm = next.wasm();
        // New listeners first, so a bad address changes nothing.
        let open = |name: &str, addr| -> Result<Option<Arc<TcpListener>>, ConfigError> {
            let l = self
                .upgrader
                .open(name, addr)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
            to_tokio(l)
                .map(|l| Some(Arc::new(l)))
                .map_err(|e| ConfigError::Invalid(format!("cannot listen on {addr}: {e}")))
        };
        let new_data = if report.changes(Setting::Listen) {
            open("data", next.listen)?
        } else {
            None
        };
        let new_admin = if report.changes(Setting::Admin) {
            open("admin", next.admin)?
        } else {
            None
        };
        let admin_router = self.admin_router(&next)?;
        // Certificates are read again at every reload (rotation); a bad one
        // refuses the whole reload and the old one serves on.
        let tls = next.tls.as_ref().map(crate::TlsConfig::load);
        let tls = tls.transpose().map_err(ConfigError::from)?;
        let outgoing = next.component.outgoing()?;
        self.gateway
            .set_limits(&wasm)
            .map_err(|e| ConfigError::Invalid(format!("limits: {e}")))?;

        // Committed: nothing below can fail.
        self.gateway.tiers().set_native_enabled(next.native.enabled);
        self.gateway.set_all_outgoing(outgoing);
        live.data_surface
            .router
            .store(Arc::new(self.data_router(&next)));
        live.data_surface.tls.store(tls);
        live.admin_surface.router.store(Arc::new(admin_router));
        live.canary.store(Arc::new(next.canary.clone()));
        self.upgrader.configure(|o| apply_upgrade_options(o, &next));
        if let Some(listener) = new_data {
            self.switch(
                "data",
                &mut live.data,
                listener,
                &live.data_surface,
                connections,
            )
            .await;
        }
        if let Some(listener) = new_admin {
            self.switch(
                "admin",
                &mut live.admin,
                listener,
                &live.admin_surface,
                connections,
            )
            .await;
        }
        live.config = next;
        Ok(report)
    }
}

impl Running {
    /// Accepts on `listener` instead of the old one, which closes once its
    /// accept loop has stopped (its connections carry on until they close).
    async fn switch(
        &self,
        name: &str,
        accepting: &mut Accepting,
        listener: Arc<TcpListener>,
        surface: &Surface,
        connections: &Arc<Connections>,
    ) {
        let registered = self.upgrader.register(name, &*listener);
        if let Err(e) = registered {
            // Better no listener under this name than the old one, whose
            // socket would stay open with nobody accepting.
            self.upgrader.forget(name);
            tracing::warn!(error = %e, "the next process will not inherit the new {name} listener; the next upgrade binds it anew");
        }
        let mut old =
            std::mem::replace(accepting, Accepting::start(listener, surface, connections));
        old.pause().await;
    }
}

/// The options of `hotswap-upgrade` that a config sets.
pub(crate) fn apply_upgrade_options(o: &mut hotswap_upgrade::Options, config: &ServerConfig) {
    let u = &config.upgrade;
    o.executable = u.binary.clone();
    o.ready_timeout = Duration::from_millis(u.ready_timeout_ms);
    o.handover_timeout = Duration::from_millis(u.handover_timeout_ms);
}

/// A listener from `hotswap-upgrade` (blocking, std) for tokio.
pub(crate) fn to_tokio(listener: std::net::TcpListener) -> std::io::Result<TcpListener> {
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
