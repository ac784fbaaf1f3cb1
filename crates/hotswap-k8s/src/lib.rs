//! The Kubernetes face of hotswap's fleets (docs/kubernetes.md).
//!
//! [`HotswapPlugin`] is the custom resource: a slot, a plugin in an OCI
//! registry, and how to roll it out across the fleet's members. Its CRD is
//! generated from the Rust types ([`crd_yaml`], `hotswap k8s crd`), and the
//! copy in `deploy/crd.yaml` is checked against it by a test.
//!
//! ```
//! let yaml = hotswap_k8s::crd_yaml();
//! assert!(yaml.contains("name: hotswapplugins.hotswap.dev"));
//! ```

pub mod leader;
pub mod operator;
pub mod reconcile;
mod resource;

pub use hotswap_fleet::Selector;
pub use resource::{
    Condition, HotswapPlugin, HotswapPluginSpec, HotswapPluginStatus, MemberStatus, Signatures,
};

use kube::CustomResourceExt;

/// The CustomResourceDefinition of [`HotswapPlugin`], as YAML.
pub fn crd_yaml() -> String {
    serde_yaml::to_string(&HotswapPlugin::crd()).expect("a CRD serializes")
}
