//! `hotswap serve`: run the gateway and its admin API until told to stop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use hotswap_server::{Server, ServerConfig};

#[derive(clap::Args)]
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
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => ServerConfig::from_file(path)?,
        None => ServerConfig::default(),
    };
    if let Some(a) = args.listen {
        config.listen = a;
    }
    if let Some(a) = args.admin {
        config.admin = a;
    }
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Ok(token) = std::env::var("HOTSWAP_TOKEN") {
        if !token.is_empty() {
            config.admin_token = Some(token);
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let server = Server::bind(config).await?;
        // One line on stdout, for people and for scripts that started it on
        // port 0 and need to know where it went.
        println!(
            "hotswap serve: plugins on http://{}, admin API on http://{}",
            server.data_addr(),
            server.admin_addr()
        );
        server.run(stop_signal()).await?;
        eprintln!("hotswap serve: stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Ctrl-C or SIGTERM: stop accepting, finish what is in flight, flush.
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("can listen for SIGTERM");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
