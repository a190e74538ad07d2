//! Configuration from command-line flags and environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use super::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(name = "seglab", version, about = "Segmentation labeling platform with a model lifecycle")]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web server (pages, REST API) and its background tasks.
    Serve(ServeArgs),
    /// Import a NIfTI image (and optionally its mask) as a new case.
    Import(ImportArgs),
    /// Import DICOM series (files, folders or zips) as cases, one per series.
    ImportDicom(ImportDicomArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Inspect the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Issue and revoke API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Inspect stored objects.
    #[command(subcommand)]
    Objects(ObjectsCommand),
    /// Work with dataset snapshots.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Copy the SQLite database consistently, while the server runs, into a new or empty
    /// folder, with the list of the objects it references (`backup DIR`); or check such a
    /// copy (`backup verify DIR`).
    Backup(BackupArgs),
    /// Run one model on one image (the orchestrator's child process).
    #[command(hide = true)]
    Infer(InferArgs),
}

/// What `seglab infer` is given: files in, a file out, and the card's settings.
#[derive(Debug, Args)]
pub struct InferArgs {
    /// The ONNX model.
    #[arg(long)]
    pub model: PathBuf,
    /// The image: float32 little-endian voxels in file order.
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write one label byte per voxel.
    #[arg(long)]
    pub output: PathBuf,
    /// Image size along i, j, k.
    #[arg(long, value_delimiter = ',', num_args = 1)]
    pub dims: Vec<usize>,
    /// `none`, `zscore` or `minmax`.
    #[arg(long)]
    pub normalisation: String,
    /// The label value of each output channel.
    #[arg(long, value_delimiter = ',', num_args = 1)]
    pub channels: Vec<u8>,
    /// Memory the inference may allocate, in MiB (its data segment).
    #[arg(long)]
    pub memory_mib: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum ObjectsCommand {
    /// Check that every object the database records is in storage with its recorded size and
    /// SHA-256; exits non-zero naming the ones that are not.
    Verify,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub check: Option<BackupCommand>,
    /// The new or empty folder to back up into.
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Check a backup: the copy's SHA-256 and SQLite integrity, its audit chain, its object
    /// list, and that storage holds every listed object with its recorded size and SHA-256.
    Verify { dir: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Write a snapshot's images and approved masks into a new or empty folder, every file
    /// checked against its SHA-256.
    Export {
        /// The snapshot's id (`GET /datasets`).
        id: String,
        dir: PathBuf,
        #[arg(long, value_enum)]
        format: ExportLayout,
        /// Also write each mask of a case imported from DICOM as a DICOM Segmentation
        /// (`segmentations/{identifier}.seg.dcm`), referencing its source series.
        #[arg(long)]
        dicom_seg: bool,
    },
}

/// What `dataset export` writes.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ExportLayout {
    /// nnU-Net v2 raw data (imagesTr, labelsTr, imagesTs, labelsTs, dataset.json, splits_final.json).
    Nnunet,
    /// A MONAI datalist (images, labels, datalist.json).
    Monai,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; exits non-zero and names the first broken row if it is broken.
    Verify {
        /// A head printed earlier by `audit head` (`SEQ:HASH`), kept outside the database: the
        /// chain must still hold that row with that hash, so a rewrite of the whole database
        /// is caught too.
        #[arg(long)]
        expect_head: Option<String>,
    },
    /// Print the chain's head (`SEQ:HASH`) to keep somewhere outside the database.
    Head,
    /// Seal the current head with the audit key (SEGLAB_AUDIT_KEY) after checking the chain:
    /// for a log written before the key was configured.
    Seal,
}

#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// Address to listen on. cargo-leptos sets LEPTOS_SITE_ADDR from Cargo.toml.
    #[arg(long, env = "LEPTOS_SITE_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    /// Folder holding the built front end (JS, WASM, CSS, public assets).
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: String,
    /// Do not create demo cases and a demo user when the database is empty (they are only ever
    /// created on the embedded default).
    #[arg(long, env = "SEGLAB_NO_DEMO")]
    pub no_demo: bool,
    /// Password of the demo user (random when unset); printed when the user is created.
    #[arg(long, env = "SEGLAB_DEMO_PASSWORD", hide_env_values = true)]
    pub demo_password: Option<String>,
    /// Mark the session cookie `Secure` (sent over HTTPS only; browsers also send it to
    /// http://localhost). Turn off only behind plain-HTTP test set-ups.
    #[arg(long, env = "SEGLAB_COOKIE_SECURE", default_value_t = true, action = clap::ArgAction::Set)]
    pub cookie_secure: bool,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "SEGLAB_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Largest case upload (`POST /cases`) accepted, in bytes.
    #[arg(long, env = "SEGLAB_MAX_UPLOAD_BYTES", default_value_t = 1 << 30)]
    pub max_upload_bytes: usize,
    /// Serve `GET /metrics` (Prometheus) without credentials on this address of its own,
    /// which only the monitoring network should reach.
    #[arg(long, env = "SEGLAB_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Serve `GET /metrics` on the app's own address to callers sending `Authorization:
    /// Bearer <this token>`.
    #[arg(long, env = "SEGLAB_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// On SIGTERM, how long requests in flight may take to finish before they are cut off.
    #[arg(long, env = "SEGLAB_DRAIN_SECS", default_value_t = 30)]
    pub drain_secs: u64,
}

