//! The data plane: HTTP requests in, plugin calls, HTTP responses out.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use hotswap_api::{headers, CallErrorKind};
use hotswap_core::{CallError, Kind, Lease, Served};

use crate::config::Route;
use crate::domain::gateway::{CallFailure, Gateway};
use crate::domain::tiers::AnyCode;
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

/// The router: a route per configured path, or `/{slot}` (and, for
/// components, everything below it) when none is configured. What a route
/// accepts depends on what its slot serves, which a deploy can change:
/// a plugin takes `POST` (any method on an envelope route), a component
/// takes every method.
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
        let whole_slot = any(
            |State(p): State<Plane>, Path(slot): Path<String>, r: Request| async move {
                serve(&p, &slot, Mount::Slot { below: false }, r).await
            },
        );
        router = router
            .route("/{slot}", whole_slot.clone())
            .route("/{slot}/", whole_slot)
            .route(
                "/{slot}/{*rest}",
                any(
                    |State(p): State<Plane>,
                     Path((slot, _)): Path<(String, String)>,
                     r: Request| async move {
                        serve(&p, &slot, Mount::Slot { below: true }, r).await
                    },
                ),
            );
    }
    for route in routes {
        let slot: Arc<str> = route.slot.as_str().into();
        let mount = if route.envelope {
            Mount::Envelope
        } else {
            Mount::Route
        };
        let handler = any(move |State(p): State<Plane>, r: Request| {
            let (slot, mount) = (slot.clone(), mount.clone());
            async move { serve(&p, &slot, mount, r).await }
        });
        router = router.route(&route.path, handler);
    }
    router.with_state(plane)
}

/// How a request reached its slot.
#[derive(Clone)]
enum Mount {
    /// `/{slot}`, or (`below`) a path below it: a component sees the
    /// path below the slot (`/` when there is none) and the query, as
    /// they came (still percent-encoded).
    Slot { below: bool },
    /// A configured route: a component sees the path as it came.
    Route,
    /// A configured envelope route (plugins get the whole request as JSON).
    Envelope,
}

