//! Remote inference of CT-like images up to 512×512×300, JSON tensors against the binary tensor
//! extension: a `seglab serve` process (release build) runs a shadow version whose card points
//! at KServe's Python server (`tests/fixtures/oip/kserve_onnx.py`, onnxruntime,
//! `segmenter_v1.onnx`), with binary tensors and with `--oip-json-tensors`. Reports each job's
//! seconds from the run request to its end, the part KServe spent in the model (its own trace),
//! and the bytes sent and read (the instance's own metrics).
//!
//! Run: `cargo bench --features ssr --bench remote_inference` (after `.ci/setup`, which makes
//! KServe's venv).

// A benchmark stops at the first failure: it unwraps.
#![allow(clippy::unwrap_used)]

#[path = "../tests/api/common.rs"]
mod common;
#[path = "support/cases.rs"]
mod support;

use std::time::{Duration, Instant};

use common::{metric_sum, InferenceServer, ServerProcess, TestApp};
use reqwest::multipart::{Form, Part};
use seglab::server::identity::Role;
use serde_json::{json, Value};

/// Waits until `case_id` has `count` jobs, all finished; the newest one's error, if it failed.
async fn finished(app: &TestApp, token: &str, case_id: &str, count: usize) -> Option<String> {
    loop {
        let jobs: Vec<Value> = app.get_json(token, &format!("/cases/{case_id}/jobs")).await;
        if jobs.len() >= count && jobs.iter().all(|j| j["status"] == "succeeded" || j["status"] == "failed") {
            return jobs[0]["last_error"].as_str().map(str::to_string);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs the model on `case_id` (which has `jobs` jobs, all finished): the seconds from asking
/// to the job's end, and its error if it failed.
async fn timed_run(app: &TestApp, token: &str, case_id: &str, jobs: usize) -> (f64, Option<String>) {
    let began = Instant::now();
    let started = app.client.post(app.url(&format!("/cases/{case_id}/runs"))).bearer_auth(token).send().await.unwrap();
    assert_eq!(started.status(), 202);
    let error = finished(app, token, case_id, jobs + 1).await;
    (began.elapsed().as_secs_f64(), error)
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
        // Imported before the model is active, so that no import queues a run.
        let sizes = [[64, 64, 32], [256, 256, 150], support::CT];
        let mut cases = Vec::new();
        for dims in sizes {
            cases.push(support::import_ct(&app, dims).await);
        }
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
        // KServe warms up on a small case; then each size with binary tensors, then JSON.
        let mut rows = Vec::new();
        for ((dims, case_id), encodings) in sizes.into_iter().zip(&cases).zip([&[false][..], &[false, true], &[false, true]]) {
            for (jobs, &json_tensors) in encodings.iter().enumerate() {
                let instance = runner(&app, json_tensors).await;
                let (seconds, error) = timed_run(&app, &engineer, case_id, jobs).await;
                let metrics = instance.metrics().await;
                let sent = metric_sum(&metrics, "seglab_inference_sent_bytes_total");
                let received = metric_sum(&metrics, "seglab_inference_received_bytes_total");
                let model = last_predict_seconds(&server);
                rows.push((dims, if json_tensors { "JSON" } else { "binary" }, seconds, model, sent, received, error));
            }
        }
        println!("\nremote inference through KServe 0.21 (onnxruntime, 2 output channels): each job, from the run request to its end");
        println!("| image | tensors | job | of which the model | the rest | sent | received |");
        println!("|---|---|---|---|---|---|---|");
        for ([ni, nj, nk], name, seconds, model, sent, received, error) in rows.into_iter().skip(1) {
            let outcome = match error {
                None => format!("{seconds:.1} s | {model:.1} s | {:.1} s", seconds - model),
                Some(error) => format!("failed after {seconds:.0} s: {error} | | "),
            };
            println!("| {ni}×{nj}×{nk} | {name} | {outcome} | {:.0} MB | {:.0} MB |", sent / 1e6, received / 1e6);
        }
        drop(server);
        app.stop().await;
    });
}
