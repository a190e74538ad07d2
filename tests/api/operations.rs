//! What operators run it with: Prometheus metrics (behind a token or on an address of their
//! own, scraped by Debian's Prometheus with the example alert rules loaded), request ids in
//! answers and in JSON logs, and `seglab backup` with its verification.

use std::io::Read;
use std::time::Duration;

use base64::Engine;
use reqwest::StatusCode;
use seglab::edits::MaskEdits;
use seglab::server::identity::Role;
use serde_json::{json, Value};

use crate::common::{backend_name, metric_sum, TestApp, METRICS_TOKEN};
use crate::fixtures::CaseBuilder;
use crate::models::{cube_case, finished_jobs, registered, set_state};

/// A save of a few voxels on the case's current mask, at `base_url`.
async fn save(app: &TestApp, base_url: &str, token: &str, case_id: &str) -> StatusCode {
    let mut edited = vec![0u8; 480];
    edited[7] = 1;
    let body = json!({
        "case_id": case_id,
        "base_mask_ref": app.head_mask_ref(case_id).await,
        "edits": base64::engine::general_purpose::STANDARD.encode(MaskEdits::diff(&[0u8; 480], &edited).encode()),
    });
    let response = app
        .client
        .post(format!("{base_url}/labels"))
        .bearer_auth(token)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&body)
        .send()
        .await
        .unwrap();
    response.status()
}

/// The lines of a metric `name` in `metrics` (Prometheus text).
fn series<'a>(metrics: &'a str, name: &str) -> Vec<&'a str> {
    metrics
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} ")))
        .collect()
}

