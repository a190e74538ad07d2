//! The HTTP surface: REST routes for scripts and API clients (one module per resource, all
//! thin: they authenticate, parse, and call `services`), the server-rendered pages and their
//! server functions, and the layers around them.

use axum::extract::DefaultBodyLimit;
use axum::{middleware, Router};
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

mod cases;
mod datasets;
mod extract;
mod jobs;
mod labels;
mod probes;
mod registry;
mod session;
mod text_check;
mod users;
mod workflow;
mod worklist;

use crate::app::{shell, App};
use crate::server::auth;
use crate::server::config::ServeArgs;
use crate::server::error::CliError;
use crate::server::listener::without_delay;
use crate::server::state::AppState;

/// The REST API, usable on its own (tests, scripts) or inside [`router`].
fn rest_routes(args: &ServeArgs) -> Router<AppState> {
    Router::new()
        .merge(probes::routes())
        .merge(session::routes())
        .merge(cases::routes(args.max_upload_bytes))
        .merge(labels::routes())
        .merge(datasets::routes())
        .merge(registry::routes(args.max_upload_bytes))
        .merge(jobs::routes())
        .merge(users::routes())
        .merge(workflow::routes())
        .merge(worklist::routes())
}

/// The whole application: REST, pages, server functions, static files.
pub fn router(state: AppState, args: &ServeArgs) -> Router {
    let leptos_options = state.leptos_options.clone();
    let routes = generate_route_list(App);
    let context_state = state.clone();
    Router::new()
        .merge(rest_routes(args))
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(context_state.clone()),
            move || shell(leptos_options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(middleware::from_fn(text_check::refuse_control_characters))
        .layer(middleware::from_fn_with_state(state.clone(), auth::reject_cross_site))
        .layer(state.sessions.clone().layer(args.cookie_secure))
        .layer(DefaultBodyLimit::max(args.max_body_bytes))
        .layer(RequestBodyLimitLayer::new(args.max_upload_bytes))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves until `shutdown` is cancelled, then finishes the requests in flight.
pub async fn serve(state: AppState, args: &ServeArgs, shutdown: CancellationToken) -> Result<(), CliError> {
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| CliError::startup(&format!("cannot listen on {}", args.addr), e))?;
    let listener = without_delay(listener, "an app");
    // With each connection's address, which the login limits count per client.
    axum::serve(listener, router(state, args).into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(|e| CliError::startup("the web server stopped", e))
}
