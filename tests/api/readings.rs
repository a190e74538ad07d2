//! Several readers per case through HTTP: a coordinator plans two blinded readings, two readers
//! save at once without touching each other's reading, neither sees the other's work by any
//! route until both are submitted, then an adjudicator compares them, starts from their STAPLE
//! consensus, fixes a region and approves.

use reqwest::StatusCode;
use seglab::api::{
    AgreementOverview, CaseAgreement, CaseArtifacts, CaseReadings, DatasetSummary, LabelSaved, Manifest, NextCase,
    PlannedCases, Reading, RowReadings, Worklist,
};
use seglab::consensus::staple_consensus;
use seglab::edits::MaskEdits;
use seglab::metrics::dice;
use seglab::server::identity::Role;
use seglab::server::services::agreement;
use serde_json::{json, Value};

use crate::common::TestApp;
use crate::fixtures::CaseBuilder;

const DIMS: [u32; 3] = [8, 6, 4];
const VOXELS: usize = 8 * 6 * 4;

fn labelled(range: std::ops::Range<usize>) -> Vec<u8> {
    let mut mask = vec![0u8; VOXELS];
    mask[range].fill(1);
    mask
}

async fn artifacts(app: &TestApp, token: &str, case_id: &str) -> CaseArtifacts {
    app.get_json(token, &format!("/cases/{case_id}/artifacts?history=true")).await
}

/// Saves `mask` (from a blank start) as `token`'s holder on what they see as the case's mask.
async fn save(app: &TestApp, token: &str, case_id: &str, from: &[u8], mask: &[u8]) -> reqwest::Response {
    let base = artifacts(app, token, case_id).await.current_mask_ref;
    app.post_label(token, case_id, base.as_str(), &MaskEdits::diff(from, mask).encode()).await
}

