//! `/v1/ebpf/...`: eBPF programs loaded, replaced, listed and unloaded;
//! their map entries read and written; their ring-buffer events streamed.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::Event as SseEvent;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use hotswap_api::wire::ebpf::{
    Deleted, DumpQuery, EntryBody, KeyQuery, MapDump, MapEventsQuery, PlaceExpect, PlaceQuery,
    ProgramList, Unloaded,
};
use hotswap_api::ErrorKind;
use hotswap_ebpf::{as_text, EbpfError, DUMP_LIMIT};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;

use super::{bad_body, internal, problem, signed_upload, sse, Admin, AdminQuery, Upload};
use crate::domain::ebpf::{Expect, ProgramError};
use crate::http::ConnectionHandle;

/// `GET /v1/ebpf`: every program, or why this server has no eBPF tier.
pub(super) async fn list(State(admin): State<Admin>) -> Response {
    let programs = admin.programs.clone();
    blocking(move || {
        programs
            .list()
            .map(|programs| Json(ProgramList { programs }))
    })
    .await
}

/// `GET /v1/ebpf/{name}`.
pub(super) async fn show(State(admin): State<Admin>, Path(name): Path<String>) -> Response {
    let programs = admin.programs.clone();
    blocking(move || programs.show(&name).map(Json)).await
}

