//! The data plane: HTTP requests in, plugin calls, HTTP responses out.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use hotswap_core::CallError;

use crate::config::Route;
use crate::gateway::{CallFailure, Gateway};

/// The router: one `POST` route per configured path, or `POST /{slot}` when
/// none is configured.
pub(crate) fn router(gateway: Arc<Gateway>, routes: &[Route]) -> Router {
    let mut router = Router::new();
    if routes.is_empty() {
        router = router.route(
            "/{slot}",
            post(
                |State(g): State<Arc<Gateway>>, Path(slot): Path<String>, body: Bytes| async move {
                    call(&g, &slot, &body)
                },
            ),
        );
    }
    for route in routes {
        let slot = route.slot.clone();
        router =
            router.route(
                &route.path,
                post(
                    move |State(g): State<Arc<Gateway>>, body: Bytes| async move {
                        call(&g, &slot, &body)
                    },
                ),
            );
    }
    router.with_state(gateway)
}

/// Runs the call on this worker: calls take microseconds, and a stuck one
/// ends at its deadline.
fn call(gateway: &Gateway, slot: &str, input: &[u8]) -> Response {
    match gateway.call(slot, input) {
        Ok(output) => (StatusCode::OK, output).into_response(),
        Err(failure) => failed(slot, failure),
    }
}

/// A failed call as an HTTP answer: a status that says whose fault it is, a
/// short message that reveals nothing of the plugin's internals, and the
/// error's kind in `x-hotswap-error` for clients and dashboards. The full
/// error goes to the log.
fn failed(slot: &str, failure: CallFailure) -> Response {
    let (status, kind, message) = match &failure {
        CallFailure::UnknownSlot => (StatusCode::NOT_FOUND, "unknown-slot", "no such slot"),
        CallFailure::Call(e) => match e {
            CallError::NoRevision { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "no-revision",
                "slot has no revision",
            ),
            CallError::Deadline(_) => (StatusCode::GATEWAY_TIMEOUT, "deadline", "plugin timed out"),
            CallError::Overloaded { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "plugin overloaded",
            ),
            CallError::Plugin(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "plugin-error",
                "plugin returned an error",
            ),
            CallError::MemoryLimit { .. } => {
                (StatusCode::BAD_GATEWAY, "memory-limit", "plugin failed")
            }
            CallError::Trap(_) => (StatusCode::BAD_GATEWAY, "trap", "plugin failed"),
            CallError::HostCall { .. } | CallError::Abi(_) => {
                (StatusCode::BAD_GATEWAY, "abi", "plugin failed")
            }
            CallError::Instantiate(_) | CallError::Host(_) => {
                (StatusCode::BAD_GATEWAY, "host", "plugin failed")
            }
        },
    };
    if let CallFailure::Call(e) = &failure {
        tracing::warn!(slot, kind, error = %e, "call failed");
    }
    let mut response = (status, format!("{message}\n")).into_response();
    response
        .headers_mut()
        .insert("x-hotswap-error", HeaderValue::from_static(kind));
    response
}
