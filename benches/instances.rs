//! Saves per second with one instance and with two on the same database and object store, as
//! a deployment runs them behind a load balancer: `seglab serve` processes (release build),
//! sixteen labelers each saving brush strokes on their own 256×256×128 case as fast as the
//! answers come. Each labeler stays on one instance, as a load balancer with sticky sessions
//! routes a browser, so its base mask stays in that instance's head cache.
//!
//! Run: `source .ci/services && cargo bench --features ssr --bench instances` (PostgreSQL +
//! Garage, the setup several instances need; without `.ci/services` it runs on SQLite, where
//! every instance writes to one file).

// A benchmark stops at the first failure: it unwraps.
#![allow(clippy::unwrap_used)]

#[path = "../tests/api/common.rs"]
mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::{ServerProcess, TestApp};
use seglab::api::LabelSaved;
use seglab::edits::MaskEdits;
use seglab::nifti_io::gzip_mask;
use seglab::server::identity::Role;
use seglab::server::services::cases::{import_case, NewCase};
use serde_json::json;

const DIMS: [usize; 3] = [256, 256, 128];
const LABELERS: usize = 16;
const RUN: Duration = Duration::from_secs(20);

/// A stroke of about 1,000 voxels in slice `k` of `current`, painting `value`.
fn stroke(k: usize, value: u8, current: &[u8]) -> Vec<u8> {
    let [ni, nj, _] = DIMS;
    let mut edited = current.to_vec();
    for step in 0..20 {
        let (ci, cj) = (ni / 4 + step * 3, nj / 2 + step);
        for j in cj - 4..=cj + 4 {
            for i in ci - 4..=ci + 4 {
                edited[i + ni * (j + nj * k)] = value;
            }
        }
    }
    MaskEdits::diff(current, &edited).encode()
}

/// A new empty case; its id and first mask version.
async fn new_case(app: &TestApp, n: usize) -> (String, String) {
    let header = nifti::NiftiHeader {
        pixdim: [1.0; 8],
        sform_code: 1,
        srow_x: [1.0, 0.0, 0.0, 0.0],
        srow_y: [0.0, 1.0, 0.0, 0.0],
        srow_z: [0.0, 0.0, 1.0, 0.0],
        ..nifti::NiftiHeader::default()
    };
    let dims = DIMS.map(|d| d as u32);
    let file = gzip_mask(&header, dims, &vec![0u8; DIMS.iter().product()], 1);
    let case = import_case(
        &app.state,
        None,
        NewCase {
            name: format!("instances bench {n}"),
            image: file.into(),
            mask: None,
            labels: vec![(1, "organ".into()), (2, "lesion".into())],
            dicom: None,
        },
    )
    .await
    .unwrap();
    let id = case.id.to_string();
    (id.clone(), app.head_mask_ref(&id).await)
}

/// One labeler saving on `case` through `instance` for [`RUN`]; the latency of each save, in
/// milliseconds.
async fn labeler(client: reqwest::Client, token: String, instance: String, case: (String, String)) -> Vec<f64> {
    let (case_id, mut head) = case;
    let mut current = vec![0u8; DIMS.iter().product()];
    let mut times = Vec::new();
    let began = Instant::now();
    let mut n = 0;
    while began.elapsed() < RUN {
        let value = 1 + (n / DIMS[2]) as u8 % 2;
        let edits = stroke(n % DIMS[2], value, &current);
        let body = json!({
            "case_id": case_id,
            "base_mask_ref": head,
            "edits": base64::engine::general_purpose::STANDARD.encode(&edits),
        });
        let sent = Instant::now();
        let response = client
            .post(format!("{instance}/labels"))
            .bearer_auth(&token)
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let saved: LabelSaved = response.json().await.unwrap();
        times.push(sent.elapsed().as_secs_f64() * 1000.0);
        MaskEdits::decode(&edits, current.len() as u64, &[1, 2]).unwrap().apply(&mut current);
        head = saved.new_mask_ref.to_string();
        n += 1;
    }
    times
}

/// Saves per second, p50 and p99 with the labelers spread evenly over `instances`.
async fn measure(app: &TestApp, token: &str, instances: &[&ServerProcess]) -> (f64, f64, f64) {
    let mut cases = Vec::new();
    for n in 0..LABELERS {
        cases.push(new_case(app, n).await);
    }
    let began = Instant::now();
    let runs = cases.into_iter().enumerate().map(|(n, case)| {
        let instance = instances[n % instances.len()].base.clone();
        tokio::spawn(labeler(app.client.clone(), token.to_string(), instance, case))
    });
    let mut times: Vec<f64> = futures::future::join_all(runs).await.into_iter().flat_map(Result::unwrap).collect();
    let elapsed = began.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    (times.len() as f64 / elapsed, at(0.5), at(0.99))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let app = TestApp::spawn_with(|_| {}).await;
        let token = app.user("bench", &[Role::Labeler]).await;
        let first = app.instance(&[]).await;
        let one = measure(&app, &token, &[&first]).await;
        let second = app.instance(&[]).await;
        let two = measure(&app, &token, &[&first, &second]).await;
        println!(
            "\nsaves through `seglab serve` processes ({}; {LABELERS} labelers, {}×{}×{} uint8 masks, {} s each)",
            common::backend_name(),
            DIMS[0],
            DIMS[1],
            DIMS[2],
            RUN.as_secs()
        );
        println!("| instances | saves/s | p50 | p99 |");
        println!("|---|---|---|---|");
        for (n, (rate, p50, p99)) in [(1, one), (2, two)] {
            println!("| {n} | {rate:.0} | {p50:.1} ms | {p99:.1} ms |");
        }
        drop((first, second));
        app.stop().await;
    });
}
