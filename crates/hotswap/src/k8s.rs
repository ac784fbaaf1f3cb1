//! `hotswap k8s`: the Kubernetes face of fleets (docs/kubernetes.md).

use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Print the HotswapPlugin CustomResourceDefinition as YAML (for
    /// `kubectl apply -f -`; deploy/crd.yaml is the same).
    Crd,
}

pub fn main(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Crd => print!("{}", hotswap_k8s::crd_yaml()),
    }
    Ok(ExitCode::SUCCESS)
}
