//! Dataset snapshots on the backend under test: only approved cases and their approved mask
//! versions are frozen, splits are deterministic, snapshots never change (new ones are new
//! versions), the manifest's URLs give bytes with the recorded SHA-256, and the export in both
//! layouts writes files nibabel reads, each matching its SHA-256.

use std::path::Path;

use crate::common::TestApp;
use crate::fixtures::CaseBuilder;
use reqwest::StatusCode;
use seglab::api::{CaseArtifacts, DatasetSummary, Manifest, Split, MAX_LISTED_CASES};
use seglab::edits::MaskEdits;
use seglab::server::identity::Role;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const DIMS: [u32; 3] = [10, 8, 6];
const VOXELS: usize = 10 * 8 * 6;

async fn new_case(app: &TestApp, name: &str) -> String {
    CaseBuilder::new(name).dims(DIMS).spacing([0.8, 0.8, 2.0]).labels(&[(1, "liver"), (2, "tumour")]).import(app).await
}

/// Saves voxels `from..from + 20` as label 1 and submits (an admin may do both), then a reviewer
/// approves (nobody approves what they saved).
async fn label_and_approve(app: &TestApp, admin: &str, case_id: &str, from: usize) -> String {
    let reviewer = match app.count("SELECT COUNT(*) FROM users WHERE username = 'rita'").await {
        0 => app.user("rita", &[Role::Reviewer]).await,
        _ => seglab::server::services::accounts::issue_token(&app.state.db, None, "rita", None).await.unwrap().token,
    };
    let case: CaseArtifacts = app.get_json(admin, &format!("/cases/{case_id}/artifacts")).await;
    let mut mask = vec![0u8; VOXELS];
    mask[from..from + 20].fill(1);
    let saved = app
        .post_label(
            admin,
            case_id,
            case.current_mask_ref.as_str(),
            &MaskEdits::diff(&vec![0u8; VOXELS], &mask).encode(),
        )
        .await;
    assert_eq!(saved.status(), StatusCode::CREATED);
    let new_ref = saved.json::<Value>().await.unwrap()["new_mask_ref"].as_str().unwrap().to_string();
    for (status, token) in [("submitted", admin), ("approved", reviewer.as_str())] {
        assert_eq!(app.set_case_status(token, case_id, status).await.status(), StatusCode::OK);
    }
    new_ref
}

async fn post(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.client.post(app.url("/datasets")).bearer_auth(token).json(&body).send().await.unwrap()
}

