//! The names of the HTTP headers hotswap reads and writes, besides the
//! bodies in [`crate::wire`]. Lower case, as HTTP/2 sends them.

/// On a plugin's answer: the generation of the revision that served it.
pub const GENERATION: &str = "x-hotswap-generation";

/// On a plugin's answer: the digest (hex) of the revision that served it.
pub const DIGEST: &str = "x-hotswap-digest";

/// On a plugin's answer: `true` when the canary served it.
pub const CANARY: &str = "x-hotswap-canary";

/// On a failed call: its kind's code (see [`crate::CallErrorKind`]).
pub const ERROR: &str = "x-hotswap-error";

/// On every answer of the gateway: the generation of the process that
/// answered (1 for a process started by hand, +1 per upgrade).
pub const PROCESS: &str = "x-hotswap-process";

/// On an upload to the admin API: the artifact's ed25519 signature (hex).
pub const SIGNATURE: &str = "x-hotswap-signature";
