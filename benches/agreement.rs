//! The readers' agreement across 1,000 cases read by 3 readers each, through HTTP: the figures
//! for scripts (`GET /agreement`) and the readers page rendered on the server (`GET /readers`,
//! the whole HTML with its chart). The measured agreements are written straight into the
//! database, as the background would have kept them, so the run takes seconds.
//!
//! Run: `cargo bench --features ssr --bench agreement` (SQLite and the embedded store), and
//! after `source .ci/services` for PostgreSQL and Garage.

// A benchmark stops at the first failure: it unwraps.
#![allow(clippy::unwrap_used)]

#[path = "../tests/api/common.rs"]
mod common;

use std::time::Instant;

use common::{TestApp, PASSWORD};
use seglab::api::{AgreementOverview, CaseAgreement, LabelAgreement, PairAgreement, ReaderAgreement, UserName};
use seglab::server::identity::Role;

const CASES: usize = 1_000;
const READERS: [&str; 3] = ["ann", "ben", "cat"];
const RUNS: usize = 30;

/// A case's agreement as the background keeps it: two labels, three readers, figures varied
/// from `n` so that the spreads are not flat.
fn agreement(n: usize) -> CaseAgreement {
    let readers: Vec<UserName> = READERS.iter().map(|name| UserName::parse(name).unwrap()).collect();
    let figure = |salt: usize| 0.55 + ((n * 7919 + salt * 104_729) % 4000) as f64 / 10_000.0;
    let labels = [(1u8, "liver"), (2, "kidney")]
        .into_iter()
        .map(|(label, name)| {
            let pairs: Vec<PairAgreement> = [(0, 1), (0, 2), (1, 2)]
                .into_iter()
                .map(|(a, b)| PairAgreement {
                    readers: [readers[a].clone(), readers[b].clone()],
                    dice: Some(figure(label as usize * 10 + a * 3 + b)),
                    hd95_mm: Some(figure(a + b) * 10.0),
                })
                .collect();
            LabelAgreement {
                label,
                name: name.into(),
                mean_dice: Some(pairs.iter().filter_map(|p| p.dice).sum::<f64>() / 3.0),
                mean_hd95_mm: Some(5.0),
                readers: readers
                    .iter()
                    .enumerate()
                    .map(|(r, reader)| ReaderAgreement {
                        reader: reader.clone(),
                        dice: Some(figure(label as usize * 100 + r)),
                        hd95_mm: Some(4.0),
                        sensitivity: figure(r + 7),
                        specificity: 0.999,
                    })
                    .collect(),
                pairs,
            }
        })
        .collect();
    CaseAgreement { readers, labels, disagreeing_voxels: 1234, most_disagreement_at: Some([1, 2, 3]) }
}

async fn fill(app: &TestApp) {
    let pool = &app.state.db.pool;
    for batch in 0..CASES / 100 {
        let (mut cases, mut agreements) = (Vec::new(), Vec::new());
        for n in batch * 100..(batch + 1) * 100 {
            let id = format!("00000000-0000-4000-8000-{n:012}");
            let name = format!("Read case {n:04}");
            cases.push(format!(
                "('{id}', '{name}', '{}', '[]', 'img-{n:04}', 'mask-{n:04}', {n}, 'submitted', 3)",
                name.to_lowercase()
            ));
            let json = serde_json::to_string(&agreement(n)).unwrap().replace('\'', "''");
            agreements.push(format!("('{id}', 'key-{n}', '{json}', {n})"));
        }
        let mut tx = pool.begin().await.unwrap();
        sqlx::query(&format!(
            "INSERT INTO cases (id, name, search_name, labels_json, image_ref, head_mask_ref, created_at, status, readings_required) VALUES {}",
            cases.join(", ")
        ))
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(&format!(
            "INSERT INTO case_agreements (case_id, readings_key, agreement_json, created_at) VALUES {}",
            agreements.join(", ")
        ))
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
}

/// p50 and p95 in ms of `RUNS` GETs of `path`, each with `auth` applied; and the last body.
async fn time(
    app: &TestApp,
    path: &str,
    auth: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> (f64, f64, Vec<u8>) {
    let mut times = Vec::with_capacity(RUNS);
    let mut body = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let response = auth(app.client.get(app.url(path))).send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        body = response.bytes().await.unwrap().to_vec();
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_unstable_by(f64::total_cmp);
    (times[RUNS / 2], times[RUNS * 95 / 100], body)
}

#[tokio::main]
async fn main() {
    let app = TestApp::spawn().await;
    let token = app.user("rex", &[Role::Reviewer]).await;
    let cookie = app.login_cookie("rex", PASSWORD).await;
    let filling = Instant::now();
    fill(&app).await;
    println!(
        "{CASES} cases × {} readers written in {:.1} s on {}",
        READERS.len(),
        filling.elapsed().as_secs_f64(),
        common::backend_name()
    );
    println!("{:<52} {:>9} {:>9}", "readers' agreement across cases (HTTP, warm)", "p50 ms", "p95 ms");
    let (p50, p95, body) = time(&app, "/agreement", |request| request.bearer_auth(&token)).await;
    let overview: AgreementOverview = serde_json::from_slice(&body).unwrap();
    assert_eq!((overview.cases, overview.measured), (CASES as u64, CASES as u64));
    println!("{:<52} {p50:>9.1} {p95:>9.1}", "GET /agreement (figures and chart, JSON)");
    let (p50, p95, body) = time(&app, "/readers", |request| request.header("Cookie", &cookie)).await;
    let page = String::from_utf8(body).unwrap();
    assert!(page.contains("agreement-chart") && page.contains("Read case"), "the page shows the chart and the cases");
    println!("{:<52} {p50:>9.1} {p95:>9.1}", "GET /readers (the page rendered on the server)");
    app.stop().await;
}
