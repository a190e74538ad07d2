//! Health probes for load balancers and orchestration: `/healthz` (the process runs) and
//! `/readyz` (the database and object storage answer).

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::Caller;
use crate::server::error::AppError;
use crate::server::identity::Role;
use crate::server::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz))
}

/// Whether the process runs.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "It runs", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}

/// What `/readyz` found of each dependency: `ok`, else `unavailable` (the reason, to admins).
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Readiness {
    database: String,
    object_storage: String,
}

/// Whether the database and object storage answer: 200 when both do, else 503. Anyone may
/// ask, so a failure reads `unavailable`: its reason (hosts, driver messages) goes to the log
/// and to an admin caller.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "A dependency does not answer", body = Readiness),
    ))]
async fn readyz(State(state): State<AppState>, mut parts: Parts) -> impl IntoResponse {
    let (db, store) = tokio::join!(state.db.ping(), state.store.ping());
    for (dependency, result) in [("database", &db), ("object storage", &store)] {
        if let Err(err) = result {
            tracing::warn!(dependency, %err, "not ready");
        }
    }
    // The caller is looked up only when there is a reason to show, and never without the
    // database, which alone could tell who it is; anyone it cannot name is anonymous.
    let admin = db.is_ok()
        && store.is_err()
        && Caller::from_request_parts(&mut parts, &state).await.is_ok_and(|Caller(user)| user.has_role(Role::Admin));
    let status = |r: &Result<(), AppError>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) if admin => e.to_string(),
        Err(_) => "unavailable".to_string(),
    };
    let code = if db.is_ok() && store.is_ok() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(Readiness { database: status(&db), object_storage: status(&store) }))
}