/// `POST /v1/ebpf/{name}/revisions`: the object is the body. 201 when it
/// attached the program, 200 when it replaced the running revision.
pub(super) async fn place(
    State(admin): State<Admin>,
    Path(name): Path<String>,
    query: Result<AdminQuery<PlaceQuery>, Response>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (body, q) = match signed_upload(
        &admin,
        Upload::Object,
        &headers,
        body,
        query,
        |q: &PlaceQuery| q.signature.as_deref(),
    )
    .await
    {
        Ok(upload) => upload,
        Err(refused) => return refused,
    };
    let expect = q.expect.map(|e| match e {
        PlaceExpect::New => Expect::New,
        PlaceExpect::Existing => Expect::Existing,
    });
    let programs = admin.programs.clone();
    blocking(move || {
        let p = programs.place(
            &name,
            &body,
            q.attach.as_deref(),
            q.program.as_deref(),
            expect,
        )?;
        let status = if p.attached {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((status, Json(p)))
    })
    .await
}

/// `DELETE /v1/ebpf/{name}`: detaches it and removes its pins.
pub(super) async fn unload(State(admin): State<Admin>, Path(name): Path<String>) -> Response {
    let programs = admin.programs.clone();
    blocking(move || {
        programs
            .unload(&name)
            .map(|()| Json(Unloaded { unloaded: name }))
    })
    .await
}

/// `GET /v1/ebpf/{name}/maps/{map}`: the map's type and its entries.
pub(super) async fn dump(
    State(admin): State<Admin>,
    Path((name, map)): Path<(String, String)>,
    AdminQuery(q): AdminQuery<DumpQuery>,
) -> Response {
    let limit = q.limit.unwrap_or(DUMP_LIMIT).min(DUMP_LIMIT);
    let programs = admin.programs.clone();
    blocking(move || {
        let map = programs.map(&name, &map)?;
        let (entries, truncated) = map.dump(limit)?;
        Ok(Json(MapDump {
            map: map.summary(),
            entries,
            truncated,
        }))
    })
    .await
}

/// `GET /v1/ebpf/{name}/maps/{map}/entry?key=K`.
pub(super) async fn get_entry(
    State(admin): State<Admin>,
    Path((name, map)): Path<(String, String)>,
    AdminQuery(q): AdminQuery<KeyQuery>,
) -> Response {
    let programs = admin.programs.clone();
    blocking(move || {
        Ok(match programs.map(&name, &map)?.get(&q.key)? {
            Some(entry) => Json(entry).into_response(),
            None => problem(
                ErrorKind::NoEntry,
                format!("map `{map}` has no entry for key {}", q.key),
            ),
        })
    })
    .await
}

/// `PUT /v1/ebpf/{name}/maps/{map}/entry` with `{"key": K, "value": V}`:
/// numbers, IPv4 addresses and strings as the map's BTF types them.
pub(super) async fn set_entry(
    State(admin): State<Admin>,
    Path((name, map)): Path<(String, String)>,
    body: Result<Json<EntryBody>, JsonRejection>,
) -> Response {
    let body = match body {
        Ok(Json(b)) => b,
        Err(e) => return bad_body(r#"{"key": "10.0.0.7", "value": 1}"#, e),
    };
    let programs = admin.programs.clone();
    blocking(move || {
        let entry = programs
            .map(&name, &map)?
            .set(&as_text(&body.key), &as_text(&body.value))?;
        Ok(Json(entry))
    })
    .await
}

/// `DELETE /v1/ebpf/{name}/maps/{map}/entry?key=K`.
pub(super) async fn delete_entry(
    State(admin): State<Admin>,
    Path((name, map)): Path<(String, String)>,
    AdminQuery(q): AdminQuery<KeyQuery>,
) -> Response {
    let programs = admin.programs.clone();
    blocking(move || {
        let deleted = programs.map(&name, &map)?.delete(&q.key)?;
        Ok(Json(Deleted { deleted }))
    })
    .await
}

/// `GET /v1/ebpf/{name}/events[?map=M]`: a server-sent event stream, one
/// `event` per ring-buffer record, decoded. It ends when the server drains.
pub(super) async fn events(
    State(admin): State<Admin>,
    Path(name): Path<String>,
    Extension(connection): Extension<ConnectionHandle>,
    AdminQuery(q): AdminQuery<MapEventsQuery>,
) -> Response {
    let map = q.map;
    let events = match admin.programs.subscribe(&name, map.as_deref()) {
        Ok(rx) => BroadcastStream::new(rx),
        Err(e) => return program_problem(e),
    };
    // A drain (an upgrade, a stop) ends the stream; so does an unload.
    let stream = futures_util::StreamExt::take_until(events, connection.draining()).map(
        |item| -> Result<SseEvent, Infallible> {
            Ok(match item {
                Ok(event) => SseEvent::default().event("event").data(&*event),
                Err(BroadcastStreamRecvError::Lagged(n)) => {
                    SseEvent::default().event("lagged").data(n.to_string())
                }
            })
        },
    );
    sse(stream)
}

/// Runs `op` on a blocking thread (each does `bpf(2)` calls, may walk a
/// map, the pins or a program's BTF) and answers what it made, or its
/// error.
async fn blocking<T: IntoResponse + Send + 'static>(
    op: impl FnOnce() -> Result<T, ProgramError> + Send + 'static,
) -> Response {
    match tokio::task::spawn_blocking(op).await {
        Ok(Ok(answer)) => answer.into_response(),
        Ok(Err(e)) => program_problem(e),
        Err(e) => internal(e),
    }
}

fn program_problem(e: ProgramError) -> Response {
    let kind = match &e {
        ProgramError::Ebpf(e) => match e {
            EbpfError::Unavailable(_) | EbpfError::NoBpffs(_) => ErrorKind::EbpfUnavailable,
            EbpfError::BadName(_) => ErrorKind::BadName,
            EbpfError::BadObject(_) => ErrorKind::InvalidObject,
            EbpfError::NoProgram(_) => ErrorKind::NoProgram,
            EbpfError::WrongType { .. } => ErrorKind::WrongProgramType,
            EbpfError::IncompatibleMap { .. } => ErrorKind::IncompatibleMap,
            EbpfError::Verifier { .. } => ErrorKind::VerifierRejected,
            EbpfError::Attach { .. } => ErrorKind::AttachFailed,
            EbpfError::NotLoaded(_) => ErrorKind::NotLoaded,
            EbpfError::OtherHook { .. } => ErrorKind::OtherHook,
            EbpfError::Map { .. } => ErrorKind::BadMapRequest,
            EbpfError::Io { .. } => ErrorKind::Internal,
        },
        ProgramError::AlreadyLoaded(_) => ErrorKind::AlreadyLoaded,
        ProgramError::NoHook(_) | ProgramError::BadHook(_) => ErrorKind::BadHook,
        ProgramError::OtherHook { .. } => ErrorKind::OtherHook,
        ProgramError::Store(_) => ErrorKind::Internal,
    };
    problem(kind, e.to_string())
}
