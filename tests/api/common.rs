//! Test harness: a real server on a free port, against the backend the environment selects.
//!
//! Without `TEST_POSTGRES_URL` the server uses the embedded default (a SQLite file and the
//! in-process S3 endpoint, in a temporary folder). With `TEST_POSTGRES_URL` (an admin URL) and
//! `S3_ENDPOINT`, `S3_BUCKET`, `S3_ACCESS_KEY_ID`, `S3_SECRET_ACCESS_KEY`, `S3_REGION` it uses a
//! fresh PostgreSQL database per test and a fresh key prefix in the external bucket.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::path::PathBuf;

use clap::Parser;
use seglab::server::config::{Config, ServeArgs, ServeOnly};
use seglab::server::identity::Role;
use seglab::server::services::users::add_user;
use seglab::server::state::AppState;
use seglab::startup::Application;
use sqlx::{Connection, Row};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub const PAGE_ORIGIN: &str = "http://localhost:3000";
/// The browser-login password of every user made by [`TestApp::user`].
pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub base: String,
    pub state: AppState,
    pub client: reqwest::Client,
    pub data_dir: tempfile::TempDir,
    /// Settings a CLI subprocess needs to reach the same backend.
    pub env: Vec<(String, String)>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// The PostgreSQL admin URL this run tests against, if any. `.ci/test` names the backend of
/// its second run (`SEGLAB_TEST_BACKEND=postgres`): a run meant for PostgreSQL that cannot
/// find it fails, rather than passing on SQLite again.
pub fn postgres_admin_url() -> Option<String> {
    let url = std::env::var("TEST_POSTGRES_URL").ok();
    let required = std::env::var("SEGLAB_TEST_BACKEND").is_ok_and(|backend| backend == "postgres");
    assert!(
        url.is_some() || !required,
        "SEGLAB_TEST_BACKEND=postgres, but TEST_POSTGRES_URL is unset: `source .ci/services` starts PostgreSQL"
    );
    url
}

/// Which backend this run tests, for messages.
pub fn backend_name() -> &'static str {
    if postgres_admin_url().is_some() {
        "postgres+s3"
    } else {
        "sqlite+embedded-s3"
    }
}

