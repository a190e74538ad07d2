//! The model lifecycle through HTTP: card validation, state transitions and their races,
//! roles, the orchestrator's production and shadow jobs with real ONNX inference, retries,
//! resuming after a restart, and Dice/HD95 against human labels on a case with a known answer.
//! Runs on SQLite + embedded S3 and on PostgreSQL + Garage (see `common`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{InferenceServer, TestApp};
use crate::fixtures::{self, CaseBuilder};
use base64::Engine;
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use seglab::api::{ModelId, PairedEvaluation, VersionEvaluation};
use seglab::edits::MaskEdits;
use seglab::nifti_io::Volume;
use seglab::server::identity::{Role, User};
use seglab::server::services::users;
use seglab::server::services::{comparison, evaluation, jobs};
use seglab::server::state::AppState;
use serde_json::{json, Value};
use sqlx::any::AnyPoolOptions;
use sqlx::Row;

const N: usize = 20;
const VOXELS: usize = N * N * N;

fn fixture_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/models/{name}.onnx"))
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap()
}

/// The checked-in SHA-256 of a fixture, as the card states it.
fn fixture_sha(name: &str) -> String {
    let sums =
        std::fs::read_to_string(format!("{}/tests/fixtures/models/SHA256SUMS", env!("CARGO_MANIFEST_DIR"))).unwrap();
    sums.lines().find(|l| l.ends_with(&format!(" {name}.onnx"))).unwrap().split_whitespace().next().unwrap().to_string()
}

fn card(name: &str, version: &str, fixture_name: &str) -> Value {
    json!({
        "name": name, "version": version, "task": "segmentation", "modality": "CT",
        "label_map": {"1": "lesion"},
        "input_spec": {"voxel_type": "float32", "orientation": "RAS", "intensity_normalisation": "zscore"},
        "output_channels": [0, 1],
        "intended_use": "tests", "limitations": "a threshold", "license": "Apache-2.0",
        "metrics": [{"name": "dice", "value": 0.8, "dataset": "cubes", "label": "lesion"}],
        "artifact": {"format": "onnx", "sha256": fixture_sha(fixture_name)},
    })
}

async fn register(app: &TestApp, token: &str, card: &Value, artifact: Vec<u8>) -> reqwest::Response {
    let form =
        Form::new().text("card", card.to_string()).part("artifact", Part::bytes(artifact).file_name("model.onnx"));
    app.client.post(app.url("/models")).bearer_auth(token).multipart(form).send().await.unwrap()
}

pub(crate) async fn registered(app: &TestApp, token: &str, name: &str, version: &str, fixture_name: &str) -> String {
    let response = register(app, token, &card(name, version, fixture_name), fixture(fixture_name)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Value>().await.unwrap()["model_id"].as_str().unwrap().to_string()
}

pub(crate) async fn set_state(app: &TestApp, token: &str, id: &str, state: &str) -> reqwest::Response {
    app.client
        .put(app.url(&format!("/models/{id}/state")))
        .bearer_auth(token)
        .json(&json!({ "state": state }))
        .send()
        .await
        .unwrap()
}

/// A 20³ float volume (RAS, 1 mm) that is 1 inside the cube [6, 14)³ and 0 elsewhere.
fn cube_header() -> nifti::NiftiHeader {
    nifti::NiftiHeader {
        srow_x: [1.0, 0.0, 0.0, 0.0],
        srow_y: [0.0, 1.0, 0.0, 0.0],
        srow_z: [0.0, 0.0, 1.0, 0.0],
        ..fixtures::header()
    }
}

pub(crate) fn in_cube(index: usize) -> bool {
    let (i, j, k) = (index % N, (index / N) % N, index / (N * N));
    [i, j, k].iter().all(|c| (6..14).contains(c))
}

pub(crate) async fn cube_case(app: &TestApp) -> String {
    CaseBuilder::new("cube")
        .dims([N as u32; 3])
        .header(cube_header())
        .float32(|index| in_cube(index) as u8 as f32)
        .labels(&[(1, "lesion")])
        .import(app)
        .await
}

/// Waits until every job of `case_id` has finished; returns them.
pub(crate) async fn finished_jobs(app: &TestApp, token: &str, case_id: &str, expected: usize) -> Vec<Value> {
    let mut jobs: Vec<Value> = Vec::new();
    for _ in 0..300 {
        jobs = app.get_json(token, &format!("/cases/{case_id}/jobs")).await;
        if jobs.len() == expected && jobs.iter().all(|j| j["status"] == "succeeded" || j["status"] == "failed") {
            return jobs;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("jobs of {case_id} did not finish: {jobs:?}");
}

/// Registers `fixture` as a shadow version of `name`, imports the cube case, and returns the
/// one job that case triggered, once it has finished.
async fn finished_shadow_job(app: &TestApp, name: &str, version: &str, fixture: &str) -> Value {
    let engineer = app.user("ada", &[Role::MlEngineer]).await;
    let model = registered(app, &engineer, name, version, fixture).await;
    assert_eq!(set_state(app, &engineer, &model, "shadow").await.status(), StatusCode::OK);
    let case_id = cube_case(app).await;
    finished_jobs(app, &engineer, &case_id, 1).await.remove(0)
}

/// The evaluation of `name` once the background evaluator has scored every case.
async fn evaluated(app: &TestApp, token: &str, name: &str) -> Value {
    for _ in 0..300 {
        let evaluation: Value = app.get_json(token, &format!("/models/evaluation?name={name}")).await;
        if evaluation["pending_cases"] == 0 {
            return evaluation;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the evaluation of {name} did not finish");
}

async fn prediction_refs(app: &TestApp, case_id: &str) -> Vec<(String, String)> {
    sqlx::query("SELECT role, object_ref FROM predictions WHERE case_id = $1 ORDER BY role")
        .bind(case_id)
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.get("role"), row.get("object_ref")))
        .collect()
}

#[tokio::test]
async fn registration_validates_the_card_and_the_artifact() {
    let app = TestApp::spawn().await;
    let engineer = app.user("ada", &[Role::MlEngineer]).await;
    let labeler = app.user("lee", &[Role::Labeler]).await;
    let good = card("cube-seg", "1.0.0", "segmenter_v1");

    // Refusals change nothing: no model row, no stored artifact, no audit row.
    let audit_before = app.count("SELECT COUNT(*) FROM audit_log").await;
    let mut unknown = good.clone();
    unknown["input_spec"]["window"] = json!([0, 1]);
    let mut wrong_type = good.clone();
    wrong_type["output_channels"] = json!("0,1");
    let cases: Vec<(Value, Vec<u8>, StatusCode, &str)> = vec![
        (unknown, fixture("segmenter_v1"), StatusCode::UNPROCESSABLE_ENTITY, "input_spec"),
        (wrong_type, fixture("segmenter_v1"), StatusCode::UNPROCESSABLE_ENTITY, "output_channels"),
        (good.clone(), fixture("segmenter_v2"), StatusCode::UNPROCESSABLE_ENTITY, "artifact.sha256"),
    ];
    for (card, artifact, status, field) in cases {
        let response = register(&app, &engineer, &card, artifact).await;
        assert_eq!(response.status(), status);
        let message = response.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains(field), "{message} should name {field}");
    }
    // Bytes that match their stated hash but are not ONNX.
    let mut not_onnx = good.clone();
    not_onnx["artifact"]["sha256"] = json!(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"not a model")));
    let response = register(&app, &engineer, &not_onnx, b"not a model".to_vec()).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.text().await.unwrap().contains("ONNX"));
    let form = Form::new().text("card", good.to_string());
    let response = app.client.post(app.url("/models")).bearer_auth(&engineer).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(register(&app, &labeler, &good, fixture("segmenter_v1")).await.status(), StatusCode::FORBIDDEN);
    let anonymous = app.client.post(app.url("/models")).multipart(Form::new().text("card", "{}")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.count("SELECT COUNT(*) FROM models").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log").await, audit_before);
    assert!(app.state.store.list("models/").await.unwrap().is_empty());

    let response = register(&app, &engineer, &good, fixture("segmenter_v1")).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let id = response.json::<Value>().await.unwrap()["model_id"].as_str().unwrap().to_string();
    let detail: Value = app.get_json(&labeler, &format!("/models/{id}")).await;
    assert_eq!(detail["state"], "registered");
    assert_eq!(detail["card"]["label_map"]["1"], "lesion");
    assert_eq!(detail["allowed_next"], json!(["shadow", "archived"]));
    let stored = app.state.store.get(&format!("models/{id}/model.onnx")).await.unwrap();
    assert_eq!(stored, fixture("segmenter_v1"));
    // The same name and version again.
    assert_eq!(register(&app, &engineer, &good, fixture("segmenter_v1")).await.status(), StatusCode::CONFLICT);
    app.stop().await;
}

