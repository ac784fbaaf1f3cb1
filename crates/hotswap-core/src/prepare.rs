//! `PrepareError`: why a valid plugin could not be made ready to serve, in
//! every tier.

use crate::CallError;

/// Why a valid plugin could not be made ready to serve. The active revision
/// is untouched; a deploy carries it as
/// [`DeployError::Prepare`](crate::DeployError::Prepare), and
/// `tier_error::<PrepareError>()` recovers it.
///
/// One type for both plugin tiers: `hs_init` and `hs_health` are the ABI's,
/// and fail the same way (and in the same words) whatever runs them. The
/// steps before them differ by tier, so each variant says which tier has
/// it; a tier uses the ones it has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrepareError {
    /// The code could not be compiled (WASM).
    #[error("compilation failed: {0}")]
    Compile(String),
    /// It could not be linked against the host's functions (WASM).
    #[error("linking failed: {0}")]
    Link(String),
    /// An instance could not be created (WASM).
    #[error("instantiation failed: {0}")]
    Instantiate(String),
    /// The library could not be loaded into the process (native): staged,
    /// `dlopen`ed, or one of its exports resolved. The message is the
    /// tier's own, which names the step.
    #[error("{0}")]
    Load(String),
    /// `hs_bind` refused the host's table (native).
    #[error("hs_bind returned {code}: the library was built for another host ABI; rebuild it against this hotswap-guest")]
    Bind {
        /// What it returned.
        code: i32,
    },
    /// `hs_init` returned non-zero.
    #[error("hs_init returned {code}; 0 means ready")]
    InitFailed {
        /// What it returned.
        code: i32,
    },
    /// `hs_init` trapped or broke a limit (WASM; native code cannot be
    /// stopped, so its failures are return codes).
    #[error("hs_init failed: {0}")]
    InitTrapped(CallError),
    /// `hs_health` returned non-zero.
    #[error("health check failed: hs_health returned {code}; 0 means healthy")]
    Unhealthy {
        /// What it returned.
        code: i32,
    },
    /// `hs_health` trapped or broke a limit (WASM).
    #[error("health check failed: {0}")]
    HealthTrapped(CallError),
}
