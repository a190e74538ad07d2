//! Saves under load, with one instance and with two on the same database and object store, as
//! a deployment runs them behind a load balancer: `seglab serve` processes (release build),
//! 8, 32 and 128 labelers each saving brush strokes on their own 256×256×128 case as fast as the
//! answers come. Each labeler stays on one instance, as a load balancer with sticky sessions
//! routes a browser, so its base mask stays in that instance's head cache. The request bodies
//! are made before the clock starts, so the client takes little of the machine's CPU.
//!
//! Run: `cargo bench --features ssr --bench saves` (SQLite and the embedded object store, where
//! every instance writes to one file), and after `source .ci/services` on PostgreSQL + Garage,
//! the setup several instances need.

// A benchmark stops at the first failure: it unwraps.
#![allow(clippy::unwrap_used)]

#[path = "../tests/api/common.rs"]
mod common;
#[path = "support/cases.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use common::{ServerProcess, TestApp};
use seglab::api::LabelSaved;
use seglab::edits::MaskEdits;
use seglab::server::identity::Role;

const DIMS: [usize; 3] = [256, 256, 128];
const LABELERS: [usize; 3] = [8, 32, 128];
const RUN: Duration = Duration::from_secs(10);

/// The base64 edits of a stroke of about 1,000 voxels in slice `k` painting `value`, for every
/// slice and both values (`strokes[2 * k + value - 1]`). A stroke changes every voxel it
/// covers, since a case's slice alternates between the two values pass after pass.
fn strokes() -> Vec<String> {
    let [ni, nj, nk] = DIMS;
    let empty = vec![0u8; ni * nj * nk];
    let mut all = Vec::new();
    for k in 0..nk {
        for value in [1, 2] {
            let mut edited = empty.clone();
            for step in 0..20 {
                let (ci, cj) = (ni / 4 + step * 3, nj / 2 + step);
                for j in cj - 4..=cj + 4 {
                    for i in ci - 4..=ci + 4 {
                        edited[i + ni * (j + nj * k)] = value;
                    }
                }
            }
            all.push(base64::engine::general_purpose::STANDARD.encode(MaskEdits::diff(&empty, &edited).encode()));
        }
    }
    all
}

/// A labeler's case: its id, and how many saves it has had (the next stroke follows from it).
struct Case {
    id: String,
    saves: usize,
}

/// A new empty case.
async fn new_case(app: &TestApp, n: usize) -> Case {
    let image = support::zero_volume(DIMS.map(|d| d as u32));
    Case { id: support::import(app, format!("saves bench {n}"), image, None).await.to_string(), saves: 0 }
}

/// One labeler saving on `case` (whose head is `head`) through `instance` for [`RUN`]; the
/// case, and the latency of each save in milliseconds.
async fn labeler(
    client: reqwest::Client,
    token: Arc<str>,
    instance: String,
    strokes: Arc<Vec<String>>,
    mut case: Case,
    mut head: String,
) -> (Case, Vec<f64>) {
    let mut times = Vec::new();
    let began = Instant::now();
    while began.elapsed() < RUN {
        let k = case.saves % DIMS[2];
        let value = 1 + (case.saves / DIMS[2]) % 2;
        let body =
            format!(r#"{{"case_id":"{}","base_mask_ref":"{head}","edits":"{}"}}"#, case.id, strokes[2 * k + value - 1]);
        let sent = Instant::now();
        let response = client
            .post(format!("{instance}/labels"))
            .bearer_auth(&*token)
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let saved: LabelSaved = response.json().await.unwrap();
        times.push(sent.elapsed().as_secs_f64() * 1000.0);
        head = saved.new_mask_ref.to_string();
        case.saves += 1;
    }
    (case, times)
}

/// Saves per second, p50 and p99 of the labelers of `cases`, spread evenly over `instances`.
async fn measure(
    app: &TestApp,
    token: &Arc<str>,
    strokes: &Arc<Vec<String>>,
    cases: &mut Vec<Case>,
    labelers: usize,
    instances: &[&ServerProcess],
) -> (f64, f64, f64) {
    let mut runs = Vec::new();
    let taken: Vec<Case> = cases.drain(..labelers).collect();
    let mut heads = Vec::new();
    for case in &taken {
        heads.push(app.head_mask_ref(&case.id).await);
    }
    let began = Instant::now();
    for (n, (case, head)) in taken.into_iter().zip(heads).enumerate() {
        let instance = instances[n % instances.len()].base.clone();
        runs.push(tokio::spawn(labeler(app.client.clone(), token.clone(), instance, strokes.clone(), case, head)));
    }
    let mut times = Vec::new();
    for (n, run) in futures::future::join_all(runs).await.into_iter().enumerate() {
        let (case, case_times) = run.unwrap();
        cases.insert(n, case);
        times.extend(case_times);
    }
    let elapsed = began.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    (times.len() as f64 / elapsed, at(0.5), at(0.99))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let app = TestApp::spawn_with(|_| {}).await;
        let token: Arc<str> = app.user("bench", &[Role::Labeler]).await.into();
        let strokes = Arc::new(strokes());
        let mut cases = Vec::new();
        for n in 0..LABELERS[LABELERS.len() - 1] {
            cases.push(new_case(&app, n).await);
        }
        let first = app.instance(&[]).await;
        let second = app.instance(&[]).await;
        let mut rows = Vec::new();
        for labelers in LABELERS {
            for instances in [&[&first][..], &[&first, &second][..]] {
                let figures = measure(&app, &token, &strokes, &mut cases, labelers, instances).await;
                rows.push((labelers, instances.len(), figures));
            }
        }
        println!(
            "\nsaves through `seglab serve` processes ({}; {}×{}×{} uint8 masks, one case per labeler, {} s each)",
            common::backend_name(),
            DIMS[0],
            DIMS[1],
            DIMS[2],
            RUN.as_secs()
        );
        println!("| labelers | instances | saves/s | p50 | p99 |");
        println!("|---|---|---|---|---|");
        for (labelers, instances, (rate, p50, p99)) in rows {
            println!("| {labelers} | {instances} | {rate:.0} | {p50:.1} ms | {p99:.1} ms |");
        }
        drop((first, second));
        app.stop().await;
    });
}
