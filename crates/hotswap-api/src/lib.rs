//! The admin API's wire, written once: the bodies and queries `hotswap
//! serve` takes and answers ([`wire`]), every way it refuses a request
//! ([`ErrorKind`], with its HTTP status and a stable code, in a
//! [`Problem`] body), how a call through the gateway fails
//! ([`CallErrorKind`]), and, with the `client` feature, a typed blocking
//! [`Client`] that the CLI uses.
//!
//! The server's HTTP surface writes these types and the client reads them,
//! so the two cannot drift apart; nothing else in hotswap speaks the admin
//! API's JSON. docs/admin-api.md is the reference for the endpoints.
//!
//! ```
//! use hotswap_api::{ErrorKind, Problem};
//!
//! let refused: Problem = serde_json::from_str(
//!     r#"{"error": "slot `greet` has a canary on trial", "kind": "canary-in-progress"}"#,
//! )?;
//! assert_eq!(refused.kind, ErrorKind::CanaryInProgress);
//! assert_eq!(refused.status(), 409);
//! # Ok::<(), serde_json::Error>(())
//! ```

#[cfg(feature = "client")]
mod client;
mod error;
pub mod headers;
pub mod wire;

#[cfg(feature = "client")]
pub use client::{query_string, segment, Answered, Client, ClientError, Reply, SseEvent};
pub use error::{CallErrorKind, ErrorKind, Problem};
