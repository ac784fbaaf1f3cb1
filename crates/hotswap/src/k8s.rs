//! `hotswap k8s`: the Kubernetes face of fleets (docs/kubernetes.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use hotswap_k8s::leader::LeaseOptions;
use hotswap_k8s::operator::{self, OperatorOptions};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Print the HotswapPlugin CustomResourceDefinition as YAML (for
    /// `kubectl apply -f -`; deploy/crd.yaml is the same).
    Crd,
    /// Run the operator: each HotswapPlugin becomes a fleet rollout, and
    /// its status follows the rollout. Replicas elect one leader through a
    /// Lease. The kubeconfig is found as kubectl finds it (KUBECONFIG,
    /// ~/.kube/config) or is the pod's service account.
    Operator(OperatorArgs),
}

#[derive(clap::Args)]
pub struct OperatorArgs {
    /// The fleet's etcd.
    #[arg(
        long,
        env = "HOTSWAP_ETCD",
        default_value = "etcd://127.0.0.1:2379",
        value_name = "etcd://HOST:PORT"
    )]
    etcd: String,
    /// Watch HotswapPlugins in this namespace only (default: all).
    #[arg(long)]
    namespace: Option<String>,
    /// This replica's name in the leader election (default: the pod's name,
    /// else the host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// The namespace of the leader Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// The leader Lease's name.
    #[arg(long, default_value = "hotswap-operator")]
    lease_name: String,
    /// How long a leader that stopped renewing keeps the Lease.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    lease_ttl: Duration,
    /// Where plugins pulled to resolve and check them are cached by digest
    /// (default: not cached).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

pub fn main(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Crd => print!("{}", hotswap_k8s::crd_yaml()),
        Command::Operator(args) => operate(args)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn operate(args: OperatorArgs) -> anyhow::Result<()> {
    hotswap_fleet::parse_endpoints(&args.etcd)?;
    let identity = match args.identity {
        Some(name) => name,
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .context("no --identity, no POD_NAME, and no host name to use instead")?,
    };
    eprintln!(
        "hotswap k8s operator `{identity}`: fleet at {}, leader lease {}/{}",
        args.etcd, args.lease_namespace, args.lease_name
    );
    let options = OperatorOptions {
        etcd: args.etcd,
        namespace: args.namespace,
        lease: LeaseOptions {
            namespace: args.lease_namespace,
            name: args.lease_name,
            identity,
            ttl: args.lease_ttl,
        },
        cache_dir: args.cache_dir,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(operator::run(options, async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }))?;
    Ok(())
}
