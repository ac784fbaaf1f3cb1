//! `/v1/process`, `/v1/upgrade`, `/v1/reload`: the server process itself.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use hotswap_api::ErrorKind;

use super::{problem, Admin, AdminQuery};
use crate::control::ControlError;
use crate::http::ConnectionHandle;
use hotswap_api::wire::ReloadQuery;

/// `GET /v1/process`: pid, generation, binary.
pub(super) async fn show(State(admin): State<Admin>) -> Response {
    Json(admin.controller.process()).into_response()
}

/// `POST /v1/upgrade`: answers once the new process serves (200, with the
/// timings) or with why it did not (this process serves on).
pub(super) async fn upgrade(
    State(admin): State<Admin>,
    Extension(connection): Extension<ConnectionHandle>,
) -> Response {
    // This request waits for the drain; the drain must not wait for it.
    connection.exempt_from_drain();
    match admin.controller.upgrade().await {
        Ok(report) => Json(report).into_response(),
        Err(e) => control_problem(e, ErrorKind::UpgradeFailed),
    }
}

/// `POST /v1/reload`: re-reads the config file and applies it, or changes
/// nothing and says why. With `?dry_run=true`, only says what it would do.
pub(super) async fn reload(
    State(admin): State<Admin>,
    AdminQuery(q): AdminQuery<ReloadQuery>,
) -> Response {
    let answer = match q.dry_run {
        true => admin.controller.plan_reload().await,
        false => admin.controller.reload().await,
    };
    match answer {
        Ok(report) => Json(report).into_response(),
        Err(e) => control_problem(e, ErrorKind::ReloadRejected),
    }
}

fn control_problem(e: ControlError, kind: ErrorKind) -> Response {
    match e {
        ControlError::Stopping => problem(ErrorKind::Stopping, e.to_string()),
        ControlError::Busy => problem(ErrorKind::UpgradeInProgress, e.to_string()),
        ControlError::Failed(why) => problem(kind, why),
    }
}
