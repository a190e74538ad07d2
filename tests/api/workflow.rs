//! The case workflow on the backend under test: assignment rights, who may save, every status
//! transition allowed and refused, approval pinning the reviewed version, comments, and the
//! audit row of each change.

use crate::common::TestApp;
use crate::fixtures::CaseBuilder;
use reqwest::StatusCode;
use seglab::api::{CaseArtifacts, CaseComment, CaseStatus, CaseWorkflow, LabelSaved, MaskRef, UserName};
use seglab::edits::MaskEdits;
use seglab::server::identity::Role;
use serde_json::{json, Value};

const DIMS: [u32; 3] = [16, 12, 8];
const VOXELS: usize = 16 * 12 * 8;

async fn new_case(app: &TestApp) -> String {
    CaseBuilder::new("workflow").dims(DIMS).int16(|i| (i % 100) as i16).import(app).await
}

struct Team {
    engineer: String,
    alice: String,
    bob: String,
    reviewer: String,
    other_reviewer: String,
}

async fn hire(app: &TestApp) -> Team {
    Team {
        engineer: app.user("mle", &[Role::MlEngineer]).await,
        alice: app.user("alice", &[Role::Labeler]).await,
        bob: app.user("bob", &[Role::Labeler]).await,
        reviewer: app.user("rita", &[Role::Reviewer]).await,
        other_reviewer: app.user("rolf", &[Role::Reviewer]).await,
    }
}

async fn artifacts(app: &TestApp, token: &str, case_id: &str) -> CaseArtifacts {
    app.get_json(token, &format!("/cases/{case_id}/artifacts")).await
}

/// Saves a one-run stroke of `value` on the case's current mask.
async fn save(app: &TestApp, token: &str, case_id: &str, value: u8) -> reqwest::Response {
    let head = artifacts(app, token, case_id).await.current_mask_ref;
    let mut mask = vec![0u8; VOXELS];
    mask[10..20].fill(value);
    app.post_label(token, case_id, head.as_str(), &MaskEdits::diff(&vec![0u8; VOXELS], &mask).encode()).await
}

async fn put(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    app.client.put(app.url(path)).bearer_auth(token).json(&body).send().await.unwrap()
}

async fn status(app: &TestApp, token: &str, case_id: &str, body: Value) -> reqwest::Response {
    put(app, token, &format!("/cases/{case_id}/status"), body).await
}

async fn assign(app: &TestApp, token: &str, case_id: &str, body: Value) -> reqwest::Response {
    put(app, token, &format!("/cases/{case_id}/assignment"), body).await
}

/// The error message of a refused request, after checking its status.
async fn refused(response: reqwest::Response, expected: StatusCode) -> String {
    let got = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(got, expected, "{body}");
    body["error"]["message"].as_str().unwrap().to_string()
}

