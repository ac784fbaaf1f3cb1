//! The `hotswap` command: serve plugins over HTTP and manage a running server
//! (deploy, status, rollback, canary, promote, events, upgrade, reload,
//! eBPF programs),
//! sign modules, and check, run, demonstrate and benchmark plugins.

mod check;
mod client;
mod demo;
mod ebpf;
mod fleet;
mod input;
mod k8s;
mod keys;
mod oci;
mod process;
mod run;
mod serve;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Replace running code without stopping the process and without failing a
/// single request.
///
/// hotswap loads WebAssembly plugins into named slots and swaps them while
/// they serve calls: validated before they run, published atomically, calls
/// in flight finishing on the old revision, the old revision freed after.
/// Plugins follow ABI v1 (docs/abi.md).
#[derive(Parser)]
#[command(
    name = "hotswap",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Logging: set RUST_LOG (e.g. RUST_LOG=debug). Exit codes: 0 ok, 1 the operation failed, 2 bad usage."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP gateway and its admin API.
    Serve(serve::Args),
    /// Deploy a module to a slot of a running server.
    Deploy(client::Deploy),
    /// Show a running server's slots and their revisions.
    Status(client::Status),
    /// Roll a slot back: take its canary out, or return to its previous revision.
    Rollback(client::Rollback),
    /// Change the share of calls a slot's canary takes.
    Canary(client::CanaryWeight),
    /// Make a slot's canary its active revision.
    Promote(client::Promote),
    /// Show the swap events of a running server (--follow to keep watching).
    Events(client::Events),
    /// Replace a running server's binary with the one on disk, without
    /// refusing a connection (same as sending it SIGUSR2).
    Upgrade(process::Upgrade),
    /// Make a running server re-read its config file and apply it in place
    /// (same as sending it SIGHUP).
    Reload(process::Reload),
    /// Load, replace, list and unload eBPF programs in a running server;
    /// read and write their maps; follow their events.
    #[command(subcommand)]
    Ebpf(ebpf::Command),
    /// Roll plugins out across a fleet of servers, wave by wave, through
    /// its etcd; pause, resume, abort, status, history.
    #[command(subcommand)]
    Fleet(fleet::Command),
    /// Kubernetes: the HotswapPlugin resource.
    #[command(subcommand)]
    K8s(k8s::Command),
    /// Push a plugin (and its signature) to an OCI registry, and print the digest to deploy it by.
    Push(oci::Args),
    /// Make an ed25519 key pair for signing modules.
    Keygen(keys::Keygen),
    /// Sign a module (writes FILE.sig).
    Sign(keys::Sign),
    /// Validate a plugin (WASM module or native library) against ABI v1
    /// without running it.
    Check(check::Args),
    /// Load a plugin (WASM module or native library) and call it once.
    Run(run::Args),
    /// Watch plugin and eBPF sources; on every change rebuild, validate, and
    /// swap the new code in place, into a running server or one of its own.
    Watch(watch::Args),
    /// Watch a plugin being replaced while it answers calls.
    Demo(demo::Args),
    /// Measure hotswap on this machine.
    #[command(subcommand)]
    Bench(hotswap_bench::Command),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::main(args),
        Command::Deploy(args) => client::deploy(args),
        Command::Status(args) => client::status(args),
        Command::Rollback(args) => client::rollback(args),
        Command::Canary(args) => client::canary(args),
        Command::Promote(args) => client::promote(args),
        Command::Events(args) => client::events(args),
        Command::Upgrade(args) => process::upgrade(args),
        Command::Reload(args) => process::reload(args),
        Command::Ebpf(cmd) => ebpf::main(cmd),
        Command::Fleet(cmd) => fleet::main(cmd),
        Command::K8s(cmd) => k8s::main(cmd),
        Command::Push(args) => oci::main(args),
        Command::Keygen(args) => keys::keygen(args),
        Command::Sign(args) => keys::sign(args),
        Command::Watch(args) => watch::main(args),
        Command::Check(args) => check::main(args),
        Command::Run(args) => run::main(args),
        Command::Demo(args) => demo::main(args),
        Command::Bench(cmd) => hotswap_bench::main(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
