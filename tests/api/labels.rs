//! `POST /labels` on the backend under test: versioned saves, idempotency, lost-update
//! protection, refusal of bad input without side effects, faults, and the audit chain.

use crate::common::TestApp;
use crate::fixtures::{self, CaseBuilder};
use base64::Engine;
use futures::future::join_all;
use reqwest::StatusCode;
use seglab::api::{CaseArtifacts, LabelSaved};
use seglab::edits::MaskEdits;
use seglab::nifti_io::{encode_mask, Volume};
use seglab::server::identity::Role;
use seglab::server::services::idempotency::IdempotencyKey;
use serde_json::{json, Value};
use sqlx::Row;

const DIMS: [u32; 3] = [32, 24, 16];
const VOXELS: usize = 32 * 24 * 16;

/// A small case with labels 1 and 2 and an empty mask; returns its id and current mask ref.
async fn small_case(app: &TestApp) -> (String, String) {
    let header = nifti::NiftiHeader {
        srow_x: [-0.9, 0.0, 0.0, 14.0],
        srow_y: [0.0, 0.9, 0.0, -10.0],
        srow_z: [0.0, 0.0, 3.0, -22.0],
        ..fixtures::header()
    };
    let case_id = CaseBuilder::new("small")
        .dims(DIMS)
        .header(header)
        .spacing([0.9, 0.9, 3.0])
        .int16(|i| (i % 300) as i16)
        .labels(&[(1, "liver"), (2, "tumour")])
        .import(app)
        .await;
    let head = app.head_mask_ref(&case_id).await;
    (case_id, head)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A stroke: voxels 100..140 become `value`.
fn stroke(value: u8) -> Vec<u8> {
    let mut mask = vec![0u8; VOXELS];
    mask[100..140].fill(value);
    MaskEdits::diff(&vec![0u8; VOXELS], &mask).encode()
}

fn body(case_id: &str, base: &str, edits: &[u8]) -> Value {
    json!({ "case_id": case_id, "base_mask_ref": base, "edits": b64(edits) })
}

async fn post(app: &TestApp, token: &str, key: Option<&str>, body: &Value) -> reqwest::Response {
    let mut request = app.client.post(app.url("/labels")).bearer_auth(token).json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.unwrap()
}

/// What a request that claimed `key` and is still running (or crashed) leaves: the key held,
/// with `request`'s fingerprint, claimed now.
async fn running_claim(app: &TestApp, username: &str, key: &str, request: &Value) {
    let user_id: String = sqlx::query("SELECT id FROM users WHERE username = $1")
        .bind(username)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
        .get("id");
    let fingerprint = {
        use sha2::Digest;
        let request: seglab::api::SaveLabelRequest = serde_json::from_value(request.clone()).unwrap();
        hex::encode(sha2::Sha256::digest(serde_json::to_vec(&request).unwrap()))
    };
    sqlx::query(
        "INSERT INTO idempotency_keys (user_id, idem_key, fingerprint, state, created_at, locked_at)
         VALUES ($1, $2, $3, 'running', $4, $4)",
    )
    .bind(&user_id)
    .bind(key)
    .bind(&fingerprint)
    .bind(seglab::server::clock::now_ms())
    .execute(&app.state.db.pool)
    .await
    .unwrap();
}

/// Mask versions recorded for the case.
async fn mask_versions(app: &TestApp, case_id: &str) -> i64 {
    sqlx::query("SELECT COUNT(*) FROM objects WHERE case_id = $1 AND kind = 'mask'")
        .bind(case_id)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_save_writes_a_new_version_with_exactly_the_edited_voxels_and_replays() {
    let app = TestApp::spawn().await;
    let token = app.user("lab", &[Role::Labeler]).await;
    let (case_id, base) = small_case(&app).await;

    let request = body(&case_id, &base, &stroke(2));
    let first = post(&app, &token, Some("key-1"), &request).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let saved: LabelSaved = first.json().await.unwrap();
    assert_eq!(saved.voxels_changed, 40);
    assert_ne!(saved.new_mask_ref.as_str(), base);

    let artifacts: CaseArtifacts = app
        .client
        .get(app.url(&format!("/cases/{case_id}/artifacts?history=true")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(artifacts.current_mask_ref, saved.new_mask_ref);
    assert_eq!(artifacts.history.len(), 1);
    assert_eq!(artifacts.history[0].username.as_str(), "lab");
    assert_eq!(artifacts.history[0].old_mask_ref.as_str(), base);
    assert_eq!(artifacts.history[0].voxels_changed, 40);

    // The new object holds exactly the edit; the old version is untouched.
    let new_file = app.download(&token, &artifacts.artifacts[1].url).await;
    let new_mask = Volume::parse("mask", &new_file).unwrap();
    assert_eq!(new_mask.meta.dims, DIMS);
    assert_eq!(new_mask.header.srow_x, [-0.9, 0.0, 0.0, 14.0]);
    let labels = new_mask.into_labels("mask").unwrap();
    let changed: Vec<usize> = labels.iter().enumerate().filter(|(_, v)| **v != 0).map(|(i, _)| i).collect();
    assert_eq!(changed, (100..140).collect::<Vec<_>>());
    assert!(labels[100..140].iter().all(|v| *v == 2));
    let old = Volume::parse("old", &app.state.store.get(&base).await.unwrap()).unwrap();
    assert!(old.into_labels("old").unwrap().iter().all(|v| *v == 0), "the base version was overwritten");

    // Same key, same request: the stored answer.
    let again = post(&app, &token, Some("key-1"), &request).await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<LabelSaved>().await.unwrap(), saved);
    // Same key, another request: refused.
    let other = post(&app, &token, Some("key-1"), &body(&case_id, saved.new_mask_ref.as_str(), &stroke(1))).await;
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Keys are per user: another user's "key-1" is a different key (an admin, who may save
    // on a case assigned to someone else).
    let other_user = app.user("lab2", &[Role::Labeler, Role::Admin]).await;
    let theirs = post(&app, &other_user, Some("key-1"), &body(&case_id, saved.new_mask_ref.as_str(), &stroke(1))).await;
    assert_eq!(theirs.status(), StatusCode::CREATED);

    assert_eq!(app.count("SELECT COUNT(*) FROM labels").await, 2);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'label_edit'").await, 2);
    assert_eq!(mask_versions(&app, &case_id).await, 3);
    app.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_requests_with_one_key_make_exactly_one_label() {
    let app = TestApp::spawn().await;
    let token = app.user("lab", &[Role::Labeler]).await;
    let (case_id, base) = small_case(&app).await;
    let request = body(&case_id, &base, &stroke(1));
    let responses = join_all((0..50).map(|_| post(&app, &token, Some("storm"), &request))).await;
    let mut fresh = 0;
    for response in responses {
        match response.status() {
            StatusCode::CREATED => {
                if response.headers().get("idempotent-replayed").is_none() {
                    fresh += 1;
                }
            }
            StatusCode::CONFLICT => assert!(response.headers().contains_key("retry-after")),
            other => panic!("unexpected status {other}: {}", response.text().await.unwrap()),
        }
    }
    assert_eq!(fresh, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM labels").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'label_edit'").await, 1);
    assert_eq!(mask_versions(&app, &case_id).await, 2);
    app.stop().await;
}

#[tokio::test]
async fn a_save_on_a_stale_base_is_refused_with_the_current_head() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice", &[Role::Labeler]).await;
    // An admin correcting the case alice labels: both may save on it.
    let bob = app.user("bob", &[Role::Labeler, Role::Admin]).await;
    let (case_id, base) = small_case(&app).await;
    let first = post(&app, &alice, Some("a1"), &body(&case_id, &base, &stroke(1))).await;
    let saved: LabelSaved = first.json().await.unwrap();
    let late = post(&app, &bob, Some("b1"), &body(&case_id, &base, &stroke(2))).await;
    assert_eq!(late.status(), StatusCode::CONFLICT);
    let error: Value = late.json().await.unwrap();
    assert_eq!(error["error"]["code"], "stale_base");
    assert_eq!(error["error"]["current_mask_ref"], saved.new_mask_ref.as_str());
    assert_eq!(app.count("SELECT COUNT(*) FROM labels").await, 1);
    assert_eq!(mask_versions(&app, &case_id).await, 2);
    // Bob's key was not used up: after reloading he saves with it on the new head.
    let retry = post(&app, &bob, Some("b1"), &body(&case_id, saved.new_mask_ref.as_str(), &stroke(2))).await;
    assert_eq!(retry.status(), StatusCode::CREATED);
    app.stop().await;
}

/// What, bearer token, idempotency key, content type, raw body, expected status, message part.
type BadRequest<'a> = (&'a str, &'a str, Option<&'a str>, &'a str, String, u16, &'a str);

#[tokio::test]
async fn bad_requests_get_a_clear_4xx_and_change_nothing() {
    let app = TestApp::spawn_with(|args| args.max_body_bytes = 256 * 1024).await;
    let token = app.user("lab", &[Role::Labeler]).await;
    let engineer = app.user("mle", &[Role::MlEngineer]).await;
    let (case_id, base) = small_case(&app).await;
    let stored_before = app.state.store.list(&format!("cases/{case_id}/")).await.unwrap();
    let run = |start: u64, len: u64, value: u8| {
        let mut mask = vec![0u8; VOXELS + 64];
        mask[start as usize..(start + len) as usize].fill(value);
        MaskEdits::diff(&vec![0u8; VOXELS + 64], &mask).encode()
    };
    let good = stroke(1);
    let mut trailing = good.clone();
    trailing.push(7);
    let huge_gap = {
        let mut bytes = vec![1u8, 1];
        bytes.extend([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1, 1]);
        bytes
    };
    let valid = body(&case_id, &base, &good);
    let with = |field: &str, value: Value| {
        let mut b = valid.clone();
        b[field] = value;
        b
    };
    let without = |field: &str| {
        let mut b = valid.clone();
        b.as_object_mut().unwrap().remove(field);
        b
    };
    let long_key = "k".repeat(300);
    let big = json!({ "case_id": case_id, "base_mask_ref": base, "edits": "A".repeat(300 * 1024) }).to_string();
    let cases: Vec<BadRequest> = vec![
        ("no key", &token, None, "application/json", valid.to_string(), 400, "Idempotency-Key header is required"),
        ("empty key", &token, Some(""), "application/json", valid.to_string(), 400, "1–255 visible ASCII"),
        ("long key", &token, Some(&long_key), "application/json", valid.to_string(), 400, "1–255 visible ASCII"),
        ("key with space", &token, Some("a b"), "application/json", valid.to_string(), 400, "1–255 visible ASCII"),
        ("no token", "", Some("k"), "application/json", valid.to_string(), 401, "authentication required"),
        ("unknown token", "sgl_x", Some("k"), "application/json", valid.to_string(), 401, "authentication required"),
        ("not a labeler", &engineer, Some("k"), "application/json", valid.to_string(), 403, "needs the role labeler"),
        ("text body", &token, Some("k"), "text/plain", valid.to_string(), 400, "Content-Type"),
        ("broken JSON", &token, Some("k"), "application/json", "{\"case_id\": ".into(), 400, "JSON"),
        ("JSON array", &token, Some("k"), "application/json", "[1,2]".into(), 422, "must be an object"),
        ("missing case_id", &token, Some("k"), "application/json", without("case_id").to_string(), 422, "case_id"),
        (
            "missing base",
            &token,
            Some("k"),
            "application/json",
            without("base_mask_ref").to_string(),
            422,
            "base_mask_ref",
        ),
        ("missing edits", &token, Some("k"), "application/json", without("edits").to_string(), 422, "edits"),
        (
            "unknown field",
            &token,
            Some("k"),
            "application/json",
            with("colour", json!("red")).to_string(),
            422,
            "unknown field",
        ),
        (
            "numeric case_id",
            &token,
            Some("k"),
            "application/json",
            with("case_id", json!(7)).to_string(),
            422,
            "case_id",
        ),
        ("null edits", &token, Some("k"), "application/json", with("edits", Value::Null).to_string(), 422, "edits"),
        (
            "edits not base64",
            &token,
            Some("k"),
            "application/json",
            with("edits", json!("%%%")).to_string(),
            400,
            "not valid base64",
        ),
        ("edits empty", &token, Some("k"), "application/json", with("edits", json!("")).to_string(), 422, "truncated"),
        (
            "format version 2",
            &token,
            Some("k"),
            "application/json",
            with("edits", json!(b64(&[2, 0]))).to_string(),
            422,
            "format version 2",
        ),
        (
            "truncated runs",
            &token,
            Some("k"),
            "application/json",
            with("edits", json!(b64(&good[..good.len() - 1]))).to_string(),
            422,
            "truncated",
        ),
        (
            "trailing bytes",
            &token,
            Some("k"),
            "application/json",
            with("edits", json!(b64(&trailing))).to_string(),
            422,
            "after the last run",
        ),
        (
            "zero-length run",
            &token,
            Some("k"),
            "application/json",
            with("edits", json!(b64(&[1, 1, 0, 0, 1]))).to_string(),
            422,
            "length 0",
        ),
        (
            "no runs",
            &token,
            Some("k"),
            "application/json",
            with("edits", json!(b64(&[1, 0]))).to_string(),
            422,
            "change no voxel",
        ),
        (
            "past the end",
            &token,
            Some("k"),
            "application/json",
            with("edits", json!(b64(&run(VOXELS as u64 - 2, 10, 1)))).to_string(),
            422,
            "beyond the mask",
        ),
        (
            "gap overflow",
            &token,
            Some("k"),
            "application/json",
            with("edits", json!(b64(&huge_gap))).to_string(),
            422,
            "beyond the mask",
        ),
        (
            "run count lie",
            &token,
            Some("k"),
            "application/json",
            with("edits", json!(b64(&[1, 0xff, 0xff, 0x03, 0, 1, 1]))).to_string(),
            422,
            "truncated",
        ),
        (
            "unknown label 9",
            &token,
            Some("k"),
            "application/json",
            with("edits", json!(b64(&run(5, 3, 9)))).to_string(),
            422,
            "label 9",
        ),
        (
            "unknown label 255",
            &token,
            Some("k"),
            "application/json",
            with("edits", json!(b64(&run(5, 3, 255)))).to_string(),
            422,
            "label 255",
        ),
        (
            "unknown case",
            &token,
            Some("k"),
            "application/json",
            with("case_id", json!("nope")).to_string(),
            404,
            "case nope not found",
        ),
        (
            "path-like case",
            &token,
            Some("k"),
            "application/json",
            with("case_id", json!("../cases")).to_string(),
            404,
            "not found",
        ),
        (
            "bogus base",
            &token,
            Some("k"),
            "application/json",
            with("base_mask_ref", json!("cases/x/masks/y.nii.gz")).to_string(),
            409,
            "changed by someone else",
        ),
        (
            "empty base",
            &token,
            Some("k"),
            "application/json",
            with("base_mask_ref", json!("")).to_string(),
            409,
            "changed by someone else",
        ),
        ("body too large", &token, Some("k"), "application/json", big, 413, "too large"),
    ];
    assert!(cases.len() >= 30);
    for (what, bearer, key, content_type, raw, status, message) in cases {
        let mut request = app.client.post(app.url("/labels")).header("content-type", content_type).body(raw);
        if !bearer.is_empty() {
            request = request.bearer_auth(bearer);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{what}");
        let text = response.text().await.unwrap();
        assert!(text.contains(message), "{what}: {text:?} lacks {message:?}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM labels").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'label_edit'").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM idempotency_keys").await, 0);
    assert_eq!(app.head_mask_ref(&case_id).await, base);
    assert_eq!(mask_versions(&app, &case_id).await, 1);
    assert_eq!(app.state.store.list(&format!("cases/{case_id}/")).await.unwrap(), stored_before, "nothing was stored");
    // And the key "k" is still free for a good request.
    assert_eq!(post(&app, &token, Some("k"), &valid).await.status(), StatusCode::CREATED);
    app.stop().await;
}

#[tokio::test]
async fn storage_outage_gives_503_with_no_rows_and_the_retry_succeeds() {
    let app = TestApp::spawn().await;
    let token = app.user("lab", &[Role::Labeler]).await;
    let user = seglab::server::services::users::user_for_token(&app.state.db, &token).await.unwrap().unwrap();
    let (case_id, base) = small_case(&app).await;
    let request =
        seglab::api::SaveLabelRequest { case_id: case_id.clone(), base_mask_ref: base.clone(), edits: b64(&stroke(1)) };

    // The same app, but its object storage unreachable (and no cached head to hide it).
    let mut broken = app.state.clone();
    let mut s3 = app.state.config.s3.clone();
    s3.s3_endpoint = Some("http://127.0.0.1:9".into());
    broken.store = seglab::server::storage::ObjectStore::new(
        &s3,
        seglab::server::storage::Connection {
            endpoint: s3.s3_endpoint.clone(),
            public_endpoint: None,
            access_key_id: "x".into(),
            secret_access_key: "y".into(),
        },
    )
    .unwrap();
    broken.heads = std::sync::Arc::new(seglab::server::mask_cache::HeadCache::new(0));
    use seglab::server::services::access;
    let access = access::authorize(&broken, &user, &case_id.parse().unwrap(), access::Save).await.unwrap();
    let err = seglab::server::services::labels::save_label(
        &broken,
        access,
        &IdempotencyKey::parse(Some("outage")).unwrap(),
        &request,
    )
    .await
    .unwrap_err();
    assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(err.to_string().contains("object storage is unavailable"), "{err}");
    assert_eq!(app.count("SELECT COUNT(*) FROM labels").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM idempotency_keys").await, 0);

    let retry = post(&app, &token, Some("outage"), &serde_json::to_value(&request).unwrap()).await;
    assert_eq!(retry.status(), StatusCode::CREATED);
    app.stop().await;
}

#[tokio::test]
async fn a_crash_before_commit_leaves_an_orphan_the_sweeper_removes_and_the_retry_succeeds() {
    let app = TestApp::spawn().await;
    let token = app.user("lab", &[Role::Labeler]).await;
    let (case_id, base) = small_case(&app).await;
    let request = body(&case_id, &base, &stroke(1));

    // What a crash after the PUT leaves: the object, and the key claimed but never completed.
    let orphan = seglab::api::MaskRef::fresh(&case_id.parse().unwrap()).to_string();
    app.state.store.put(&orphan, b"half a save".to_vec()).await.unwrap();
    running_claim(&app, "lab", "crashed", &request).await;

    // While the claim is fresh the retry is told to wait; once its lease is over it runs.
    let waiting = post(&app, &token, Some("crashed"), &request).await;
    assert_eq!(waiting.status(), StatusCode::CONFLICT);
    assert_eq!(waiting.headers()["retry-after"], "2");
    sqlx::query("UPDATE idempotency_keys SET locked_at = locked_at - 120000")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let retried = post(&app, &token, Some("crashed"), &request).await;
    assert_eq!(retried.status(), StatusCode::CREATED);

    use seglab::server::services::sweeper::sweep_orphans;
    assert_eq!(sweep_orphans(&app.state, std::time::Duration::from_secs(3600)).await.unwrap(), 0, "too young to sweep");
    assert_eq!(sweep_orphans(&app.state, std::time::Duration::ZERO).await.unwrap(), 1);
    let remaining = app.state.store.list(&format!("cases/{case_id}/")).await.unwrap();
    assert!(!remaining.contains(&orphan));
    let files: Vec<_> = remaining.iter().filter(|r| !r.contains("/slabs/")).collect();
    assert_eq!(files.len(), 2, "the image and first mask files stay (the save wrote a slab): {remaining:?}");
    assert_eq!(remaining.len() as i64 - 2, app.count("SELECT COUNT(*) FROM slabs").await, "every recorded slab stays");
    app.stop().await;
}

#[tokio::test]
async fn the_audit_log_is_append_only_and_its_chain_verifies() {
    let app = TestApp::spawn().await;
    let token = app.user("lab", &[Role::Labeler]).await;
    let (case_id, base) = small_case(&app).await;
    assert_eq!(post(&app, &token, Some("a"), &body(&case_id, &base, &stroke(1))).await.status(), StatusCode::CREATED);

    use seglab::server::services::audit::verify_chain;
    let report = verify_chain(&app.state.db).await.unwrap();
    assert_eq!(report.rows, 5, "user_add, case_import, and the save: case_taken, case_status, label_edit");
    assert_eq!(report.first_broken, None);
    let actions: Vec<String> = sqlx::query("SELECT action FROM audit_log ORDER BY seq")
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("action"))
        .collect();
    assert_eq!(actions, ["user_add", "case_import", "case_taken", "case_status", "label_edit"]);

    let update = sqlx::query("UPDATE audit_log SET details = '{}' WHERE seq = 2").execute(&app.state.db.pool).await;
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = sqlx::query("DELETE FROM audit_log WHERE seq = 3").execute(&app.state.db.pool).await;
    assert!(delete.unwrap_err().to_string().contains("append-only"));

    // Someone with full database rights lifts the protection and edits row 2: detected.
    let lift = match app.state.db.backend {
        seglab::server::db::Backend::Sqlite => "DROP TRIGGER audit_log_no_update",
        seglab::server::db::Backend::Postgres => "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change",
    };
    sqlx::query(lift).execute(&app.state.db.pool).await.unwrap();
    sqlx::query("UPDATE audit_log SET details = '{\"forged\":true}' WHERE seq = 2")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let report = verify_chain(&app.state.db).await.unwrap();
    assert_eq!(report.first_broken.as_ref().map(|(seq, _)| *seq), Some(2), "{report:?}");

    let output = app.run_cli(&["audit", "verify"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("audit log broken at row 2 of 5"), "{stderr}");
    app.stop().await;
}

#[tokio::test]
async fn nibabel_reads_the_saved_mask_with_the_same_geometry_and_exactly_the_edits() {
    let app = TestApp::spawn().await;
    let token = app.user("lab", &[Role::Labeler]).await;
    let (case_id, base) = small_case(&app).await;
    let saved: LabelSaved =
        post(&app, &token, Some("interop"), &body(&case_id, &base, &stroke(2))).await.json().await.unwrap();

    let file = app.data_dir.path().join("saved.nii.gz");
    std::fs::write(&file, app.mask_file(&token, saved.new_mask_ref.as_str()).await).unwrap();
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyenv/bin/python");
    assert!(python.exists(), "{} is missing: run `.ci/setup test` for the nibabel environment", python.display());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/read_mask.py");
    let output = std::process::Command::new(python).args([script, file.to_str().unwrap()]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let read: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(read["shape"], json!([32, 24, 16]));
    assert_eq!(read["dtype"], "uint8");
    assert_eq!(
        read["affine"],
        json!([
            [-0.9f32 as f64, 0.0, 0.0, 14.0],
            [0.0, 0.9f32 as f64, 0.0, -10.0],
            [0.0, 0.0, 3.0, -22.0],
            [0.0, 0.0, 0.0, 1.0]
        ])
    );
    assert_eq!(read["indices"], json!((100..140).collect::<Vec<_>>()));
    assert_eq!(read["values"], json!(vec![2; 40]));
    app.stop().await;
}

#[tokio::test]
async fn the_version_history_refuses_update_and_delete() {
    let app = TestApp::spawn().await;
    let token = app.user("lab", &[Role::Labeler]).await;
    let (case_id, base) = small_case(&app).await;
    assert_eq!(post(&app, &token, Some("a"), &body(&case_id, &base, &stroke(1))).await.status(), StatusCode::CREATED);

    let update = sqlx::query("UPDATE labels SET voxels_changed = 0").execute(&app.state.db.pool).await;
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = sqlx::query("DELETE FROM labels").execute(&app.state.db.pool).await;
    assert!(delete.unwrap_err().to_string().contains("append-only"));
    if app.state.db.backend == seglab::server::db::Backend::Postgres {
        let truncate = sqlx::query("TRUNCATE labels").execute(&app.state.db.pool).await;
        assert!(truncate.unwrap_err().to_string().contains("append-only"));
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM labels WHERE voxels_changed = 40").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn audit_verify_detects_rows_cut_from_the_end() {
    let app = TestApp::spawn().await;
    let token = app.user("lab", &[Role::Labeler]).await;
    let (case_id, base) = small_case(&app).await;
    let first: LabelSaved =
        post(&app, &token, Some("a"), &body(&case_id, &base, &stroke(1))).await.json().await.unwrap();
    let second = post(&app, &token, Some("b"), &body(&case_id, first.new_mask_ref.as_str(), &stroke(2))).await;
    assert_eq!(second.status(), StatusCode::CREATED);
    use seglab::server::services::audit::verify_chain;
    assert_eq!(verify_chain(&app.state.db).await.unwrap().first_broken, None);

    // Someone with full database rights lifts the protection, removes every row after the
    // import and puts the protection back: every remaining row still chains correctly.
    let pool = &app.state.db.pool;
    let (lift, restore) = match app.state.db.backend {
        seglab::server::db::Backend::Sqlite => (
            "DROP TRIGGER audit_log_no_delete",
            "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
        ),
        seglab::server::db::Backend::Postgres => (
            "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change",
            "ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_change",
        ),
    };
    sqlx::query(lift).execute(pool).await.unwrap();
    sqlx::query("DELETE FROM audit_log WHERE seq > 2").execute(pool).await.unwrap();
    sqlx::query(restore).execute(pool).await.unwrap();
    assert!(sqlx::query("DELETE FROM audit_log WHERE seq = 1").execute(pool).await.is_err(), "protection restored");

    let report = verify_chain(&app.state.db).await.unwrap();
    assert_eq!(report.rows, 2);
    let (seq, reason) = report.first_broken.expect("a cut tail is a broken chain");
    assert_eq!(seq, 3);
    assert!(reason.contains("head records row 6"), "{reason}");
    let output = app.run_cli(&["audit", "verify"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("rows were removed from its end"));
    app.stop().await;
}

#[tokio::test]
async fn a_retry_whose_original_finishes_meanwhile_gets_the_original_answer() {
    let app = TestApp::spawn().await;
    let token = app.user("lab", &[Role::Labeler]).await;
    let (case_id, base) = small_case(&app).await;
    let request = body(&case_id, &base, &stroke(1));
    // The original is still running (its claim is fresh) when the retry arrives ...
    running_claim(&app, "lab", "lost-answer", &request).await;
    let retry = tokio::spawn({
        let (client, url, token, request) = (app.client.clone(), app.url("/labels"), token.clone(), request.clone());
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", "lost-answer")
                .json(&request)
                .send()
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // ... and commits while the retry waits.
    let original = r#"{"label_id":"original","new_mask_ref":"cases/x/masks/original.nii.gz","voxels_changed":40}"#;
    sqlx::query("UPDATE idempotency_keys SET state = 'done', response_status = 201, response_body = $1 WHERE idem_key = 'lost-answer'")
        .bind(original)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let retry = retry.await.unwrap();
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.text().await.unwrap(), original);
    assert_eq!(app.count("SELECT COUNT(*) FROM labels").await, 0, "the retry did not save a second time");
    app.stop().await;
}

#[tokio::test]
async fn every_acknowledged_save_is_stored_as_recorded_after_a_kill_in_a_save_storm() {
    let app = TestApp::spawn().await;
    let token = app.user("lab", &[Role::Labeler]).await;
    let mut cases = Vec::new();
    for _ in 0..4 {
        cases.push(small_case(&app).await);
    }
    // A second server process on the same database and storage: the one that gets killed.
    let (mut server, base_url, ready) =
        app.start_server_process(&["--workers", "0"], &["--no-demo"], std::process::Stdio::null()).await;
    assert!(ready, "the second server did not become ready");

    // Four labelers save on their own cases as fast as they can until the server dies.
    let storm = cases.into_iter().enumerate().map(|(n, (case_id, mut head))| {
        let (client, url, token) = (app.client.clone(), format!("{base_url}/labels"), token.clone());
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for save in 0..500u32 {
                let request = body(&case_id, &head, &stroke(1 + ((save + n as u32) % 2) as u8));
                let sent = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
                    .json(&request)
                    .send()
                    .await;
                let Ok(response) = sent else { break };
                if response.status() != StatusCode::CREATED {
                    break;
                }
                let Ok(saved) = response.json::<LabelSaved>().await else { break };
                head = saved.new_mask_ref.to_string();
                acknowledged.push(saved.new_mask_ref);
            }
            acknowledged
        })
    });
    let storm: Vec<_> = storm.collect();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let killed = std::process::Command::new("kill").args(["-KILL", &server.id().to_string()]).status().unwrap();
    assert!(killed.success());
    server.wait().unwrap();
    let mut acknowledged = Vec::new();
    for labeler in storm {
        acknowledged.extend(labeler.await.unwrap());
    }
    assert!(!acknowledged.is_empty(), "no save was acknowledged before the kill");

    // Every acknowledged version is recorded, and storage holds every recorded object's bytes.
    for new_mask_ref in &acknowledged {
        let recorded = sqlx::query("SELECT COUNT(*) AS n FROM labels WHERE new_mask_ref = $1")
            .bind(new_mask_ref)
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap()
            .get::<i64, _>("n");
        assert_eq!(recorded, 1, "{new_mask_ref} was acknowledged but not recorded");
    }
    let output = app.run_cli(&["objects", "verify"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}{stdout}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("objects intact"), "{stdout}");
    app.stop().await;
}

#[tokio::test]
async fn a_head_exported_earlier_must_still_be_in_the_chain() {
    let app = TestApp::spawn().await;
    let token = app.user("lab", &[Role::Labeler]).await;
    let (case_id, base) = small_case(&app).await;
    assert_eq!(post(&app, &token, Some("a"), &body(&case_id, &base, &stroke(1))).await.status(), StatusCode::CREATED);
    let head = String::from_utf8(app.run_cli(&["audit", "head"]).stdout).unwrap().trim().to_string();
    let (seq, hash) = head.split_once(':').unwrap();
    assert_eq!(seq, "5", "user_add, case_import, case_taken, case_status, label_edit");
    assert_eq!(hash.len(), 64);
    assert!(app.run_cli(&["audit", "verify", "--expect-head", &head]).status.success());
    for wrong in [format!("5:{}", "0".repeat(64)), format!("9:{hash}")] {
        let output = app.run_cli(&["audit", "verify", "--expect-head", &wrong]);
        assert!(!output.status.success(), "{wrong}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("differs from the head exported earlier"));
    }
    app.stop().await;
}

#[tokio::test]
async fn with_an_audit_key_a_chain_rewritten_without_it_does_not_verify() {
    let app =
        TestApp::spawn_configured(|config| config.audit_key = Some("kept-outside-the-database".into()), |_| {}).await;
    let token = app.user("lab", &[Role::Labeler]).await;
    let (case_id, base) = small_case(&app).await;
    assert_eq!(post(&app, &token, Some("a"), &body(&case_id, &base, &stroke(1))).await.status(), StatusCode::CREATED);
    use seglab::server::services::audit::{row_hash, verify_chain};
    assert_eq!(verify_chain(&app.state.db).await.unwrap().first_broken, None);

    // Someone with full database rights but not the key forges row 2 and recomputes every
    // hash after it and the head: the chain is consistent again.
    let pool = &app.state.db.pool;
    let lift = match app.state.db.backend {
        seglab::server::db::Backend::Sqlite => "DROP TRIGGER audit_log_no_update",
        seglab::server::db::Backend::Postgres => "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change",
    };
    sqlx::query(lift).execute(pool).await.unwrap();
    let rows = sqlx::query("SELECT seq, at, action, user_id, case_id, details FROM audit_log ORDER BY seq")
        .fetch_all(pool)
        .await
        .unwrap();
    let mut previous = "0".repeat(64);
    for row in rows {
        let seq: i64 = row.get("seq");
        let details = if seq == 2 { r#"{"forged":true}"#.to_string() } else { row.get::<String, _>("details") };
        let (user_id, case_id): (Option<String>, Option<String>) = (row.get("user_id"), row.get("case_id"));
        let hash = row_hash(
            seq,
            row.get("at"),
            &row.get::<String, _>("action"),
            user_id.as_deref(),
            case_id.as_deref(),
            &details,
            &previous,
        );
        sqlx::query("UPDATE audit_log SET details = $1, prev_hash = $2, hash = $3 WHERE seq = $4")
            .bind(&details)
            .bind(&previous)
            .bind(&hash)
            .bind(seq)
            .execute(pool)
            .await
            .unwrap();
        previous = hash;
    }
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1").bind(&previous).execute(pool).await.unwrap();

    let without_key = seglab::server::db::Db { audit_key: None, ..app.state.db.clone() };
    assert_eq!(verify_chain(&without_key).await.unwrap().first_broken, None, "without the key the rewrite passes");
    let report = verify_chain(&app.state.db).await.unwrap();
    let (seq, reason) = report.first_broken.expect("with the key the rewrite is found");
    assert_eq!(seq, 5, "the head row's seal");
    assert!(reason.contains("not sealed with the audit key"), "{reason}");
    app.stop().await;
}

/// A 256×256×40 case whose mask holds a block of label 1: its mask is three slabs of 16, 16
/// and 8 slices. Returns the case id, its first mask version, and that mask's labels.
async fn slabbed_case(app: &TestApp) -> (String, String, Vec<u8>) {
    const DIMS: [u32; 3] = [256, 256, 40];
    let voxels = 256 * 256 * 40;
    let header = nifti::NiftiHeader {
        pixdim: [-1.0, 0.7, 0.7, 2.5, 1.0, 1.0, 1.0, 1.0],
        qform_code: 1,
        quatern_b: 0.0,
        quatern_c: 1.0,
        quatern_d: 0.0,
        quatern_x: 90.0,
        quatern_y: -126.0,
        quatern_z: -72.0,
        sform_code: 2,
        srow_x: [-0.7, 0.0, 0.0, 90.0],
        srow_y: [0.0, 0.7, 0.0, -126.0],
        srow_z: [0.0, 0.0, 2.5, -72.0],
        ..nifti::NiftiHeader::default()
    };
    let mut mask = vec![0u8; voxels];
    for k in 5..30 {
        for j in 100..140 {
            mask[(k * 256 + j) * 256 + 60..(k * 256 + j) * 256 + 120].fill(1);
        }
    }
    let case_id = CaseBuilder::new("slabbed")
        .dims(DIMS)
        .header(header)
        .int16(|i| (i % 1000) as i16 - 200)
        .mask(mask.clone())
        .labels(&[(1, "liver"), (2, "tumour")])
        .import(app)
        .await;
    let head = app.head_mask_ref(&case_id).await;
    (case_id, head, mask)
}

/// The slab ids a mask version lists.
async fn slab_ids(app: &TestApp, object_ref: &str) -> Vec<String> {
    let json: String = sqlx::query("SELECT slabs_json FROM objects WHERE object_ref = $1")
        .bind(object_ref)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
        .get(0);
    serde_json::from_str::<Value>(&json).unwrap()["slabs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_string())
        .collect()
}

/// A brush stroke of about 3,000 voxels: a disc of radius 31 in slice `k`, centred at (128, 128).
fn disc(k: usize, radius: i64) -> Vec<usize> {
    let mut voxels = Vec::new();
    for j in 128 - radius..=128 + radius {
        for i in 128 - radius..=128 + radius {
            if (i - 128) * (i - 128) + (j - 128) * (j - 128) <= radius * radius {
                voxels.push((k * 256 + j as usize) * 256 + i as usize);
            }
        }
    }
    voxels
}

#[tokio::test]
async fn a_save_writes_only_the_slabs_it_touches_and_every_version_downloads_as_the_whole_file_did() {
    let app = TestApp::spawn().await;
    let token = app.user("lab", &[Role::Labeler]).await;
    let (case_id, first, imported) = slabbed_case(&app).await;
    let imported_header = Volume::parse("mask", &app.mask_file(&token, &first).await).unwrap().header;

    // Three saves: a 3,000-voxel stroke in slab 0; one across the border of slabs 0 and 1
    // (slices 15 and 16); a whole slice of the thinner last slab.
    let stroke_in = |mask: &[u8], voxels: &[usize], value: u8| {
        let mut edited = mask.to_vec();
        voxels.iter().for_each(|&v| edited[v] = value);
        edited
    };
    let mut versions = vec![(first.clone(), imported.clone())];
    let plans: [(Vec<usize>, u8, usize); 3] = [
        (disc(3, 31), 2, 1),
        (disc(15, 20).into_iter().chain(disc(16, 20)).collect(), 2, 2),
        ((0..256 * 256).map(|v| 36 * 256 * 256 + v).collect(), 2, 1),
    ];
    for (voxels, value, slabs_written) in &plans {
        let (base_ref, base) = versions.last().unwrap().clone();
        let edited = stroke_in(&base, voxels, *value);
        let slabs_before = app.count("SELECT COUNT(*) FROM slabs").await;
        let bytes_before = app.count("SELECT CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) FROM slabs").await;
        let response = app.post_label(&token, &case_id, &base_ref, &MaskEdits::diff(&base, &edited).encode()).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let saved: LabelSaved = response.json().await.unwrap();
        assert_eq!(app.count("SELECT COUNT(*) FROM slabs").await - slabs_before, *slabs_written as i64);
        let stored = app.count("SELECT CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) FROM slabs").await - bytes_before;
        assert!(stored < 64 * 1024, "{stored} bytes stored for a save of {} voxels", voxels.len());
        // The version lists the base's slabs but for those it wrote.
        let (old_ids, new_ids) = (slab_ids(&app, &base_ref).await, slab_ids(&app, saved.new_mask_ref.as_str()).await);
        assert_eq!(old_ids.iter().zip(&new_ids).filter(|(a, b)| a != b).count(), *slabs_written);
        versions.push((saved.new_mask_ref.to_string(), edited));
    }
    assert_eq!(disc(3, 31).len(), 3001);

    // Every version, the newest first, downloads as a .nii.gz identical, header and voxels, to
    // the file a save wrote before slabs (the import's geometry, the edited voxels).
    let artifacts: CaseArtifacts = app.get_json(&token, &format!("/cases/{case_id}/artifacts?history=true")).await;
    assert_eq!(artifacts.history.len(), 3);
    for (entry, (object_ref, labels)) in artifacts.history.iter().zip(versions.iter().rev()) {
        assert_eq!(entry.new_mask_ref.as_str(), object_ref);
        assert_eq!(entry.url, format!("/{object_ref}"), "not written yet, so the API path");
        let file = app.download(&token, &entry.url).await;
        let mut inflated = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&file[..]), &mut inflated).unwrap();
        assert!(
            inflated == encode_mask(&imported_header, [256, 256, 40], labels),
            "{object_ref} differs from the whole-file path"
        );
        let row = sqlx::query("SELECT file_stored, size_bytes, sha256 FROM objects WHERE object_ref = $1")
            .bind(object_ref)
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap();
        assert_eq!(row.get::<i64, _>("file_stored"), 1);
        assert_eq!(row.get::<i64, _>("size_bytes") as usize, file.len());
        use sha2::Digest;
        assert_eq!(row.get::<String, _>("sha256"), hex::encode(sha2::Sha256::digest(&file)));
    }
    // Written once: now the artifacts point at storage directly.
    let again: CaseArtifacts = app.get_json(&token, &format!("/cases/{case_id}/artifacts?history=true")).await;
    assert!(again.history.iter().all(|entry| entry.url.starts_with("http")), "{:?}", again.history);
    assert_eq!(app.download(&token, &again.artifacts[1].url).await, app.mask_file(&token, &versions[3].0).await);

    // The first version is still the imported file, and storage holds what was recorded.
    let first_file = Volume::parse("mask", &app.mask_file(&token, &first).await).unwrap();
    assert!(first_file.into_labels("mask").unwrap() == imported);
    let verified = app.run_cli(&["objects", "verify"]);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));

    // Another user may not read the version through the API path.
    let outsider = app.user("outsider", &[Role::Labeler]).await;
    sqlx::query("UPDATE cases SET restricted = 1 WHERE id = $1")
        .bind(&case_id)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let refused = app.client.get(app.url(&format!("/{}", versions[1].0))).bearer_auth(&outsider).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    let missing = app
        .client
        .get(app.url(&format!("/cases/{case_id}/masks/none.nii.gz")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn volumes_stored_before_slabs_are_cut_at_start_up_and_saved_on_as_usual() {
    let app = TestApp::spawn().await;
    let token = app.user("lab", &[Role::Labeler]).await;
    let (case_id, first, imported) = slabbed_case(&app).await;
    // As the database of an older release left it: files only.
    sqlx::query("UPDATE objects SET slabs_json = '' WHERE case_id = $1")
        .bind(&case_id)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM slabs WHERE case_id = $1").bind(&case_id).execute(&app.state.db.pool).await.unwrap();

    // Opening the case only reads: it is not ready until a start-up cuts its volumes.
    let opened =
        app.client.get(app.url(&format!("/cases/{case_id}/artifacts"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(opened.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(app.count("SELECT COUNT(*) FROM slabs").await, 0);

    // The start-up cuts the image and the mask into slabs, once.
    let app = app.restart(|_| {}).await;
    let artifacts: CaseArtifacts = app.get_json(&token, &format!("/cases/{case_id}/artifacts")).await;
    let listed = |n: usize| {
        let slabs = &artifacts.artifacts[n].slabs;
        (slabs.slabs.len(), slabs.urls.len())
    };
    assert_eq!([listed(0), listed(1)], [(2, 2), (3, 3)]);
    let cut = app.count("SELECT COUNT(*) FROM slabs").await;
    assert_eq!(cut, 5);
    let app = app.restart(|_| {}).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM slabs").await, cut);

    let mut edited = imported.clone();
    disc(20, 31).into_iter().for_each(|v| edited[v] = 2);
    let saved: LabelSaved = app
        .post_label(&token, &case_id, &first, &MaskEdits::diff(&imported, &edited).encode())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(app.count("SELECT COUNT(*) FROM slabs").await, cut + 1);
    let file = Volume::parse("mask", &app.mask_file(&token, saved.new_mask_ref.as_str()).await).unwrap();
    assert!(file.into_labels("mask").unwrap() == edited);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_first_requests_for_a_mask_file_write_it_once() {
    let app = TestApp::spawn().await;
    let token = app.user("lab", &[Role::Labeler]).await;
    let (case_id, base) = small_case(&app).await;
    let saved = post(
        &app,
        &token,
        Some("one"),
        &json!({ "case_id": case_id, "base_mask_ref": base, "edits": b64(&stroke(1)) }),
    )
    .await;
    assert_eq!(saved.status(), StatusCode::CREATED);
    let saved: LabelSaved = saved.json().await.unwrap();
    let path = app.url(&format!("/{}", saved.new_mask_ref));
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let answers = join_all((0..8).map(|_| no_redirects.get(&path).bearer_auth(&token).send())).await;
    assert!(answers.iter().all(|answer| answer.as_ref().unwrap().status() == StatusCode::SEE_OTHER));
    assert_eq!(app.state.mask_files.done(), 1, "the file was written by more than one request");
    app.stop().await;
}