async fn workflow(response: reqwest::Response) -> CaseWorkflow {
    let got = response.status();
    assert_eq!(got, StatusCode::OK, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

/// Everything a refused save could have written.
async fn footprint(app: &TestApp) -> [i64; 3] {
    [
        app.count("SELECT COUNT(*) FROM labels").await,
        app.count("SELECT COUNT(*) FROM objects").await,
        app.count("SELECT COUNT(*) FROM audit_log").await,
    ]
}

#[tokio::test]
async fn assignment_is_for_coordinators_and_names_users_with_the_right_role() {
    let app = TestApp::spawn().await;
    let team = hire(&app).await;
    let case_id = new_case(&app).await;
    let path = format!("/cases/{case_id}/assignment");

    let message =
        refused(put(&app, &team.alice, &path, json!({ "assignee": "alice" })).await, StatusCode::FORBIDDEN).await;
    assert!(message.contains("assignment needs the role ml_engineer or admin"), "{message}");
    // The role is checked before the body is read: a labeler's malformed body is still 403.
    let garbage = app
        .client
        .put(app.url(&path))
        .bearer_auth(&team.alice)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    refused(garbage, StatusCode::FORBIDDEN).await;
    let message = refused(
        put(&app, &team.engineer, &path, json!({ "assignee": "rita" })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(message.contains("rita does not have the role labeler"), "{message}");
    let message = refused(
        put(&app, &team.engineer, &path, json!({ "assignee": "alice", "reviewer": "bob" })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(message.contains("bob does not have the role reviewer"), "{message}");
    let message = refused(
        put(&app, &team.engineer, &path, json!({ "assignee": "nobody" })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(message.contains("no active user named \"nobody\""), "{message}");
    refused(
        put(&app, &team.engineer, "/cases/no-such-case/assignment", json!({ "assignee": "alice" })).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'case_assigned'").await, 0);

    let assigned =
        workflow(put(&app, &team.engineer, &path, json!({ "assignee": "alice", "reviewer": "rita" })).await).await;
    assert_eq!(
        assigned,
        CaseWorkflow {
            status: CaseStatus::New,
            assignee: Some(UserName::parse("alice").unwrap()),
            reviewer: Some(UserName::parse("rita").unwrap()),
            approved_mask_ref: None,
            restricted: false,
            readings_required: 1
        }
    );
    assert_eq!(artifacts(&app, &team.bob, &case_id).await.workflow, assigned, "every role reads the workflow");
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'case_assigned'").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn only_the_assigned_labeler_saves_and_another_labelers_save_writes_nothing() {
    let app = TestApp::spawn().await;
    let team = hire(&app).await;
    let admin = app.user("root", &[Role::Labeler, Role::Admin]).await;
    let case_id = new_case(&app).await;
    workflow(assign(&app, &team.engineer, &case_id, json!({ "assignee": "alice" })).await).await;

    let before = footprint(&app).await;
    let message = refused(save(&app, &team.bob, &case_id, 1).await, StatusCode::FORBIDDEN).await;
    assert!(message.contains("assigned to alice"), "{message}");
    assert_eq!(footprint(&app).await, before, "nothing written");
    assert_eq!(artifacts(&app, &team.bob, &case_id).await.workflow.status, CaseStatus::New);

    let saved = save(&app, &team.alice, &case_id, 1).await;
    assert_eq!(saved.status(), StatusCode::CREATED);
    let after = artifacts(&app, &team.alice, &case_id).await.workflow;
    assert_eq!(
        (after.status, after.assignee.as_deref()),
        (CaseStatus::InProgress, Some("alice")),
        "saving moves new to in_progress"
    );
    assert_eq!(save(&app, &admin, &case_id, 1).await.status(), StatusCode::CREATED, "an admin corrects any case");
    app.stop().await;
}

#[tokio::test]
async fn unassigned_cases_are_taken_by_a_save_or_explicitly_where_self_assignment_is_on() {
    let app = TestApp::spawn().await;
    let team = hire(&app).await;
    let (first, second) = (new_case(&app).await, new_case(&app).await);

    // A first save takes the case.
    assert_eq!(save(&app, &team.alice, &first, 1).await.status(), StatusCode::CREATED);
    assert_eq!(artifacts(&app, &team.alice, &first).await.workflow.assignee.as_deref(), Some("alice"));
    refused(save(&app, &team.bob, &first, 1).await, StatusCode::FORBIDDEN).await;

    // "Take this case": once; again by the same labeler is a no-op, by another a conflict.
    let take = |token: &str, case_id: &str| {
        app.client.post(app.url(&format!("/cases/{case_id}/take"))).bearer_auth(token.to_string()).send()
    };
    assert_eq!(workflow(take(&team.bob, &second).await.unwrap()).await.assignee.as_deref(), Some("bob"));
    assert_eq!(workflow(take(&team.bob, &second).await.unwrap()).await.assignee.as_deref(), Some("bob"));
    let message = refused(take(&team.alice, &second).await.unwrap(), StatusCode::CONFLICT).await;
    assert!(message.contains("already assigned to bob"), "{message}");
    refused(take(&team.reviewer, &second).await.unwrap(), StatusCode::FORBIDDEN).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'case_taken'").await, 2);
    app.stop().await;

    // Where it is off, labelers neither take nor save on unassigned cases.
    let app = TestApp::spawn_configured(|config| config.self_assignment = Some(false), |_| {}).await;
    let team = hire(&app).await;
    let case_id = new_case(&app).await;
    let before = footprint(&app).await;
    let message = refused(save(&app, &team.alice, &case_id, 1).await, StatusCode::FORBIDDEN).await;
    assert!(message.contains("not assigned to you"), "{message}");
    let taken =
        app.client.post(app.url(&format!("/cases/{case_id}/take"))).bearer_auth(&team.alice).send().await.unwrap();
    let message = refused(taken, StatusCode::FORBIDDEN).await;
    assert!(message.contains("cannot take cases themselves"), "{message}");
    assert_eq!(footprint(&app).await, before);
    app.stop().await;
}

#[tokio::test]
async fn submit_review_send_back_approve_and_reopen() {
    let app = TestApp::spawn().await;
    let team = hire(&app).await;
    let case_id = new_case(&app).await;
    workflow(assign(&app, &team.engineer, &case_id, json!({ "assignee": "alice", "reviewer": "rita" })).await).await;

    // Nothing to submit before the labeler worked on it.
    let message =
        refused(status(&app, &team.alice, &case_id, json!({ "status": "submitted" })).await, StatusCode::CONFLICT)
            .await;
    assert!(message.contains("the case is new; it cannot become submitted"), "{message}");
    assert_eq!(save(&app, &team.alice, &case_id, 1).await.status(), StatusCode::CREATED);
    refused(status(&app, &team.bob, &case_id, json!({ "status": "submitted" })).await, StatusCode::FORBIDDEN).await;
    refused(status(&app, &team.reviewer, &case_id, json!({ "status": "approved" })).await, StatusCode::CONFLICT).await;
    assert_eq!(
        workflow(status(&app, &team.alice, &case_id, json!({ "status": "submitted" })).await).await.status,
        CaseStatus::Submitted
    );

    // Review: only reviewers, only the case's reviewer, and sending back needs a comment.
    refused(status(&app, &team.alice, &case_id, json!({ "status": "approved" })).await, StatusCode::FORBIDDEN).await;
    let message = refused(
        status(&app, &team.other_reviewer, &case_id, json!({ "status": "approved" })).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(message.contains("another reviewer"), "{message}");
    let message = refused(
        status(&app, &team.reviewer, &case_id, json!({ "status": "changes_requested" })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(message.contains("needs one"), "{message}");
    refused(status(&app, &team.reviewer, &case_id, json!({ "status": "new" })).await, StatusCode::CONFLICT).await;
    refused(
        status(&app, &team.reviewer, &case_id, json!({ "status": "finished" })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let outside = json!({ "status": "changes_requested", "comment": "here", "anchor": [16, 0, 0] });
    refused(status(&app, &team.reviewer, &case_id, outside).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    let sent_back =
        json!({ "status": "changes_requested", "comment": "the lower edge is missing", "anchor": [3, 4, 5] });
    assert_eq!(
        workflow(status(&app, &team.reviewer, &case_id, sent_back).await).await.status,
        CaseStatus::ChangesRequested
    );
    let comments: Vec<CaseComment> = app.get_json(&team.alice, &format!("/cases/{case_id}/comments")).await;
    assert_eq!(comments.len(), 1);
    assert_eq!(
        (comments[0].username.as_str(), comments[0].body.as_str(), comments[0].anchor),
        ("rita", "the lower edge is missing", Some([3, 4, 5]))
    );

    // The labeler fixes it (a save moves it back to in_progress) and submits again.
    assert_eq!(save(&app, &team.alice, &case_id, 1).await.status(), StatusCode::CREATED);
    assert_eq!(artifacts(&app, &team.alice, &case_id).await.workflow.status, CaseStatus::InProgress);
    workflow(status(&app, &team.alice, &case_id, json!({ "status": "submitted" })).await).await;

    // Approval pins the version that was reviewed.
    let reviewed = artifacts(&app, &team.reviewer, &case_id).await.current_mask_ref;
    let approved = workflow(status(&app, &team.reviewer, &case_id, json!({ "status": "approved" })).await).await;
    assert_eq!(
        (approved.status, approved.approved_mask_ref.as_ref().map(MaskRef::as_str)),
        (CaseStatus::Approved, Some(reviewed.as_str()))
    );

    // A later save reopens the case as in progress; what was approved stays pinned.
    let later = save(&app, &team.alice, &case_id, 1).await;
    assert_eq!(later.status(), StatusCode::CREATED);
    let later: LabelSaved = later.json().await.unwrap();
    let after = artifacts(&app, &team.alice, &case_id).await;
    assert_eq!(after.current_mask_ref, later.new_mask_ref);
    assert_eq!(
        (after.workflow.status, after.workflow.approved_mask_ref.as_ref().map(MaskRef::as_str)),
        (CaseStatus::InProgress, Some(reviewed.as_str()))
    );

    // Reopening an approval is the reviewer's, with a comment; never silent.
    workflow(status(&app, &team.alice, &case_id, json!({ "status": "submitted" })).await).await;
    let approved = workflow(status(&app, &team.reviewer, &case_id, json!({ "status": "approved" })).await).await;
    assert_eq!(approved.approved_mask_ref.as_ref().map(MaskRef::as_str), Some(later.new_mask_ref.as_str()));
    refused(
        status(&app, &team.reviewer, &case_id, json!({ "status": "in_progress" })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    refused(
        status(&app, &team.alice, &case_id, json!({ "status": "in_progress", "comment": "mine" })).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    let reopened = workflow(
        status(&app, &team.reviewer, &case_id, json!({ "status": "in_progress", "comment": "a second look" })).await,
    )
    .await;
    assert_eq!((reopened.status, reopened.approved_mask_ref), (CaseStatus::InProgress, approved.approved_mask_ref));

    // Every transition is one audit row, with its comment.
    let transitions: Vec<String> =
        sqlx::query_scalar("SELECT details FROM audit_log WHERE action = 'case_status' ORDER BY seq")
            .fetch_all(&app.state.db.pool)
            .await
            .unwrap();
    let steps: Vec<(String, String)> = transitions
        .iter()
        .map(|details| serde_json::from_str::<Value>(details).unwrap())
        .map(|d| (d["from"].as_str().unwrap().to_string(), d["to"].as_str().unwrap().to_string()))
        .collect();
    let expected = [
        ("new", "in_progress"),
        ("in_progress", "submitted"),
        ("submitted", "changes_requested"),
        ("changes_requested", "in_progress"),
        ("in_progress", "submitted"),
        ("submitted", "approved"),
        ("approved", "in_progress"),
        ("in_progress", "submitted"),
        ("submitted", "approved"),
        ("approved", "in_progress"),
    ];
    assert_eq!(steps, expected.map(|(from, to)| (from.to_string(), to.to_string())));
    assert!(transitions.last().unwrap().contains("a second look"));
    assert_eq!(app.count("SELECT COUNT(*) FROM case_comments").await, 2);
    app.stop().await;
}

#[tokio::test]
async fn a_labeler_does_not_review_their_own_case_but_any_reviewer_may_review_an_unassigned_one() {
    let app = TestApp::spawn().await;
    let team = hire(&app).await;
    let both = app.user("bea", &[Role::Labeler, Role::Reviewer]).await;
    let case_id = new_case(&app).await;
    assert_eq!(save(&app, &both, &case_id, 1).await.status(), StatusCode::CREATED);
    workflow(status(&app, &both, &case_id, json!({ "status": "submitted" })).await).await;
    let message =
        refused(status(&app, &both, &case_id, json!({ "status": "approved" })).await, StatusCode::FORBIDDEN).await;
    assert!(message.contains("someone other than its labeler"), "{message}");
    // No reviewer assigned: any reviewer may.
    assert_eq!(
        workflow(status(&app, &team.other_reviewer, &case_id, json!({ "status": "approved" })).await).await.status,
        CaseStatus::Approved
    );
    app.stop().await;
}

#[tokio::test]
async fn a_restricted_case_is_read_only_by_its_labeler_reviewer_and_coordinators() {
    let app = TestApp::spawn().await;
    let team = hire(&app).await;
    let (secret, open) = (new_case(&app).await, new_case(&app).await);
    let assigned =
        assign(&app, &team.engineer, &secret, json!({ "assignee": "alice", "reviewer": "rita", "restricted": true }))
            .await;
    assert!(workflow(assigned).await.restricted);

    for (token, readable) in [
        (&team.alice, true),
        (&team.reviewer, true),
        (&team.engineer, true),
        (&team.bob, false),
        (&team.other_reviewer, false),
    ] {
        let response =
            app.client.get(app.url(&format!("/cases/{secret}/artifacts"))).bearer_auth(token).send().await.unwrap();
        assert_eq!(response.status().is_success(), readable, "{}", response.status());
        if !readable {
            // As if it did not exist: nobody named.
            assert!(!refused(response, StatusCode::NOT_FOUND).await.contains("alice"));
            for path in ["comments", "jobs"] {
                let response = app
                    .client
                    .get(app.url(&format!("/cases/{secret}/{path}")))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
            }
        }
        let listed: Vec<seglab::api::CaseSummary> = app.get_json(token, "/cases").await;
        assert_eq!(listed.iter().any(|case| case.id.as_str() == secret), readable);
        assert!(listed.iter().any(|case| case.id.as_str() == open), "unrestricted cases stay open to everyone");
        let worklist: seglab::api::Worklist = app.get_json(token, "/worklist").await;
        assert_eq!(worklist.rows.iter().any(|row| row.id.as_str() == secret), readable);
        assert_eq!(worklist.total, if readable { 2 } else { 1 });
    }
    // Lifting the restriction opens it again; leaving the field out keeps it as it is.
    workflow(assign(&app, &team.engineer, &secret, json!({ "assignee": "alice" })).await).await;
    let still =
        app.client.get(app.url(&format!("/cases/{secret}/artifacts"))).bearer_auth(&team.bob).send().await.unwrap();
    assert_eq!(still.status(), StatusCode::NOT_FOUND);
    workflow(assign(&app, &team.engineer, &secret, json!({ "assignee": "alice", "restricted": false })).await).await;
    let opened =
        app.client.get(app.url(&format!("/cases/{secret}/artifacts"))).bearer_auth(&team.bob).send().await.unwrap();
    assert_eq!(opened.status(), StatusCode::OK);
    app.stop().await;
}

/// A control character in a JSON field (a comment, a name, a key) or in a path id is a 400
/// naming where it is, and nothing is written: PostgreSQL refuses such text (it was a 500
/// there) and SQLite would have stored it.
#[tokio::test]
async fn a_control_character_in_a_body_or_a_path_is_refused_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let team = hire(&app).await;
    let case_id = new_case(&app).await;
    workflow(assign(&app, &team.engineer, &case_id, json!({ "assignee": "alice", "reviewer": "rita" })).await).await;
    assert_eq!(save(&app, &team.alice, &case_id, 1).await.status(), StatusCode::CREATED);
    workflow(status(&app, &team.alice, &case_id, json!({ "status": "submitted" })).await).await;
    let written = || async {
        [
            footprint(&app).await,
            [
                app.count("SELECT COUNT(*) FROM case_comments").await,
                app.count("SELECT COUNT(*) FROM datasets").await,
                app.count("SELECT COUNT(*) FROM cases WHERE status = 'submitted'").await,
            ],
        ]
    };
    let before = written().await;

    let sent_back = json!({ "status": "changes_requested", "comment": "the lower\nedge\u{0} is missing" });
    let message =
        refused(status(&app, &team.reviewer, &case_id, sent_back.clone()).await, StatusCode::BAD_REQUEST).await;
    assert!(message.starts_with("JSON body field `comment` holds the control character U+0000"), "{message}");
    let message = refused(
        assign(&app, &team.engineer, &case_id, json!({ "assignee": "alice\u{0}" })).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(message.starts_with("JSON body field `assignee`"), "{message}");
    let dataset = |body: Value| app.client.post(app.url("/datasets")).bearer_auth(&team.engineer).json(&body).send();
    let message = refused(dataset(json!({ "name": "snap\u{0}shot" })).await.unwrap(), StatusCode::BAD_REQUEST).await;
    assert!(message.starts_with("JSON body field `name`"), "{message}");
    let message = refused(
        dataset(json!({ "name": "snap", "splits": { "case\u{0}": "train" } })).await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(message.starts_with("a key of JSON body field `splits`"), "{message}");

    // A path id: `%00` is decoded before it reaches a query.
    for path in ["/cases/%00/status".to_string(), format!("/cases/{case_id}%00/status")] {
        let message = refused(put(&app, &team.reviewer, &path, sent_back.clone()).await, StatusCode::BAD_REQUEST).await;
        assert!(message.starts_with("the path holds the control character U+0000"), "{path}: {message}");
    }
    let artifacts = app.client.get(app.url("/cases/%00/artifacts")).bearer_auth(&team.alice).send().await.unwrap();
    assert_eq!(
        refused(artifacts, StatusCode::BAD_REQUEST).await.split(';').next().unwrap(),
        "the path holds the control character U+0000"
    );
    assert_eq!(written().await, before);

    // Line breaks and tabs are text: a multi-line comment is taken.
    let sent_back = json!({ "status": "changes_requested", "comment": "the lower edge:\r\n\t- is missing" });
    workflow(status(&app, &team.reviewer, &case_id, sent_back).await).await;
    let comments: Vec<CaseComment> = app.get_json(&team.alice, &format!("/cases/{case_id}/comments")).await;
    assert_eq!(comments.last().unwrap().body, "the lower edge:\r\n\t- is missing");
    app.stop().await;
}
