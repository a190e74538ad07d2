//! Start-up, the one place the app is put together: it connects the state, starts the
//! background work, mounts the REST API and the pages of [`crate::app`] on one router, and
//! serves. The binary (through [`crate::cli`]), the integration tests and the benchmarks all
//! start the app here, so `server` never names the front end.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::{shell, App};
use crate::server::config::{Config, ServeArgs};
use crate::server::error::CliError;
use crate::server::http;
use crate::server::listener::without_delay;
use crate::server::services::{evaluation, orchestrator, pacs, pacs_imports, sweeper, volume_slabs};
use crate::server::state::AppState;
use crate::server::telemetry;

/// A started app, listening, not yet serving.
pub struct Application {
    state: AppState,
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    drain: Duration,
    /// Stops the embedded S3 endpoint once the requests in flight, which may still use it,
    /// have finished.
    storage_stop: CancellationToken,
}

impl Application {
    /// Connects to the backend `config` names (starting the embedded S3 endpoint on the
    /// embedded default), cuts volumes an older release stored whole into slabs, starts the orchestrator, the evaluator and the sweeper on `tasks`,
    /// and listens on `args.addr` (port 0: any free port). Everything stops with `shutdown`.
    pub async fn build(
        config: Config,
        args: &ServeArgs,
        shutdown: CancellationToken,
        tasks: &TaskTracker,
    ) -> Result<Application, CliError> {
        // Installed before anything is counted: figures recorded without it are lost.
        telemetry::recorder();
        let listener = TcpListener::bind(args.addr)
            .await
            .map_err(|e| CliError::startup(&format!("cannot listen on {}", args.addr), e))?;
        let address = listener.local_addr().map_err(|e| CliError::startup("cannot read the bound address", e))?;
        let embedded_s3_addr = config.s3.embedded_s3_addr;
        let storage_stop = CancellationToken::new();
        let state =
            AppState::connect(config, embedded_s3_addr, leptos_options(args, address), storage_stop.clone(), tasks)
                .await?;
        volume_slabs::cut_stored_files(&state)
            .await
            .map_err(|e| CliError::startup("cannot cut the volumes stored before slabs", e))?;
        tasks.spawn(sweeper::run(state.clone(), shutdown.clone()));
        orchestrator::start(&state, &shutdown, tasks);
        evaluation::start(&state, &shutdown, tasks);
        pacs::start(&state, &shutdown, tasks);
        pacs_imports::start(&state, &shutdown, tasks);
        let drain = Duration::from_secs(args.drain_secs);
        if let Some(addr) = args.metrics_addr {
            let metrics = TcpListener::bind(addr)
                .await
                .map_err(|e| CliError::startup(&format!("cannot listen for metrics on {addr}"), e))?;
            tasks.spawn(serve(metrics, http::metrics::router(state.clone()), shutdown.clone(), drain));
        }
        Ok(Application { router: router(state.clone(), args), state, listener, shutdown, drain, storage_stop })
    }

    /// The address it listens on, with the port chosen when `args.addr` asked for any.
    pub fn address(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` is cancelled, then finishes the requests in flight (for at most
    /// `--drain-secs`).
    pub async fn run_until_stopped(self) -> Result<(), CliError> {
        let served = serve(self.listener, self.router, self.shutdown, self.drain).await;
        self.storage_stop.cancel();
        served
    }
}

/// The whole application over `state`: REST, pages, server functions, static files.
pub fn router(state: AppState, args: &ServeArgs) -> Router {
    let leptos_options = state.leptos_options.clone();
    let context_state = state.clone();
    let pages = Router::new()
        .leptos_routes_with_context(
            &state,
            generate_route_list(App),
            move || provide_context(context_state.clone()),
            move || shell(leptos_options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell));
    http::router(state, args, pages)
}

/// Serves `router` on `listener` until `shutdown` is cancelled; then stops accepting
/// connections and lets the requests in flight finish, cutting off any still running after
/// `drain`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    drain: Duration,
) -> Result<(), CliError> {
    let listener = without_delay(listener, "an app");
    // With each connection's address, which the login limits count per client.
    let server = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let drained = async {
        shutdown.cancelled().await;
        tokio::time::sleep(drain).await;
    };
    tokio::select! {
        served = server => served.map_err(|e| CliError::startup("the web server stopped", e)),
        _ = drained => {
            tracing::warn!(drain_secs = drain.as_secs(), "requests still running after the drain time were cut off");
            Ok(())
        }
    }
}

fn leptos_options(args: &ServeArgs, address: SocketAddr) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name("seglab")
        .site_root(args.site_root.as_str())
        .site_pkg_dir("pkg")
        .site_addr(address)
        .build()
}
