//! The data plane: HTTP requests in, plugin calls, HTTP responses out.

use std::sync::Arc;

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::Router;
use hotswap_api::{headers, CallErrorKind};
use hotswap_core::CallError;

use crate::config::Route;
use crate::domain::gateway::{CallFailure, Gateway};
use crate::http::client_key::KeyPolicy;
use crate::http::envelope::{RequestEnvelope, ResponseEnvelope};
use crate::http::stamps::{Stamp, Stamps};
use crate::http::ConnectionHandle;
use crate::metrics::Metrics;

const ERROR: HeaderName = HeaderName::from_static(headers::ERROR);

/// What every data-plane handler needs, shared (axum hands a handler its
/// own copy of the state on every request).
type Plane = Arc<PlaneParts>;

struct PlaneParts {
    gateway: Arc<Gateway>,
    keys: KeyPolicy,
    metrics: Arc<Metrics>,
    stamps: Stamps,
}

/// The router: a route per configured path (`POST`, or any method for an
/// envelope route), or `POST /{slot}` when none is configured.
pub(crate) fn router(
    gateway: Arc<Gateway>,
    routes: &[Route],
    keys: KeyPolicy,
    metrics: Arc<Metrics>,
) -> Router {
    let plane = Arc::new(PlaneParts {
        gateway,
        keys,
        stamps: Stamps::new(metrics.clone()),
        metrics,
    });
    let mut router = Router::new();
    if routes.is_empty() {
        router = router.route(
            "/{slot}",
            post(
                |State(p): State<Plane>, Path(slot): Path<String>, r: Incoming| async move {
                    call(&p, &slot, r.peer, &r.headers, &r.body)
                },
            ),
        );
    }
    for route in routes {
        let slot = route.slot.clone();
        let handler = if route.envelope {
            any(move |State(p): State<Plane>, r: Incoming| async move {
                let request = (&r.method, &r.uri, &r.headers, &r.body[..]);
                call_enveloped(&p, &slot, r.peer, request)
            })
        } else {
            post(move |State(p): State<Plane>, r: Incoming| async move {
                call(&p, &slot, r.peer, &r.headers, &r.body)
            })
        };
        router = router.route(&route.path, handler);
    }
    router.with_state(plane)
}

/// A request as a call reads it: who sent it, and its parts, taken out of
/// the request rather than copied; the body whole, within axum's limit.
struct Incoming {
    peer: SocketAddr,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for Incoming {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Incoming, Response> {
        let (mut parts, body) = request.into_parts();
        let Some(connection) = parts.extensions.get::<ConnectionHandle>() else {
            // Only a router served outside the accept loops lacks it.
            tracing::error!("a data-plane request without its connection");
            return Err(StatusCode::INTERNAL_SERVER_ERROR.into_response());
        };
        let peer = connection.peer();
        let headers = std::mem::take(&mut parts.headers);
        let method = std::mem::take(&mut parts.method);
        let uri = std::mem::take(&mut parts.uri);
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Incoming {
            peer,
            method,
            uri,
            headers,
            body,
        })
    }
}

/// Runs the call on this worker: calls take microseconds. A stuck WASM call
/// ends at its deadline; a native call has none and runs to completion
/// (docs/native.md). The routing key (see `client_key`) keeps a client on
/// one revision while a canary is on trial.
fn call(
    plane: &Plane,
    slot: &str,
    peer: SocketAddr,
    headers: &HeaderMap,
    input: &[u8],
) -> Response {
    match invoke(plane, slot, peer, headers, input) {
        Ok((output, served)) => served.mark((StatusCode::OK, output).into_response()),
        Err(failed) => *failed,
    }
}

/// The call itself, counted in the metrics: the plugin's output and who
/// served it, or the HTTP answer for its failure.
fn invoke(
    plane: &Plane,
    slot: &str,
    peer: SocketAddr,
    headers: &HeaderMap,
    input: &[u8],
) -> Result<(Vec<u8>, ServedBy), Box<Response>> {
    let key = plane.keys.key(peer.ip(), headers);
    let started = std::time::Instant::now();
    let result = plane.gateway.call(slot, input, key);
    let took = started.elapsed();
    match result {
        Ok((output, served)) => {
            let stamp = plane.stamps.of(slot, &served);
            stamp.counters().record(took);
            Ok((
                output,
                ServedBy {
                    stamp,
                    canary: served.canary,
                },
            ))
        }
        Err(failure) => {
            let (kind, message) = classify(&failure);
            plane.metrics.failed_call(slot, kind.code());
            Err(Box::new(failed(slot, &failure, kind, message)))
        }
    }
}

