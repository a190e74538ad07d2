//! The label-save path, end to end through HTTP on the embedded backend: decode the base (or
//! take it from the head cache), apply the edits to the slabs they touch, gzip and PUT those
//! slabs, commit; and the bytes each save stores. In the same run, Python's nibabel does the
//! same load-apply-save on the same files (`benches/nibabel_save.py`, the fastest plain
//! script: the voxels kept as uint8, edited in place, saved at gzip level 1).
//!
//! Run: `cargo bench --features ssr --bench save_path` (after `.ci/setup test`, which makes the
//! Python environment with nibabel).

// A benchmark stops at the first failure: it unwraps.
#![allow(clippy::unwrap_used)]

#[path = "../tests/api/common.rs"]
mod common;
#[path = "support/cases.rs"]
mod support;

use std::process::Command;
use std::time::Instant;

use base64::Engine;
use common::TestApp;
use seglab::api::{LabelSaved, SaveLabelRequest};
use seglab::edits::MaskEdits;
use seglab::server::identity::Role;
use seglab::server::mask_cache::HeadCache;
use seglab::server::services::access;
use seglab::server::services::idempotency::IdempotencyKey;
use seglab::server::services::labels::save_label;
use seglab::server::services::users::user_for_token;
use serde_json::json;
use sqlx::Row;

/// A brush stroke of about 3,000 voxels in slice `k`: discs along a line, as a labeler paints.
fn stroke(dims: [u32; 3], k: usize, value: u8, current: &[u8]) -> Vec<u8> {
    let [ni, nj, _] = dims.map(|d| d as usize);
    let mut edited = current.to_vec();
    for step in 0..40 {
        let (ci, cj) = (ni / 4 + step * 3, nj / 2 + step);
        for j in cj - 5..=cj + 5 {
            for i in ci - 5..=ci + 5 {
                let (di, dj) = (i as i64 - ci as i64, j as i64 - cj as i64);
                if di * di + dj * dj <= 25 {
                    edited[i + ni * (j + nj * k)] = value;
                }
            }
        }
    }
    MaskEdits::diff(current, &edited).encode()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Figures {
    label: String,
    p50: f64,
    p99: f64,
    cold: f64,
    edit_bytes: usize,
    /// Bytes stored per save (new slabs): median and largest.
    stored_p50: i64,
    stored_max: i64,
    nibabel_p50: f64,
}

/// Bytes of all the slabs stored so far.
async fn slab_bytes(app: &TestApp) -> i64 {
    sqlx::query("SELECT CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) FROM slabs")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
        .get(0)
}

async fn measure(app: &TestApp, token: &str, dims: [u32; 3], iterations: usize) -> Figures {
    let voxels = dims.iter().map(|&d| d as usize).product::<usize>();
    let empty = vec![0u8; voxels];
    let mask_file = support::zero_volume(dims);
    let case_id = support::import(app, format!("bench {dims:?}"), mask_file.clone(), None).await;
    let mut head: String = sqlx::query("SELECT head_mask_ref FROM cases WHERE id = $1")
        .bind(&case_id)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
        .get("head_mask_ref");

    // Cold: the base is fetched from storage and decoded.
    let user = user_for_token(&app.state.db, token).await.unwrap().unwrap();
    let mut cold_state = app.state.clone();
    cold_state.heads = std::sync::Arc::new(HeadCache::new(0));
    let mut current = empty.clone();
    let edits = stroke(dims, 1, 1, &current);
    let request = SaveLabelRequest {
        case_id: case_id.to_string(),
        base_mask_ref: head.clone(),
        edits: base64::engine::general_purpose::STANDARD.encode(&edits),
    };
    let began = Instant::now();
    let access = access::authorize(&cold_state, &user, &case_id, access::Save).await.unwrap();
    let outcome =
        save_label(&cold_state, access, &IdempotencyKey::parse(Some(&format!("cold-{}", dims[2]))).unwrap(), &request)
            .await
            .unwrap();
    let cold = began.elapsed().as_secs_f64() * 1000.0;
    let saved: LabelSaved = serde_json::from_str(&outcome.body).unwrap();
    MaskEdits::decode(&edits, voxels as u64, &[1]).unwrap().apply(&mut current);
    head = saved.new_mask_ref.to_string();

    // Warm: consecutive saves, as a labeler works, through HTTP.
    let mut times = Vec::with_capacity(iterations);
    let mut edit_bytes = 0;
    let mut stored = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let k = 2 + i % (dims[2] as usize - 2);
        let edits = stroke(dims, k, 1, &current);
        edit_bytes = edits.len();
        let body = json!({
            "case_id": case_id,
            "base_mask_ref": head,
            "edits": base64::engine::general_purpose::STANDARD.encode(&edits),
        });
        let stored_before = slab_bytes(app).await;
        let began = Instant::now();
        let response = app
            .client
            .post(app.url("/labels"))
            .bearer_auth(token)
            .header("Idempotency-Key", format!("bench-{}-{i}", dims[2]))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let saved: LabelSaved = response.json().await.unwrap();
        times.push(began.elapsed().as_secs_f64() * 1000.0);
        stored.push(slab_bytes(app).await - stored_before);
        MaskEdits::decode(&edits, voxels as u64, &[1]).unwrap().apply(&mut current);
        head = saved.new_mask_ref.to_string();
    }
    times.sort_by(f64::total_cmp);
    stored.sort_unstable();

    // nibabel on the same mask file and an edit of the same size.
    let file = app.data_dir.path().join(format!("bench-{}.nii.gz", dims[2]));
    std::fs::write(&file, &mask_file).unwrap();
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/target/pyenv/bin/python");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/nibabel_save.py");
    let runs = 5.to_string();
    let output = Command::new(python)
        .args([script, file.to_str().unwrap(), &runs, &(voxels / 3).to_string(), "3000"])
        .output()
        .expect("run nibabel (run `.ci/setup test` first)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let mut nibabel: Vec<f64> = serde_json::from_slice(&output.stdout).unwrap();
    nibabel.sort_by(f64::total_cmp);

    Figures {
        label: format!("{}×{}×{} uint8", dims[0], dims[1], dims[2]),
        p50: percentile(&times, 0.5),
        p99: percentile(&times, 0.99),
        cold,
        edit_bytes,
        stored_p50: stored[stored.len() / 2],
        stored_max: stored[stored.len() - 1],
        nibabel_p50: percentile(&nibabel, 0.5),
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let app = TestApp::spawn_with(|_| {}).await;
        let token = app.user("bench", &[Role::Labeler]).await;
        let mut rows = Vec::new();
        for (dims, iterations) in [([256, 256, 256], 100), ([512, 512, 300], 200)] {
            rows.push(measure(&app, &token, dims, iterations).await);
        }
        println!("\nlabel save path ({}; warm = base mask in the head cache)", common::backend_name());
        println!("| mask | edit payload | stored per save (median, max) | seglab p50 | seglab p99 | seglab cold | nibabel p50 | speed-up (p50) |");
        println!("|---|---|---|---|---|---|---|---|");
        for r in &rows {
            println!(
                "| {} | {} B | {:.1} KB, {:.1} KB | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1}× |",
                r.label,
                r.edit_bytes,
                r.stored_p50 as f64 / 1024.0,
                r.stored_max as f64 / 1024.0,
                r.p50,
                r.p99,
                r.cold,
                r.nibabel_p50,
                r.nibabel_p50 / r.p50
            );
        }
        app.stop().await;
    });
}
