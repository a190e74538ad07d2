//! What every request handler and server function gets: database, object storage, settings.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use tokio::sync::Notify;

use super::config::Config;
use super::db::Db;
use super::dicomweb::DicomWebClient;
use super::embedded_s3;
use super::error::CliError;
use super::inference::{ProcessRunner, Runner};
use super::login_limit::LoginLimiter;
use super::mask_cache::HeadCache;
use super::oidc;
use super::oip::{AllowedServers, CardRunner, OipRunner};
use super::session_store;
use super::single_flight::SingleFlight;
use super::storage::{Connection, ObjectStore};

/// Memory for decoded mask versions: a few 512×512×300 masks.
const HEAD_CACHE_BYTES: usize = 512 << 20;
/// Imports at once: each holds its files and the decoded mask in memory.
const IMPORTS_AT_ONCE: usize = 2;
/// Mask version files written from their slabs at once: each decodes and gzips a whole mask.
const MASK_FILES_AT_ONCE: usize = 2;
/// Readers' agreements measured at once: each decodes every reading and runs STAPLE.
const AGREEMENTS_AT_ONCE: usize = 2;

#[derive(Clone, Debug)]
pub struct AppState {
    pub db: Db,
    pub store: ObjectStore,
    pub config: Arc<Config>,
    pub leptos_options: LeptosOptions,
    /// Decoded recent mask versions, shared by all requests of this instance.
    pub heads: Arc<HeadCache>,
    pub sessions: session_store::Store,
    /// Runs model versions for the orchestrator's jobs.
    pub runner: Arc<dyn Runner>,
    /// The inference servers model cards may name (`--oip-endpoint`, `--oip-allowed-hosts`).
    pub inference_servers: AllowedServers,
    /// Wakes this instance's idle orchestrator workers when jobs are enqueued here.
    pub jobs_ready: Arc<Notify>,
    /// Wakes this instance's evaluator when a prediction or a human mask version is stored here
    /// (`notify_one`: there is one evaluator, and a wake-up while it is busy is kept for it).
    pub evaluations_ready: Arc<Notify>,
    /// Failed logins per username and client address.
    pub logins: LoginLimiter,
    /// Imports checking and storing their files at once.
    pub imports: Arc<tokio::sync::Semaphore>,
    /// Mask version files being written from their slabs: one writer per version, a few at once.
    pub mask_files: Arc<SingleFlight>,
    /// Readers' agreements being measured: one measure per case, a few at once.
    pub agreements: Arc<SingleFlight>,
    /// The hospital's PACS, when one is configured.
    pub pacs: Option<DicomWebClient>,
    /// The OpenID Connect provider people sign on with, when one is configured.
    pub sso: Option<Arc<oidc::Provider>>,
}

impl std::fmt::Debug for dyn Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Runner")
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

impl AppState {
    /// Connects to the database and object storage named by `config`; without an external S3
    /// endpoint, first starts the embedded one on `embedded_s3_addr` (port 0: any free port).
    pub async fn connect(
        config: Config,
        embedded_s3_addr: std::net::SocketAddr,
        leptos_options: LeptosOptions,
        shutdown: tokio_util::sync::CancellationToken,
        tasks: &tokio_util::task::TaskTracker,
    ) -> Result<AppState, CliError> {
        let connection = match &config.s3.s3_endpoint {
            Some(endpoint) => Connection {
                endpoint: Some(endpoint.clone()),
                public_endpoint: config.s3.s3_public_endpoint.clone(),
                access_key_id: config
                    .s3
                    .s3_access_key_id
                    .clone()
                    .ok_or_else(|| CliError::Config("S3_ACCESS_KEY_ID is required with S3_ENDPOINT".into()))?,
                secret_access_key: config
                    .s3
                    .s3_secret_access_key
                    .clone()
                    .ok_or_else(|| CliError::Config("S3_SECRET_ACCESS_KEY is required with S3_ENDPOINT".into()))?,
            },
            None => {
                // Fresh keys each start: only this process holds them, and URLs last minutes.
                let access_key_id = format!("seglab-{}", uuid::Uuid::new_v4().simple());
                let secret_access_key = uuid::Uuid::new_v4().simple().to_string();
                let root = config.data_dir.join("objects");
                let bound =
                    embedded_s3::start(&root, embedded_s3_addr, &access_key_id, &secret_access_key, shutdown, tasks)
                        .await?;
                Connection {
                    endpoint: Some(format!("http://{bound}")),
                    public_endpoint: config.s3.s3_public_endpoint.clone(),
                    access_key_id,
                    secret_access_key,
                }
            }
        };
        let db = Db::open(&config).await?;
        let sessions = session_store::Store::connect(db.backend, &config.database_url()).await?;
        let store = ObjectStore::new(&config.s3, connection).map_err(CliError::Config)?;
        store.ensure_bucket().await.map_err(|e| CliError::startup("object storage", e))?;
        if config.s3.s3_endpoint.is_some() && !config.s3.s3_cors_origins.is_empty() {
            store
                .allow_cors(&config.s3.s3_cors_origins)
                .await
                .map_err(|e| CliError::startup("object storage CORS rule", e))?;
        }
        let workers = config.orchestrator.workers;
        let program = match &config.orchestrator.inference_program {
            Some(program) => program.clone(),
            None => std::env::current_exe()
                .map_err(|e| CliError::startup("cannot find the seglab binary for inference", e))?,
        };
        let memory = config.orchestrator.inference_memory_mib;
        let local = ProcessRunner::new(store.clone(), program, memory, config.data_dir.join("inference"), workers)
            .map_err(|e| CliError::startup("inference work folder", e))?;
        let orchestrator = &config.orchestrator;
        let inference_servers =
            AllowedServers::new(orchestrator.oip_endpoint.as_deref(), &orchestrator.oip_allowed_hosts)
                .map_err(CliError::Config)?;
        let remote = OipRunner::new(orchestrator, inference_servers.clone())
            .map_err(|e| CliError::startup("inference server client", e))?;
        let runner = CardRunner { local, remote };
        let pacs = DicomWebClient::new(&config.dicomweb).map_err(|e| CliError::startup("DICOMweb client", e))?;
        let sso = match oidc::Settings::from_config(&config.sso).map_err(CliError::Config)? {
            Some(settings) => Some(Arc::new(
                oidc::Provider::new(settings).map_err(|e| CliError::startup("OpenID Connect client", e))?,
            )),
            None => None,
        };
        let logins = LoginLimiter::new(
            std::time::Duration::from_secs(config.login_window_secs),
            config.login_failures_per_username,
            config.login_failures_per_address,
        );
        Ok(AppState {
            db,
            store: store.clone(),
            config: Arc::new(config),
            leptos_options,
            heads: Arc::new(HeadCache::new(HEAD_CACHE_BYTES)),
            sessions,
            runner: Arc::new(runner),
            inference_servers,
            jobs_ready: Arc::new(Notify::new()),
            evaluations_ready: Arc::new(Notify::new()),
            logins,
            imports: Arc::new(tokio::sync::Semaphore::new(IMPORTS_AT_ONCE)),
            mask_files: Arc::new(SingleFlight::new(MASK_FILES_AT_ONCE)),
            agreements: Arc::new(SingleFlight::new(AGREEMENTS_AT_ONCE)),
            pacs,
            sso,
        })
    }
}