/// The revision that served a call, as its answer says.
struct ServedBy {
    stamp: Arc<Stamp>,
    canary: bool,
}

impl ServedBy {
    /// Says which revision served the answer.
    fn mark(self, mut response: Response) -> Response {
        self.stamp.mark(response.headers_mut(), self.canary);
        response
    }
}

/// An envelope route: the whole request in, the answer the plugin's
/// response envelope describes out. A malformed envelope is the plugin's
/// failure (502), explained in the log.
fn call_enveloped(
    plane: &Plane,
    slot: &str,
    peer: SocketAddr,
    request: (&Method, &Uri, &HeaderMap, &[u8]),
) -> Response {
    let (method, uri, headers, body) = request;
    let input = RequestEnvelope::new(method, uri, headers, body).to_json();
    let (output, served) = match invoke(plane, slot, peer, headers, &input) {
        Ok(ok) => ok,
        Err(failed) => return *failed,
    };
    match ResponseEnvelope::parse(&output) {
        Ok((status, headers, body)) => {
            let mut answer = (status, body).into_response();
            answer.headers_mut().extend(headers);
            served.mark(answer)
        }
        Err(why) => {
            tracing::warn!(slot, error = %why, "a plugin answered a malformed response envelope");
            refusal(CallErrorKind::BadEnvelope, "plugin failed\n".into())
        }
    }
}

/// What a failed call means over HTTP: its kind (whose status it is
/// answered with, for `x-hotswap-error` and the metrics) and a message that
/// reveals nothing of the plugin's internals.
fn classify(failure: &CallFailure) -> (CallErrorKind, &'static str) {
    use CallErrorKind as K;
    match failure {
        CallFailure::UnknownSlot => (K::UnknownSlot, "no such slot"),
        CallFailure::Call(e) => match e {
            CallError::NoRevision { .. } => (K::NoRevision, "slot has no revision"),
            // The reason is the operator's own doing (a damaged store),
            // not the plugin's internals: say it.
            CallError::Unavailable { .. } => (
                K::Unavailable,
                "slot cannot serve: its revisions could not be restored",
            ),
            CallError::Deadline(_) => (K::Deadline, "plugin timed out"),
            CallError::Overloaded { .. } => (K::Overloaded, "plugin overloaded"),
            CallError::Plugin(_) => (K::PluginError, "plugin returned an error"),
            CallError::MemoryLimit { .. } => (K::MemoryLimit, "plugin failed"),
            CallError::Trap(_) => (K::Trap, "plugin failed"),
            CallError::HostCall { .. } | CallError::Abi(_) => (K::Abi, "plugin failed"),
            CallError::Instantiate(_) | CallError::Host(_) => (K::Host, "plugin failed"),
        },
    }
}

/// A failed answer of `kind`: its status, `x-hotswap-error`, and `body`.
fn refusal(kind: CallErrorKind, body: String) -> Response {
    let status = StatusCode::from_u16(kind.status()).expect("every kind has a valid status");
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(ERROR, HeaderValue::from_static(kind.code()));
    response
}

/// A failed call as an HTTP answer, with its kind in `x-hotswap-error` for
/// clients and dashboards; the full error goes to the log.
fn failed(
    slot: &str,
    failure: &CallFailure,
    kind: CallErrorKind,
    message: &'static str,
) -> Response {
    if let CallFailure::Call(e) = failure {
        tracing::warn!(slot, kind = kind.code(), error = %e, "call failed");
    }
    let body = match failure {
        // The one failure whose full reason is for the caller: the slot's
        // fault (which revision could not be restored, and why).
        CallFailure::Call(e @ CallError::Unavailable { .. }) => format!("{e}\n"),
        _ => format!("{message}\n"),
    };
    refusal(kind, body)
}
