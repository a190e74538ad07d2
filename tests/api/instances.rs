//! Several instances on one database and one object store, as a deployment runs them behind a
//! load balancer: the test's app and `seglab serve` processes beside it. One key sent to both
//! gives one version, racing saves have one winner, jobs run once each, a killed instance's
//! job is finished by another after its lease, evaluation is single-flight, login limits hold
//! across instances, and SIGTERM drains requests in flight and hands running jobs back. Runs
//! on both backends (`.ci/test` runs it again on PostgreSQL + Garage).

use std::time::Duration;

use base64::Engine;
use reqwest::StatusCode;
use seglab::edits::MaskEdits;
use seglab::server::identity::Role;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{metric_sum, ServerProcess, TestApp, PASSWORD};
use crate::fixtures::CaseBuilder;
use crate::models::{cube_case, finished_jobs, in_cube, registered, set_state};

/// A save body for `case_id` painting label 1 on the voxels `paint` picks, on `base`.
fn save_body(case_id: &str, base: &str, voxels: usize, paint: impl Fn(usize) -> bool) -> Value {
    let edited: Vec<u8> = (0..voxels).map(|i| paint(i) as u8).collect();
    let edits = MaskEdits::diff(&vec![0u8; voxels], &edited).encode();
    json!({
        "case_id": case_id,
        "base_mask_ref": base,
        "edits": base64::engine::general_purpose::STANDARD.encode(edits),
    })
}

