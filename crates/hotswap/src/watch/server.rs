//! The server a watch starts for itself when it is given none: a whole
//! `hotswap serve` on a thread of this process, with a store that lasts as
//! long as the watch, stopped (drained) when the watch stops.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use anyhow::{anyhow, Context};
use hotswap_server::{EbpfConfig, Server, ServerConfig};
use hotswap_upgrade::{Options, Upgrader};
use tokio::signal::unix::{signal, SignalKind};

use super::Wake;

/// Where the watch's own server pins eBPF programs: apart from `hotswap
/// serve`'s root, and the same for every watch, so that a watch killed
/// before it could unload its programs leaves them to the next one, which
/// replaces them with their maps kept.
pub const PIN_ROOT: &str = "/sys/fs/bpf/hotswap-watch";

pub struct OwnServer {
    /// Where it serves plugins.
    pub data: SocketAddr,
    /// Its admin API (on a free port of the loopback).
    pub admin: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    _store: tempfile::TempDir,
}

impl OwnServer {
    /// Starts it with its data plane on `listen`. Ctrl-C or SIGTERM send
    /// [`Wake::Stop`] to `wake`, so the watch stops in order (unloads its
    /// programs, then drains the server) instead of dying; a second one
    /// exits at once. [`Wake::ServerEnded`] says the server stopped by
    /// itself.
    pub fn start(listen: SocketAddr, wake: mpsc::Sender<Wake>) -> anyhow::Result<OwnServer> {
        let store = tempfile::Builder::new()
            .prefix("hotswap-watch-store-")
            .tempdir()
            .context("cannot make a directory for the server's store")?;
        let config = ServerConfig {
            listen,
            admin: ([127, 0, 0, 1], 0).into(),
            data_dir: store.path().join("store"),
            deploy_example: false,
            ebpf: EbpfConfig {
                enabled: true,
                pin_root: PathBuf::from(PIN_ROOT),
            },
            ..ServerConfig::default()
        };
        let upgrader = Arc::new(Upgrader::new(Options::default())?);
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread =
            std::thread::Builder::new()
                .name("watch-server".into())
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                    {
                        Ok(r) => r,
                        Err(e) => {
                            let _ =
                                ready_tx.send(Err(anyhow!("cannot start the async runtime: {e}")));
                            return;
                        }
                    };
                    runtime.block_on(async move {
                        // Before the server starts, so that no signal finds the
                        // default action (death) once there is something to stop.
                        match (
                            signal(SignalKind::interrupt()),
                            signal(SignalKind::terminate()),
                        ) {
                            (Ok(int), Ok(term)) => {
                                tokio::spawn(signals(int, term, wake.clone()));
                            }
                            _ => tracing::warn!(
                                "cannot listen for signals: Ctrl-C will not unload eBPF programs"
                            ),
                        }
                        let server =
                            match Server::start(config, upgrader, Some(crate::serve::example()))
                                .await
                            {
                                Ok(s) => s,
                                Err(e) => {
                                    let _ = ready_tx.send(Err(anyhow!(e)));
                                    return;
                                }
                            };
                        let _ = ready_tx.send(Ok((server.data_addr(), server.admin_addr())));
                        if let Err(e) = server
                            .run(async move {
                                let _ = stopped.await;
                            })
                            .await
                        {
                            eprintln!("hotswap watch: the server stopped with an error: {e}");
                        }
                        let _ = wake.send(Wake::ServerEnded);
                    });
                })
                .context("cannot start the server's thread")?;
        let (data, admin) = ready
            .recv()
            .map_err(|_| anyhow!("the server's thread ended before it served"))?
            .with_context(|| {
                format!("cannot start a server on {listen} (is one running there? deploy to it with --server ADMIN-ADDR, or pick another --listen)")
            })?;
        Ok(OwnServer {
            data,
            admin,
            stop: Some(stop),
            thread: Some(thread),
            _store: store,
        })
    }
}

/// The first Ctrl-C (or SIGTERM) asks the watch to stop in order; a
/// second one, while that takes its time, exits at once.
async fn signals(
    mut int: tokio::signal::unix::Signal,
    mut term: tokio::signal::unix::Signal,
    wake: mpsc::Sender<Wake>,
) {
    let mut asked = false;
    loop {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        if asked {
            eprintln!("hotswap watch: stopped at once (eBPF programs may stay loaded)");
            std::process::exit(130);
        }
        asked = true;
        let _ = wake.send(Wake::Stop);
    }
}

impl Drop for OwnServer {
    /// Stops accepting, lets calls in flight finish, and waits for that.
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
