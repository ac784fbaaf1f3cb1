//! `hotswap serve`: an HTTP gateway whose handlers are plugins, and the admin
//! API that deploys, lists and rolls them back while they serve.
//!
//! Two listeners: the **data plane** (`POST /{slot}`, or configured routes)
//! calls plugins; the **admin API** (`/v1/...`, docs/admin-api.md) changes
//! them. Both run over one [`Gateway`]: the slots, a WASM tier, and the
//! persistent store, kept in step so that a restart, or a crash, comes back
//! serving what was deployed.
//!
//! ```no_run
//! # async fn f() -> Result<(), hotswap_server::ServerError> {
//! use hotswap_server::{Server, ServerConfig};
//!
//! let server = Server::bind(ServerConfig::default()).await?;
//! println!("plugins on {}, admin on {}", server.data_addr(), server.admin_addr());
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

mod admin;
mod budget;
mod config;
mod data;
mod envelope;
mod gateway;
mod metrics;
pub mod signing;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hotswap_store::Store;
use tokio::net::TcpListener;

pub use config::{CanaryConfig, ConfigError, Limits, Route, ServerConfig};
pub use gateway::{CallFailure, Gateway, GatewayError, SlotView};
pub use metrics::Metrics;

/// The slot the example plugin is deployed to on a first start.
pub const EXAMPLE_SLOT: &str = "greet";

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
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving failed: {0}")]
    Serve(std::io::Error),
}

/// A server with its listeners bound and its slots restored, ready to run.
pub struct Server {
    config: ServerConfig,
    gateway: Arc<Gateway>,
    data: TcpListener,
    admin: TcpListener,
}

impl Server {
    /// Checks the config, opens the store, restores every slot, deploys the
    /// example plugin on a first start, and binds both listeners. Port 0
    /// picks a free port ([`Server::data_addr`] tells which).
    pub async fn bind(config: ServerConfig) -> Result<Server, ServerError> {
        config.check()?;
        let (store_dir, wasm, example) = (
            config.data_dir.clone(),
            config.wasm(),
            config.deploy_example,
        );
        // Opening restores slots, which may compile: blocking work.
        let gateway = tokio::task::spawn_blocking(move || -> Result<Gateway, ServerError> {
            let gateway = Gateway::open(Store::open(&store_dir)?, wasm)?;
            if example && gateway.is_empty() {
                let info = gateway.deploy(EXAMPLE_SLOT, hotswap_examples::GREET_V1.to_vec(), None, None)?;
                tracing::info!(slot = EXAMPLE_SLOT, version = %info.version, "deployed the example plugin");
            }
            Ok(gateway)
        })
        .await
        .expect("the start-up task does not panic")?;
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Bind { addr, source })
        };
        Ok(Server {
            data: bind(config.listen).await?,
            admin: bind(config.admin).await?,
            gateway: Arc::new(gateway),
            config,
        })
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

    /// Serves until `shutdown` completes, then stops accepting, lets
    /// requests in flight finish, and makes every key-value write durable.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let metrics = Arc::new(Metrics::new());
        tokio::spawn(metrics::count_events(
            metrics.clone(),
            self.gateway.events().clone(),
        ));
        tokio::spawn(budget::watch(
            self.gateway.clone(),
            self.config.canary.clone(),
            stop_rx.clone(),
        ));
        let data = data::router(
            self.gateway.clone(),
            &self.config.routes,
            &self.config.canary.key_header,
            metrics.clone(),
        )
        .into_make_service_with_connect_info::<SocketAddr>();
        let admin = admin::router(
            self.gateway.clone(),
            self.config.admin_token.clone(),
            self.config.max_module_bytes,
            self.config.trust()?,
            metrics,
        );
        let data = axum::serve(self.data, data).with_graceful_shutdown(stopped(stop_rx.clone()));
        let admin = axum::serve(self.admin, admin).with_graceful_shutdown(stopped(stop_rx));
        let (d, a) = tokio::join!(data, admin);
        d.and(a).map_err(ServerError::Serve)?;
        self.gateway.flush()?;
        Ok(())
    }
}
