//! `GET /metrics`, the Prometheus text format: on the app's address behind a bearer token
//! (`--metrics-token`), or with no credentials on an address of its own that only the
//! monitoring network reaches (`--metrics-addr`). Without either it is not served.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Router};
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::server::auth::bearer_token;
use crate::server::clock::now_ms;
use crate::server::error::AppError;
use crate::server::services::{evaluation, jobs, pacs_imports, pacs_outbox};
use crate::server::state::AppState;
use crate::server::telemetry;

/// The SHA-256 of the metrics token.
#[derive(Clone)]
struct TokenDigest([u8; 32]);

/// The route on the app's own address, when a token guards it.
pub fn routes(token: Option<&str>) -> OpenApiRouter<AppState> {
    match token {
        Some(token) => OpenApiRouter::new()
            .routes(routes!(guarded_metrics))
            .layer(Extension(TokenDigest(Sha256::digest(token.as_bytes()).into()))),
        None => OpenApiRouter::new(),
    }
}

/// The Prometheus text format, to the bearer of the metrics token (`--metrics-token`, not a
/// user's API token). Served here only when that token is set.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "The metrics", body = String,
        content_type = "text/plain; version=0.0.4; charset=utf-8")))]
async fn guarded_metrics(
    State(state): State<AppState>,
    Extension(TokenDigest(expected)): Extension<TokenDigest>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, AppError> {
    // Compared as digests: the time taken tells nothing about the token.
    let given = bearer_token(&headers).map(|t| <[u8; 32]>::from(Sha256::digest(t.as_bytes())));
    if given != Some(expected) {
        return Err(AppError::Unauthorized);
    }
    scrape(&state).await
}

/// The whole router of the metrics address.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(|State(state): State<AppState>| async move { scrape(&state).await }))
        .with_state(state)
}

/// The recorded figures, and those read now from the database.
async fn scrape(state: &AppState) -> Result<impl IntoResponse, AppError> {
    let queued = jobs::queue_depths(state).await?;
    for (priority, name) in [(0, "interactive"), (1, "backfill")] {
        let count = queued.iter().find(|q| q.priority == priority).map_or(0, |q| q.queued);
        metrics::gauge!("seglab_jobs_queued", "priority" => name).set(count as f64);
    }
    let oldest = queued.iter().map(|q| q.oldest_created_at).min().map_or(0, |at| (now_ms() - at).max(0));
    metrics::gauge!("seglab_jobs_oldest_queued_age_seconds").set(oldest as f64 / 1000.0);
    metrics::gauge!("seglab_evaluation_backlog").set(evaluation::backlog(state).await? as f64);
    metrics::gauge!("seglab_pacs_imports_queued").set(pacs_imports::unfinished(state).await? as f64);
    metrics::gauge!("seglab_pacs_outbox_pending").set(pacs_outbox::pending(state).await? as f64);
    let (size, idle) = (state.db.pool.size(), state.db.pool.num_idle() as u32);
    metrics::gauge!("seglab_db_connections", "state" => "in_use").set(size.saturating_sub(idle) as f64);
    metrics::gauge!("seglab_db_connections", "state" => "idle").set(idle as f64);
    let recorder = telemetry::recorder();
    recorder.run_upkeep();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], recorder.render()))
}
