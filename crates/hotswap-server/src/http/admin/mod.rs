//! The admin API, version 1: deploy, list, show, roll back, events, health,
//! and the process's own upgrade and reload ([`process`]). Documented in
//! docs/admin-api.md.

mod ebpf;
mod process;

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use hotswap_api::wire::{
    CallsAnswer, DeployQuery, EventsAnswer, EventsQuery, ExpectQuery, RevisionAnswer,
    RollbackQuery, SlotsAnswer, WeightBody,
};
use hotswap_api::{ErrorKind, Problem};
use hotswap_core::{DeployError, Digest, ErrorBudget, RevisionInfo, StateError};
use serde::de::DeserializeOwned;
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};

use crate::control::Controller;
use crate::domain::ebpf::Programs;
use crate::domain::gateway::{Gateway, GatewayError};
use crate::domain::signing::{SignatureError, Trust};
use crate::http::ConnectionHandle;
use crate::metrics::{Exposition, Metrics};

#[derive(Clone)]
struct Admin {
    gateway: Arc<Gateway>,
    programs: Arc<Programs>,
    token: Option<Arc<str>>,
    max_module_bytes: usize,
    trust: Arc<Trust>,
    /// What canaries deployed now are judged against (kept in their state).
    canary_budget: ErrorBudget,
    metrics: Arc<Metrics>,
    controller: Controller,
}

/// What the admin API takes from the config (and a reload changes).
pub(crate) struct Settings {
    pub token: Option<String>,
    pub max_module_bytes: usize,
    pub trust: Trust,
    pub canary_budget: ErrorBudget,
}

/// The admin router. With a token, every request must carry it.
pub(crate) fn router(
    gateway: Arc<Gateway>,
    programs: Arc<Programs>,
    settings: Settings,
    metrics: Arc<Metrics>,
    controller: Controller,
) -> Router {
    let state = Admin {
        gateway,
        programs,
        token: settings.token.map(Arc::from),
        max_module_bytes: settings.max_module_bytes,
        trust: Arc::new(settings.trust),
        canary_budget: settings.canary_budget,
        metrics,
        controller,
    };
    Router::new()
        .route(
            "/v1/health",
            get(|| async { Json(json!({"status": "ok"})) }),
        )
        .route("/v1/ready", get(|| async { Json(json!({"ready": true})) }))
        .route("/v1/slots", get(list))
        .route("/v1/slots/{slot}", get(show))
        .route(
            "/v1/slots/{slot}/revisions",
            // The handler enforces the limit itself (see `deploy`).
            post(deploy).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/slots/{slot}/calls", get(calls))
        .route("/v1/slots/{slot}/rollback", post(rollback))
        .route("/v1/slots/{slot}/canary", post(canary_weight))
        .route("/v1/slots/{slot}/promote", post(promote))
        .route("/v1/events", get(events))
        .route("/metrics", get(prometheus))
        .route("/v1/process", get(process::show))
        .route("/v1/upgrade", post(process::upgrade))
        .route("/v1/reload", post(process::reload))
        .route("/v1/ebpf", get(ebpf::list))
        .route("/v1/ebpf/{name}", get(ebpf::show).delete(ebpf::unload))
        .route(
            "/v1/ebpf/{name}/revisions",
            // The handler enforces the limit itself (see `read_upload`).
            post(ebpf::place).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/ebpf/{name}/maps/{map}", get(ebpf::dump))
        .route(
            "/v1/ebpf/{name}/maps/{map}/entry",
            get(ebpf::get_entry)
                .put(ebpf::set_entry)
                .delete(ebpf::delete_entry),
        )
        .route("/v1/ebpf/{name}/events", get(ebpf::events))
        .fallback(|| async {
            problem(
                ErrorKind::NotFound,
                "no such endpoint; see docs/admin-api.md".into(),
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state)
}

/// Refuses requests without the bearer token, when one is set. A refused
/// request changes nothing.
async fn authorize(State(admin): State<Admin>, request: Request, next: Next) -> Response {
    if let Some(token) = &admin.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(token.as_bytes()))) {
            return problem(
                ErrorKind::Unauthorized,
                "missing or wrong bearer token (set HOTSWAP_TOKEN)".into(),
            );
        }
    }
    next.run(request).await
}

async fn list(State(admin): State<Admin>) -> Response {
    Json(SlotsAnswer {
        slots: admin.gateway.list(),
    })
    .into_response()
}

async fn show(State(admin): State<Admin>, Path(slot): Path<String>) -> Response {
    match admin.gateway.show(&slot) {
        Ok(view) => Json(view).into_response(),
        Err(e) => gateway_problem(e),
    }
}

async fn calls(State(admin): State<Admin>, Path(slot): Path<String>) -> Response {
    if let Err(e) = admin.gateway.show(&slot) {
        return gateway_problem(e);
    }
    let (calls, failed) = admin.metrics.slot_calls(&slot);
    Json(CallsAnswer { calls, failed }).into_response()
}

async fn deploy(
    State(admin): State<Admin>,
    Path(slot): Path<String>,
    query: Result<AdminQuery<DeployQuery>, Response>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (body, query) = match signed_upload(
        &admin,
        Upload::Plugin,
        &headers,
        body,
        query,
        |q: &DeployQuery| q.signature.as_deref(),
    )
    .await
    {
        Ok(upload) => upload,
        Err(refused) => return refused,
    };
    let expected = match query.sha256.as_deref().map(str::parse::<Digest>) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => return problem(ErrorKind::BadRequest, e.to_string()),
    };
    // Compiling and starting a module is blocking work.
    let gateway = admin.gateway.clone();
    let canary = query.canary;
    if canary.is_some_and(|w| w > 100) {
        return problem(
            ErrorKind::BadRequest,
            "canary must be a percent, 0-100".into(),
        );
    }
    let started = std::time::Instant::now();
    let budget = admin.canary_budget;
    let answer = change(StatusCode::CREATED, move || match canary {
        Some(weight) => gateway.deploy_canary(&slot, body.to_vec(), expected, weight, Some(budget)),
        None => gateway.deploy(&slot, body.to_vec(), expected),
    })
    .await;
    if answer.status() == StatusCode::CREATED {
        admin.metrics.deploy(started.elapsed());
    }
    answer
}

