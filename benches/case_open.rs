//! Case opens under load: concurrent clients asking a `seglab serve` process (release build)
//! for the artifacts of a 512×512×300 CT, as the viewer does on opening it. The answer lists a
//! presigned URL for every distinct slab of the image and of the mask (labelled in every
//! slice, so no two mask slabs are alike).
//!
//! Run: `cargo bench --features ssr --bench case_open` (SQLite and the embedded object store;
//! after `source .ci/services`, PostgreSQL and Garage).

// A benchmark stops at the first failure: it unwraps.
#![allow(clippy::unwrap_used)]

#[path = "../tests/api/common.rs"]
mod common;

use std::time::{Duration, Instant};

use common::TestApp;
use seglab::api::CaseArtifacts;
use seglab::nifti_io::{encode_volume, gzip, gzip_mask};
use seglab::server::identity::Role;
use seglab::server::services::cases::{import_case, NewCase};

const DIMS: [usize; 3] = [512, 512, 300];
const RUN: Duration = Duration::from_secs(10);

/// A CT-like int16 volume whose slabs all differ, and a mask with a disc in every slice.
fn ct_case() -> (Vec<u8>, Vec<u8>) {
    let [ni, nj, nk] = DIMS;
    let header = nifti::NiftiHeader {
        pixdim: [1.0, 0.7, 0.7, 1.0, 0.0, 0.0, 0.0, 0.0],
        sform_code: 1,
        srow_x: [0.7, 0.0, 0.0, 0.0],
        srow_y: [0.0, 0.7, 0.0, 0.0],
        srow_z: [0.0, 0.0, 1.0, 0.0],
        ..nifti::NiftiHeader::default()
    };
    let mut voxels = Vec::with_capacity(ni * nj * nk * 2);
    let mut labels = vec![0u8; ni * nj * nk];
    for k in 0..nk {
        for j in 0..nj {
            for i in 0..ni {
                let (x, y) = (i as i32 - 256, j as i32 - 256);
                let inside = x * x + y * y < 200 * 200;
                let value: i16 = if inside { 40 + ((i * 7 + j * 13 + k * 31) % 97) as i16 } else { -1000 };
                voxels.extend_from_slice(&value.to_le_bytes());
                let radius = 20 + (k % 40) as i32;
                if (x - 30) * (x - 30) + y * y < radius * radius {
                    labels[i + ni * (j + nj * k)] = 1 + (k % 2) as u8;
                }
            }
        }
    }
    let dims = DIMS.map(|d| d as u32);
    let image = gzip(&encode_volume(&header, dims, nifti::NiftiType::Int16, &voxels), 1);
    (image, gzip_mask(&header, dims, &labels, 1))
}

/// One client opening the case through `url` for [`RUN`]; the latency of each open, in
/// milliseconds.
async fn client(client: reqwest::Client, token: String, url: String) -> Vec<f64> {
    let mut times = Vec::new();
    let began = Instant::now();
    while began.elapsed() < RUN {
        let sent = Instant::now();
        let response = client.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
        times.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    times
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let app = TestApp::spawn_with(|_| {}).await;
        let token = app.user("bench", &[Role::Labeler]).await;
        let (image, mask) = ct_case();
        let case = import_case(
            &app.state,
            None,
            NewCase {
                name: "case open bench".into(),
                image: image.into(),
                mask: Some(mask.into()),
                labels: vec![(1, "organ".into()), (2, "lesion".into())],
                dicom: None,
            },
        )
        .await
        .unwrap();
        let server = app.instance(&[]).await;
        let url = server.url(&format!("/cases/{}/artifacts", case.id));
        let answer: CaseArtifacts =
            app.client.get(&url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        let urls = serde_json::to_string(&answer).unwrap().matches("X-Amz-Signature").count();

        println!("\ncase opens through a `seglab serve` process ({}; 512×512×300 int16 CT, {urls} presigned URLs per answer, {} s each)", common::backend_name(), RUN.as_secs());
        println!("| clients | opens/s | p50 | p99 |");
        println!("|---|---|---|---|");
        for clients in [1, 50] {
            let began = Instant::now();
            let runs = (0..clients).map(|_| tokio::spawn(client(app.client.clone(), token.clone(), url.clone())));
            let mut times: Vec<f64> =
                futures::future::join_all(runs).await.into_iter().flat_map(Result::unwrap).collect();
            let elapsed = began.elapsed().as_secs_f64();
            times.sort_by(f64::total_cmp);
            let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
            println!("| {clients} | {:.0} | {:.1} ms | {:.1} ms |", times.len() as f64 / elapsed, at(0.5), at(0.99));
        }
        drop(server);
        app.stop().await;
    });
}
