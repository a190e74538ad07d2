//! The embedded default's object storage: a real S3 endpoint (s3s over a local folder)
//! served from this process, so the app always goes through `aws-sdk-s3` and browsers get
//! real SigV4 presigned URLs, with no external service to install.

use std::net::SocketAddr;
use std::path::Path;

use axum::error_handling::HandleError;
use axum::http::{header, Method, StatusCode};
use axum::Router;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::cors::{Any, CorsLayer};

use super::error::CliError;

/// Serves `root` as S3 on `addr` until `shutdown`; returns the bound address.
pub async fn start(
    root: &Path,
    addr: SocketAddr,
    access_key_id: &str,
    secret_access_key: &str,
    shutdown: CancellationToken,
    tasks: &TaskTracker,
) -> Result<SocketAddr, CliError> {
    std::fs::create_dir_all(root)
        .map_err(|e| CliError::startup(&format!("cannot create {}", root.display()), e))?;
    let fs = s3s_fs::FileSystem::new(root).map_err(|e| CliError::startup("embedded object storage", format!("{e:?}")))?;
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(access_key_id, secret_access_key));
    let s3 = builder.build();

    // Presigned URLs are the credential; any page origin may read with them.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD])
        .allow_headers([header::RANGE])
        .expose_headers([header::CONTENT_LENGTH, header::ETAG]);
    let app = Router::new()
        .fallback_service(HandleError::new(s3, |err: s3s::HttpError| async move {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{err:?}"))
        }))
        .layer(cors);

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::startup(&format!("embedded object storage cannot listen on {addr}"), e))?;
    let bound = listener.local_addr().map_err(|e| CliError::startup("embedded object storage", e))?;
    tasks.spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(err) = served {
            tracing::error!(%err, "embedded object storage stopped");
        }
    });
    tracing::info!(%bound, root = %root.display(), "embedded S3 endpoint running");
    Ok(bound)
}