/// What an upload is, for its signature policy.
#[derive(Clone, Copy)]
enum Upload {
    /// A plugin for a slot: WASM, or native (which may need a signature
    /// of its own, [`Trust::check_plugin`]).
    Plugin,
    /// An eBPF object.
    Object,
}

/// An upload with its query, checked in order: its size, the query, then
/// its signature (from `x-hotswap-signature` or the query's field
/// `signature`). The query is checked after the body is read, so the
/// connection can stay open.
async fn signed_upload<Q>(
    admin: &Admin,
    kind: Upload,
    headers: &HeaderMap,
    body: Body,
    query: Result<AdminQuery<Q>, Response>,
    signature: impl FnOnce(&Q) -> Option<&str>,
) -> Result<(Bytes, Q), Response> {
    let body = read_upload(admin, headers, body).await?;
    let AdminQuery(query) = query?;
    authentic(admin, kind, headers, signature(&query), &body).map_err(signature_problem)?;
    Ok((body, query))
}

/// Reads an uploaded module or object, refusing an oversize one from its
/// Content-Length before reading a byte of it; a body without one is cut
/// off at the limit while read.
async fn read_upload(admin: &Admin, headers: &HeaderMap, body: Body) -> Result<Bytes, Response> {
    let max = admin.max_module_bytes;
    let too_large = || {
        problem(
            ErrorKind::TooLarge,
            format!("uploads may be at most {max} bytes (max_module_bytes)"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, max)
        .await
        .map_err(|_| too_large())
}

/// Authenticity before anything else: an unsigned or wrongly signed upload
/// (when signatures are required) is never stored, compiled, verified or
/// run. The signature comes from `x-hotswap-signature` or the query.
fn authentic(
    admin: &Admin,
    kind: Upload,
    headers: &HeaderMap,
    query_signature: Option<&str>,
    body: &[u8],
) -> Result<(), SignatureError> {
    let signature = headers
        .get(hotswap_api::headers::SIGNATURE)
        .and_then(|v| v.to_str().ok())
        .or(query_signature);
    match kind {
        Upload::Plugin => admin.trust.check_plugin(body, signature),
        Upload::Object => admin.trust.check(body, signature),
    }
}

/// Why an upload's signature was refused, as an answer.
fn signature_problem(e: SignatureError) -> Response {
    let kind = match e {
        SignatureError::Missing | SignatureError::NativeMissing => ErrorKind::SignatureRequired,
        SignatureError::Malformed(_) => ErrorKind::BadRequest,
        _ => ErrorKind::BadSignature,
    };
    problem(kind, e.to_string())
}

/// Runs a change to a slot on a blocking thread (it may compile, and it
/// writes the store) and answers `{"revision": ...}` with `status`, or the
/// error.
async fn change(
    status: StatusCode,
    op: impl FnOnce() -> Result<RevisionInfo, GatewayError> + Send + 'static,
) -> Response {
    match tokio::task::spawn_blocking(op).await {
        Ok(Ok(revision)) => (status, Json(RevisionAnswer { revision })).into_response(),
        Ok(Err(e)) => gateway_problem(e),
        Err(e) => internal(e),
    }
}

fn expected(expect: Option<&str>) -> Result<Option<Digest>, String> {
    expect
        .map(|e| e.strip_prefix("sha256:").unwrap_or(e).parse::<Digest>())
        .transpose()
        .map_err(|e| format!("expect: {e}"))
}

async fn rollback(
    State(admin): State<Admin>,
    Path(slot): Path<String>,
    AdminQuery(q): AdminQuery<RollbackQuery>,
) -> Response {
    let expect = match expected(q.expect.as_deref()) {
        Ok(e) => e,
        Err(e) => return problem(ErrorKind::BadRequest, e),
    };
    let reason = q
        .reason
        .unwrap_or_else(|| "requested through the admin API".into());
    let gateway = admin.gateway.clone();
    change(StatusCode::OK, move || {
        gateway.rollback(&slot, expect, &reason)
    })
    .await
}

/// `{"weight": N}`: the canary's new share of calls.
async fn canary_weight(
    State(admin): State<Admin>,
    Path(slot): Path<String>,
    body: Result<Json<WeightBody>, JsonRejection>,
) -> Response {
    let (weight, expect) = match body {
        Ok(Json(b)) if b.weight <= 100 => (b.weight, b.expect),
        Ok(_) => {
            return problem(
                ErrorKind::BadRequest,
                "weight must be a percent, 0-100".into(),
            )
        }
        Err(e) => return bad_body(r#"{"weight": 20}"#, e),
    };
    let expect = match expected(expect.as_deref()) {
        Ok(e) => e,
        Err(e) => return problem(ErrorKind::BadRequest, e),
    };
    let gateway = admin.gateway.clone();
    change(StatusCode::OK, move || {
        gateway.set_canary_weight(&slot, expect, weight)
    })
    .await
}

async fn promote(
    State(admin): State<Admin>,
    Path(slot): Path<String>,
    AdminQuery(q): AdminQuery<ExpectQuery>,
) -> Response {
    let expect = match expected(q.expect.as_deref()) {
        Ok(e) => e,
        Err(e) => return problem(ErrorKind::BadRequest, e),
    };
    let gateway = admin.gateway.clone();
    change(StatusCode::OK, move || gateway.promote(&slot, expect)).await
}

/// A query string, refused as every admin API error is (`{"error",
/// "kind": "bad-request"}`) rather than as axum's plain text. Taken as
/// `Result<AdminQuery<Q>, Response>` where the body must be read first.
struct AdminQuery<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for AdminQuery<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(AdminQuery(q)),
            Err(e) => Err(problem(ErrorKind::BadRequest, e.body_text())),
        }
    }
}