pub async fn fresh_postgres_database(admin_url: &str) -> String {
    sqlx::any::install_default_drivers();
    let name = format!("seglab_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::AnyConnection::connect(admin_url).await.expect("connect to TEST_POSTGRES_URL");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.expect("create test database");
    let (base, _) = admin_url.rsplit_once('/').expect("TEST_POSTGRES_URL ends in /database");
    format!("{base}/{name}")
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns with `customise` applied to the serve options (body limits, …).
    pub async fn spawn_with(customise: impl FnOnce(&mut ServeArgs)) -> TestApp {
        Self::spawn_configured(|_| {}, customise).await
    }

    /// Spawns with `configure` applied to the shared settings (orchestrator, …) as well.
    pub async fn spawn_configured(
        configure: impl FnOnce(&mut Config),
        customise: impl FnOnce(&mut ServeArgs),
    ) -> TestApp {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut env = vec![("SEGLAB_DATA_DIR".to_string(), data_dir.path().display().to_string())];
        if let Some(admin_url) = postgres_admin_url() {
            env.push(("DATABASE_URL".into(), fresh_postgres_database(&admin_url).await));
            env.push(("S3_KEY_PREFIX".into(), format!("test-{}/", uuid::Uuid::new_v4().simple())));
            env.push(("S3_CORS_ORIGINS".into(), PAGE_ORIGIN.into()));
            for var in ["S3_ENDPOINT", "S3_BUCKET", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY", "S3_REGION"] {
                let value = std::env::var(var).unwrap_or_else(|_| panic!("{var} must be set with TEST_POSTGRES_URL"));
                env.push((var.into(), value));
            }
        }
        Self::start(data_dir, env, configure, customise).await
    }

    /// Stops this instance and starts a new one on the same database and storage, as a
    /// restart of the server would.
    pub async fn restart(self, configure: impl FnOnce(&mut Config)) -> TestApp {
        let TestApp { data_dir, env, shutdown, tasks, .. } = self;
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
        Self::start(data_dir, env, configure, |_| {}).await
    }

    async fn start(
        data_dir: tempfile::TempDir,
        env: Vec<(String, String)>,
        configure: impl FnOnce(&mut Config),
        customise: impl FnOnce(&mut ServeArgs),
    ) -> TestApp {
        // `SEGLAB_TEST_LOG=info` (a tracing filter) shows the servers' logs with a test's output.
        if let Ok(filter) = std::env::var("SEGLAB_TEST_LOG") {
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        }
        let mut args: Vec<String> = vec!["seglab".into()];
        for (name, value) in &env {
            let flag = match name.as_str() {
                "SEGLAB_DATA_DIR" => "--data-dir".to_string(),
                other => format!("--{}", other.to_lowercase().replace('_', "-")),
            };
            args.push(format!("{flag}={value}"));
        }
        let mut config = ConfigOnly::parse_from(args).config;
        config.s3.embedded_s3_addr = "127.0.0.1:0".parse().unwrap();
        configure(&mut config);
        // Both backends behave alike: labelers take unassigned cases by saving on them, as on
        // the embedded default (tests of the other setting say so).
        config.self_assignment.get_or_insert(true);
        // Inference runs in a child `seglab infer`; this process is the test binary.
        config.orchestrator.inference_program.get_or_insert_with(|| PathBuf::from(env!("CARGO_BIN_EXE_seglab")));
        let mut serve = ServeOnly::parse_from(["seglab"]).args;
        serve.addr = "127.0.0.1:0".parse().unwrap();
        customise(&mut serve);

        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let app = Application::build(config, &serve, shutdown.clone(), &tasks).await.expect("start the test app");
        let base = format!("http://{}", app.address());
        let state = app.state().clone();
        tasks.spawn(async move { app.run_until_stopped().await.unwrap() });
        TestApp { base, state, client: reqwest::Client::new(), data_dir, env, shutdown, tasks }
    }

    /// Serves the app's routes with `state` (this app's, altered: say, a store that cannot be
    /// reached) on another free port, until the app stops; returns that server's base URL.
    pub async fn serve_state(&self, state: AppState) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let args = ServeOnly::parse_from(["seglab"]).args;
        let router = seglab::startup::router(state, &args);
        let drain = std::time::Duration::from_secs(args.drain_secs);
        self.tasks.spawn(seglab::startup::serve(listener, router, self.shutdown.clone(), drain));
        base
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The single number an SQL query such as `SELECT COUNT(*) …` answers.
    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query(sql).fetch_one(&self.state.db.pool).await.unwrap().get::<i64, _>(0)
    }

    /// The case's current mask version, as the database records it.
    pub async fn head_mask_ref(&self, case_id: &str) -> String {
        sqlx::query("SELECT head_mask_ref FROM cases WHERE id = $1")
            .bind(case_id)
            .fetch_one(&self.state.db.pool)
            .await
            .unwrap()
            .get(0)
    }

    /// `PUT /cases/{case_id}/status` to `status` (with a comment), as `token`'s holder.
    pub async fn set_case_status(&self, token: &str, case_id: &str, status: &str) -> reqwest::Response {
        self.client
            .put(self.url(&format!("/cases/{case_id}/status")))
            .bearer_auth(token)
            .json(&serde_json::json!({ "status": status, "comment": "noted" }))
            .send()
            .await
            .unwrap()
    }

    /// `GET path` with a bearer token, as JSON.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, token: &str, path: &str) -> T {
        self.client.get(self.url(path)).bearer_auth(token).send().await.unwrap().json().await.unwrap()
    }

    /// The `.nii.gz` at a `url` the API gave: presigned, or an API path (a mask version whose
    /// file is written on first request) fetched with `token`, following its redirect.
    pub async fn download(&self, token: &str, url: &str) -> Vec<u8> {
        let request = match url.starts_with('/') {
            true => self.client.get(self.url(url)).bearer_auth(token),
            false => self.client.get(url),
        };
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK, "GET {url}");
        response.bytes().await.unwrap().to_vec()
    }

    /// Mask version `object_ref` as a `.nii.gz`, through `GET /{object_ref}` with `token`.
    pub async fn mask_file(&self, token: &str, object_ref: &str) -> Vec<u8> {
        self.download(token, &format!("/{object_ref}")).await
    }

    /// `POST /labels` of encoded `edits` on mask version `base`, under a fresh idempotency key.
    pub async fn post_label(&self, token: &str, case_id: &str, base: &str, edits: &[u8]) -> reqwest::Response {
        use base64::Engine;
        let body = serde_json::json!({
            "case_id": case_id,
            "base_mask_ref": base,
            "edits": base64::engine::general_purpose::STANDARD.encode(edits),
        });
        self.send_json(reqwest::Method::POST, token, "/labels", &body).await
    }

    /// `method path` with a JSON `body` as `token`'s holder, under a fresh idempotency key
    /// (routes that take none ignore it).
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// A user with `roles` (and the password [`PASSWORD`]) and their bearer token.
    pub async fn user(&self, name: &str, roles: &[Role]) -> String {
        add_user(&self.state.db, name, roles, Some(PASSWORD)).await.expect("add user").1
    }

    /// `POST /session` with `body` (a login: `username`, `password`).
    pub async fn log_in(&self, body: serde_json::Value) -> reqwest::Response {
        self.client.post(self.url("/session")).json(&body).send().await.unwrap()
    }

    /// Logs `username` in through `POST /session`; returns the `Cookie` header value.
    pub async fn login_cookie(&self, username: &str, password: &str) -> String {
        let response = self.log_in(serde_json::json!({ "username": username, "password": password })).await;
        assert_eq!(response.status(), reqwest::StatusCode::OK, "login of {username}");
        let set_cookie = response.headers()["set-cookie"].to_str().unwrap().to_string();
        set_cookie.split(';').next().unwrap().to_string()
    }

    /// Runs a `seglab` command on this app's database and storage, as an operator would.
    pub fn run_cli(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_seglab"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("run seglab")
    }

    /// Starts `seglab … serve --addr <free port>` as a separate process on this app's database
    /// and storage, with `global_args` before `serve` and `serve_args` after it, and waits until
    /// it is ready. Returns the process, its base URL, and whether it became ready.
    pub async fn start_server_process(
        &self,
        global_args: &[&str],
        serve_args: &[&str],
        stdout: std::process::Stdio,
    ) -> (std::process::Child, String, bool) {
        self.start_server_process_logging(global_args, serve_args, stdout, std::process::Stdio::null()).await
    }

    /// [`Self::start_server_process`] with its logs (standard error) going to `stderr`.
    pub async fn start_server_process_logging(
        &self,
        global_args: &[&str],
        serve_args: &[&str],
        stdout: std::process::Stdio,
        stderr: std::process::Stdio,
    ) -> (std::process::Child, String, bool) {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let address = format!("127.0.0.1:{port}");
        // The process decides case assignment as this app does, on either backend.
        let self_assignment = format!("--self-assignment={}", self.state.config.self_assignment.unwrap_or_default());
        let server = std::process::Command::new(env!("CARGO_BIN_EXE_seglab"))
            .args(["--embedded-s3-addr", "127.0.0.1:0", &self_assignment])
            .args(global_args)
            .args(["serve", "--addr", &address])
            .args(serve_args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap();
        let base = format!("http://{address}");
        for _ in 0..100 {
            if self
                .client
                .get(format!("{base}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
            {
                return (server, base, true);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        (server, base, false)
    }

    /// Another instance: `seglab serve` as a process on this app's database and storage,
    /// with `global_args`, its metrics served to [`METRICS_TOKEN`]. Killed when dropped.
    pub async fn instance(&self, global_args: &[&str]) -> ServerProcess {
        let serve_args = ["--no-demo", "--metrics-token", METRICS_TOKEN];
        let (process, base, ready) =
            self.start_server_process(global_args, &serve_args, std::process::Stdio::null()).await;
        let mut instance = ServerProcess { process, base, client: self.client.clone() };
        assert!(ready, "another instance did not become ready");
        instance.assert_running();
        instance
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// The bearer token of the metrics of every [`ServerProcess`].
pub const METRICS_TOKEN: &str = "metrics-token-of-the-tests";

/// A `seglab serve` process beside the test's app (see [`TestApp::instance`]).
pub struct ServerProcess {
    pub process: std::process::Child,
    pub base: String,
    client: reqwest::Client,
}

impl ServerProcess {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn assert_running(&mut self) {
        assert!(self.process.try_wait().unwrap().is_none(), "the instance exited");
    }

    /// SIGTERM, as a service manager stops it.
    pub fn terminate(&self) {
        let sent = std::process::Command::new("kill").args(["-TERM", &self.process.id().to_string()]).status().unwrap();
        assert!(sent.success());
    }

    /// SIGKILL: the machine's power cut, as far as this instance can tell.
    pub fn kill(&mut self) {
        self.process.kill().unwrap();
        self.process.wait().unwrap();
    }

    /// Waits up to `within` for the process to exit; its status.
    pub async fn exited(&mut self, within: std::time::Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.process.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        None
    }

    /// The instance's `GET /metrics` text.
    pub async fn metrics(&self) -> String {
        let response = self.client.get(self.url("/metrics")).bearer_auth(METRICS_TOKEN).send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        response.text().await.unwrap()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The sum of the samples in Prometheus text `metrics` whose series starts with `series` (a
/// name, optionally with the start of its labels: `seglab_label_saves_total{outcome="created"`).
pub fn metric_sum(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(name, _)| {
            name.strip_prefix(series).is_some_and(|rest| rest.is_empty() || rest.starts_with(['{', ',', '}']))
        })
        .map(|(_, value)| value.parse::<f64>().unwrap())
        .sum()
}

/// Just the shared configuration flags, to build a `Config` the way the binary does.
#[derive(Parser)]
struct ConfigOnly {
    #[command(flatten)]
    config: Config,
}

/// A file from the test data folder that `.ci/setup-test-data` fills.
pub fn test_data(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/testdata").join(name);
    assert!(path.exists(), "{} is missing: run `.ci/test` (or `.ci/setup`) once to fetch test data", path.display());
    path
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A real Open Inference Protocol v2 server serving an ONNX model with onnxruntime, from the
/// venvs `.ci/setup` makes: MLServer (JSON tensors only) through
/// `tests/fixtures/oip/onnx_runtime.py`, or KServe's Python server (the binary tensor
/// extension too) through `tests/fixtures/oip/kserve_onnx.py`. Killed when dropped.
pub struct InferenceServer {
    child: std::process::Child,
    pub url: String,
    dir: tempfile::TempDir,
}

impl Drop for InferenceServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl InferenceServer {
    pub async fn mlserver(model_name: &str, onnx: &std::path::Path) -> InferenceServer {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(root.join("tests/fixtures/oip/onnx_runtime.py"), dir.path().join("onnx_runtime.py")).unwrap();
        let model_dir = dir.path().join(model_name);
        std::fs::create_dir(&model_dir).unwrap();
        std::fs::copy(onnx, model_dir.join("model.onnx")).unwrap();
        let model_settings = serde_json::json!({ "name": model_name, "implementation": "onnx_runtime.OnnxSegmenter", "parameters": { "uri": "./model.onnx" } });
        std::fs::write(model_dir.join("model-settings.json"), model_settings.to_string()).unwrap();
        let port = free_port();
        let settings = serde_json::json!({ "host": "127.0.0.1", "http_port": port, "grpc_port": free_port(), "metrics_port": free_port(), "parallel_workers": 0 });
        std::fs::write(dir.path().join("settings.json"), settings.to_string()).unwrap();
        let mut command = std::process::Command::new(root.join("target/pyenv/bin/mlserver"));
        command.arg("start").arg(dir.path());
        Self::start(command, dir, port, model_name).await
    }

    /// KServe, noting in [`InferenceServer::requests`] how each request came.
    pub async fn kserve(model_name: &str, onnx: &std::path::Path) -> InferenceServer {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut command = std::process::Command::new(root.join("target/kserveenv/bin/python"));
        command
            .arg(root.join("tests/fixtures/oip/kserve_onnx.py"))
            .args(["--model_name", model_name, "--http_port", &port.to_string(), "--enable_grpc", "false"])
            .arg("--model_path")
            .arg(onnx)
            .arg("--request_log")
            .arg(dir.path().join("requests.log"));
        Self::start(command, dir, port, model_name).await
    }

    async fn start(
        mut command: std::process::Command,
        dir: tempfile::TempDir,
        port: u16,
        model_name: &str,
    ) -> InferenceServer {
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = command
            .current_dir(dir.path())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?} ({e}); `.ci/setup` installs it"));
        let server = InferenceServer { child, url: format!("http://127.0.0.1:{port}"), dir };
        let client = reqwest::Client::new();
        for _ in 0..600 {
            let ready = client.get(format!("{}/v2/models/{model_name}/ready", server.url)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return server;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("{command:?} did not become ready: {}", server.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// KServe's note of each request so far: `binary` or `json` for the image, then
    /// `binary-answer` or `json-answer` for the logits asked for.
    pub fn requests(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.dir.path().join("requests.log")).unwrap_or_default();
        log.lines().map(str::to_string).collect()
    }
}