fn sha256_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[tokio::test]
async fn snapshots_freeze_approved_versions_and_never_change() {
    let app = TestApp::spawn().await;
    let admin = app.user("root", &[Role::Labeler, Role::Reviewer, Role::Admin]).await;
    let labeler = app.user("lab", &[Role::Labeler]).await;
    let mut approved = Vec::new();
    for n in 0..6 {
        let id = new_case(&app, &format!("Liver {n}")).await;
        let mask_ref = label_and_approve(&app, &admin, &id, n * 10).await;
        approved.push((id, mask_ref));
    }
    let unapproved = new_case(&app, "Liver draft").await;
    let other = new_case(&app, "Spleen").await;
    label_and_approve(&app, &admin, &other, 0).await;

    // Refused: the wrong role, bad fractions, a case that is not approved; nothing written.
    assert_eq!(post(&app, &labeler, json!({ "name": "liver" })).await.status(), StatusCode::FORBIDDEN);
    let bad = post(&app, &admin, json!({ "name": "liver", "validation_fraction": 0.7, "test_fraction": 0.5 })).await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let draft = post(&app, &admin, json!({ "name": "liver", "case_ids": [unapproved] })).await;
    assert_eq!(draft.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(draft.text().await.unwrap().contains("not an approved case"));
    assert_eq!(app.count("SELECT COUNT(*) FROM datasets").await, 0);

    // The liver cases, split from a seed; one case's split given.
    let request = json!({
        "name": "liver", "name_contains": "LIVER", "validation_fraction": 0.25, "test_fraction": 0.25, "seed": 42,
        "splits": { approved[0].0.clone(): "test" },
    });
    let first = post(&app, &admin, request.clone()).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: DatasetSummary = first.json().await.unwrap();
    assert_eq!((first.name.as_str(), first.version, first.train + first.validation + first.test), ("liver", 1, 6));
    // The manifest's links open every case, so only ML engineers and admins read it.
    let path = format!("/datasets/{}/manifest", first.id);
    assert_eq!(
        app.client.get(app.url(&path)).bearer_auth(&labeler).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let manifest: Manifest = app.get_json(&admin, &path).await;
    assert_eq!(manifest.label_map.get(&1).map(String::as_str), Some("liver"));
    assert_eq!(manifest.cases.iter().find(|c| c.case_id.as_str() == approved[0].0).unwrap().split, Split::Test);
    for case in &manifest.cases {
        let expected = &approved.iter().find(|(id, _)| id == case.case_id.as_str()).unwrap().1;
        assert_eq!(&case.mask.object_ref, expected, "the approved version");
        for file in [&case.image, &case.mask] {
            let bytes = app.client.get(&file.url).send().await.unwrap().bytes().await.unwrap();
            assert_eq!(sha256_of(&bytes), file.sha256);
        }
    }

    // A later save does not change the snapshot; the same request again is version 2, same split.
    let case_id = &approved[1].0;
    let case: CaseArtifacts = app.get_json(&admin, &format!("/cases/{case_id}/artifacts")).await;
    let later = app
        .post_label(
            &admin,
            case_id,
            case.current_mask_ref.as_str(),
            &MaskEdits::diff(&vec![0u8; VOXELS], &vec![2u8; VOXELS]).encode(),
        )
        .await;
    assert_eq!(later.status(), StatusCode::CREATED);
    let again: Manifest = app.get_json(&admin, &format!("/datasets/{}/manifest", first.id)).await;
    assert_eq!(
        again.cases.iter().map(|c| &c.mask.object_ref).collect::<Vec<_>>(),
        manifest.cases.iter().map(|c| &c.mask.object_ref).collect::<Vec<_>>()
    );
    let second: DatasetSummary = post(&app, &admin, request).await.json().await.unwrap();
    assert_eq!(second.version, 2);
    assert_eq!(
        second.train + second.validation + second.test,
        5,
        "the case reopened by the save is no longer approved"
    );
    let splits_of = |m: &Manifest| {
        m.cases.iter().map(|c| (c.case_id.clone(), c.split)).collect::<std::collections::BTreeMap<_, _>>()
    };
    let second_manifest: Manifest = app.get_json(&admin, &format!("/datasets/{}/manifest", second.id)).await;
    for (id, split) in splits_of(&second_manifest) {
        assert_eq!(splits_of(&manifest)[&id], split, "the seed gives each case the same split");
    }
    let listed: Vec<DatasetSummary> = app.get_json(&labeler, "/datasets").await;
    assert_eq!(listed.len(), 2);

    // Never changed: no route edits a snapshot, and the database refuses it.
    let put =
        app.client.put(app.url(&format!("/datasets/{}/manifest", first.id))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(put.status(), StatusCode::METHOD_NOT_ALLOWED);
    let update = sqlx::query("UPDATE dataset_cases SET split = 'train' WHERE dataset_id = $1")
        .bind(&first.id)
        .execute(&app.state.db.pool)
        .await;
    assert!(update.unwrap_err().to_string().contains("never changed"));
    let delete = sqlx::query("DELETE FROM datasets WHERE id = $1").bind(&first.id).execute(&app.state.db.pool).await;
    assert!(delete.is_err());
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'dataset_created'").await, 2);
    app.stop().await;
}

#[tokio::test]
async fn lists_past_the_cap_are_refused_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let admin = app.user("root", &[Role::Labeler, Role::Reviewer, Role::Admin]).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let id = new_case(&app, &format!("Liver {n}")).await;
        label_and_approve(&app, &admin, &id, n * 10).await;
        ids.push(id);
    }
    // `entries` ids, the approved cases over and over.
    let listing = |entries: usize| ids.iter().cycle().take(entries).cloned().collect::<Vec<_>>();
    let request = |name: &str, case_ids: Vec<String>| {
        json!({
            "name": name, "case_ids": case_ids, "validation_fraction": 0.3, "test_fraction": 0.3, "seed": 7,
            "splits": { ids[0].clone(): "test" },
        })
    };
    let frozen = |summary: DatasetSummary| {
        let app = &app;
        let admin = &admin;
        async move {
            let manifest: Manifest = app.get_json(admin, &format!("/datasets/{}/manifest", summary.id)).await;
            let cases: Vec<_> = manifest.cases.into_iter().map(|c| (c.case_id, c.split, c.mask.object_ref)).collect();
            ((summary.train, summary.validation, summary.test), cases)
        }
    };

    // Each id once, or repeated up to the cap: the same snapshot.
    let once = post(&app, &admin, request("once", ids.clone())).await;
    assert_eq!(once.status(), StatusCode::CREATED);
    let once = frozen(once.json().await.unwrap()).await;
    assert_eq!(once.1.len(), 3);
    let at_cap = post(&app, &admin, request("at-cap", listing(MAX_LISTED_CASES))).await;
    assert_eq!(at_cap.status(), StatusCode::CREATED);
    assert_eq!(frozen(at_cap.json().await.unwrap()).await, once);

    // One entry more in either list: refused, naming the list and the cap; nothing written.
    let written = || {
        let app = &app;
        async move {
            (
                app.count("SELECT COUNT(*) FROM datasets").await,
                app.count("SELECT COUNT(*) FROM dataset_cases").await,
                app.count("SELECT COUNT(*) FROM audit_log").await,
            )
        }
    };
    let before = written().await;
    let over = post(&app, &admin, request("over", listing(MAX_LISTED_CASES + 1))).await;
    assert_eq!(over.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let message = over.text().await.unwrap();
    assert!(message.contains("case_ids") && message.contains(&format!("at most {MAX_LISTED_CASES}")), "{message}");
    let splits: serde_json::Map<String, Value> =
        (0..=MAX_LISTED_CASES).map(|_| (seglab::api::CaseId::random().to_string(), json!("train"))).collect();
    let over = post(&app, &admin, json!({ "name": "over", "splits": splits })).await;
    assert_eq!(over.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let message = over.text().await.unwrap();
    assert!(message.contains("splits") && message.contains(&format!("at most {MAX_LISTED_CASES}")), "{message}");
    assert_eq!(written().await, before);
    app.stop().await;
}

/// Shapes of NIfTI files as nibabel reads them, one `[i, j, k]` per path.
fn nibabel_shapes(paths: &[std::path::PathBuf]) -> Vec<Vec<usize>> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyenv/bin/python");
    assert!(python.exists(), "{} is missing: run `.ci/setup test` for the nibabel environment", python.display());
    let script = "import sys, json, nibabel\nprint(json.dumps([list(nibabel.load(p).shape) for p in sys.argv[1:]]))";
    let output = std::process::Command::new(python).arg("-c").arg(script).args(paths).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn export_writes_nnunet_and_monai_layouts_that_nibabel_reads() {
    let app = TestApp::spawn().await;
    let admin = app.user("root", &[Role::Labeler, Role::Reviewer, Role::Admin]).await;
    for n in 0..4 {
        let id = new_case(&app, &format!("Case {n}")).await;
        label_and_approve(&app, &admin, &id, n * 5).await;
    }
    let dataset: DatasetSummary =
        post(&app, &admin, json!({ "name": "all", "test_fraction": 0.5, "seed": 3 })).await.json().await.unwrap();
    let manifest: Manifest = app.get_json(&admin, &format!("/datasets/{}/manifest", dataset.id)).await;
    let out = tempfile::tempdir().unwrap();

    for (format, listing) in [("nnunet", "dataset.json"), ("monai", "datalist.json")] {
        let dir = out.path().join(format);
        let output = app.run_cli(&["dataset", "export", &dataset.id, dir.to_str().unwrap(), "--format", format]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert!(String::from_utf8_lossy(&output.stderr).contains("4/4 cases"), "progress is shown");
        let index: Value = serde_json::from_slice(&std::fs::read(dir.join("seglab_manifest.json")).unwrap()).unwrap();
        let cases = index["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 4);
        let mut files = Vec::new();
        for case in cases {
            let recorded = manifest.cases.iter().find(|c| c.case_id.as_str() == case["case_id"]).unwrap();
            for (path, sha) in [(&case["image"], &recorded.image.sha256), (&case["label"], &recorded.mask.sha256)] {
                let file = dir.join(path.as_str().unwrap());
                assert_eq!(&sha256_of(&std::fs::read(&file).unwrap()), sha, "{}", file.display());
                files.push(file);
            }
            let is_test = recorded.split == Split::Test;
            if format == "nnunet" {
                assert_eq!(case["image"].as_str().unwrap().starts_with("imagesTs/"), is_test);
                assert!(case["image"].as_str().unwrap().ends_with("_0000.nii.gz"));
            }
        }
        assert!(nibabel_shapes(&files).iter().all(|shape| *shape == DIMS.map(|d| d as usize).to_vec()));
        let listing: Value = serde_json::from_slice(&std::fs::read(dir.join(listing)).unwrap()).unwrap();
        if format == "nnunet" {
            assert_eq!(listing["labels"], json!({ "background": 0, "liver": 1, "tumour": 2 }));
            assert_eq!(listing["numTraining"], json!(dataset.train + dataset.validation));
            assert_eq!(listing["file_ending"], ".nii.gz");
        } else {
            assert_eq!(listing["training"].as_array().unwrap().len() as u64, dataset.train);
            assert_eq!(listing["test"].as_array().unwrap().len() as u64, dataset.test);
        }
        // A folder that is not empty is refused.
        let again = app.run_cli(&["dataset", "export", &dataset.id, dir.to_str().unwrap(), "--format", format]);
        assert!(!again.status.success());
        assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    }
    app.stop().await;
}
