//! The worklist with 100,000 cases, through HTTP: the first page of the default view, filtered
//! by status, by assignee ("me"), by a name search, sorted by last save and by name; and the
//! next case. Cases are written straight into the database (statuses, 50 labelers, saves)
//! so that the run takes seconds, not the hours 100,000 imports would.
//!
//! Run: `cargo bench --features ssr --bench worklist` (SQLite and the embedded store), and
//! after `source .ci/services` for PostgreSQL and Garage.

// A benchmark stops at the first failure: it unwraps.
#![allow(clippy::unwrap_used)]

#[path = "../tests/api/common.rs"]
mod common;

use std::time::Instant;

use common::TestApp;
use seglab::server::identity::Role;

const CASES: usize = 100_000;
const LABELERS: usize = 50;
const RUNS: usize = 30;

/// Writes `CASES` cases (and their image objects) in batches, with statuses, assignees and
/// last saves spread as a busy team's would be.
async fn fill(app: &TestApp) {
    let pool = &app.state.db.pool;
    let mut labelers = Vec::new();
    for n in 0..LABELERS {
        let id = format!("labeler-{n:02}");
        sqlx::query("INSERT INTO users (id, username, roles, created_at) VALUES ($1, $2, 'labeler', 0)")
            .bind(&id)
            .bind(format!("lab{n:02}"))
            .execute(pool)
            .await
            .unwrap();
        labelers.push(id);
    }
    let statuses = [
        "new",
        "new",
        "new",
        "new",
        "in_progress",
        "in_progress",
        "in_progress",
        "submitted",
        "changes_requested",
        "approved",
    ];
    for batch in 0..CASES / 1000 {
        let (mut cases, mut objects) = (Vec::new(), Vec::new());
        for n in batch * 1000..(batch + 1) * 1000 {
            let status = statuses[n % statuses.len()];
            // Each labeler holds cases of every status.
            let assignee = if status == "new" && n % 3 == 0 {
                "NULL".to_string()
            } else {
                format!("'{}'", labelers[(n / statuses.len()) % LABELERS])
            };
            let saved = if status == "new" {
                "0, NULL".to_string()
            } else {
                format!("{}, {assignee}", 1_700_000_000_000i64 + (n as i64 * 7919) % 1_000_000)
            };
            let name = format!("Case {n:06} {}", ["liver", "kidney", "lung", "brain"][n % 4]);
            cases.push(format!(
                "('00000000-0000-4000-8000-{n:012}', '{name}', '{}', '[]', 'img-{n:06}', 'mask-{n:06}', {n}, '{status}', {assignee}, {saved}, {})",
                name.to_lowercase(),
                // One case in a hundred is restricted to its labeler and reviewer.
                i64::from(n % 100 == 7)
            ));
            objects.push(format!(
                "('img-{n:06}', '00000000-0000-4000-8000-{n:012}', 'image', 1, 'x', 512, 512, 300, 'int16', 0.7, 0.7, 1.0, {n})"
            ));
        }
        let mut tx = pool.begin().await.unwrap();
        sqlx::query(&format!(
            "INSERT INTO cases (id, name, search_name, labels_json, image_ref, head_mask_ref, created_at, status, assignee_id, last_saved_at, last_saved_by, restricted) VALUES {}",
            cases.join(", ")
        ))
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(&format!(
            "INSERT INTO objects (object_ref, case_id, kind, size_bytes, sha256, dim_i, dim_j, dim_k, voxel_type, spacing_i, spacing_j, spacing_k, created_at) VALUES {}",
            objects.join(", ")
        ))
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    if app.state.db.backend == seglab::server::db::Backend::Postgres {
        sqlx::query("ANALYZE").execute(pool).await.unwrap();
    }
}

/// p50 and p95 in ms of `RUNS` requests of `path`.
async fn time(app: &TestApp, token: &str, path: &str) -> (f64, f64) {
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        let response = app.client.get(app.url(path)).bearer_auth(token).send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.bytes().await.unwrap();
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_unstable_by(f64::total_cmp);
    (times[RUNS / 2], times[RUNS * 95 / 100])
}

#[tokio::main]
async fn main() {
    let app = TestApp::spawn().await;
    let engineer = app.user("mle", &[Role::MlEngineer]).await;
    let filling = Instant::now();
    fill(&app).await;
    println!("{} cases written in {:.1} s on {}", CASES, filling.elapsed().as_secs_f64(), common::backend_name());
    // A labeler holding 1/50 of the cases: their token, made for an existing row.
    let labeler = seglab::server::services::users::new_token();
    let mut conn = app.state.db.pool.acquire().await.unwrap();
    seglab::server::services::users::store_token(&mut conn, "labeler-07", &labeler, None).await.unwrap();
    drop(conn);
    let first = serde_json::from_slice::<seglab::api::Worklist>(
        &app.client.get(app.url("/worklist")).bearer_auth(&engineer).send().await.unwrap().bytes().await.unwrap(),
    )
    .unwrap();
    assert_eq!(first.total, CASES as u64);
    println!("{:<44} {:>9} {:>9}", "first page of 50 (HTTP, warm)", "p50 ms", "p95 ms");
    for (what, token, path) in [
        ("default view (oldest first) + counts", &engineer, "/worklist"),
        ("status = in_progress", &engineer, "/worklist?status=in_progress"),
        ("assignee = me (a labeler, 2,000 cases)", &labeler, "/worklist?assignee=me"),
        ("every case, as a labeler (restricted hidden)", &labeler, "/worklist"),
        ("name search \"0420\"", &engineer, "/worklist?q=0420"),
        ("name search \"liver\" (25,000 matches)", &engineer, "/worklist?q=liver"),
        ("sorted by last save, newest first", &engineer, "/worklist?sort=last_saved&desc=true"),
        ("sorted by name", &engineer, "/worklist?sort=name"),
        ("page 1000 (offset 49,950)", &engineer, "/worklist?page=1000"),
        ("next case (a labeler)", &labeler, "/worklist/next"),
    ] {
        let (p50, p95) = time(&app, token, path).await;
        println!("{what:<44} {p50:>9.1} {p95:>9.1}");
    }
    app.stop().await;
}
