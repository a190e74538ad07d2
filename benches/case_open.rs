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
#[path = "support/cases.rs"]
mod support;

use std::time::{Duration, Instant};

use common::TestApp;
use seglab::api::CaseArtifacts;
use seglab::server::identity::Role;

const RUN: Duration = Duration::from_secs(10);

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
        let case_id = support::import_ct(&app, support::CT).await;
        let server = app.instance(&[]).await;
        let url = server.url(&format!("/cases/{case_id}/artifacts"));
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