#[tokio::test]
async fn transitions_follow_the_lifecycle_and_are_audited() {
    let app = TestApp::spawn().await;
    let engineer = app.user("ada", &[Role::MlEngineer]).await;
    let labeler = app.user("lee", &[Role::Labeler]).await;
    let v1 = registered(&app, &engineer, "cube-seg", "1.0.0", "segmenter_v1").await;
    let v2 = registered(&app, &engineer, "cube-seg", "2.0.0", "segmenter_v2").await;

    let refused = set_state(&app, &engineer, &v1, "production").await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let message = refused.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("Allowed: shadow, archived"), "{message}");
    assert_eq!(set_state(&app, &engineer, &v1, "retired").await.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(set_state(&app, &labeler, &v1, "shadow").await.status(), StatusCode::FORBIDDEN);
    assert_eq!(set_state(&app, &engineer, "no-such-model", "shadow").await.status(), StatusCode::NOT_FOUND);

    assert_eq!(set_state(&app, &engineer, &v1, "shadow").await.status(), StatusCode::OK);
    let second_shadow = set_state(&app, &engineer, &v2, "shadow").await;
    assert_eq!(second_shadow.status(), StatusCode::CONFLICT, "one shadow per name");
    assert_eq!(set_state(&app, &engineer, &v1, "production").await.status(), StatusCode::OK);
    let v1_production_at = seglab::server::clock::now_ms();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(set_state(&app, &engineer, &v2, "shadow").await.status(), StatusCode::OK);
    let active: Value = app.get_json(&labeler, "/models/active?name=cube-seg").await;
    assert_eq!(active["production"]["id"], v1.as_str());
    assert_eq!(active["shadow"]["id"], v2.as_str());

    // Promoting v2 archives v1 in the same transaction.
    assert_eq!(set_state(&app, &engineer, &v2, "production").await.status(), StatusCode::OK);
    let v1_detail: Value = app.get_json(&engineer, &format!("/models/{v1}")).await;
    assert_eq!(v1_detail["state"], "archived");
    assert_eq!(
        set_state(&app, &engineer, &v1, "production").await.status(),
        StatusCode::CONFLICT,
        "back only through shadow"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM models WHERE state = 'production'").await, 1);

    // What was in production when, from the audit log.
    let then: Value =
        app.get_json(&labeler, &format!("/models/production-at?name=cube-seg&at={v1_production_at}")).await;
    assert_eq!(then["model_id"], v1.as_str());
    let now: Value = app
        .get_json(&labeler, &format!("/models/production-at?name=cube-seg&at={}", seglab::server::clock::now_ms()))
        .await;
    assert_eq!(now["version"], "2.0.0");
    // Malformed queries get the API's JSON 400.
    for path in ["/models/production-at?name=cube-seg&at=yesterday", "/models/active", "/models/evaluation?name="] {
        let refused = app.client.get(app.url(path)).bearer_auth(&labeler).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(refused.json::<Value>().await.unwrap()["error"]["code"], "bad_request", "{path}");
    }
    let transitions = app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'model_state'").await;
    assert_eq!(transitions, 5, "v1→shadow, v1→production, v2→shadow, v1→archived, v2→production");

    // An archived version returns through shadow; the emergency rollback skips that.
    assert_eq!(set_state(&app, &engineer, &v1, "shadow").await.status(), StatusCode::OK);
    let rollback = |token: String, id: String| {
        let (client, url) = (app.client.clone(), app.url(&format!("/models/{id}/rollback")));
        async move { client.post(url).bearer_auth(token).send().await.unwrap() }
    };
    assert_eq!(rollback(labeler.clone(), v2.clone()).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(rollback(engineer.clone(), v1.clone()).await.status(), StatusCode::CONFLICT, "v1 is not in production");
    let rolled = rollback(engineer.clone(), v2.clone()).await;
    assert_eq!(rolled.status(), StatusCode::OK);
    let rolled: Value = rolled.json().await.unwrap();
    assert_eq!(
        (rolled["restored"]["id"].as_str(), rolled["restored"]["state"].as_str()),
        (Some(v1.as_str()), Some("production"))
    );
    assert_eq!(
        (rolled["archived"]["id"].as_str(), rolled["archived"]["state"].as_str()),
        (Some(v2.as_str()), Some("archived"))
    );
    let active: Value = app.get_json(&labeler, "/models/active?name=cube-seg").await;
    assert_eq!((active["production"]["id"].as_str(), &active["shadow"]), (Some(v1.as_str()), &Value::Null));
    let now: Value = app
        .get_json(&labeler, &format!("/models/production-at?name=cube-seg&at={}", seglab::server::clock::now_ms()))
        .await;
    assert_eq!(now["version"], "1.0.0");
    // The timeline tells the whole story, the rollback marked as such.
    let timeline: Vec<Value> = app.get_json(&labeler, "/models/timeline?name=cube-seg").await;
    let story: Vec<String> = timeline
        .iter()
        .map(|c| {
            format!(
                "{} {}→{}{}",
                c["version"].as_str().unwrap(),
                c["from"].as_str().unwrap_or("new"),
                c["to"].as_str().unwrap(),
                if c["rollback"] == true { " (rollback)" } else { "" }
            )
        })
        .collect();
    assert_eq!(
        story,
        [
            "1.0.0 new→registered",
            "2.0.0 new→registered",
            "1.0.0 registered→shadow",
            "1.0.0 shadow→production",
            "2.0.0 registered→shadow",
            "1.0.0 production→archived",
            "2.0.0 shadow→production",
            "1.0.0 archived→shadow",
            "2.0.0 production→archived (rollback)",
            "1.0.0 shadow→production (rollback)",
        ]
    );
    assert!(timeline.iter().all(|c| c["by"] == "ada"));
    // Rolling back again returns to 2.0.0, the production version before 1.0.0's return.
    assert_eq!(rollback(engineer.clone(), v1.clone()).await.status(), StatusCode::OK);
    let v2_detail: Value = app.get_json(&engineer, &format!("/models/{v2}")).await;
    assert_eq!(v2_detail["state"], "production");
    app.stop().await;
}

#[tokio::test]
async fn a_first_production_version_has_nothing_to_roll_back_to() {
    let app = TestApp::spawn().await;
    let engineer = app.user("ada", &[Role::MlEngineer]).await;
    let v1 = registered(&app, &engineer, "cube-seg", "1.0.0", "segmenter_v1").await;
    for state in ["shadow", "production"] {
        assert_eq!(set_state(&app, &engineer, &v1, state).await.status(), StatusCode::OK);
    }
    let refused =
        app.client.post(app.url(&format!("/models/{v1}/rollback"))).bearer_auth(&engineer).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert!(refused.text().await.unwrap().contains("nothing to roll back to"));
    assert_eq!(app.count("SELECT COUNT(*) FROM models WHERE state = 'production'").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_promotions_leave_exactly_one_winner() {
    let app = TestApp::spawn().await;
    let engineer = app.user("ada", &[Role::MlEngineer]).await;
    let mut versions = Vec::new();
    for n in 1..=6 {
        versions.push(registered(&app, &engineer, "race", &format!("1.0.{n}"), "segmenter_v1").await);
    }
    // Six versions race for the one shadow slot.
    let attempts = versions.iter().map(|id| set_state(&app, &engineer, id, "shadow"));
    let statuses: Vec<StatusCode> = futures::future::join_all(attempts).await.iter().map(|r| r.status()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == StatusCode::OK || *s == StatusCode::CONFLICT), "{statuses:?}");
    let shadow: String = sqlx::query("SELECT id FROM models WHERE state = 'shadow'")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
        .get("id");
    // Six requests promote the shadow to production at once: one wins.
    let attempts = (0..6).map(|_| set_state(&app, &engineer, &shadow, "production"));
    let statuses: Vec<StatusCode> = futures::future::join_all(attempts).await.iter().map(|r| r.status()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");
    assert_eq!(app.count("SELECT COUNT(*) FROM models WHERE state = 'production'").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'model_state'").await, 2);
    app.stop().await;
}

#[tokio::test]
async fn each_trigger_runs_one_production_and_one_shadow_job_with_outputs_apart() {
    let app = TestApp::spawn().await;
    let engineer = app.user("ada", &[Role::MlEngineer]).await;
    let labeler = app.user("lee", &[Role::Labeler]).await;
    let v1 = registered(&app, &engineer, "cube-seg", "1.0.0", "segmenter_v1").await;
    let v2 = registered(&app, &engineer, "cube-seg", "2.0.0", "segmenter_v2").await;
    for (id, state) in [(&v1, "shadow"), (&v1, "production"), (&v2, "shadow")] {
        assert_eq!(set_state(&app, &engineer, id, state).await.status(), StatusCode::OK);
    }

    // Trigger 1: a new case.
    let case_id = cube_case(&app).await;
    let jobs = finished_jobs(&app, &engineer, &case_id, 2).await;
    assert!(jobs.iter().all(|j| j["status"] == "succeeded" && j["trigger"] == "case_import"), "{jobs:?}");
    assert_eq!(jobs[0]["run_id"], jobs[1]["run_id"]);
    let mut pinned: Vec<(String, String)> =
        jobs.iter().map(|j| (j["role"].as_str().unwrap().into(), j["model_id"].as_str().unwrap().into())).collect();
    pinned.sort();
    assert_eq!(pinned, vec![("production".to_string(), v1.clone()), ("shadow".to_string(), v2.clone())]);
    let outputs = prediction_refs(&app, &case_id).await;
    assert!(outputs[0].1.starts_with(&format!("predictions/production/{case_id}/{v1}/")), "{outputs:?}");
    assert!(outputs[1].1.starts_with(&format!("predictions/shadow/{case_id}/{v2}/")), "{outputs:?}");

    // Real inference: v1 marks the cube and one face layer around it (see `dice_and_hd95`).
    let production = Volume::parse("prediction", &app.state.store.get(&outputs[0].1).await.unwrap()).unwrap();
    assert_eq!(production.meta.dims, [N as u32; 3]);
    let labels = production.into_labels("prediction").unwrap();
    assert_eq!(labels.iter().filter(|v| **v == 1).count(), 872);
    assert!((0..VOXELS).filter(|i| in_cube(*i)).all(|i| labels[i] == 1));

    // The production result pre-labels the unlabelled case; shadow output is never listed.
    let artifacts: Value = app.get_json(&labeler, &format!("/cases/{case_id}/artifacts?history=true")).await;
    let mask_url = artifacts["artifacts"][1]["url"].as_str().unwrap();
    let head = Volume::parse("mask", &app.download(&labeler, mask_url).await).unwrap();
    assert_eq!(head.into_labels("mask").unwrap(), labels);
    assert!(!artifacts.to_string().contains("predictions/"), "labelers never see model outputs");
    let seen: Vec<Value> = app.get_json(&labeler, &format!("/cases/{case_id}/jobs")).await;
    assert_eq!(seen.iter().map(|j| j["role"].as_str().unwrap()).collect::<Vec<_>>(), ["production"], "nor shadow jobs");
    let seen: Vec<Value> = app.get_json(&labeler, &format!("/models/{v2}/jobs")).await;
    assert!(seen.is_empty());
    // ML engineers see both outputs: in the jobs, and presigned with the case.
    let seen: Vec<Value> = app.get_json(&engineer, &format!("/cases/{case_id}/jobs")).await;
    assert!(seen.iter().all(|j| j["output_ref"].as_str().is_some_and(|r| r.starts_with("predictions/"))), "{seen:?}");
    let artifacts: Value = app.get_json(&engineer, &format!("/cases/{case_id}/artifacts")).await;
    let predictions = artifacts["predictions"].as_array().unwrap();
    let roles: Vec<(&str, &str)> =
        predictions.iter().map(|p| (p["role"].as_str().unwrap(), p["model_version"].as_str().unwrap())).collect();
    assert_eq!(roles, [("production", "1.0.0"), ("shadow", "2.0.0")]);
    let shown = app.client.get(predictions[0]["url"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(Volume::parse("prediction", &shown).unwrap().into_labels("prediction").unwrap(), labels);

    // The case page's one read and the model page's overview show each caller the same.
    for (token, jobs, predictions, may_run) in [(&labeler, 1, 0, false), (&engineer, 2, 2, true)] {
        let page: Value = app.get_json(token, &format!("/cases/{case_id}/overview")).await;
        assert_eq!(page["jobs"].as_array().unwrap().len(), jobs);
        assert_eq!(page["artifacts"]["predictions"].as_array().map_or(0, Vec::len), predictions);
        assert_eq!(page["artifacts"]["history_total"], artifacts["history_total"]);
        assert_eq!(page["review"]["actions"]["run_models"], may_run);
        assert_eq!(page["review"]["workflow"], artifacts["workflow"]);
    }
    let overview: Value = app.get_json(&labeler, &format!("/models/{v2}/overview")).await;
    assert_eq!(overview["detail"]["state"], "shadow");
    assert_eq!(overview["detail"]["allowed_next"], json!([]), "no lifecycle buttons for labelers");
    assert!(overview["evaluation"].is_null() && overview["jobs"] == json!([]) && overview["may_backfill"] == false);
    let overview: Value = app.get_json(&engineer, &format!("/models/{v2}/overview")).await;
    assert_eq!(overview["detail"]["allowed_next"], json!(["production", "registered"]));
    assert_eq!(overview["jobs"].as_array().unwrap().len(), 1);
    assert!(overview["evaluation"].is_object() && overview["may_backfill"] == true);
    let missing = app.client.get(app.url("/models/nothing/overview")).bearer_auth(&engineer).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // Trigger 2: manual, for ML engineers only.
    let forbidden =
        app.client.post(app.url(&format!("/cases/{case_id}/runs"))).bearer_auth(&labeler).send().await.unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    let started =
        app.client.post(app.url(&format!("/cases/{case_id}/runs"))).bearer_auth(&engineer).send().await.unwrap();
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let started: Value = started.json().await.unwrap();
    assert_eq!(started["jobs"].as_array().unwrap().len(), 2);
    finished_jobs(&app, &engineer, &case_id, 4).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM predictions").await, 4);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'model_run'").await, 2);
    app.stop().await;
}

#[tokio::test]
async fn a_repeated_run_trigger_queues_nothing_while_the_first_run_is_pending() {
    // No workers: the jobs stay queued.
    let app = TestApp::spawn_configured(|c| c.orchestrator.workers = 0, |_| {}).await;
    let engineer = app.user("mle", &[Role::MlEngineer]).await;
    let v1 = registered(&app, &engineer, "cube-seg", "1.0.0", "segmenter_v1").await;
    assert_eq!(set_state(&app, &engineer, &v1, "shadow").await.status(), StatusCode::OK);
    let case_id = cube_case(&app).await;
    // The import queued the shadow version's job: the triggers find it pending.
    assert_eq!(app.count("SELECT COUNT(*) FROM model_jobs").await, 1);
    let trigger = || async {
        let started =
            app.client.post(app.url(&format!("/cases/{case_id}/runs"))).bearer_auth(&engineer).send().await.unwrap();
        assert_eq!(started.status(), StatusCode::ACCEPTED);
        started.json::<Value>().await.unwrap()["run_id"].as_str().unwrap().to_string()
    };
    let runs = futures::future::join_all((0..6).map(|_| trigger())).await;
    assert!(runs.iter().all(|run| *run == runs[0]), "{runs:?}");
    assert_eq!(app.count("SELECT COUNT(*) FROM model_jobs").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'model_run'").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_failing_job_is_retried_with_backoff_then_marked_failed() {
    let app = TestApp::spawn_configured(|c| c.orchestrator.job_retry_base_ms = 50, |_| {}).await;
    // `broken` wants two input channels; the case image has one.
    let job = finished_shadow_job(&app, "broken-seg", "0.1.0", "broken").await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["attempts"], 3);
    assert_eq!(job["max_attempts"], 3);
    assert!(job["last_error"].as_str().unwrap().contains("cannot run"), "{job:?}");
    assert_eq!(app.count("SELECT COUNT(*) FROM predictions").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn an_attempt_over_the_timeout_fails() {
    // A zero timeout expires at the attempt's first wait (fetching the model and the image).
    let app = TestApp::spawn_configured(
        |c| {
            c.orchestrator.job_timeout_secs = 0;
            c.orchestrator.job_max_attempts = 2;
            c.orchestrator.job_retry_base_ms = 20;
        },
        |_| {},
    )
    .await;
    let job = finished_shadow_job(&app, "cube-seg", "1.0.0", "segmenter_v1").await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["attempts"], 2);
    assert_eq!(job["last_error"], "timed out after 0 s");
    app.stop().await;
}

#[tokio::test]
async fn unfinished_jobs_resume_after_a_restart() {
    // An instance without workers queues the jobs and stops...
    let app = TestApp::spawn_configured(|c| c.orchestrator.workers = 0, |_| {}).await;
    let engineer = app.user("ada", &[Role::MlEngineer]).await;
    let v1 = registered(&app, &engineer, "cube-seg", "1.0.0", "segmenter_v1").await;
    assert_eq!(set_state(&app, &engineer, &v1, "shadow").await.status(), StatusCode::OK);
    let case_id = cube_case(&app).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM model_jobs WHERE status = 'queued'").await, 1);
    // ...one left `running` by a crashed worker becomes claimable when its lease runs out...
    sqlx::query("UPDATE model_jobs SET status = 'running', attempts = 1, worker = 'crashed', lease_until = 1")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    // ...unless the crash came during its last attempt: then it is not tried again.
    let crashing_case = cube_case(&app).await;
    sqlx::query("UPDATE model_jobs SET status = 'running', attempts = 3, worker = 'crashed', lease_until = 1 WHERE case_id = $1")
        .bind(&crashing_case)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    // The restarted server finishes the first and gives up on the second.
    let app = app.restart(|_| {}).await;
    let jobs = finished_jobs(&app, &engineer, &case_id, 1).await;
    assert_eq!(jobs[0]["status"], "succeeded");
    assert_eq!(jobs[0]["attempts"], 2);
    let jobs = finished_jobs(&app, &engineer, &crashing_case, 1).await;
    assert_eq!(jobs[0]["status"], "failed");
    assert!(jobs[0]["last_error"].as_str().unwrap().contains("worker stopped"));
    app.stop().await;
}

#[tokio::test]
async fn dice_and_hd95_against_human_labels_on_a_known_case() {
    let app = TestApp::spawn().await;
    let engineer = app.user("ada", &[Role::MlEngineer]).await;
    let labeler = app.user("lee", &[Role::Labeler]).await;
    let v1 = registered(&app, &engineer, "cube-seg", "1.0.0", "segmenter_v1").await;
    let v2 = registered(&app, &engineer, "cube-seg", "2.0.0", "segmenter_v2").await;
    assert_eq!(set_state(&app, &engineer, &v1, "shadow").await.status(), StatusCode::OK);
    let case_id = cube_case(&app).await;
    finished_jobs(&app, &engineer, &case_id, 1).await;

    // A person labels exactly the cube (512 voxels).
    let head = app.head_mask_ref(&case_id).await;
    let cube: Vec<u8> = (0..VOXELS).map(|i| in_cube(i) as u8).collect();
    let edits = MaskEdits::diff(&vec![0; VOXELS], &cube).encode();
    let saved = app
        .client
        .post(app.url("/labels"))
        .bearer_auth(&labeler)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({ "case_id": case_id, "base_mask_ref": head, "edits": base64::engine::general_purpose::STANDARD.encode(edits) }))
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), StatusCode::CREATED);

    // v1 (threshold 0.5) marks the cube plus 360 face voxels: Dice 2·512/(872+512); every
    // surface point is within 1 mm of the other surface: HD95 1 mm.
    let evaluation: Value = evaluated(&app, &engineer, "cube-seg").await;
    let shadow = &evaluation["shadow"]["labels"][0];
    assert_eq!(shadow["dice"]["cases"], 1);
    assert!((shadow["dice"]["mean"].as_f64().unwrap() - 1024.0 / 1384.0).abs() < 1e-9, "{evaluation}");
    assert_eq!(shadow["hd95_mm"]["mean"], 1.0);
    assert_eq!(evaluation["paired_cases"], 0);

    // Promote v1, shadow v2 (threshold 0.8: cube plus 216 face voxels), run both: paired.
    assert_eq!(set_state(&app, &engineer, &v1, "production").await.status(), StatusCode::OK);
    assert_eq!(set_state(&app, &engineer, &v2, "shadow").await.status(), StatusCode::OK);
    let started =
        app.client.post(app.url(&format!("/cases/{case_id}/runs"))).bearer_auth(&engineer).send().await.unwrap();
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    finished_jobs(&app, &engineer, &case_id, 3).await;
    let evaluation: Value = evaluated(&app, &engineer, "cube-seg").await;
    assert_eq!(evaluation["paired_cases"], 1);
    let production_dice = evaluation["production"]["labels"][0]["dice"]["mean"].as_f64().unwrap();
    let shadow_dice = evaluation["shadow"]["labels"][0]["dice"]["mean"].as_f64().unwrap();
    assert!((production_dice - 1024.0 / 1384.0).abs() < 1e-9);
    assert!((shadow_dice - 1024.0 / 1240.0).abs() < 1e-9, "{evaluation}");
    let disagreement = &evaluation["disagreements"][0];
    assert_eq!(disagreement["case_id"], case_id.as_str());
    assert_eq!(disagreement["label"], 1);
    assert_eq!(evaluation["pairs"].as_array().unwrap().len(), 1);
    // The paired Dice drawn by the server: one point, at (production, shadow).
    let chart =
        app.client.get(app.url("/models/evaluation/chart?name=cube-seg")).bearer_auth(&engineer).send().await.unwrap();
    assert_eq!(chart.headers()["content-type"], "image/svg+xml");
    let svg = chart.text().await.unwrap();
    assert_eq!(svg.matches(r#"class="pair""#).count(), 1);
    assert!(svg.contains(&format!("production {production_dice:.3}, shadow {shadow_dice:.3}")), "{svg}");
    let refused =
        app.client.get(app.url("/models/evaluation/chart?name=cube-seg")).bearer_auth(&labeler).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    // The human label stays the case's mask: production output does not replace it.
    let head_now = app.head_mask_ref(&case_id).await;
    assert!(head_now.starts_with(&format!("cases/{case_id}/masks/")));
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'prelabel'").await, 0);
    app.stop().await;
}

/// A save of `mask` (from an empty mask at `head`) on `case_id`; returns the new mask ref.
async fn label_case(app: &TestApp, token: &str, case_id: &str, head: &str, from: &[u8], mask: &[u8]) -> String {
    let saved = app.post_label(token, case_id, head, &MaskEdits::diff(from, mask).encode()).await;
    assert_eq!(saved.status(), StatusCode::CREATED);
    saved.json::<Value>().await.unwrap()["new_mask_ref"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn evaluations_are_computed_in_the_background_once_per_prediction_and_human_version() {
    let app = TestApp::spawn().await;
    let engineer = app.user("ada", &[Role::MlEngineer]).await;
    let labeler = app.user("lee", &[Role::Labeler]).await;
    let v1 = registered(&app, &engineer, "cube-seg", "1.0.0", "segmenter_v1").await;
    assert_eq!(set_state(&app, &engineer, &v1, "shadow").await.status(), StatusCode::OK);
    let case_id = cube_case(&app).await;
    finished_jobs(&app, &engineer, &case_id, 1).await;
    let head = app.head_mask_ref(&case_id).await;
    let cube: Vec<u8> = (0..VOXELS).map(|i| in_cube(i) as u8).collect();
    let first = label_case(&app, &labeler, &case_id, &head, &vec![0; VOXELS], &cube).await;
    // The running evaluator scores the new human version without anyone asking.
    for _ in 0..300 {
        if app.count("SELECT COUNT(*) FROM evaluations").await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM evaluations").await, 1);

    // An instance without workers runs no evaluator: a new human version stays pending, and
    // reading the evaluation computes nothing.
    let app = app.restart(|c| c.orchestrator.workers = 0).await;
    let mut smaller = cube.clone();
    smaller[(0..VOXELS).find(|&i| in_cube(i)).unwrap()] = 0;
    label_case(&app, &labeler, &case_id, &first, &cube, &smaller).await;
    let pending: Value = app.get_json(&engineer, "/models/evaluation?name=cube-seg").await;
    assert_eq!((pending["pending_cases"].as_u64(), &pending["shadow"]["labels"][0]["dice"]), (Some(1), &Value::Null));
    assert_eq!(app.count("SELECT COUNT(*) FROM evaluations").await, 1);

    // Another instance's live claim keeps this one off the pair; an expired claim is taken over.
    let prediction_id: String =
        sqlx::query("SELECT id FROM predictions").fetch_one(&app.state.db.pool).await.unwrap().get(0);
    let human = app.head_mask_ref(&case_id).await;
    sqlx::query("INSERT INTO evaluation_claims (prediction_id, human_ref, worker, lease_until) VALUES ($1, $2, 'elsewhere', $3)")
        .bind(&prediction_id)
        .bind(&human)
        .bind(seglab::server::clock::now_ms() + 60_000)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(evaluation::evaluate_pending(&app.state, "here").await.unwrap(), 0);
    sqlx::query("UPDATE evaluation_claims SET lease_until = 0").execute(&app.state.db.pool).await.unwrap();
    assert_eq!(evaluation::evaluate_pending(&app.state, "here").await.unwrap(), 1);
    assert_eq!(evaluation::evaluate_pending(&app.state, "here").await.unwrap(), 0, "each pair once");
    assert_eq!(app.count("SELECT COUNT(*) FROM evaluation_claims").await, 0);
    let done: Value = app.get_json(&engineer, "/models/evaluation?name=cube-seg").await;
    assert_eq!(done["pending_cases"], 0);
    let dice = done["shadow"]["labels"][0]["dice"]["mean"].as_f64().unwrap();
    assert!((dice - 2.0 * 511.0 / (872.0 + 511.0)).abs() < 1e-9, "{done}");
    app.stop().await;
}

async fn start_backfill(app: &TestApp, token: &str, model_id: &str) -> reqwest::Response {
    app.client.post(app.url(&format!("/models/{model_id}/backfill"))).bearer_auth(token).send().await.unwrap()
}

#[tokio::test]
async fn a_backfill_evaluates_every_labelled_case_behind_interactive_jobs_and_can_be_cancelled() {
    // No workers at first, so the queue can be inspected.
    let app = TestApp::spawn_configured(|c| c.orchestrator.workers = 0, |_| {}).await;
    let engineer = app.user("ada", &[Role::MlEngineer]).await;
    let labeler = app.user("lee", &[Role::Labeler]).await;
    let v1 = registered(&app, &engineer, "cube-seg", "1.0.0", "segmenter_v1").await;
    let v2 = registered(&app, &engineer, "cube-seg", "2.0.0", "segmenter_v2").await;
    let v3 = registered(&app, &engineer, "cube-seg", "3.0.0", "segmenter_v2").await;
    let cube: Vec<u8> = (0..VOXELS).map(|i| in_cube(i) as u8).collect();
    let mut labelled = Vec::new();
    for _ in 0..3 {
        let case_id = cube_case(&app).await;
        let head = app.head_mask_ref(&case_id).await;
        label_case(&app, &labeler, &case_id, &head, &vec![0; VOXELS], &cube).await;
        labelled.push(case_id);
    }
    cube_case(&app).await; // not labelled: not part of a backfill

    assert_eq!(start_backfill(&app, &labeler, &v1).await.status(), StatusCode::FORBIDDEN);
    let started = start_backfill(&app, &engineer, &v1).await;
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let backfill: Value = started.json().await.unwrap();
    assert_eq!(
        (backfill["total"].as_u64(), backfill["queued"].as_u64(), backfill["finished"].as_bool()),
        (Some(3), Some(3), Some(false))
    );
    let again = start_backfill(&app, &engineer, &v1).await;
    assert_eq!(again.status(), StatusCode::CONFLICT, "one running backfill per version");

    // Cancelling removes the queued jobs; running ones would finish.
    let other: Value = start_backfill(&app, &engineer, &v3).await.json().await.unwrap();
    let cancel_path = format!("/backfills/{}/cancel", other["id"].as_str().unwrap());
    assert_eq!(
        app.client.post(app.url(&cancel_path)).bearer_auth(&labeler).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let cancelled: Value =
        app.client.post(app.url(&cancel_path)).bearer_auth(&engineer).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        (cancelled["cancelled"].as_u64(), cancelled["queued"].as_u64(), cancelled["finished"].as_bool()),
        (Some(3), Some(0), Some(true))
    );
    assert!(cancelled["cancelled_at_ms"].is_i64());
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM model_jobs WHERE model_id = '{v3}'")).await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'backfill_cancelled'").await, 1);
    let unknown = app.client.post(app.url("/backfills/nope/cancel")).bearer_auth(&engineer).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    // A run someone asks for later still goes first.
    assert_eq!(set_state(&app, &engineer, &v2, "shadow").await.status(), StatusCode::OK);
    let manual =
        app.client.post(app.url(&format!("/cases/{}/runs", labelled[0]))).bearer_auth(&engineer).send().await.unwrap();
    assert_eq!(manual.status(), StatusCode::ACCEPTED);
    let first = jobs::claim(&app.state, "probe").await.unwrap().unwrap();
    assert_eq!(first.model_id.as_str(), v2, "the interactive job before three older backfill jobs");
    jobs::release(&app.state, &first, "probe").await.unwrap();

    // With a worker, everything runs; progress counts the backfill's jobs, then v1 is scored
    // on its own on all three labelled cases.
    let app = app.restart(|_| {}).await;
    let progress_path = format!("/backfills/{}", backfill["id"].as_str().unwrap());
    let mut progress = Value::Null;
    for _ in 0..300 {
        progress = app.get_json(&engineer, &progress_path).await;
        if progress["finished"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!((progress["succeeded"].as_u64(), progress["failed"].as_u64()), (Some(3), Some(0)), "{progress}");
    assert!(progress["per_minute"].as_f64().unwrap() > 0.0);
    assert_eq!(progress["eta_ms"], Value::Null);
    let mut scored = Value::Null;
    for _ in 0..300 {
        scored = app.get_json(&engineer, &format!("/models/{v1}/evaluation")).await;
        if scored["pending_cases"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dice = &scored["score"]["labels"][0]["dice"];
    assert_eq!(dice["cases"], 3, "{scored}");
    assert!((dice["mean"].as_f64().unwrap() - 1024.0 / 1384.0).abs() < 1e-9);
    let refused =
        app.client.get(app.url(&format!("/models/{v1}/evaluation"))).bearer_auth(&labeler).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let nothing_left = start_backfill(&app, &engineer, &v1).await;
    assert_eq!(nothing_left.status(), StatusCode::CONFLICT);
    assert!(nothing_left.text().await.unwrap().contains("already has a prediction"));
    app.stop().await;
}

#[tokio::test]
async fn evaluations_are_for_ml_engineers_and_admins_only() {
    let app = TestApp::spawn().await;
    let labeler = app.user("lab", &[Role::Labeler]).await;
    let engineer = app.user("mle", &[Role::MlEngineer]).await;
    let refused =
        app.client.get(app.url("/models/evaluation?name=cube-seg")).bearer_auth(&labeler).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.text().await.unwrap().contains("reading model evaluations needs the role ml_engineer or admin"));
    let allowed =
        app.client.get(app.url("/models/evaluation?name=cube-seg")).bearer_auth(&engineer).send().await.unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    app.stop().await;
}

/// What the evaluator has made of one version's prediction of a case.
#[derive(Clone, Copy)]
enum Scored {
    NotPredicted,
    Pending,
    /// Dice and HD95 of label 1.
    Stored(Option<f64>, Option<f64>),
}

/// A new cube case with what an evaluation reads of it, written as the orchestrator, a person
/// and the evaluator would write it: a human mask version when `labelled`, and each version's
/// prediction and scores.
async fn evaluated_case(app: &TestApp, user_id: &str, labelled: bool, versions: [(&str, Scored); 2]) -> String {
    let case_id = cube_case(app).await; // queues a job per active version
    let now = seglab::server::clock::now_ms();
    let human_ref = format!("cases/{case_id}/masks/{}", uuid::Uuid::new_v4());
    if labelled {
        sqlx::query(
            "INSERT INTO labels (id, case_id, user_id, old_mask_ref, new_mask_ref, voxels_changed, runs, created_at)
             VALUES ($1, $2, $3, '', $4, 0, 0, $5)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(&case_id)
        .bind(user_id)
        .bind(&human_ref)
        .bind(now)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    }
    for (model_id, scored) in versions {
        if matches!(scored, Scored::NotPredicted) {
            continue;
        }
        let prediction_id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO predictions (id, job_id, case_id, model_id, role, object_ref, created_at)
             SELECT $1, id, case_id, model_id, role, $2, CAST($3 AS BIGINT) FROM model_jobs WHERE case_id = $4 AND model_id = $5",
        )
        .bind(&prediction_id)
        .bind(format!("predictions/{prediction_id}.nii.gz"))
        .bind(now)
        .bind(&case_id)
        .bind(model_id)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
        if let Scored::Stored(dice, hd95) = scored {
            // The scores are written as literals: a bound `None` and a bound float share one
            // prepared statement badly on PostgreSQL through the `Any` driver.
            let literal = |score: Option<f64>| score.map_or("NULL".to_string(), |value| format!("{value:?}"));
            sqlx::query(&format!(
                "INSERT INTO evaluations (prediction_id, human_ref, label_value, dice, hd95_mm, created_at) VALUES ($1, $2, 1, {}, {}, $3)",
                literal(dice),
                literal(hd95)
            ))
                .bind(&prediction_id)
                .bind(&human_ref)
                .bind(now)
                .execute(&app.state.db.pool)
                .await
                .unwrap();
        }
    }
    case_id
}

/// This app's state on a pool of one connection that counts the statements run through it:
/// each statement takes that connection from the pool, where it lies idle between them.
async fn counted_state(app: &TestApp) -> (AppState, Arc<AtomicUsize>) {
    let statements = Arc::new(AtomicUsize::new(0));
    let counter = statements.clone();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .before_acquire(move |_, _| {
            counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(true) })
        })
        .connect(&app.state.config.database_url())
        .await
        .unwrap();
    let mut state = app.state.clone();
    state.db.pool = pool;
    (state, statements)
}

/// The paired evaluation of `name` and the own evaluation of `model_id`, read on `state`, each
/// with the number of statements it took.
async fn counted_reads(
    state: &AppState,
    statements: &AtomicUsize,
    user: &User,
    name: &str,
    model_id: &str,
) -> ((PairedEvaluation, usize), (VersionEvaluation, usize)) {
    let start = statements.load(Ordering::SeqCst);
    let paired = comparison::paired_evaluation(state, user, name).await.unwrap();
    let middle = statements.load(Ordering::SeqCst);
    let own = comparison::version_evaluation(state, user, &ModelId::parse(model_id).unwrap()).await.unwrap();
    let end = statements.load(Ordering::SeqCst);
    ((paired, middle - start), (own, end - middle))
}

/// Mean and median, as the evaluation states them.
fn mean_median(values: &[f64]) -> (f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    let median = if sorted.len() % 2 == 1 { sorted[middle] } else { (sorted[middle - 1] + sorted[middle]) / 2.0 };
    (sorted.iter().sum::<f64>() / sorted.len() as f64, median)
}

fn assert_stats(stats: &Value, values: &[f64]) {
    let (mean, median) = mean_median(values);
    assert_eq!(stats["cases"], values.len(), "{stats}");
    assert!((stats["mean"].as_f64().unwrap() - mean).abs() < 1e-12, "{stats}: mean {mean}");
    assert!((stats["median"].as_f64().unwrap() - median).abs() < 1e-12, "{stats}: median {median}");
}

#[tokio::test]
async fn an_evaluation_is_read_in_as_many_statements_for_many_cases_as_for_few() {
    // No workers: nothing computes behind the test's back.
    let app = TestApp::spawn_configured(|c| c.orchestrator.workers = 0, |_| {}).await;
    let engineer = app.user("ada", &[Role::MlEngineer]).await;
    let user = users::user_for_token(&app.state.db, &engineer).await.unwrap().unwrap();
    let production = registered(&app, &engineer, "cube-seg", "1.0.0", "segmenter_v1").await;
    let shadow = registered(&app, &engineer, "cube-seg", "2.0.0", "segmenter_v2").await;
    for (id, state) in [(&production, "shadow"), (&production, "production"), (&shadow, "shadow")] {
        assert_eq!(set_state(&app, &engineer, id, state).await.status(), StatusCode::OK);
    }
    use Scored::*;
    let case = |labelled: bool, p: Scored, s: Scored| {
        evaluated_case(&app, &user.id, labelled, [(production.as_str(), p), (shadow.as_str(), s)])
    };
    // Paired, and pre-labelled by production.
    let anchored = case(true, Stored(Some(0.9), Some(1.0)), Stored(Some(0.7), Some(2.0))).await;
    sqlx::query("INSERT INTO prelabels (mask_ref, case_id, model_id, created_at) VALUES ($1, $2, $3, 0)")
        .bind(format!("cases/{anchored}/masks/prelabel"))
        .bind(&anchored)
        .bind(&production)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    case(true, Stored(Some(0.8), None), Pending).await; // left out of both until scored
    case(true, Stored(Some(0.5), Some(3.0)), NotPredicted).await; // production's own only
    case(false, Pending, Pending).await; // nobody labelled it: not evaluated
    case(true, Stored(None, None), Stored(None, None)).await; // the label is not in the human mask

    let (counted, statements) = counted_state(&app).await;
    let ((paired, few_paired), (own, few_own)) =
        counted_reads(&counted, &statements, &user, "cube-seg", &production).await;
    assert!(few_paired > 0 && few_own > 0, "statements are counted");
    let paired = serde_json::to_value(&paired).unwrap();
    assert_eq!(paired, app.get_json::<Value>(&engineer, "/models/evaluation?name=cube-seg").await);
    assert_eq!(
        (&paired["paired_cases"], &paired["pending_cases"], &paired["excluded_training_cases"]),
        (&json!(2), &json!(1), &json!(0))
    );
    assert_stats(&paired["production"]["labels"][0]["dice"], &[0.9]);
    assert_stats(&paired["production"]["labels"][0]["hd95_mm"], &[1.0]);
    assert_stats(&paired["shadow"]["labels"][0]["dice"], &[0.7]);
    assert_stats(&paired["shadow"]["labels"][0]["hd95_mm"], &[2.0]);
    let pair =
        json!([{ "case_id": anchored, "case_name": "cube", "label": 1, "production_dice": 0.9, "shadow_dice": 0.7 }]);
    assert_eq!((&paired["pairs"], &paired["disagreements"]), (&pair, &pair));
    assert_eq!(
        paired["anchored_cases"],
        json!([{ "case_id": anchored, "case_name": "cube", "model_version": "1.0.0" }])
    );
    let own = serde_json::to_value(&own).unwrap();
    assert_eq!(own, app.get_json::<Value>(&engineer, &format!("/models/{production}/evaluation")).await);
    assert_eq!((&own["pending_cases"], &own["excluded_training_cases"]), (&json!(0), &json!(0)));
    assert_stats(&own["score"]["labels"][0]["dice"], &[0.9, 0.8, 0.5]);
    assert_stats(&own["score"]["labels"][0]["hd95_mm"], &[1.0, 3.0]);

    // Twelve more paired cases: the same statements, the figures of all of them.
    let (mut production_dice, mut shadow_dice) = (vec![0.9], vec![0.7]);
    for n in 0..12 {
        let (p, s) = (0.5 + n as f64 / 100.0, 0.6 + n as f64 / 50.0);
        case(true, Stored(Some(p), Some(n as f64)), Stored(Some(s), Some(1.0))).await;
        production_dice.push(p);
        shadow_dice.push(s);
    }
    let ((paired, many_paired), (own, many_own)) =
        counted_reads(&counted, &statements, &user, "cube-seg", &production).await;
    assert_eq!((many_paired, many_own), (few_paired, few_own), "statements for 14 cases against 2");
    let paired = serde_json::to_value(&paired).unwrap();
    assert_eq!(paired, app.get_json::<Value>(&engineer, "/models/evaluation?name=cube-seg").await);
    assert_eq!((&paired["paired_cases"], &paired["pending_cases"]), (&json!(14), &json!(1)));
    assert_stats(&paired["production"]["labels"][0]["dice"], &production_dice);
    assert_stats(&paired["shadow"]["labels"][0]["dice"], &shadow_dice);
    assert_eq!(paired["pairs"].as_array().unwrap().len(), 13);
    let gaps: Vec<f64> = paired["disagreements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["production_dice"].as_f64().unwrap() - d["shadow_dice"].as_f64().unwrap()).abs())
        .collect();
    assert_eq!(gaps.len(), 10);
    assert!(gaps.windows(2).all(|w| w[0] >= w[1]), "largest first: {gaps:?}");
    let own = serde_json::to_value(&own).unwrap();
    assert_eq!(own, app.get_json::<Value>(&engineer, &format!("/models/{production}/evaluation")).await);
    assert_stats(&own["score"]["labels"][0]["dice"], &[production_dice.as_slice(), &[0.8, 0.5]].concat());
    app.stop().await;
}

/// The error of the one shadow job a cube case triggers on an instance configured by
/// `configure` (one attempt per job), which must have failed.
async fn failed_shadow_job(configure: impl FnOnce(&mut seglab::server::config::Config)) -> (TestApp, String) {
    let app = TestApp::spawn_configured(
        |c| {
            c.orchestrator.job_max_attempts = 1;
            configure(c);
        },
        |_| {},
    )
    .await;
    let job = finished_shadow_job(&app, "cube-seg", "1.0.0", "segmenter_v1").await;
    assert_eq!(job["status"], "failed");
    let error = job["last_error"].as_str().unwrap().to_string();
    (app, error)
}

#[tokio::test]
async fn a_case_over_the_inference_budget_is_refused_before_any_work() {
    let (app, error) = failed_shadow_job(|c| c.orchestrator.max_inference_voxels = 1000).await;
    assert!(error.contains("more than this instance's inference budget of 1000"), "{error}");
    assert_eq!(app.count("SELECT COUNT(*) FROM predictions").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn an_inference_over_its_memory_budget_is_stopped_with_the_reason() {
    // 1 MiB: less than the child reading this 64³ float32 image takes (1 MiB for the file, as
    // much again for its intensities), let alone running the model. The 20³ cube's 32 KB
    // could fit in the heap the child's start-up left free, and then the budget is never hit.
    let app = TestApp::spawn_configured(
        |c| {
            c.orchestrator.job_max_attempts = 1;
            c.orchestrator.inference_memory_mib = 1;
        },
        |_| {},
    )
    .await;
    let engineer = app.user("ada", &[Role::MlEngineer]).await;
    let model = registered(&app, &engineer, "cube-seg", "1.0.0", "segmenter_v1").await;
    assert_eq!(set_state(&app, &engineer, &model, "shadow").await.status(), StatusCode::OK);
    let case_id = CaseBuilder::new("large")
        .dims([64; 3])
        .header(cube_header())
        .float32(|index| (index % 7) as f32)
        .labels(&[(1, "lesion")])
        .import(&app)
        .await;
    let job = finished_jobs(&app, &engineer, &case_id, 1).await.remove(0);
    assert_eq!(job["status"], "failed");
    let error = job["last_error"].as_str().unwrap();
    assert!(error.contains("more than its memory budget of 1 MiB (--inference-memory-mib)"), "{error}");
    app.stop().await;
}

#[tokio::test]
async fn an_inference_over_its_timeout_is_killed_and_stops_using_the_cpu() {
    let runaway = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/runaway_inference.sh");
    let app = TestApp::spawn_configured(
        |c| {
            c.orchestrator.inference_program = Some(runaway.into());
            c.orchestrator.job_timeout_secs = 2;
            c.orchestrator.job_max_attempts = 1;
        },
        |_| {},
    )
    .await;
    let job = finished_shadow_job(&app, "cube-seg", "1.0.0", "segmenter_v1").await;
    assert_eq!(job["last_error"], "timed out after 2 s");

    // The inference process was started, and is gone (or a zombie awaiting its reaping).
    let jobs_dir = app.data_dir.path().join("inference/jobs");
    let pid_file = std::fs::read_dir(&jobs_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|e| e == "pid"))
        .expect("the inference process was started");
    let pid = std::fs::read_to_string(pid_file).unwrap().trim().to_string();
    let running = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
        stat.is_some_and(|stat| stat.rsplit(')').next().and_then(|rest| rest.trim_start().chars().next()) != Some('Z'))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while running() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!running(), "the inference process {pid} still runs after its attempt timed out");
    app.stop().await;
}

#[tokio::test]
async fn evaluation_leaves_out_training_cases_and_flags_a_versions_own_prelabels() {
    let app = TestApp::spawn().await;
    let lead = app.user("lead", &[Role::Labeler, Role::Reviewer, Role::MlEngineer, Role::Admin]).await;
    let v1 = registered(&app, &lead, "cube-seg", "1.0.0", "segmenter_v1").await;
    assert_eq!(set_state(&app, &lead, &v1, "shadow").await.status(), StatusCode::OK);
    assert_eq!(set_state(&app, &lead, &v1, "production").await.status(), StatusCode::OK);

    // The production version pre-labels the new, unlabelled case; a person corrects it.
    let case_id = cube_case(&app).await;
    finished_jobs(&app, &lead, &case_id, 1).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM prelabels").await, 1);
    let counts = |app: &TestApp| {
        let pool = app.state.db.pool.clone();
        let case_id = case_id.clone();
        async move {
            sqlx::query("SELECT label_counts_json FROM cases WHERE id = $1")
                .bind(case_id)
                .fetch_one(&pool)
                .await
                .unwrap()
                .get::<String, _>(0)
        }
    };
    assert_eq!(counts(&app).await, r#"{"1":872}"#, "the pre-label's voxels: the cube and 360 face voxels");
    let head = app.head_mask_ref(&case_id).await;
    let predicted = Volume::parse("mask", &app.mask_file(&lead, &head).await).unwrap().into_labels("mask").unwrap();
    let cube: Vec<u8> = (0..VOXELS).map(|i| in_cube(i) as u8).collect();
    let saved = app.post_label(&lead, &case_id, &head, &MaskEdits::diff(&predicted, &cube).encode()).await;
    assert_eq!(saved.status(), StatusCode::CREATED);
    assert_eq!(counts(&app).await, r#"{"1":512}"#, "corrected to the cube");
    let evaluation: Value = evaluated(&app, &lead, "cube-seg").await;
    assert_eq!(evaluation["production"]["labels"][0]["dice"]["cases"], 1);
    assert_eq!(evaluation["anchored_cases"][0]["case_id"], case_id.as_str(), "{evaluation}");
    assert_eq!(evaluation["anchored_cases"][0]["model_version"], "1.0.0");

    // The case is approved (by someone who did not label it) and frozen into a snapshot; v2
    // says it was trained on it.
    let reviewer = app.user("rita", &[Role::Reviewer]).await;
    for (status, token) in [("submitted", &lead), ("approved", &reviewer)] {
        assert_eq!(app.set_case_status(token, &case_id, status).await.status(), StatusCode::OK);
    }
    let snapshot = app
        .client
        .post(app.url("/datasets"))
        .bearer_auth(&lead)
        .json(&json!({ "name": "cubes" }))
        .send()
        .await
        .unwrap();
    assert_eq!(snapshot.status(), StatusCode::CREATED);
    let dataset_id = snapshot.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let mut unknown = card("cube-seg", "2.0.0", "segmenter_v2");
    unknown["training_datasets"] = json!(["no-such-snapshot"]);
    let refused = register(&app, &lead, &unknown, fixture("segmenter_v2")).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text().await.unwrap().contains("training_datasets"));
    let mut trained = card("cube-seg", "2.0.0", "segmenter_v2");
    trained["training_datasets"] = json!([dataset_id]);
    let response = register(&app, &lead, &trained, fixture("segmenter_v2")).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let v2 = response.json::<Value>().await.unwrap()["model_id"].as_str().unwrap().to_string();
    assert_eq!(set_state(&app, &lead, &v2, "shadow").await.status(), StatusCode::OK);
    let started = app.client.post(app.url(&format!("/cases/{case_id}/runs"))).bearer_auth(&lead).send().await.unwrap();
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    finished_jobs(&app, &lead, &case_id, 3).await;

    // v2 predicted the case, but it trained on it: left out, so nothing is paired.
    let evaluation: Value = evaluated(&app, &lead, "cube-seg").await;
    assert_eq!(evaluation["excluded_training_cases"], 1, "{evaluation}");
    assert_eq!(evaluation["paired_cases"], 0);
    assert_eq!(evaluation["shadow"]["labels"][0]["dice"], Value::Null, "{evaluation}");
    app.stop().await;
}

/// Registers `segmenter_v1` as two shadow versions, one run in process and one on the
/// inference server at `endpoint`, imports the cube case, and checks that both jobs succeed and
/// label every voxel alike; the case and the remote version's id.
async fn in_process_and_remote_agree(app: &TestApp, engineer: &str, endpoint: &str) -> (String, String) {
    let local = registered(app, engineer, "cube-local", "1.0.0", "segmenter_v1").await;
    let mut remote_card = card("cube-remote", "1.0.0", "segmenter_v1");
    remote_card["artifact"] = json!({
        "format": "oip-v2", "sha256": fixture_sha("segmenter_v1"), "endpoint": endpoint, "model_name": "segmenter-v1",
    });
    let registered_remote = register(app, engineer, &remote_card, fixture("segmenter_v1")).await;
    assert_eq!(registered_remote.status(), StatusCode::CREATED);
    let remote = registered_remote.json::<Value>().await.unwrap()["model_id"].as_str().unwrap().to_string();
    for id in [&local, &remote] {
        assert_eq!(set_state(app, engineer, id, "shadow").await.status(), StatusCode::OK);
    }
    let case_id = cube_case(app).await;
    let jobs = finished_jobs(app, engineer, &case_id, 2).await;
    assert!(jobs.iter().all(|j| j["status"] == "succeeded"), "{jobs:?}");
    let output_of =
        |model: &str| jobs.iter().find(|j| j["model_id"] == model).unwrap()["output_ref"].as_str().unwrap().to_string();
    let labels_of = |bytes: &[u8]| Volume::parse("prediction", bytes).unwrap().into_labels("prediction").unwrap();
    let in_process = labels_of(&app.state.store.get(&output_of(&local)).await.unwrap());
    let over_oip = labels_of(&app.state.store.get(&output_of(&remote)).await.unwrap());
    assert_eq!(in_process.iter().filter(|v| **v == 1).count(), 872, "the cube and one face layer");
    assert!(in_process == over_oip, "tract in process and onnxruntime on {endpoint} label every voxel alike");
    (case_id, remote)
}

#[tokio::test]
async fn an_oip_v2_version_on_mlserver_labels_each_voxel_as_in_process_inference_does() {
    // MLServer's REST front end does not read the binary tensor extension: the runner falls
    // back to JSON for it.
    let server = InferenceServer::mlserver("segmenter-v1", &fixture_path("segmenter_v1")).await;
    // One attempt per job and two requests per attempt, so the failure below comes quickly.
    let app = TestApp::spawn_configured(
        |c| {
            c.orchestrator.job_max_attempts = 1;
            c.orchestrator.oip_attempts = 2;
            c.orchestrator.oip_allowed_hosts = vec!["127.0.0.1".into()];
        },
        |_| {},
    )
    .await;
    let engineer = app.user("ada", &[Role::MlEngineer]).await;
    let (case_id, remote) = in_process_and_remote_agree(&app, &engineer, &server.url).await;

    // With the server gone, the remote job fails with the reason after its retries.
    drop(server);
    let started =
        app.client.post(app.url(&format!("/cases/{case_id}/runs"))).bearer_auth(&engineer).send().await.unwrap();
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let jobs = finished_jobs(&app, &engineer, &case_id, 4).await;
    let failed: Vec<&Value> = jobs.iter().filter(|j| j["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{jobs:?}");
    assert_eq!(failed[0]["model_id"], remote.as_str());
    let error = failed[0]["last_error"].as_str().unwrap();
    assert!(
        error.contains("inference server http://127.0.0.1:")
            && error.contains("no answer")
            && error.contains("(attempt 2)"),
        "{error}"
    );
    app.stop().await;
}

#[tokio::test]
async fn kserve_gets_binary_tensors_and_labels_each_voxel_as_in_process_inference_does() {
    let server = InferenceServer::kserve("segmenter-v1", &fixture_path("segmenter_v1")).await;
    let run_on = |json_tensors: bool| {
        let url = server.url.clone();
        async move {
            let app = TestApp::spawn_configured(
                |c| {
                    c.orchestrator.oip_allowed_hosts = vec!["127.0.0.1".into()];
                    c.orchestrator.oip_json_tensors = json_tensors;
                },
                |_| {},
            )
            .await;
            let engineer = app.user("ada", &[Role::MlEngineer]).await;
            in_process_and_remote_agree(&app, &engineer, &url).await;
            app.stop().await;
        }
    };
    // The image goes as raw bytes and the logits come back so, streamed into the labels.
    run_on(false).await;
    assert_eq!(server.requests(), ["binary binary-answer"], "{}", server.log());
    // An operator may keep to JSON.
    run_on(true).await;
    assert_eq!(server.requests(), ["binary binary-answer", "json json-answer"], "{}", server.log());
}

#[tokio::test]
async fn requests_to_an_inference_server_time_out_and_stay_within_the_concurrency_limit() {
    // A server that accepts connections and never answers, counting those open at once.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let (open, most) = (
        std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0)),
    );
    let (counting, peak) = (open.clone(), most.clone());
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let (open, most) = (counting.clone(), peak.clone());
            tokio::spawn(async move {
                let now = open.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                // Hold the connection until the client gives up on it.
                let mut socket = socket;
                let mut buffer = vec![0u8; 1 << 16];
                while tokio::io::AsyncReadExt::read(&mut socket, &mut buffer).await.is_ok_and(|n| n > 0) {}
                open.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
    });
    let app = TestApp::spawn_configured(
        |c| {
            c.orchestrator.workers = 2;
            c.orchestrator.job_max_attempts = 1;
            c.orchestrator.oip_attempts = 1;
            c.orchestrator.oip_timeout_secs = 1;
            c.orchestrator.oip_concurrency = 1;
            c.orchestrator.oip_endpoint = Some(endpoint.clone());
        },
        |_| {},
    )
    .await;
    let engineer = app.user("ada", &[Role::MlEngineer]).await;
    // No endpoint in the card: the instance's --oip-endpoint.
    let mut remote_card = card("cube-remote", "1.0.0", "segmenter_v1");
    remote_card["artifact"] =
        json!({ "format": "oip-v2", "sha256": fixture_sha("segmenter_v1"), "model_name": "segmenter-v1" });
    let response = register(&app, &engineer, &remote_card, fixture("segmenter_v1")).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let remote = response.json::<Value>().await.unwrap()["model_id"].as_str().unwrap().to_string();
    assert_eq!(set_state(&app, &engineer, &remote, "shadow").await.status(), StatusCode::OK);
    let cases = [cube_case(&app).await, cube_case(&app).await];
    for case_id in &cases {
        let jobs = finished_jobs(&app, &engineer, case_id, 1).await;
        let error = jobs[0]["last_error"].as_str().unwrap();
        assert!(
            error.contains(&format!("inference server {endpoint}/v2/models/segmenter-v1/infer"))
                && error.contains("no answer"),
            "{error}"
        );
    }
    assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 1, "two workers, one request in flight at a time");
    app.stop().await;
}

/// An `oip-v2` card for `segmenter-v1` on the inference server at `endpoint`.
/// An app that may use the inference server at `endpoint`, one attempt per job.
async fn app_using(endpoint: &str) -> TestApp {
    let allowed = host_of(endpoint);
    TestApp::spawn_configured(
        |c| {
            c.orchestrator.oip_allowed_hosts = vec![allowed];
            c.orchestrator.job_max_attempts = 1;
        },
        |_| {},
    )
    .await
}

/// Registers version 1.0.0 of `name`, served by the inference server at `endpoint`; its id.
async fn remote_version(app: &TestApp, token: &str, name: &str, endpoint: &str) -> String {
    let response = register(app, token, &remote_card(name, endpoint), fixture("segmenter_v1")).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Value>().await.unwrap()["model_id"].as_str().unwrap().to_string()
}

fn remote_card(name: &str, endpoint: &str) -> Value {
    let mut remote = card(name, "1.0.0", "segmenter_v1");
    remote["artifact"] = json!({ "format": "oip-v2", "sha256": fixture_sha("segmenter_v1"), "endpoint": endpoint, "model_name": "segmenter-v1" });
    remote
}

/// `endpoint` as an `--oip-allowed-hosts` entry (`host:port`).
fn host_of(endpoint: &str) -> String {
    endpoint.trim_start_matches("http://").to_string()
}

/// What a fake, hostile inference server does with each request it has read.
enum Hostile {
    /// Answers these bytes, a whole HTTP response, and closes.
    Answer(String),
    /// Answers 200 with logits that never end.
    EndlessAnswer,
    /// Announces an answer of 1 TiB and sends none of it.
    HugeAnswer,
}

/// A fake inference server on a free port, behaving as `hostile` says. Returns its base URL
/// and the number of requests it has read.
async fn hostile_server(hostile: Hostile) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (counter, hostile) = (requests.clone(), std::sync::Arc::new(hostile));
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let (counter, hostile) = (counter.clone(), hostile.clone());
            tokio::spawn(async move {
                // The request's head, then as many body bytes as it announces.
                let mut received = Vec::new();
                let mut buffer = vec![0u8; 1 << 16];
                loop {
                    if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                        if received.len() >= end + 4 + length {
                            break;
                        }
                    }
                    match socket.read(&mut buffer).await {
                        Ok(n) if n > 0 => received.extend_from_slice(&buffer[..n]),
                        _ => return,
                    }
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                match &*hostile {
                    Hostile::Answer(response) => {
                        let _ = socket.write_all(response.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    }
                    Hostile::EndlessAnswer => {
                        let chunk = |data: &str| format!("{:x}\r\n{data}\r\n", data.len());
                        let head =
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                        let start = r#"{"outputs":[{"name":"logits","shape":[1,2,20,20,20],"datatype":"FP32","data":["#;
                        let zeros = chunk(&"0,".repeat(32 << 10));
                        let _ = socket.write_all(format!("{head}{}", chunk(start)).as_bytes()).await;
                        while socket.write_all(zeros.as_bytes()).await.is_ok() {}
                    }
                    Hostile::HugeAnswer => {
                        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1099511627776\r\n\r\n";
                        let _ = socket.write_all(head.as_bytes()).await;
                        // Hold the connection until the client gives up on it.
                        while socket.read(&mut buffer).await.is_ok_and(|n| n > 0) {}
                    }
                }
            });
        }
    });
    (url, requests)
}

/// A whole HTTP response with `status` and `body`.
fn http_answer(status: &str, headers: &str, body: &str) -> String {
    format!("HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
}

#[tokio::test]
async fn registration_accepts_only_the_operators_inference_servers_and_bounded_channels() {
    let app = TestApp::spawn_configured(
        |c| {
            c.orchestrator.oip_endpoint = Some("http://gpu.internal:8080".into());
            c.orchestrator.oip_allowed_hosts = vec!["triton.internal:8443".into()];
        },
        |_| {},
    )
    .await;
    let engineer = app.user("ada", &[Role::MlEngineer]).await;
    let mut too_many = card("cube-seg", "1.0.0", "segmenter_v1");
    too_many["label_map"] =
        (1..=255).map(|v: u32| (v.to_string(), json!(format!("label {v}")))).collect::<serde_json::Map<_, _>>().into();
    too_many["output_channels"] = json!((0..257).map(|v| v % 256).collect::<Vec<u32>>());
    let mut repeated = card("cube-seg", "1.0.0", "segmenter_v1");
    repeated["output_channels"] = json!([0, 1, 1]);
    let refused: Vec<(Value, &str, &str)> = vec![
        (
            remote_card("remote", "http://evil.example:8080"),
            "artifact.endpoint",
            "evil.example:8080 is not an inference server",
        ),
        (
            remote_card("remote", "http://gpu.internal:9999"),
            "artifact.endpoint",
            "gpu.internal:9999 is not an inference server",
        ),
        // The card may not choose the path (a fragment cuts off what follows), add a query, or carry credentials.
        (remote_card("remote", "http://gpu.internal:8080/x#"), "artifact.endpoint", "fragment"),
        (remote_card("remote", "http://gpu.internal:8080/?model=other"), "artifact.endpoint", "query"),
        (remote_card("remote", "http://admin:secret@triton.internal:8443"), "artifact.endpoint", "credentials"),
        (too_many, "output_channels", "2 to 256"),
        (repeated, "output_channels", "none twice"),
    ];
    for (card, field, why) in refused {
        let response = register(&app, &engineer, &card, fixture("segmenter_v1")).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{card}");
        let message = response.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains(&format!("model card field `{field}`")) && message.contains(why), "{message}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM models").await, 0);
    // --oip-endpoint's host and port under another base path, and a listed host.
    for (name, endpoint) in
        [("on-default", "http://gpu.internal:8080/kserve"), ("on-listed", "http://triton.internal:8443")]
    {
        assert_eq!(
            register(&app, &engineer, &remote_card(name, endpoint), fixture("segmenter_v1")).await.status(),
            StatusCode::CREATED
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_server_taken_off_the_allowlist_gets_no_more_images() {
    let (server, requests) =
        hostile_server(Hostile::Answer(http_answer("500 Internal Server Error", "", "down"))).await;
    let allowed = host_of(&server);
    let app = TestApp::spawn_configured(|c| c.orchestrator.oip_allowed_hosts = vec![allowed], |_| {}).await;
    let engineer = app.user("ada", &[Role::MlEngineer]).await;
    let model = remote_version(&app, &engineer, "cube-remote", &server).await;
    // The operator restarts the instance without that server.
    let app = app.restart(|c| c.orchestrator.job_max_attempts = 1).await;
    assert_eq!(set_state(&app, &engineer, &model, "shadow").await.status(), StatusCode::OK);
    let case_id = cube_case(&app).await;
    let job = finished_jobs(&app, &engineer, &case_id, 1).await.remove(0);
    assert_eq!(job["status"], "failed");
    let error = job["last_error"].as_str().unwrap();
    assert!(
        error.contains("card field `artifact.endpoint`")
            && error.contains("is not an inference server this instance may use"),
        "{error}"
    );
    assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 0, "the image was not sent");
    app.stop().await;
}

#[tokio::test]
async fn an_inference_servers_redirect_is_not_followed() {
    let (elsewhere, reached) = hostile_server(Hostile::Answer(http_answer("200 OK", "", "{}"))).await;
    let headers = format!("location: {elsewhere}/v2/models/segmenter-v1/infer\r\n");
    let (server, _) = hostile_server(Hostile::Answer(http_answer("307 Temporary Redirect", &headers, ""))).await;
    let app = app_using(&server).await;
    let engineer = app.user("ada", &[Role::MlEngineer]).await;
    let model = remote_version(&app, &engineer, "cube-remote", &server).await;
    assert_eq!(set_state(&app, &engineer, &model, "shadow").await.status(), StatusCode::OK);
    let case_id = cube_case(&app).await;
    let job = finished_jobs(&app, &engineer, &case_id, 1).await.remove(0);
    let error = job["last_error"].as_str().unwrap();
    assert!(error.contains("redirected the request (status 307); redirects are not followed"), "{error}");
    assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 0, "the image went nowhere else");
    app.stop().await;
}

#[tokio::test]
async fn an_answer_over_the_cap_is_refused_as_soon_as_it_passes_or_announces_it() {
    let (endless, _) = hostile_server(Hostile::EndlessAnswer).await;
    let (huge, _) = hostile_server(Hostile::HugeAnswer).await;
    let allowed = vec![host_of(&endless), host_of(&huge)];
    let app = TestApp::spawn_configured(
        |c| {
            c.orchestrator.oip_allowed_hosts = allowed;
            c.orchestrator.oip_max_answer_bytes = 1 << 20;
            c.orchestrator.workers = 2;
            c.orchestrator.job_max_attempts = 1;
            // Far longer than the test waits: only the cap ends these requests.
            c.orchestrator.oip_timeout_secs = 120;
        },
        |_| {},
    )
    .await;
    let engineer = app.user("ada", &[Role::MlEngineer]).await;
    for (name, server) in [("endless", &endless), ("huge", &huge)] {
        let model = remote_version(&app, &engineer, name, server).await;
        assert_eq!(set_state(&app, &engineer, &model, "shadow").await.status(), StatusCode::OK);
    }
    let case_id = cube_case(&app).await;
    let jobs = finished_jobs(&app, &engineer, &case_id, 2).await;
    let error_of =
        |name: &str| jobs.iter().find(|j| j["model_name"] == name).unwrap()["last_error"].as_str().unwrap().to_string();
    let cap = "this instance reads at most 1048576 (--oip-max-answer-bytes)";
    let endless_error = error_of("endless");
    assert!(
        endless_error.contains("an answer of more than 1048576 bytes") && endless_error.contains(cap),
        "{endless_error}"
    );
    let huge_error = error_of("huge");
    assert!(huge_error.contains("an answer of 1099511627776 bytes") && huge_error.contains(cap), "{huge_error}");
    app.stop().await;
}

#[tokio::test]
async fn what_an_inference_server_says_is_shown_to_ml_engineers_and_admins_only() {
    let said = format!("Traceback: /srv/secret-models/liver.onnx: bad input; token=SECRET-123 {}", "x".repeat(10_000));
    let (server, _) =
        hostile_server(Hostile::Answer(http_answer("400 Bad Request", "content-type: text/plain\r\n", &said))).await;
    let app = app_using(&server).await;
    let engineer = app.user("ada", &[Role::MlEngineer]).await;
    let admin = app.user("root", &[Role::Admin]).await;
    let labeler = app.user("lee", &[Role::Labeler]).await;
    let model = remote_version(&app, &engineer, "cube-remote", &server).await;
    for state in ["shadow", "production"] {
        assert_eq!(set_state(&app, &engineer, &model, state).await.status(), StatusCode::OK);
    }
    // A production job: labelers see it too.
    let case_id = cube_case(&app).await;
    let job = finished_jobs(&app, &engineer, &case_id, 1).await.remove(0);
    assert_eq!(job["status"], "failed");
    let summary = "the inference server refused the request (status 400) (attempt 1)";
    let seen: Vec<Value> = app.get_json(&labeler, &format!("/cases/{case_id}/jobs")).await;
    assert_eq!(seen[0]["last_error"], summary, "labelers get our words only");
    for token in [&engineer, &admin] {
        let seen: Vec<Value> = app.get_json(token, &format!("/cases/{case_id}/jobs")).await;
        let error = seen[0]["last_error"].as_str().unwrap();
        assert!(error.starts_with(summary) && error.contains("token=SECRET-123"), "{error}");
        assert!(error.len() < 1200, "the server's words are cut short: {} bytes", error.len());
    }
    app.stop().await;
}

#[tokio::test]
async fn concurrent_backfill_starts_queue_one_backfill() {
    let app = TestApp::spawn_configured(|c| c.orchestrator.workers = 0, |_| {}).await;
    let engineer = app.user("ada", &[Role::MlEngineer]).await;
    let labeler = app.user("lee", &[Role::Labeler]).await;
    let v1 = registered(&app, &engineer, "cube-seg", "1.0.0", "segmenter_v1").await;
    let cube: Vec<u8> = (0..VOXELS).map(|i| in_cube(i) as u8).collect();
    for _ in 0..2 {
        let case_id = cube_case(&app).await;
        let head = app.head_mask_ref(&case_id).await;
        label_case(&app, &labeler, &case_id, &head, &vec![0; VOXELS], &cube).await;
    }
    let starts = (0..6).map(|_| start_backfill(&app, &engineer, &v1));
    let statuses: Vec<StatusCode> = futures::future::join_all(starts).await.iter().map(|r| r.status()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::ACCEPTED).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == StatusCode::ACCEPTED || *s == StatusCode::CONFLICT), "{statuses:?}");
    assert_eq!(app.count("SELECT COUNT(*) FROM backfills").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM model_jobs").await, 2, "one job per labelled case");
    app.stop().await;
}

#[tokio::test]
async fn a_version_is_judged_against_the_readers_of_the_cases_read_by_several() {
    let app = TestApp::spawn().await;
    let engineer = app.user("ada", &[Role::MlEngineer]).await;
    let (ann, ben) = (app.user("ann", &[Role::Labeler]).await, app.user("ben", &[Role::Labeler]).await);
    let rex = app.user("rex", &[Role::Reviewer]).await;
    let v1 = registered(&app, &engineer, "cube-seg", "1.0.0", "segmenter_v1").await;
    assert_eq!(set_state(&app, &engineer, &v1, "shadow").await.status(), StatusCode::OK);
    let case_id = cube_case(&app).await;
    finished_jobs(&app, &engineer, &case_id, 1).await;
    let (put, post) = (reqwest::Method::PUT, reqwest::Method::POST);
    let readings = format!("/cases/{case_id}/readings");
    let plan = app.send_json(put.clone(), &engineer, &readings, &json!({ "required": 2 })).await;
    assert_eq!(plan.status(), StatusCode::OK);

    // ann reads exactly the cube (512 voxels), ben the cube but its last layer (448).
    let cube: Vec<u8> = (0..VOXELS).map(|i| in_cube(i) as u8).collect();
    let short: Vec<u8> = (0..VOXELS).map(|i| (in_cube(i) && i / (N * N) < 13) as u8).collect();
    let head = app.head_mask_ref(&case_id).await;
    for (reader, mask) in [(&ann, &cube), (&ben, &short)] {
        let taken = app.send_json(post.clone(), reader, &readings, &json!({})).await;
        assert_eq!(taken.status(), StatusCode::CREATED);
        label_case(&app, reader, &case_id, &head, &vec![0; VOXELS], mask).await;
        let status = format!("/cases/{case_id}/status");
        assert_eq!(app.send_json(put.clone(), reader, &status, &json!({ "status": "submitted" })).await.status(), 200);
    }
    // Before adjudication the case has no mask of its own: the readings are nobody's truth.
    let evaluation: Value = evaluated(&app, &engineer, "cube-seg").await;
    assert!(evaluation["shadow"]["labels"][0]["dice"].is_null(), "{evaluation}");

    // Majority vote of two readers: the 448 voxels both gave.
    let consensus = format!("/cases/{case_id}/consensus");
    let started = app.send_json(post, &rex, &consensus, &json!({ "method": "majority_vote" })).await;
    assert_eq!(started.status(), StatusCode::CREATED);
    let mut against = Value::Null;
    for _ in 0..300 {
        let evaluation: Value = evaluated(&app, &engineer, "cube-seg").await;
        against = evaluation["shadow"]["labels"][0]["against_readers"].clone();
        if !against.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // v1 marks the cube and 360 face voxels: Dice 2·448/(872+448) against the adjudicated
    // mask; ann's is 2·448/(512+448), ben's 1. v1 is closer than no reader.
    let (model, ann_dice) = (896.0 / 1320.0, 896.0 / 960.0);
    assert!((against["model_dice"]["mean"].as_f64().unwrap() - model).abs() < 1e-9, "{against}");
    assert_eq!(against["readers_dice"]["cases"], 2, "one value per reading");
    assert!((against["readers_dice"]["mean"].as_f64().unwrap() - (1.0 + ann_dice) / 2.0).abs() < 1e-9);
    assert!((against["least_reader_mean"].as_f64().unwrap() - ann_dice).abs() < 1e-9);
    assert_eq!(against["within_readers"], false);
    let own: Value = app.get_json(&engineer, &format!("/models/{v1}/evaluation")).await;
    assert_eq!(own["score"]["labels"][0]["against_readers"], against);
    app.stop().await;
}