/// A JSON body that could not be read: what was wrong, and what one
/// looks like.
fn bad_body(example: &str, e: JsonRejection) -> Response {
    problem(
        ErrorKind::BadRequest,
        format!("expected a JSON body like {example}: {}", e.body_text()),
    )
}

/// The metrics, as OpenMetrics when the scraper asks for it and in the
/// Prometheus text format otherwise.
async fn prometheus(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Exposition::negotiate(accept);
    // Blocking work: the eBPF collector reads every program's maps.
    let text = match tokio::task::spawn_blocking(move || {
        admin.metrics.observe(admin.gateway.tiers());
        admin.metrics.encode(format)
    })
    .await
    {
        Ok(text) => text,
        Err(e) => return internal(e),
    };
    ([(header::CONTENT_TYPE, format.content_type())], text).into_response()
}

/// The recent events as JSON, or with `?follow=true` a server-sent event
/// stream: the recent ones, then each new one as it happens.
async fn events(
    State(admin): State<Admin>,
    Extension(connection): Extension<ConnectionHandle>,
    AdminQuery(q): AdminQuery<EventsQuery>,
) -> Response {
    let bus = admin.gateway.events();
    if !q.follow {
        let events = bus.recent();
        return Json(EventsAnswer { events }).into_response();
    }
    // Subscribe before reading the backlog, so nothing falls in between;
    // an event in both is sent once (by sequence number).
    let live = BroadcastStream::new(bus.subscribe());
    let backlog = bus.recent();
    let last = backlog.last().map_or(0, |e| e.seq);
    let backlog = tokio_stream::iter(backlog.into_iter().map(Ok));
    let live = live.filter_map(move |item| match item {
        Ok(e) if e.seq > last => Some(Ok(e)),
        Ok(_) => None,
        Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => Some(Err(n)),
    });
    // A drain (an upgrade, a stop) ends the stream: the client reconnects,
    // to the next process.
    let live = futures_util::StreamExt::take_until(live, connection.draining());
    let stream = backlog
        .chain(live)
        .map(|item| -> Result<SseEvent, Infallible> {
            Ok(match item {
                Ok(e) => SseEvent::default()
                    .event("revision")
                    .json_data(&e)
                    .unwrap_or_default(),
                Err(missed) => SseEvent::default().event("lagged").data(missed.to_string()),
            })
        });
    sse(stream)
}