/// `serve`'s options alone, for running `seglab` without a subcommand.
#[derive(Debug, Parser)]
pub struct ServeOnly {
    #[command(flatten)]
    pub args: ServeArgs,
}

impl ServeArgs {
    /// The options `seglab serve` would get with no flags: defaults and environment.
    pub(crate) fn from_env() -> ServeArgs {
        ServeOnly::parse_from(["seglab"]).args
    }
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Display name of the new case.
    #[arg(long)]
    pub name: String,
    /// The image, `.nii` or `.nii.gz`.
    pub image: PathBuf,
    /// An initial mask of the same size; an empty one is created when omitted.
    #[arg(long)]
    pub mask: Option<PathBuf>,
    /// Label names, e.g. `1=liver,2=tumour`; default `1=label 1`.
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ImportDicomArgs {
    /// DICOM files, folders of them (walked), or zips.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The series to import (its SeriesInstanceUID), or `all` for a case per series; needed
    /// when the files hold several series.
    #[arg(long)]
    pub series: Option<String>,
    /// Display name of the new case; by default the series' modality and description.
    #[arg(long)]
    pub name: Option<String>,
    /// Label names, e.g. `1=liver,2=tumour`; default `1=label 1`.
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user and print an API token for `Authorization: Bearer <token>`.
    Add {
        username: String,
        /// Role to grant: labeler, ml_engineer or admin; repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Read a password for browser login from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Stop a user's sessions and tokens at once; they cannot log in until enabled.
    Disable { username: String },
    /// Let a disabled user work again.
    Enable { username: String },
    /// Grant or take back a role.
    #[command(subcommand)]
    Role(RoleCommand),
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Grant `role` (labeler, ml_engineer or admin).
    Add { username: String, role: String },
    /// Take `role` back; a user keeps at least one role.
    Remove { username: String, role: String },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue another API token for a user.
    Add {
        username: String,
        /// Days the token stays valid (default: until revoked).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Revoke a token at once; read from standard input when omitted.
    Revoke { token: Option<String> },
}

/// Settings shared by every command: where metadata and objects live.
#[derive(Debug, Args, Clone)]
pub struct Config {
    /// Folder for the embedded defaults (SQLite file, embedded object store).
    #[arg(long, global = true, env = "SEGLAB_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// `postgres://…` or `sqlite://…`; default: SQLite in the data folder.
    #[arg(long, global = true, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Largest number of pooled database connections.
    #[arg(long, global = true, env = "SEGLAB_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,
    /// Largest volume (in voxels) a case may have; an import declaring more is refused from
    /// its header, before anything is inflated.
    #[arg(long, global = true, env = "SEGLAB_MAX_VOLUME_VOXELS", default_value_t = crate::nifti_io::DEFAULT_MAX_VOXELS)]
    pub max_volume_voxels: u64,
    /// Secret that seals the audit chain's head (HMAC-SHA256) at every append; `audit verify`
    /// with the same key then detects a rewrite by someone who lacks it. Give every instance
    /// and command the same key.
    #[arg(long, global = true, env = "SEGLAB_AUDIT_KEY", hide_env_values = true)]
    pub audit_key: Option<String>,
    /// Failed logins per username within a window before further attempts get 429 (0: no limit).
    #[arg(long, global = true, env = "SEGLAB_LOGIN_FAILURES_PER_USERNAME", default_value_t = 10)]
    pub login_failures_per_username: u32,
    /// Failed logins per client address within a window before further attempts get 429 (0:
    /// no limit, for instances behind a proxy, where every client has the proxy's address).
    #[arg(long, global = true, env = "SEGLAB_LOGIN_FAILURES_PER_ADDRESS", default_value_t = 50)]
    pub login_failures_per_address: u32,
    /// The window failed logins are counted in, in seconds.
    #[arg(long, global = true, env = "SEGLAB_LOGIN_WINDOW_SECS", default_value_t = 900)]
    pub login_window_secs: u64,

    /// Whether a labeler may take an unassigned case (`true` or `false`); a labeler's first
    /// save on an unassigned case then takes it. Default: on for the embedded default, where one
    /// team member often does everything, off with an external database or object store.
    #[arg(long, global = true, env = "SEGLAB_SELF_ASSIGNMENT")]
    pub self_assignment: Option<bool>,
    /// What a DICOM import keeps of who the patient is (name, ID, birth date, accession number,
    /// study date and the like): `keep` stores them where only admins can read them, `drop`
    /// stores none. Labelers see a pseudonym either way.
    #[arg(long, global = true, env = "SEGLAB_DICOM_IDENTIFIERS", value_enum, default_value_t = IdentifierPolicy::Keep)]
    pub dicom_identifiers: IdentifierPolicy,
    /// `text` for people, `json` (one object per line, with each request's id) for log
    /// collectors. Filtered by `RUST_LOG` (default `info`).
    #[arg(long, global = true, env = "SEGLAB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub s3: S3Config,
    #[command(flatten)]
    pub orchestrator: OrchestratorConfig,
    #[command(flatten)]
    pub dicomweb: DicomWebConfig,
    #[command(flatten)]
    pub sso: SsoConfig,
}

/// Single sign-on through an OpenID Connect provider (Keycloak, Entra ID, Okta, …), and whether
/// local passwords still log in.
#[derive(Debug, Args, Clone)]
pub struct SsoConfig {
    /// The provider's issuer URL, as its discovery document names it; without it, no single
    /// sign-on.
    #[arg(long, global = true, env = "SEGLAB_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// This app's client id at the provider.
    #[arg(long, global = true, env = "SEGLAB_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// This app's client secret at the provider (none for a public client, which PKCE alone
    /// protects).
    #[arg(long, global = true, env = "SEGLAB_OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<String>,
    /// The URL browsers reach this app at, such as `https://seglab.example.org`: the provider
    /// sends them back to `{url}/auth/oidc/callback`, and after logging out to `{url}/login`.
    #[arg(long, global = true, env = "SEGLAB_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The ID-token claim listing the user's groups (or roles) at the provider.
    #[arg(long, global = true, env = "SEGLAB_OIDC_ROLES_CLAIM", default_value = "groups")]
    pub oidc_roles_claim: String,
    /// Which provider group gives which seglab role, as `group=role` pairs, comma-separated:
    /// `radiology=labeler,radiology-seniors=reviewer,ml=ml_engineer,it=admin`. A user is given
    /// every role their groups map to on each login; one whose groups map to none is refused.
    #[arg(long, global = true, env = "SEGLAB_OIDC_ROLE_MAP", value_delimiter = ',')]
    pub oidc_role_map: Vec<String>,
    /// The ID-token claim that becomes the seglab username.
    #[arg(long, global = true, env = "SEGLAB_OIDC_USERNAME_CLAIM", default_value = "preferred_username")]
    pub oidc_username_claim: String,
    /// The provider's name on the login page's button.
    #[arg(long, global = true, env = "SEGLAB_OIDC_DISPLAY_NAME", default_value = "single sign-on")]
    pub oidc_display_name: String,
    /// Whether local usernames and passwords log in (`true` or `false`). With single sign-on,
    /// `false` leaves the provider as the only way in for people; API tokens keep working for
    /// scripts.
    #[arg(long, global = true, env = "SEGLAB_PASSWORD_LOGIN", default_value_t = true, action = clap::ArgAction::Set)]
    pub password_login: bool,
}

/// The hospital's PACS, reached over DICOMweb (QIDO-RS, WADO-RS, STOW-RS).
#[derive(Debug, Args, Clone)]
pub struct DicomWebConfig {
    /// The DICOMweb root, such as `http://pacs:8042/dicom-web`; without it, no PACS.
    #[arg(long, global = true, env = "SEGLAB_DICOMWEB_URL")]
    pub dicomweb_url: Option<String>,
    /// User for HTTP basic authentication at the PACS.
    #[arg(long, global = true, env = "SEGLAB_DICOMWEB_USERNAME")]
    pub dicomweb_username: Option<String>,
    #[arg(long, global = true, env = "SEGLAB_DICOMWEB_PASSWORD", hide_env_values = true)]
    pub dicomweb_password: Option<String>,
    /// A PACS request taking longer fails (as the PACS being unavailable).
    #[arg(long, global = true, env = "SEGLAB_DICOMWEB_TIMEOUT_SECS", default_value_t = 60)]
    pub dicomweb_timeout_secs: u64,
    /// Store each approved mask version of a DICOM case in the PACS, as a SEG, on approval.
    #[arg(long, global = true, env = "SEGLAB_PACS_SEND_ON_APPROVAL")]
    pub pacs_send_on_approval: bool,
    /// Wait before retrying a send that found the PACS down; doubles with each attempt, up to
    /// an hour.
    #[arg(long, global = true, env = "SEGLAB_PACS_RETRY_BASE_MS", default_value_t = 5000)]
    pub pacs_retry_base_ms: u64,
}

/// What a DICOM import keeps of the patient's identifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum IdentifierPolicy {
    /// Stored apart from the case, readable by admins only (each reading audited).
    Keep,
    /// Not stored at all.
    Drop,
}

/// The orchestrator's workers in this instance and how jobs retry.
#[derive(Debug, Args, Clone)]
pub struct OrchestratorConfig {
    /// Model jobs this instance runs at once (0: leave them to other instances).
    #[arg(long, global = true, env = "SEGLAB_WORKERS", default_value_t = 1)]
    pub workers: usize,
    /// A job attempt that runs longer fails (and may retry).
    #[arg(long, global = true, env = "SEGLAB_JOB_TIMEOUT_SECS", default_value_t = 600)]
    pub job_timeout_secs: u64,
    /// Attempts before a job is marked failed.
    #[arg(long, global = true, env = "SEGLAB_JOB_MAX_ATTEMPTS", default_value_t = 3)]
    pub job_max_attempts: u32,
    /// Wait before the first retry; doubles with each further attempt.
    #[arg(long, global = true, env = "SEGLAB_JOB_RETRY_BASE_MS", default_value_t = 5000)]
    pub job_retry_base_ms: u64,
    /// The program run as `PROGRAM infer …` for each inference; default: this `seglab` binary.
    #[arg(long, global = true, env = "SEGLAB_INFERENCE_PROGRAM")]
    pub inference_program: Option<PathBuf>,
    /// Largest case (in voxels) a model runs on in this instance: inference holds the image as
    /// float32 and the logits of every output channel, several times the image's size.
    #[arg(long, global = true, env = "SEGLAB_MAX_INFERENCE_VOXELS", default_value_t = 64 << 20)]
    pub max_inference_voxels: u64,
    /// Memory one in-process inference (its child process) may allocate, in MiB: a model that
    /// needs more fails its job with that reason instead of pressing on the machine.
    #[arg(long, global = true, env = "SEGLAB_INFERENCE_MEMORY_MIB", default_value_t = 8192)]
    pub inference_memory_mib: u64,
    /// The Open Inference Protocol v2 server of `oip-v2` versions whose card names none; cards
    /// may also name other base URLs on its host and port.
    #[arg(long, global = true, env = "SEGLAB_OIP_ENDPOINT")]
    pub oip_endpoint: Option<String>,
    /// Further inference servers a card's `artifact.endpoint` may name: `host` (any port) or
    /// `host:port`; repeat or comma-separate. Case images go nowhere else.
    #[arg(long, global = true, env = "SEGLAB_OIP_ALLOWED_HOSTS", value_delimiter = ',')]
    pub oip_allowed_hosts: Vec<String>,
    /// Largest answer read from an inference server, in bytes: a longer one fails the request
    /// as soon as it passes this. Each request in flight may hold this much.
    #[arg(long, global = true, env = "SEGLAB_OIP_MAX_ANSWER_BYTES", default_value_t = 512 << 20)]
    pub oip_max_answer_bytes: u64,
    /// One request to an inference server that takes longer fails (and may be retried).
    #[arg(long, global = true, env = "SEGLAB_OIP_TIMEOUT_SECS", default_value_t = 300)]
    pub oip_timeout_secs: u64,
    /// Requests per inference before giving up, on connection failures, 429 and 5xx answers.
    #[arg(long, global = true, env = "SEGLAB_OIP_ATTEMPTS", default_value_t = 3)]
    pub oip_attempts: u32,
    /// Requests to inference servers this instance has in flight at once.
    #[arg(long, global = true, env = "SEGLAB_OIP_CONCURRENCY", default_value_t = 4)]
    pub oip_concurrency: usize,
    /// Send tensors to inference servers as JSON only, never with the binary tensor extension
    /// (a server that refuses the extension gets JSON anyway, from its first refusal on).
    #[arg(long, global = true, env = "SEGLAB_OIP_JSON_TENSORS")]
    pub oip_json_tensors: bool,
}

#[derive(Debug, Args, Clone)]
pub struct S3Config {
    /// External S3 endpoint (AWS, Garage, MinIO); when unset, an S3 endpoint over
    /// `<data-dir>/objects` runs inside this process.
    #[arg(long, global = true, env = "S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Endpoint written into presigned URLs when browsers reach storage by another address.
    #[arg(long, global = true, env = "S3_PUBLIC_ENDPOINT")]
    pub s3_public_endpoint: Option<String>,
    #[arg(long, global = true, env = "S3_BUCKET", default_value = "seglab")]
    pub s3_bucket: String,
    #[arg(long, global = true, env = "S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    #[arg(long, global = true, env = "S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,
    #[arg(long, global = true, env = "S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
    /// Prefix for every object key, to share a bucket.
    #[arg(long, global = true, env = "S3_KEY_PREFIX", default_value = "")]
    pub s3_key_prefix: String,
    /// Address of the embedded S3 endpoint (only without --s3-endpoint).
    #[arg(long, global = true, env = "SEGLAB_EMBEDDED_S3_ADDR", default_value = "127.0.0.1:3900")]
    pub embedded_s3_addr: SocketAddr,
    /// Page origin allowed to fetch presigned URLs from an external bucket (CORS rule set at
    /// start; repeat or comma-separate for several). The embedded endpoint allows any origin.
    #[arg(long, global = true, env = "S3_CORS_ORIGINS", value_delimiter = ',')]
    pub s3_cors_origins: Vec<String>,
    /// Lifetime of presigned URLs, in seconds.
    #[arg(long, global = true, env = "SEGLAB_PRESIGN_TTL_SECS", default_value_t = 300)]
    pub presign_ttl_secs: u64,
}

impl Config {
    /// The zero-dependency default: SQLite and the embedded object store in the data folder.
    pub(crate) fn is_embedded_default(&self) -> bool {
        self.database_url.is_none() && self.s3.s3_endpoint.is_none()
    }

    /// Whether labelers may take unassigned cases themselves.
    pub(crate) fn allows_self_assignment(&self) -> bool {
        self.self_assignment.unwrap_or_else(|| self.is_embedded_default())
    }

    /// Where uploads and files made from them wait on their way to object storage.
    pub(crate) fn scratch_dir(&self) -> PathBuf {
        self.data_dir.join("uploads")
    }

    /// The database URL, defaulting to a SQLite file in the data folder.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", self.data_dir.join("seglab.db").display()))
    }
}

impl S3Config {
    pub(crate) fn presign_ttl(&self) -> Duration {
        Duration::from_secs(self.presign_ttl_secs)
    }
}
