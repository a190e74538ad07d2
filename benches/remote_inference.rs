//! Remote inference of a 512×512×300 CT, JSON tensors against the binary tensor extension: a
//! `seglab serve` process (release build) runs a shadow version whose card points at KServe's
//! Python server (`tests/fixtures/oip/kserve_onnx.py`, onnxruntime, `segmenter_v1.onnx`), once
//! with binary tensors and once with `--oip-json-tensors`. Reports each job's seconds from the
//! run request to its success, the part KServe spent in the model (its own trace), and the
//! bytes sent and read (the instance's own metrics).
//!
//! Run: `cargo bench --features ssr --bench remote_inference` (after `.ci/setup`, which makes
//! KServe's venv).

// A benchmark stops at the first failure: it unwraps.
#![allow(clippy::unwrap_used)]

#[path = "../tests/api/common.rs"]
mod common;
#[path = "support/ct.rs"]
mod ct;

use std::time::{Duration, Instant};

use common::{metric_sum, InferenceServer, ServerProcess, TestApp};
use reqwest::multipart::{Form, Part};
use seglab::server::identity::Role;
use serde_json::{json, Value};

/// Waits until `case_id` has at least `count` jobs and all have succeeded; how many it has.
async fn all_succeeded(app: &TestApp, token: &str, case_id: &str, count: usize) -> usize {
    loop {
        let jobs: Vec<Value> = app.get_json(token, &format!("/cases/{case_id}/jobs")).await;
        if jobs.len() >= count && jobs.iter().all(|j| j["status"] == "succeeded" || j["status"] == "failed") {
            assert!(jobs.iter().all(|j| j["status"] == "succeeded"), "{jobs:?}");
            return jobs.len();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The seconds from asking for a run of `case_id` (which has `jobs` jobs, all finished) to its
/// job's success.
async fn timed_run(app: &TestApp, token: &str, case_id: &str, jobs: usize) -> f64 {
    let began = Instant::now();
    let started = app.client.post(app.url(&format!("/cases/{case_id}/runs"))).bearer_auth(token).send().await.unwrap();
    assert_eq!(started.status(), 202);
    all_succeeded(app, token, case_id, jobs + 1).await;
    began.elapsed().as_secs_f64()
}

/// The seconds KServe's last request spent in the model, from its trace line
/// (`predict_ms: …`).
fn last_predict_seconds(server: &InferenceServer) -> f64 {
    let log = server.log();
    let line = log.lines().rev().find(|line| line.contains("predict_ms: ")).unwrap();
    let millis = line.split("predict_ms: ").nth(1).unwrap().split(',').next().unwrap();
    millis.trim().parse::<f64>().unwrap() / 1000.0
}

/// An instance that runs the jobs: large enough for the CT, and its answer as JSON.
async fn runner(app: &TestApp, json_tensors: bool) -> ServerProcess {
    let mut args = vec![
        "--oip-allowed-hosts",
        "127.0.0.1",
        "--max-inference-voxels",
        "100000000",
        "--oip-max-answer-bytes",
        "8589934592",
        "--oip-timeout-secs",
        "1800",
    ];
    if json_tensors {
        args.push("--oip-json-tensors");
    }
    app.instance(&args).await
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let onnx = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/segmenter_v1.onnx");
        let server = InferenceServer::kserve("segmenter-v1", &onnx).await;
        // This process only serves the API: the instances below run the jobs.
        let app = TestApp::spawn_configured(
            |c| {
                c.orchestrator.workers = 0;
                c.orchestrator.oip_allowed_hosts = vec!["127.0.0.1".into()];
            },
            |_| {},
        )
        .await;
        let engineer = app.user("ada", &[Role::MlEngineer]).await;
        let sums = std::fs::read_to_string(onnx.with_file_name("SHA256SUMS")).unwrap();
        let sha = sums.lines().find(|l| l.ends_with(" segmenter_v1.onnx")).unwrap().split_whitespace().next().unwrap();
        let card = json!({
            "name": "ct-remote", "version": "1.0.0", "task": "segmentation", "modality": "CT",
            "label_map": {"1": "organ"},
            "input_spec": {"voxel_type": "float32", "orientation": "RAS", "intensity_normalisation": "zscore"},
            "output_channels": [0, 1],
            "intended_use": "benchmark", "limitations": "a threshold", "license": "Apache-2.0",
            "metrics": [],
            "artifact": {"format": "oip-v2", "sha256": sha, "endpoint": server.url, "model_name": "segmenter-v1"},
        });
        let form = Form::new()
            .text("card", card.to_string())
            .part("artifact", Part::bytes(std::fs::read(&onnx).unwrap()).file_name("model.onnx"));
        let registered = app.client.post(app.url("/models")).bearer_auth(&engineer).multipart(form).send().await.unwrap();
        assert_eq!(registered.status(), 201, "{}", registered.text().await.unwrap());
        let model: Value = registered.json().await.unwrap();
        let model_id = model["model_id"].as_str().unwrap();
        let promoted = app
            .client
            .put(app.url(&format!("/models/{model_id}/state")))
            .bearer_auth(&engineer)
            .json(&json!({ "state": "shadow" }))
            .send()
            .await
            .unwrap();
        assert_eq!(promoted.status(), 200);
        let case_id = ct::import_ct(&app).await;
        // The import queued a run: let it finish (KServe warms up) before timing.
        let warm = runner(&app, false).await;
        let mut jobs = all_succeeded(&app, &engineer, &case_id, 1).await;
        drop(warm);

        let mut rows = Vec::new();
        for (name, json_tensors) in [("binary", false), ("JSON", true)] {
            let instance = runner(&app, json_tensors).await;
            let seconds = timed_run(&app, &engineer, &case_id, jobs).await;
            jobs += 1;
            let metrics = instance.metrics().await;
            let sent = metric_sum(&metrics, "seglab_inference_sent_bytes_total");
            let received = metric_sum(&metrics, "seglab_inference_received_bytes_total");
            rows.push((name, seconds, last_predict_seconds(&server), sent, received));
        }
        println!("\nremote inference of a 512×512×300 CT through KServe 0.21 (onnxruntime, 2 output channels): the job, from the run request to its success");
        println!("| tensors | job | of which the model (onnxruntime) | the rest | sent | received |");
        println!("|---|---|---|---|---|---|");
        for (name, seconds, model, sent, received) in rows {
            println!(
                "| {name} | {seconds:.1} s | {model:.1} s | {:.1} s | {:.0} MB | {:.0} MB |",
                seconds - model,
                sent / 1e6,
                received / 1e6
            );
        }
        drop(server);
        app.stop().await;
    });
}
