//! The HTTP surface: REST routes for scripts and API clients (one module per resource, all
//! thin: they authenticate, parse, and call `services`), and the layers around them and the
//! pages, which `crate::startup` mounts.

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::HeaderName;
use axum::{middleware, Router};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa_axum::router::OpenApiRouter;

mod cases;
mod datasets;
mod extract;
mod jobs;
mod labels;
pub mod metrics;
mod openapi;
mod pacs;
mod probes;
mod readings;
mod registry;
mod session;
mod sso;
mod text_check;
mod users;
mod workflow;
mod worklist;

use crate::server::auth;
use crate::server::config::ServeArgs;
use crate::server::state::AppState;
use crate::server::telemetry;

/// The REST API with its description (see `openapi`).
fn rest_routes(args: &ServeArgs) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(probes::routes())
        .merge(metrics::routes(args.metrics_token.as_deref()))
        .merge(session::routes())
        .merge(sso::routes(args.cookie_secure))
        .merge(cases::routes(args.max_upload_bytes))
        .merge(labels::routes())
        .merge(pacs::routes())
        .merge(datasets::routes())
        .merge(registry::routes(args.max_upload_bytes))
        .merge(jobs::routes())
        .merge(users::routes())
        .merge(workflow::routes())
        .merge(readings::routes())
        .merge(worklist::routes())
}

/// The REST routes with their OpenAPI document and `pages` (the rendered pages, their server
/// functions and the static files), counted by route in the metrics, behind the layers every request passes: text
/// check, cross-site check, session, body limits, then tracing under a request id (the
/// client's `X-Request-Id` if it sent one, else a fresh UUID), which the answer carries back.
pub fn router(state: AppState, args: &ServeArgs, pages: Router<AppState>) -> Router {
    let x_request_id = HeaderName::from_static(REQUEST_ID);
    Router::new()
        .merge(openapi::serve_documented(rest_routes(args)))
        .merge(pages)
        .route_layer(middleware::from_fn(telemetry::track_requests))
        .layer(middleware::from_fn(text_check::refuse_control_characters))
        .layer(middleware::from_fn_with_state(state.clone(), auth::reject_cross_site))
        .layer(state.sessions.clone().layer(args.cookie_secure))
        .layer(DefaultBodyLimit::max(args.max_body_bytes))
        .layer(RequestBodyLimitLayer::new(args.max_upload_bytes))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
                    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
                })
                // One access line per answer, with its status and latency.
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
        .with_state(state)
}

/// The header a request's id travels in, both ways.
const REQUEST_ID: &str = "x-request-id";
