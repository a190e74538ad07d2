//! The HTTP surface: REST routes for scripts and API clients (one module per resource, all
//! thin: they authenticate, parse, and call `services`), and the layers around them and the
//! pages, which `crate::startup` mounts.

use axum::extract::DefaultBodyLimit;
use axum::{middleware, Router};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

mod cases;
mod datasets;
mod extract;
mod jobs;
mod labels;
mod pacs;
mod probes;
mod readings;
mod registry;
mod session;
mod text_check;
mod users;
mod workflow;
mod worklist;

use crate::server::auth;
use crate::server::config::ServeArgs;
use crate::server::state::AppState;

/// The REST API, usable on its own (tests, scripts) or inside [`router`].
fn rest_routes(args: &ServeArgs) -> Router<AppState> {
    Router::new()
        .merge(probes::routes())
        .merge(session::routes())
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

/// The REST routes and `pages` (the rendered pages, their server functions and the static
/// files), behind the layers every request passes: text check, cross-site check, session,
/// body limits, tracing.
pub fn router(state: AppState, args: &ServeArgs, pages: Router<AppState>) -> Router {
    Router::new()
        .merge(rest_routes(args))
        .merge(pages)
        .layer(middleware::from_fn(text_check::refuse_control_characters))
        .layer(middleware::from_fn_with_state(state.clone(), auth::reject_cross_site))
        .layer(state.sessions.clone().layer(args.cookie_secure))
        .layer(DefaultBodyLimit::max(args.max_body_bytes))
        .layer(RequestBodyLimitLayer::new(args.max_upload_bytes))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