#[tokio::test]
async fn blinded_readers_then_an_adjudication_from_staple() {
    let app = TestApp::spawn().await;
    let mle = app.user("mle", &[Role::MlEngineer]).await;
    let alice = app.user("alice", &[Role::Labeler]).await;
    let bob = app.user("bob", &[Role::Labeler]).await;
    let carol = app.user("carol", &[Role::Labeler]).await;
    let rita = app.user("rita", &[Role::Reviewer]).await;
    let case_id = CaseBuilder::new("double read").dims(DIMS).import(&app).await;
    let start = app.head_mask_ref(&case_id).await;
    let readings = format!("/cases/{case_id}/readings");
    let put = reqwest::Method::PUT;
    let post = reqwest::Method::POST;

    // Only coordinators plan, within bounds.
    assert_eq!(app.send_json(put.clone(), &alice, &readings, &json!({ "required": 2 })).await.status(), 403);
    assert_eq!(app.send_json(put.clone(), &mle, &readings, &json!({ "required": 9 })).await.status(), 422);
    let planned = app.send_json(put.clone(), &mle, &readings, &json!({ "required": 2, "blind": true })).await;
    assert_eq!(planned.status(), StatusCode::OK);

    // The case is where a labeler's "next case" goes, with a reading to take.
    let next: NextCase = app.get_json(&carol, "/worklist/next").await;
    assert_eq!(next.id.as_str(), case_id);

    // Two readings, each taken once; nobody reads twice, and the reviewer does not read.
    let taken = app.send_json(post.clone(), &alice, &readings, &json!({})).await;
    assert_eq!(taken.status(), StatusCode::CREATED);
    let mine: Worklist = app.get_json(&alice, "/worklist?assignee=me").await;
    let row = mine.rows.iter().find(|row| row.id.as_str() == case_id).expect("a reader's cases are hers");
    let expected = RowReadings { required: 2, taken: 1, submitted: 0, mine: Some(false) };
    assert_eq!(row.readings, Some(expected));
    let next: NextCase = app.get_json(&alice, "/worklist/next").await;
    assert_eq!(next.id.as_str(), case_id, "her open reading comes first");
    let alices: Reading = taken.json().await.unwrap();
    assert_eq!(alices.mask_ref.as_str(), start);
    assert_eq!(app.send_json(post.clone(), &alice, &readings, &json!({})).await.status(), StatusCode::CONFLICT);
    assert_eq!(app.send_json(post.clone(), &rita, &readings, &json!({})).await.status(), StatusCode::FORBIDDEN);
    let given = app.send_json(post.clone(), &mle, &readings, &json!({ "reader": "bob" })).await;
    assert_eq!(given.status(), StatusCode::CREATED);
    assert_eq!(app.send_json(post.clone(), &carol, &readings, &json!({})).await.status(), StatusCode::CONFLICT);
    // The single-labeler workflow's take does not apply.
    let take = app.send_json(post.clone(), &carol, &format!("/cases/{case_id}/take"), &json!({})).await;
    assert_eq!(take.status(), StatusCode::CONFLICT);

    // Both save at once, each into their own reading.
    let (mask_a, mask_b) = (labelled(0..40), labelled(10..56));
    let blank = vec![0u8; VOXELS];
    let (saved_a, saved_b) =
        tokio::join!(save(&app, &alice, &case_id, &blank, &mask_a), save(&app, &bob, &case_id, &blank, &mask_b));
    assert_eq!((saved_a.status(), saved_b.status()), (StatusCode::CREATED, StatusCode::CREATED));
    let (saved_a, saved_b): (LabelSaved, LabelSaved) = (saved_a.json().await.unwrap(), saved_b.json().await.unwrap());
    assert_eq!(app.head_mask_ref(&case_id).await, start, "the case's own mask waits for the adjudicator");
    // A second save of alice's builds on her own version, not on bob's.
    let more_a = labelled(0..44);
    assert_eq!(save(&app, &alice, &case_id, &mask_a, &more_a).await.status(), StatusCode::CREATED);

    // Blinded: alice sees her reading alone, by every route.
    let seen = artifacts(&app, &alice, &case_id).await;
    assert_ne!(seen.current_mask_ref, saved_b.new_mask_ref);
    assert_eq!(seen.history_total, 2, "alice's history holds her own two versions");
    assert!(seen.history.iter().all(|v| v.username.as_str() == "alice"));
    assert!(seen.history.iter().any(|v| v.new_mask_ref == saved_a.new_mask_ref));
    assert!(seen.predictions.is_empty());
    assert!(seen.readings.is_empty(), "nobody's readings are drawn over alice's");
    let listed: CaseReadings = app.get_json(&alice, &readings).await;
    assert_eq!((listed.taken, listed.readings.len()), (2, 1));
    let bobs_file = app.client.get(app.url(&format!("/{}", saved_b.new_mask_ref))).bearer_auth(&alice).send().await;
    assert_eq!(bobs_file.unwrap().status(), StatusCode::NOT_FOUND);
    let agreement = format!("/cases/{case_id}/agreement");
    let refused = app.client.get(app.url(&agreement)).bearer_auth(&alice).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let comments: Vec<Value> = app.get_json(&alice, &format!("/cases/{case_id}/comments")).await;
    assert!(comments.is_empty());
    let counts: String = sqlx::query_scalar("SELECT label_counts_json FROM cases WHERE id = $1")
        .bind(&case_id)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert!(!counts.contains("44") && !counts.contains("46"), "the worklist's counts tell nothing: {counts}");

    // Nobody adjudicates before every reading is in.
    let consensus = format!("/cases/{case_id}/consensus");
    let early = app.send_json(post.clone(), &rita, &consensus, &json!({ "method": "staple" })).await;
    assert_eq!(early.status(), StatusCode::CONFLICT);
    let status = format!("/cases/{case_id}/status");
    assert_eq!(app.send_json(put.clone(), &alice, &status, &json!({ "status": "submitted" })).await.status(), 200);
    assert_eq!(save(&app, &alice, &case_id, &more_a, &mask_a).await.status(), StatusCode::CONFLICT);
    let refused = app.client.get(app.url(&agreement)).bearer_auth(&bob).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN, "bob is blinded until he submits too");
    assert_eq!(app.send_json(put.clone(), &bob, &status, &json!({ "status": "submitted" })).await.status(), 200);
    assert_eq!(artifacts(&app, &rita, &case_id).await.workflow.status.as_str(), "submitted");

    // Every reading is in: the evaluator, woken by the last submission, measures the agreement
    // once and keeps it.
    let mut overview: AgreementOverview = app.get_json(&mle, "/agreement").await;
    for _ in 0..100 {
        if overview.measured == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        overview = app.get_json(&mle, "/agreement").await;
    }
    assert_eq!((overview.cases, overview.measured, overview.pending), (1, 1, 0));
    assert_eq!(agreement::measure_pending(&app.state).await.unwrap(), 0, "measured once");

    // Everyone compares now; the figures are the metrics' own.
    let listed: CaseReadings = app.get_json(&alice, &readings).await;
    assert_eq!((listed.submitted, listed.readings.len()), (2, 2));
    let figures: CaseAgreement = app.get_json(&rita, &agreement).await;
    let pair = &figures.labels[0].pairs[0];
    assert_eq!(pair.dice, dice(&more_a, &mask_b, 1));
    assert_eq!(figures.disagreeing_voxels, 10 + 12);
    assert!(figures.most_disagreement_at.is_some());
    // Across cases: the same figures, for reviewers and coordinators only.
    let overview: AgreementOverview = app.get_json(&rita, "/agreement?q=double").await;
    assert_eq!((overview.cases, overview.measured, overview.pending), (1, 1, 0));
    assert_eq!(overview.least_agreed[0].mean_dice, figures.labels[0].mean_dice.unwrap());
    let readers: Vec<&str> = overview.readers.iter().map(|r| r.reader.as_str()).collect();
    assert_eq!(readers, ["alice", "bob"]);
    assert_eq!(overview.readers[0].dice_vs_staple.median, figures.labels[0].readers[0].dice.unwrap());
    assert!(overview.chart_svg.as_deref().is_some_and(|svg| svg.contains("alice")));
    let none: AgreementOverview = app.get_json(&rita, "/agreement?q=nothing-like-this").await;
    assert_eq!((none.cases, none.chart_svg), (0, None));
    let refused = app.client.get(app.url("/agreement")).bearer_auth(&alice).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    // The adjudicator's viewer draws each reading over the mask, from its own link.
    let drawn = artifacts(&app, &rita, &case_id).await.readings;
    let drawn_refs: Vec<String> = drawn.iter().map(|r| r.mask_ref.to_string()).collect();
    assert_eq!(drawn_refs.len(), 2);
    assert!(drawn_refs.contains(&saved_b.new_mask_ref.to_string()));
    let bobs = drawn.iter().find(|r| r.reader.as_str() == "bob").unwrap();
    let file = app.download(&rita, &bobs.url).await;
    assert_eq!(seglab::nifti_io::Volume::parse("mask", &file).unwrap().into_labels("mask").unwrap(), mask_b);

    // A reader does not adjudicate; the reviewer starts from STAPLE, fixes a region, approves.
    let by_reader = app.send_json(post.clone(), &bob, &consensus, &json!({ "method": "staple" })).await;
    assert_eq!(by_reader.status(), StatusCode::FORBIDDEN);
    let key = uuid::Uuid::new_v4().to_string();
    let start_staple = || {
        app.client
            .post(app.url(&consensus))
            .bearer_auth(&rita)
            .header("Idempotency-Key", &key)
            .json(&json!({ "method": "staple" }))
            .send()
    };
    let started = start_staple().await.unwrap();
    assert_eq!(started.status(), StatusCode::CREATED);
    let started: LabelSaved = started.json().await.unwrap();
    // A retry answers as the first did (the mask is the consensus now); a second start finds
    // nothing left to change.
    let retried = start_staple().await.unwrap();
    assert_eq!(retried.headers()["idempotent-replayed"], "true");
    assert_eq!(retried.json::<LabelSaved>().await.unwrap(), started);
    let again = app.send_json(post.clone(), &rita, &consensus, &json!({ "method": "staple" })).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let expected = staple_consensus(&[&more_a, &mask_b]).mask;
    let head = app.head_mask_ref(&case_id).await;
    let stored = seglab::nifti_io::Volume::parse("mask", &app.mask_file(&rita, &head).await).unwrap();
    assert_eq!(stored.into_labels("mask").unwrap(), expected);
    let fixed = labelled(0..50);
    assert_eq!(save(&app, &rita, &case_id, &expected, &fixed).await.status(), StatusCode::CREATED);
    assert_eq!(app.send_json(put.clone(), &rita, &status, &json!({ "status": "approved" })).await.status(), 200);
    let approved = artifacts(&app, &mle, &case_id).await.workflow;
    assert_eq!(approved.approved_mask_ref.map(String::from), Some(app.head_mask_ref(&case_id).await));

    for (action, times) in [("reading_taken", 2), ("reading_submitted", 2), ("consensus", 1), ("readings_planned", 1)] {
        let sql = format!("SELECT COUNT(*) FROM audit_log WHERE action = '{action}'");
        assert_eq!(app.count(&sql).await, times, "{action}");
    }
    // A snapshot holds the adjudicated mask and both readings; its MONAI export lists them as
    // label keys beside the label.
    let made = app.send_json(post.clone(), &mle, "/datasets", &json!({ "name": "double read" })).await;
    assert_eq!(made.status(), StatusCode::CREATED);
    let dataset: DatasetSummary = made.json().await.unwrap();
    let manifest: Manifest = app.get_json(&mle, &format!("/datasets/{}/manifest", dataset.id)).await;
    let case = &manifest.cases[0];
    assert_eq!(case.mask.object_ref, app.head_mask_ref(&case_id).await);
    let readers: Vec<&str> = case.readings.iter().map(|r| r.reader.as_str()).collect();
    assert_eq!(readers, ["alice", "bob"]);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("monai");
    let output = app.run_cli(&["dataset", "export", &dataset.id, dir.to_str().unwrap(), "--format", "monai"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let datalist: Value = serde_json::from_slice(&std::fs::read(dir.join("datalist.json")).unwrap()).unwrap();
    let entry = &datalist["training"][0];
    for (key, mask) in [("label_reader1", &more_a), ("label_reader2", &mask_b)] {
        let file = std::fs::read(dir.join(entry[key].as_str().unwrap())).unwrap();
        assert_eq!(
            &seglab::nifti_io::Volume::parse("mask", &file).unwrap().into_labels("mask").unwrap(),
            mask,
            "{key}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_worklist_filter_plans_every_case_it_selects_that_nobody_labelled() {
    let app = TestApp::spawn().await;
    let mle = app.user("mle", &[Role::MlEngineer]).await;
    let alice = app.user("alice", &[Role::Labeler]).await;
    let mut cases = Vec::new();
    for name in ["Bulk one", "Bulk two", "Bulk three", "Other"] {
        cases.push(CaseBuilder::new(name).dims(DIMS).import(&app).await);
    }
    // alice labels "Bulk three": it keeps its single labeler.
    assert_eq!(save(&app, &alice, &cases[2], &[0u8; VOXELS], &labelled(0..5)).await.status(), StatusCode::CREATED);
    let put = reqwest::Method::PUT;
    let body = json!({ "required": 3, "blind": true });
    assert_eq!(app.send_json(put.clone(), &alice, "/readings?q=bulk", &body).await.status(), StatusCode::FORBIDDEN);
    let bad = app.send_json(put.clone(), &mle, "/readings?q=nothing", &json!({ "required": 0 })).await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let planned: PlannedCases = app.send_json(put, &mle, "/readings?q=bulk", &body).await.json().await.unwrap();
    assert_eq!(planned, PlannedCases { planned: 2, skipped: 1 });
    for (case_id, required) in cases.iter().zip([3, 3, 1, 1]) {
        let listed: CaseReadings = app.get_json(&mle, &format!("/cases/{case_id}/readings")).await;
        assert_eq!(listed.required, required, "{case_id}");
    }
    app.stop().await;
}