#[tokio::test]
async fn metrics_need_their_token_and_count_requests_by_route_template() {
    let app = TestApp::spawn_with(|args| args.metrics_token = Some(METRICS_TOKEN.into())).await;
    let token = app.user("lab", &[Role::Labeler]).await;
    let case_id = CaseBuilder::new("watched").import(&app).await;
    let artifacts =
        app.client.get(app.url(&format!("/cases/{case_id}/artifacts"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(artifacts.status(), StatusCode::OK);
    assert_eq!(save(&app, &app.base, &token, &case_id).await, StatusCode::CREATED);

    for wrong in [None, Some("not-the-token"), Some(token.as_str())] {
        let request = app.client.get(app.url("/metrics"));
        let request = match wrong {
            Some(wrong) => request.bearer_auth(wrong),
            None => request,
        };
        assert_eq!(request.send().await.unwrap().status(), StatusCode::UNAUTHORIZED, "{wrong:?}");
    }
    let response = app.client.get(app.url("/metrics")).bearer_auth(METRICS_TOKEN).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let metrics = response.text().await.unwrap();
    // By route template: never a series per case.
    assert!(
        series(&metrics, "seglab_http_requests_total")
            .iter()
            .any(|line| line.contains(r#"route="/cases/{id}/artifacts""#)
                && line.contains(r#"method="GET""#)
                && line.contains(r#"status="200""#)),
        "{metrics}"
    );
    assert!(!metrics.contains(&case_id), "a case id in a series");
    assert!(metric_sum(&metrics, "seglab_http_request_duration_seconds_count") > 0.0);
    assert!(metric_sum(&metrics, r#"seglab_label_saves_total{outcome="created""#) >= 1.0);
    assert!(metric_sum(&metrics, r#"seglab_label_save_duration_seconds_count{outcome="created""#) >= 1.0);
    assert!(metric_sum(&metrics, "seglab_label_save_written_bytes_sum") > 0.0);
    assert!(metric_sum(&metrics, "seglab_presigned_urls_total") >= 1.0);
    assert!(metric_sum(&metrics, r#"seglab_imports_total{format="nifti",outcome="created""#) >= 1.0);
    for gauge in [
        r#"seglab_jobs_queued{priority="interactive"}"#,
        r#"seglab_jobs_queued{priority="backfill"}"#,
        "seglab_jobs_oldest_queued_age_seconds",
        "seglab_evaluation_backlog",
        "seglab_pacs_outbox_pending",
        r#"seglab_db_connections{state="in_use"}"#,
    ] {
        assert!(metrics.lines().any(|line| line.starts_with(&format!("{gauge} "))), "{gauge} missing:\n{metrics}");
    }
    assert!(metrics.contains("# HELP seglab_label_saves_total"), "described for people");

    // Without a token or an address, there is no metrics route at all.
    let plain = TestApp::spawn().await;
    assert_eq!(plain.client.get(plain.url("/metrics")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    plain.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn metrics_can_have_an_address_of_their_own() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("127.0.0.1:{port}");
    let app = TestApp::spawn_with(|args| args.metrics_addr = Some(address.parse().unwrap())).await;
    let metrics = app.client.get(format!("http://{address}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(metrics.text().await.unwrap().contains("seglab_jobs_queued"));
    assert_eq!(app.client.get(app.url("/metrics")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn answers_carry_a_request_id_and_json_logs_carry_it_too() {
    let app = TestApp::spawn().await;
    let fresh = app.client.get(app.url("/healthz")).send().await.unwrap();
    let id = fresh.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "a fresh UUID: {id}");
    let given = app.client.get(app.url("/healthz")).header("x-request-id", "trace-me-42").send().await.unwrap();
    assert_eq!(given.headers()["x-request-id"], "trace-me-42", "the caller's own id is kept");

    let (mut server, base, ready) = app
        .start_server_process_logging(
            &["--log-format", "json"],
            &["--no-demo"],
            std::process::Stdio::null(),
            std::process::Stdio::piped(),
        )
        .await;
    assert!(ready);
    let answer =
        app.client.get(format!("{base}/healthz")).header("x-request-id", "json-log-probe").send().await.unwrap();
    assert_eq!(answer.headers()["x-request-id"], "json-log-probe");
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.kill().unwrap();
    let mut logs = String::new();
    server.stderr.take().unwrap().read_to_string(&mut logs).unwrap();
    server.wait().unwrap();
    let lines: Vec<Value> = logs
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let request = lines
        .iter()
        .find(|line| line["span"]["request_id"] == "json-log-probe")
        .unwrap_or_else(|| panic!("no log line of the request:\n{logs}"));
    assert_eq!(request["span"]["path"], "/healthz");
    assert!(request["fields"]["status"] == 200, "{request}");
    app.stop().await;
}

#[tokio::test]
async fn a_backup_is_a_consistent_copy_and_its_verification_finds_damage() {
    let app = TestApp::spawn().await;
    let dir = app.data_dir.path().join("backup");
    let dir_arg = dir.display().to_string();
    if backend_name() != "sqlite+embedded-s3" {
        let refused = app.run_cli(&["backup", &dir_arg]);
        assert!(!refused.status.success());
        assert!(String::from_utf8_lossy(&refused.stderr).contains("pg_dump"), "points to the PostgreSQL way");
        app.stop().await;
        return;
    }
    let token = app.user("lab", &[Role::Labeler]).await;
    let case_id = CaseBuilder::new("kept").import(&app).await;
    assert_eq!(save(&app, &app.base, &token, &case_id).await, StatusCode::CREATED);

    let taken = app.run_cli(&["backup", &dir_arg]);
    assert!(taken.status.success(), "{}", String::from_utf8_lossy(&taken.stderr));
    let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("backup.json")).unwrap()).unwrap();
    let listed = std::fs::read_to_string(dir.join("objects.tsv")).unwrap();
    let recorded = app.count("SELECT COUNT(*) FROM objects WHERE file_stored = 1").await
        + app.count("SELECT COUNT(*) FROM slabs").await;
    assert_eq!(listed.lines().count() as i64, recorded, "every stored object and slab is listed");
    assert_eq!(manifest["objects"], recorded);
    let (seq, hash): (i64, String) = sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(manifest["audit_head"], format!("{seq}:{hash}"));

    let verified = app.run_cli(&["backup", "verify", &dir_arg]);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
    assert!(String::from_utf8_lossy(&verified.stdout).contains("backup intact"));

    let again = app.run_cli(&["backup", &dir_arg]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // An object gone from storage is named.
    let (lost, _) = listed.lines().next().unwrap().split_once('\t').unwrap();
    app.state.store.delete(lost).await.unwrap();
    let broken = app.run_cli(&["backup", "verify", &dir_arg]);
    assert!(!broken.status.success());
    assert!(String::from_utf8_lossy(&broken.stderr).contains(lost), "{}", String::from_utf8_lossy(&broken.stderr));

    // A copy changed after the backup is not trusted.
    let database = dir.join("seglab.db");
    let mut bytes = std::fs::read(&database).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&database, bytes).unwrap();
    let damaged = app.run_cli(&["backup", "verify", &dir_arg]);
    assert!(!damaged.status.success());
    assert!(String::from_utf8_lossy(&damaged.stderr).contains("not the file the backup wrote"));
    app.stop().await;
}

/// The example alert rules shipped for operators.
fn alert_rules() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus-alerts.yml")
}

/// Asks Prometheus's query API for `query` until its first sample reaches `at_least`.
async fn queried(client: &reqwest::Client, prometheus: &str, query: &str, at_least: f64) -> f64 {
    let mut last = Value::Null;
    for _ in 0..150 {
        let answer: Value = client
            .get(format!("{prometheus}/api/v1/query"))
            .query(&[("query", query)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(value) = answer["data"]["result"][0]["value"][1].as_str() {
            let value: f64 = value.parse().unwrap();
            if value >= at_least {
                return value;
            }
        }
        last = answer;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("Prometheus has no {query} ≥ {at_least}: {last}");
}

#[tokio::test]
async fn prometheus_scrapes_an_instance_and_loads_the_example_alert_rules() {
    let checked = std::process::Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(alert_rules())
        .output()
        .expect("promtool (Debian's prometheus; `.ci/setup test` installs it)");
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stdout));

    let app = TestApp::spawn_configured(|c| c.orchestrator.workers = 0, |_| {}).await;
    let instance = app.instance(&["--workers", "1"]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {rules}\n\
         scrape_configs:\n  - job_name: seglab\n    authorization:\n      credentials: {METRICS_TOKEN}\n\
         \x20   static_configs:\n      - targets: ['{target}']\n",
        rules = alert_rules().display(),
        target = instance.base.trim_start_matches("http://"),
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut prometheus = std::process::Command::new("prometheus")
        .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("Prometheus (Debian's prometheus; `.ci/setup test` installs it)");
    let prometheus_url = format!("http://127.0.0.1:{port}");

    // A save and a job on the scraped instance.
    let engineer = app.user("ada", &[Role::MlEngineer, Role::Labeler]).await;
    let model = registered(&app, &engineer, "cube-seg", "1.0.0", "segmenter_v1").await;
    assert_eq!(set_state(&app, &engineer, &model, "shadow").await.status(), StatusCode::OK);
    let case_id = cube_case(&app).await;
    finished_jobs(&app, &engineer, &case_id, 1).await;
    let labeled = CaseBuilder::new("scraped").import(&app).await;
    assert_eq!(save(&app, &instance.base, &engineer, &labeled).await, StatusCode::CREATED);

    let client = &app.client;
    assert_eq!(queried(client, &prometheus_url, r#"seglab_label_saves_total{outcome="created"}"#, 1.0).await, 1.0);
    let inference = format!(r#"seglab_inference_duration_seconds_count{{model_version="{model}"}}"#);
    // The job, and the one the second import triggered: at least one.
    queried(client, &prometheus_url, &inference, 1.0).await;
    queried(client, &prometheus_url, r#"up{job="seglab"}"#, 1.0).await;
    let rules: Value = client.get(format!("{prometheus_url}/api/v1/rules")).send().await.unwrap().json().await.unwrap();
    let names: Vec<&str> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|group| group["rules"].as_array().unwrap())
        .filter_map(|rule| rule["name"].as_str())
        .collect();
    for alert in ["SeglabSavesFailing", "SeglabJobQueueStuck", "SeglabEvaluationBacklog"] {
        assert!(names.contains(&alert), "{alert} not loaded: {names:?}");
    }
    prometheus.kill().unwrap();
    prometheus.wait().unwrap();
    app.stop().await;
}