async fn post_save(client: &reqwest::Client, url: String, token: &str, key: &str, body: &Value) -> (StatusCode, Value) {
    let response = client.post(url).bearer_auth(token).header("Idempotency-Key", key).json(body).send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

/// The save as a client retries it: again, with the same key, while the other instance still
/// holds the key.
async fn save_until_answered(client: &reqwest::Client, url: String, token: &str, key: &str, body: &Value) -> Value {
    for _ in 0..100 {
        let (status, answer) = post_save(client, url.clone(), token, key, body).await;
        if status == StatusCode::CREATED {
            return answer;
        }
        assert_eq!(answer["error"]["code"], "idempotency_key_in_use", "{status}: {answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the key stayed in use");
}

#[tokio::test]
async fn one_idempotency_key_sent_to_two_instances_makes_one_version() {
    let app = TestApp::spawn().await;
    let other = app.instance(&[]).await;
    let token = app.user("lab", &[Role::Labeler]).await;
    let case_id = CaseBuilder::new("twice").import(&app).await;
    let base = app.head_mask_ref(&case_id).await;
    let body = save_body(&case_id, &base, 480, |i| i % 7 == 0);
    let key = uuid::Uuid::new_v4().to_string();
    let (here, there) = tokio::join!(
        save_until_answered(&app.client, app.url("/labels"), &token, &key, &body),
        save_until_answered(&app.client, other.url("/labels"), &token, &key, &body),
    );
    assert_eq!(here, there, "both instances answer with the one save");
    assert_eq!(app.count("SELECT COUNT(*) FROM labels").await, 1);
    assert_eq!(app.head_mask_ref(&case_id).await, here["new_mask_ref"].as_str().unwrap());
    app.stop().await;
}

#[tokio::test]
async fn racing_saves_on_one_base_across_instances_have_one_winner() {
    let app = TestApp::spawn().await;
    let other = app.instance(&[]).await;
    let token = app.user("lab", &[Role::Labeler]).await;
    let case_id = CaseBuilder::new("race").import(&app).await;
    let base = app.head_mask_ref(&case_id).await;
    let saves = (0..8).map(|n| {
        let url = if n % 2 == 0 { app.url("/labels") } else { other.url("/labels") };
        let body = save_body(&case_id, &base, 480, move |i| i % 8 == n);
        let (client, token) = (app.client.clone(), token.clone());
        tokio::spawn(async move { post_save(&client, url, &token, &uuid::Uuid::new_v4().to_string(), &body).await })
    });
    let answers: Vec<(StatusCode, Value)> =
        futures::future::join_all(saves).await.into_iter().map(Result::unwrap).collect();
    let winners: Vec<&Value> = answers.iter().filter(|(s, _)| *s == StatusCode::CREATED).map(|(_, a)| a).collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    for (status, answer) in answers.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_eq!((*status, answer["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("stale_base")));
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM labels").await, 1);
    assert_eq!(app.head_mask_ref(&case_id).await, winners[0]["new_mask_ref"].as_str().unwrap());
    app.stop().await;
}

#[tokio::test]
async fn jobs_run_once_each_and_evaluation_once_each_with_workers_on_two_instances() {
    // The test's app only takes requests; the two processes do the work, and their metrics
    // count what each did.
    let app = TestApp::spawn_configured(|c| c.orchestrator.workers = 0, |_| {}).await;
    let first = app.instance(&["--workers", "1"]).await;
    let second = app.instance(&["--workers", "1"]).await;
    let engineer = app.user("ada", &[Role::MlEngineer, Role::Labeler]).await;
    let model = registered(&app, &engineer, "cube-seg", "1.0.0", "segmenter_v1").await;
    assert_eq!(set_state(&app, &engineer, &model, "shadow").await.status(), StatusCode::OK);
    const CASES: usize = 6;
    let mut cases = Vec::new();
    for _ in 0..CASES {
        let case_id = cube_case(&app).await;
        // A human mask for each, so every prediction has a score to compute.
        let base = app.head_mask_ref(&case_id).await;
        let body = save_body(&case_id, &base, 8000, in_cube);
        let (status, answer) =
            post_save(&app.client, app.url("/labels"), &engineer, &uuid::Uuid::new_v4().to_string(), &body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        cases.push(case_id);
    }
    for case_id in &cases {
        let jobs = finished_jobs(&app, &engineer, case_id, 1).await;
        assert_eq!((jobs[0]["status"].as_str(), jobs[0]["attempts"].as_i64()), (Some("succeeded"), Some(1)));
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM predictions").await, CASES as i64);
    let mut scored = 0;
    for _ in 0..300 {
        scored = app.count("SELECT COUNT(DISTINCT prediction_id) FROM evaluations").await;
        if scored == CASES as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(scored, CASES as i64, "every prediction scored");
    let (a, b) = (first.metrics().await, second.metrics().await);
    let inferences = metric_sum(&a, "seglab_inference_duration_seconds_count")
        + metric_sum(&b, "seglab_inference_duration_seconds_count");
    assert_eq!(inferences, CASES as f64, "each job ran once, on one instance or the other");
    let evaluations = metric_sum(&a, "seglab_evaluations_total") + metric_sum(&b, "seglab_evaluations_total");
    assert_eq!(evaluations, CASES as f64, "each score was computed once");
    app.stop().await;
}

/// A program standing in for `seglab infer` that takes `seconds` before running it: a long
/// inference to stop an instance in the middle of.
fn slow_inference(app: &TestApp, seconds: u32) -> String {
    let path = app.data_dir.path().join(format!("slow-infer-{seconds}.sh"));
    let script = format!("#!/bin/sh\nsleep {seconds}\nexec {} \"$@\"\n", env!("CARGO_BIN_EXE_seglab"));
    std::fs::write(&path, script).unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&path).status().unwrap();
    path.display().to_string()
}

/// Registers a shadow model and imports a case: one job, queued.
async fn one_job(app: &TestApp) -> (String, String) {
    let engineer = app.user("ada", &[Role::MlEngineer]).await;
    let model = registered(app, &engineer, "cube-seg", "1.0.0", "segmenter_v1").await;
    assert_eq!(set_state(app, &engineer, &model, "shadow").await.status(), StatusCode::OK);
    (engineer, cube_case(app).await)
}

async fn job_row(app: &TestApp, case_id: &str) -> (String, i64, Option<String>) {
    sqlx::query_as("SELECT status, attempts, worker FROM model_jobs WHERE case_id = $1")
        .bind(case_id)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
}

async fn until_running(app: &TestApp, case_id: &str) {
    for _ in 0..200 {
        if job_row(app, case_id).await.0 == "running" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the job did not start");
}

#[tokio::test]
async fn a_job_of_a_killed_instance_is_finished_by_another_after_its_lease() {
    let app = TestApp::spawn_configured(|c| c.orchestrator.workers = 0, |_| {}).await;
    // A 3 s timeout gives a 6 s lease; the inference would take 30.
    let slow = slow_inference(&app, 30);
    let mut doomed = app.instance(&["--workers", "1", "--job-timeout-secs", "3", "--inference-program", &slow]).await;
    let (engineer, case_id) = one_job(&app).await;
    until_running(&app, &case_id).await;
    doomed.kill();
    let killed_at = std::time::Instant::now();
    let _survivor = app.instance(&["--workers", "1"]).await;
    let jobs = finished_jobs(&app, &engineer, &case_id, 1).await;
    assert_eq!((jobs[0]["status"].as_str(), jobs[0]["attempts"].as_i64()), (Some("succeeded"), Some(2)));
    assert!(killed_at.elapsed() > Duration::from_secs(3), "not taken before the lease ran out");
    assert_eq!(app.count("SELECT COUNT(*) FROM predictions").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn sigterm_finishes_the_requests_in_flight_and_hands_running_jobs_back() {
    let app = TestApp::spawn_configured(|c| c.orchestrator.workers = 0, |_| {}).await;
    let slow = slow_inference(&app, 60);
    let mut instance = app.instance(&["--workers", "1", "--inference-program", &slow]).await;
    let (_, job_case) = one_job(&app).await;
    until_running(&app, &job_case).await;

    // A save whose body is still arriving when the signal comes.
    let token = app.user("lab", &[Role::Labeler]).await;
    let case_id = CaseBuilder::new("in flight").import(&app).await;
    let body = save_body(&case_id, &app.head_mask_ref(&case_id).await, 480, |i| i % 5 == 0).to_string();
    let address = instance.base.trim_start_matches("http://").to_string();
    let mut connection = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /labels HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nIdempotency-Key: {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        uuid::Uuid::new_v4(),
        body.len()
    );
    let (first_half, second_half) = body.as_bytes().split_at(body.len() / 2);
    connection.write_all(head.as_bytes()).await.unwrap();
    connection.write_all(first_half).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    instance.terminate();
    tokio::time::sleep(Duration::from_millis(500)).await;
    connection.write_all(second_half).await.unwrap();
    let mut answer = String::new();
    connection.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "the save in flight was finished: {answer}");
    assert_eq!(app.count("SELECT COUNT(*) FROM labels").await, 1);

    let status = instance.exited(Duration::from_secs(20)).await.expect("stopped after draining");
    assert!(status.success(), "{status}");
    let (status, attempts, worker) = job_row(&app, &job_case).await;
    assert_eq!((status.as_str(), attempts, worker), ("queued", 0, None), "the running job was handed back");
    app.stop().await;
}

#[tokio::test]
async fn login_failures_are_counted_across_instances() {
    let limit = ["--login-failures-per-username", "3"];
    let app = TestApp::spawn_configured(|c| c.login_failures_per_username = 3, |_| {}).await;
    let other: ServerProcess = app.instance(&limit).await;
    app.user("lab", &[Role::Labeler]).await;
    let login = |url: String, password: &str| {
        app.client.post(url).json(&json!({ "username": "lab", "password": password })).send()
    };
    for url in [app.url("/session"), other.url("/session"), app.url("/session")] {
        assert_eq!(login(url, "guess-guess").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    for url in [other.url("/session"), app.url("/session")] {
        assert_eq!(login(url, PASSWORD).await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
    }
    app.stop().await;
}
