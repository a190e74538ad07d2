//! `GET /metrics`, the Prometheus text format: on the app's address behind a bearer token
//! (`--metrics-token`), or with no credentials on an address of its own that only the
//! monitoring network reaches (`--metrics-addr`). Without either it is not served.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::server::auth::bearer_token;
use crate::server::clock::now_ms;
use crate::server::error::AppError;
use crate::server::services::{evaluation, jobs, pacs_imports, pacs_outbox};
use crate::server::state::AppState;
use crate::server::telemetry;

/// The route on the app's own address, when a token guards it.
pub fn routes(token: Option<&str>) -> Router<AppState> {
    match token {
        Some(token) => {
            let expected = Sha256::digest(token.as_bytes());
            Router::new().route(
                "/metrics",
                get(move |State(state): State<AppState>, headers: HeaderMap| async move {
                    // Compared as digests: the time taken tells nothing about the token.
                    let given = bearer_token(&headers).map(|t| Sha256::digest(t.as_bytes()));
                    if given != Some(expected) {
                        return Err(AppError::Unauthorized);
                    }
                    scrape(&state).await
                }),
            )
        }
        None => Router::new(),
    }
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