/// One data-plane request: routed to a revision of `slot` (kept by the
/// routing key while a canary is on trial, see `client_key`), then answered
/// by a component, or by a plugin call with the body as its input.
async fn serve(plane: &Plane, slot: &str, mount: Mount, request: Request) -> Response {
    let Some(connection) = request.extensions().get::<ConnectionHandle>().cloned() else {
        // Only a router served outside the accept loops lacks it.
        tracing::error!("a data-plane request without its connection");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let key = plane.keys.key(connection.peer().ip(), request.headers());
    if plane.gateway.kind(slot) == Some(Kind::Component) {
        match plane.gateway.lease(slot, key) {
            Ok(lease) if matches!(lease.code(), AnyCode::Component(_)) => {
                return forward(plane, slot, lease, mount, request, connection.secure()).await;
            }
            // Swapped for a plugin in between: served as one, below.
            Ok(_) => {}
            Err(failure) => return plane.failure(slot, failure),
        }
    }
    // A plugin (or no such slot, which the call reports): its input is the
    // whole body, which may take a slow client a while to send, so nothing
    // is routed or held until it is read; the call holds its revision for
    // the call alone.
    match mount {
        Mount::Slot { below: true } => StatusCode::NOT_FOUND.into_response(),
        Mount::Envelope => {
            let (mut parts, body) = request.into_parts();
            // Taken out rather than copied: the body's reading consumes the rest.
            let method = std::mem::take(&mut parts.method);
            let uri = std::mem::take(&mut parts.uri);
            let headers = std::mem::take(&mut parts.headers);
            let body = match read_body(parts, body).await {
                Ok(body) => body,
                Err(rejected) => return rejected,
            };
            call_enveloped(plane, slot, key, (&method, &uri, &headers, &body[..]))
        }
        _ if request.method() != Method::POST => {
            let mut response = StatusCode::METHOD_NOT_ALLOWED.into_response();
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            response
        }
        _ => {
            let (parts, body) = request.into_parts();
            match read_body(parts, body).await {
                Ok(body) => call(plane, slot, key, &body),
                Err(rejected) => rejected,
            }
        }
    }
}

/// The whole body, within axum's limit (413 past it).
async fn read_body(parts: Parts, body: Body) -> Result<Bytes, Response> {
    Bytes::from_request(Request::from_parts(parts, body), &())
        .await
        .map_err(IntoResponse::into_response)
}

/// Hands the request to a component and streams its answer back; the
/// lease goes with the answer's body, so the revision drains only after
/// the last byte.
async fn forward(
    plane: &Plane,
    slot: &str,
    lease: Lease<AnyCode>,
    mount: Mount,
    request: Request,
    secure: bool,
) -> Response {
    let AnyCode::Component(code) = lease.code() else {
        unreachable!("`serve` forwards only what a component serves");
    };
    let (mut parts, body) = request.into_parts();
    if let Mount::Slot { .. } = mount {
        match below_slot(&parts.uri) {
            Some(uri) => parts.uri = uri,
            None => return StatusCode::BAD_REQUEST.into_response(),
        }
    }
    // wasi:http gives every request an authority: from the URI (HTTP/2)
    // or the Host header (HTTP/1.1; an HTTP/1.0 client may send none).
    if parts.uri.authority().is_none() && !parts.headers.contains_key(header::HOST) {
        return (
            StatusCode::BAD_REQUEST,
            "a request to a component needs a Host header\n",
        )
            .into_response();
    }
    parts.extensions = Default::default();
    let request = Request::from_parts(parts, hotswap_component::request_body(body));
    let scheme = if secure {
        hotswap_component::Scheme::Https
    } else {
        hotswap_component::Scheme::Http
    };
    // Counted in the canary's budget when the request is over, its body
    // included: a handler that answers 5xx, or fails while it streams,
    // fails its canary as a trap would. A full instance pool is the host's
    // load, shared by every slot, not this revision's fault.
    let held = lease.clone();
    let finished = move |outcome: &hotswap_component::Outcome| match outcome {
        Ok(status) => held.record(*status < 500),
        Err(CallError::Overloaded { .. }) => {}
        Err(_) => held.record(false),
    };
    let started = std::time::Instant::now();
    let result = code.handle(request, scheme, finished).await;
    let took = started.elapsed();
    match result {
        Ok(response) => plane
            .served_by(slot, &lease.served(), took)
            .mark(response.map(Body::new)),
        Err(e) => plane.failure(slot, CallFailure::Call(e)),
    }
}

/// `/{slot}/{rest}?query` as the component mounted there sees it:
/// `/{rest}?query`, cut from the raw path, so that its percent-encoding
/// (`%2F`, `%3F`, `%20`) reaches the component as the client wrote it.
fn below_slot(uri: &Uri) -> Option<Uri> {
    let raw = uri.path().strip_prefix('/').unwrap_or(uri.path());
    let rest = raw.split_once('/').map_or("", |(_, rest)| rest);
    let mut path = format!("/{rest}");
    if let Some(q) = uri.query() {
        path.push('?');
        path.push_str(q);
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path.parse().ok()?);
    Uri::from_parts(parts).ok()
}

impl PlaneParts {
    /// Who served a call that took `took`, counted in its revision's
    /// metrics.
    fn served_by(&self, slot: &str, served: &Served, took: std::time::Duration) -> ServedBy {
        let stamp = self.stamps.of(slot, served);
        stamp.counters().record(took);
        ServedBy {
            stamp,
            canary: served.canary,
        }
    }

    /// A failed call, counted in the metrics, as its HTTP answer.
    fn failure(&self, slot: &str, failure: CallFailure) -> Response {
        let (kind, message) = classify(&failure);
        self.metrics.failed_call(slot, kind.code());
        failed(slot, &failure, kind, message)
    }
}

/// A plugin call with the request body as input; its output is the answer.
/// Runs on this worker: calls take microseconds. A stuck WASM call ends at
/// its deadline; a native call has none and runs to completion
/// (docs/native.md).
fn call(plane: &Plane, slot: &str, key: Option<u64>, input: &[u8]) -> Response {
    match invoke(plane, slot, key, input) {
        Ok((output, served)) => served.mark((StatusCode::OK, output).into_response()),
        Err(failed) => *failed,
    }
}

/// The call itself, counted in the metrics (and, for a canary, in its
/// error budget, by the slot): the plugin's output and who served it, or
/// the HTTP answer for its failure.
fn invoke(
    plane: &Plane,
    slot: &str,
    key: Option<u64>,
    input: &[u8],
) -> Result<(Vec<u8>, ServedBy), Box<Response>> {
    let started = std::time::Instant::now();
    let result = plane.gateway.call(slot, input, key);
    let took = started.elapsed();
    match result {
        Ok((output, served)) => Ok((output, plane.served_by(slot, &served, took))),
        Err(failure) => Err(Box::new(plane.failure(slot, failure))),
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
    key: Option<u64>,
    request: (&Method, &Uri, &HeaderMap, &[u8]),
) -> Response {
    let (method, uri, headers, body) = request;
    let input = RequestEnvelope::new(method, uri, headers, body).to_json();
    let (output, served) = match invoke(plane, slot, key, &input) {
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
