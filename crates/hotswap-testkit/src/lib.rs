//! What hotswap's tests and benchmarks share, so that each is written once:
//! the callers-while-swapping driver that every tier's central claim is
//! tested with ([`swaps_under_load`]), what the process holds in memory
//! ([`rss_kib`], [`memory_kib`]), percentiles of kept samples
//! ([`Samples`]), the rule for a test that cannot run somewhere
//! ([`cannot_run_here`]), and real systems on loopback: an OCI registry
//! ([`OciRegistry`]), etcd ([`Etcd`]) and a Kubernetes API server
//! ([`KubeApiServer`]).
//!
//! It depends on hotswap-core alone. No library that serves traffic (core,
//! the tiers, the store, the server) depends on it, only their tests; the
//! `hotswap` binary links it through hotswap-bench.

mod ci;
mod daemon;
mod etcd;
mod kube;
mod memory;
mod registry;
mod samples;
mod swapping;

pub use ci::{cannot_run_here, under_ci};
pub use etcd::Etcd;
pub use kube::KubeApiServer;
pub use memory::{memory_kib, rss_kib};
pub use registry::OciRegistry;
pub use samples::Samples;
pub use swapping::{assert_no_call_failed, swaps_under_load, CallerTally};
