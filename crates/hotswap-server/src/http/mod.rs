//! The server's two HTTP surfaces over the domain: the data plane, where
//! requests become plugin calls (`data`, with its envelopes, its routing
//! keys and its TLS), and the admin API (`admin`); and the accept loops
//! both run on (`serve`).

pub(crate) mod admin;
pub(crate) mod client_key;
pub(crate) mod data;
pub(crate) mod envelope;
mod serve;
mod stamps;
pub(crate) mod tls;

pub(crate) use serve::{accept, ConnectionHandle, Connections, DrainTiming, Surface};
pub use serve::{connection_builder, PROCESS_HEADER};
