//! A real server on loopback ports, in its own runtime thread, and a plain
//! blocking HTTP client, for the tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;

use hotswap_server::{Server, ServerConfig};

pub struct Running {
    pub data: SocketAddr,
    pub admin: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Stops the server the clean way (and waits until it has).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("server thread");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub fn config(dir: &Path) -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        ..ServerConfig::default()
    }
}

/// `config` with a strict canary error budget (5 % of at least 20 calls in
/// a minute), so a failing canary is rolled back within a few hundred calls.
pub fn strict_budget(config: ServerConfig) -> ServerConfig {
    ServerConfig {
        canary: hotswap_server::CanaryConfig {
            error_budget: 0.05,
            window_secs: 60,
            min_calls: 20,
            ..hotswap_server::CanaryConfig::default()
        },
        ..config
    }
}

/// Starts a server and returns once both listeners are bound.
pub fn start(config: ServerConfig) -> Running {
    start_with(config, None)
}

/// Like [`start`], reloading (`POST /v1/reload`) from `source`.
pub fn start_with(config: ServerConfig, source: Option<hotswap_server::ConfigSource>) -> Running {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let example = hotswap_server::FirstStart::new(
                hotswap_examples::GREET_SLOT,
                hotswap_examples::GREET_V1,
            );
            let mut server = Server::bind(config, Some(example))
                .await
                .expect("server starts");
            if let Some(source) = source {
                server = server.reload_from(source);
            }
            ready_tx
                .send((server.data_addr(), server.admin_addr()))
                .unwrap();
            server
                .run(async move {
                    let _ = stop_rx.await;
                })
                .await
                .expect("server runs");
        });
    });
    let (data, admin) = ready_rx.recv().expect("server started");
    Running {
        data,
        admin,
        stop: Some(stop_tx),
        thread: Some(thread),
    }
}

/// A client that returns every status as a response, never as an error.
pub fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub fn post(agent: &ureq::Agent, url: &str, body: &[u8]) -> Reply {
    let mut r = agent.post(url).send(body).expect("request goes through");
    Reply {
        status: r.status().as_u16(),
        body: r.body_mut().read_to_string().unwrap(),
    }
}

pub fn get(agent: &ureq::Agent, url: &str) -> Reply {
    let mut r = agent.get(url).call().expect("request goes through");
    Reply {
        status: r.status().as_u16(),
        body: r.body_mut().read_to_string().unwrap(),
    }
}