fn sse(stream: impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static) -> Response {
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// A blocking task that failed unexpectedly (it panicked): `500 internal`.
fn internal(e: impl std::fmt::Display) -> Response {
    problem(
        ErrorKind::Internal,
        format!("the request failed unexpectedly: {e}"),
    )
}

/// A refusal: `{"error": message, "kind": kind}`, with the kind's status.
fn problem(kind: ErrorKind, message: String) -> Response {
    let status = StatusCode::from_u16(kind.status()).expect("every kind has a valid status");
    (status, Json(Problem::new(kind, message))).into_response()
}

fn gateway_problem(e: GatewayError) -> Response {
    let kind = match &e {
        GatewayError::UnknownSlot(_) => ErrorKind::UnknownSlot,
        GatewayError::BadName(_) => ErrorKind::BadSlotName,
        GatewayError::Deploy(d) => match d {
            DeployError::DigestMismatch { .. } => ErrorKind::DigestMismatch,
            DeployError::Invalid(_) => ErrorKind::InvalidModule,
            DeployError::Prepare(_) => ErrorKind::PrepareFailed,
            DeployError::StillDraining { .. } => ErrorKind::StillDraining,
            DeployError::Refused(refusal) => match refusal {
                StateError::Stale { .. } => ErrorKind::Stale,
                StateError::NoPrevious => ErrorKind::NoPrevious,
                StateError::CanaryInProgress => ErrorKind::CanaryInProgress,
                StateError::NoActive => ErrorKind::NoActive,
                StateError::NoCanary => ErrorKind::NoCanary,
                StateError::SchemaDowngrade { .. } => ErrorKind::SchemaDowngrade,
                StateError::CanaryAcrossSchemas { .. } => ErrorKind::CanaryAcrossSchemas,
                StateError::CanaryAcrossKinds { .. } => ErrorKind::CanaryAcrossKinds,
            },
            DeployError::ArtifactUnavailable { .. } => ErrorKind::Unavailable,
            DeployError::Migrate(_) => ErrorKind::MigrateFailed,
            DeployError::Journal(_) => ErrorKind::StoreFailed,
        },
        GatewayError::Store(_) | GatewayError::Tier(_) => ErrorKind::Internal,
    };
    problem(kind, e.to_string())
}
