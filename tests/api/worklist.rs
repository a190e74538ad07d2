//! `GET /worklist` and `GET /worklist/next` on the backend under test: filters by status,
//! assignee and name, counts per status, sorting, pagination, refusals, and the order in which
//! a labeler is given their next case.

use crate::common::TestApp;
use crate::fixtures::CaseBuilder;
use reqwest::StatusCode;
use seglab::api::{CaseStatus, NextCase, Worklist, WorklistRow};
use seglab::edits::MaskEdits;
use seglab::server::identity::Role;
use serde_json::json;

const DIMS: [u32; 3] = [8, 8, 4];
const VOXELS: usize = 8 * 8 * 4;

async fn new_case(app: &TestApp, name: &str) -> String {
    CaseBuilder::new(name).dims(DIMS).uint8(|_| 7).import(app).await
}

async fn save(app: &TestApp, token: &str, case_id: &str) {
    let case: seglab::api::CaseArtifacts = app.get_json(token, &format!("/cases/{case_id}/artifacts")).await;
    let mut mask = vec![0u8; VOXELS];
    mask[3] = 1;
    let response = app
        .post_label(
            token,
            case_id,
            case.current_mask_ref.as_str(),
            &MaskEdits::diff(&vec![0u8; VOXELS], &mask).encode(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

async fn set_status(app: &TestApp, token: &str, case_id: &str, status: &str) {
    let response = app.set_case_status(token, case_id, status).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
}

async fn worklist(app: &TestApp, token: &str, query: &str) -> Worklist {
    let response = app.client.get(app.url(&format!("/worklist{query}"))).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

fn names(rows: &[WorklistRow]) -> Vec<&str> {
    rows.iter().map(|row| row.name.as_str()).collect()
}

fn count(list: &Worklist, status: CaseStatus) -> u64 {
    list.counts.iter().find(|count| count.status == status).unwrap().cases
}

#[tokio::test]
async fn filters_counts_sorting_and_pages() {
    let app = TestApp::spawn().await;
    let engineer = app.user("mle", &[Role::MlEngineer]).await;
    let alice = app.user("alice", &[Role::Labeler]).await;
    let bob = app.user("bob", &[Role::Labeler]).await;
    let rita = app.user("rita", &[Role::Reviewer]).await;
    let mut ids = Vec::new();
    for name in ["Liver 003", "liver 001", "Kidney 100%", "Liver 002", "Spleen", "Kidney_2", "Heart"] {
        ids.push(new_case(&app, name).await);
    }
    // alice: two in progress, one submitted, one approved; bob: one in progress; two untouched.
    for id in &ids[..4] {
        save(&app, &alice, id).await;
    }
    save(&app, &bob, &ids[4]).await;
    set_status(&app, &alice, &ids[2], "submitted").await;
    set_status(&app, &alice, &ids[3], "submitted").await;
    set_status(&app, &rita, &ids[3], "approved").await;

    let all = worklist(&app, &engineer, "").await;
    assert_eq!(all.total, 7);
    let expected_counts =
        [(CaseStatus::New, 2), (CaseStatus::InProgress, 3), (CaseStatus::Submitted, 1), (CaseStatus::Approved, 1)];
    for (status, cases) in expected_counts {
        assert_eq!(count(&all, status), cases, "{status:?}");
    }
    assert_eq!(count(&all, CaseStatus::ChangesRequested), 0);

    // By status; the counts keep showing every status.
    let in_progress = worklist(&app, &engineer, "?status=in_progress&sort=name").await;
    assert_eq!(names(&in_progress.rows), ["liver 001", "Liver 003", "Spleen"]);
    assert_eq!((in_progress.total, count(&in_progress, CaseStatus::New)), (3, 2));
    let row = &in_progress.rows[0];
    assert_eq!((row.assignee.as_deref(), row.last_saved_by.as_deref(), row.dims), (Some("alice"), Some("alice"), DIMS));
    assert!(row.last_saved_at_ms.is_some());
    assert_eq!(row.label_counts, Some([(1, 1)].into()), "one voxel of label 1, counted from the save's edits");
    // Counts not known (a case from before they were kept) are counted by the housekeeping.
    sqlx::query("UPDATE cases SET label_counts_json = '' WHERE id = $1")
        .bind(&row.id)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let unknown = worklist(&app, &engineer, "?status=in_progress").await;
    assert_eq!(unknown.rows.iter().find(|r| r.id == row.id).unwrap().label_counts, None);
    assert_eq!(seglab::server::services::sweeper::count_unknown_labels(&app.state).await.unwrap(), 1);
    let counted = worklist(&app, &engineer, "?status=in_progress").await;
    assert_eq!(counted.rows.iter().find(|r| r.id == row.id).unwrap().label_counts, Some([(1, 1)].into()));

    // By assignee: mine, someone's, nobody's.
    let mine = worklist(&app, &alice, "?assignee=me&sort=name").await;
    assert_eq!(names(&mine.rows), ["Kidney 100%", "liver 001", "Liver 002", "Liver 003"]);
    assert_eq!(count(&mine, CaseStatus::InProgress), 2, "counts follow the other filters");
    assert_eq!(names(&worklist(&app, &engineer, "?assignee=bob").await.rows), ["Spleen"]);
    let unassigned = worklist(&app, &engineer, "?assignee=none&sort=name").await;
    assert_eq!(names(&unassigned.rows), ["Heart", "Kidney_2"]);
    assert_eq!(unassigned.rows[0].label_counts, Some(Default::default()), "an empty mask, counted at import");
    assert_eq!(worklist(&app, &engineer, "?assignee=nobody-by-that-name").await.total, 0);

    // Name search: any case, and the pattern's own wildcards are literal.
    assert_eq!(
        names(&worklist(&app, &engineer, "?q=LIVER&sort=name").await.rows),
        ["liver 001", "Liver 002", "Liver 003"]
    );
    assert_eq!(names(&worklist(&app, &engineer, "?q=100%25").await.rows), ["Kidney 100%"]);
    assert_eq!(names(&worklist(&app, &engineer, "?q=y_").await.rows), ["Kidney_2"]);
    // Across a space, and with the query syntax of SQLite's trigram index taken literally.
    assert_eq!(names(&worklist(&app, &engineer, "?q=NEY%201").await.rows), ["Kidney 100%"]);
    for literal in ["%22liver%22", "liver%20OR%20heart", "liv*", "NEAR(liver)"] {
        assert_eq!(worklist(&app, &engineer, &format!("?q={literal}")).await.total, 0, "{literal}");
    }
    let counted = worklist(&app, &engineer, "?q=ver%200&status=in_progress").await;
    assert_eq!((counted.total, count(&counted, CaseStatus::Approved)), (2, 1), "a search counts per status too");

    // Sorting and pages.
    let by_name_desc = worklist(&app, &engineer, "?sort=name&desc=true&per_page=3").await;
    assert_eq!(names(&by_name_desc.rows), ["Spleen", "Liver 003", "Liver 002"]);
    assert_eq!(by_name_desc.total, 7);
    let third = worklist(&app, &engineer, "?sort=name&desc=true&per_page=3&page=3").await;
    assert_eq!(names(&third.rows), ["Heart"]);
    let by_status = worklist(&app, &engineer, "?sort=status&per_page=7").await;
    let statuses: Vec<CaseStatus> = by_status.rows.iter().map(|row| row.status).collect();
    assert_eq!(statuses[..2], [CaseStatus::New; 2]);
    assert_eq!(statuses[6], CaseStatus::Approved);
    let by_last_save = worklist(&app, &engineer, "?sort=last_saved&desc=true").await;
    assert_eq!(by_last_save.rows[0].name, "Spleen", "bob saved last");

    // Refusals.
    for (query, status) in [
        ("?per_page=0", StatusCode::UNPROCESSABLE_ENTITY),
        ("?per_page=201", StatusCode::UNPROCESSABLE_ENTITY),
        ("?page=0", StatusCode::UNPROCESSABLE_ENTITY),
        ("?status=finished", StatusCode::BAD_REQUEST),
        ("?colour=red", StatusCode::BAD_REQUEST),
    ] {
        let response =
            app.client.get(app.url(&format!("/worklist{query}"))).bearer_auth(&engineer).send().await.unwrap();
        assert_eq!(response.status(), status, "{query}");
    }
    let long = format!("?q={}", "a".repeat(201));
    let response = app.client.get(app.url(&format!("/worklist{long}"))).bearer_auth(&engineer).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.client.get(app.url("/worklist")).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

/// With enough cases, a narrow name search on SQLite reads the trigram index instead of
/// testing every name; its answers are those of the scan.
#[tokio::test]
async fn a_narrow_name_search_finds_the_same_cases_through_the_index() {
    let app = TestApp::spawn().await;
    let engineer = app.user("mle", &[Role::MlEngineer]).await;
    let bulk: Vec<String> = (0..400)
        .map(|n| format!("Bulk {n:04} lung"))
        .chain(["Ki\"dney 100%", "liver OR heart", "Ünïcode Lïver"].map(String::from))
        .collect();
    let mut tx = app.state.db.pool.begin().await.unwrap();
    // Case ids as the server makes them: clients read them back as ids.
    let ids: Vec<String> = bulk.iter().map(|_| seglab::api::CaseId::random().to_string()).collect();
    for (n, name) in bulk.iter().enumerate() {
        sqlx::query(
            "INSERT INTO cases (id, name, search_name, labels_json, image_ref, head_mask_ref, created_at)
             VALUES ($1, $2, $3, '[]', $4, 'mask', $5)",
        )
        .bind(&ids[n])
        .bind(name)
        .bind(name.to_lowercase())
        .bind(format!("img-{n:04}"))
        .bind(n as i64)
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO objects (object_ref, case_id, kind, size_bytes, sha256, dim_i, dim_j, dim_k, voxel_type, spacing_i, spacing_j, spacing_k, created_at)
             VALUES ($1, $2, 'image', 1, 'x', 4, 4, 4, 'uint8', 1.0, 1.0, 1.0, 0)",
        )
        .bind(format!("img-{n:04}"))
        .bind(&ids[n])
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    for (query, expected) in [
        ("0042", vec!["Bulk 0042 lung"]),
        ("%22DNEY", vec!["Ki\"dney 100%"]),
        ("liver%20or%20heart", vec!["liver OR heart"]),
        ("liv*", vec![]),
        ("NEAR(liver)", vec![]),
        ("%C3%BCn%C3%AFcode", vec!["Ünïcode Lïver"]),
        ("0%25", vec!["Ki\"dney 100%"]),
    ] {
        assert_eq!(names(&worklist(&app, &engineer, &format!("?q={query}&sort=name")).await.rows), expected, "{query}");
    }
    // A broad search tests names in the page's order; its count is every match.
    let broad = worklist(&app, &engineer, "?q=BULK&per_page=10").await;
    assert_eq!((broad.total, broad.rows.len()), (400, 10));
    app.stop().await;
}

#[tokio::test]
async fn the_next_case_is_the_one_sent_back_then_in_progress_then_new() {
    let app = TestApp::spawn().await;
    let engineer = app.user("mle", &[Role::MlEngineer]).await;
    let alice = app.user("alice", &[Role::Labeler]).await;
    let rita = app.user("rita", &[Role::Reviewer]).await;
    let next = |token: String| {
        let (client, url) = (app.client.clone(), app.url("/worklist/next"));
        async move { client.get(url).bearer_auth(token).send().await.unwrap() }
    };
    assert_eq!(next(alice.clone()).await.status(), StatusCode::NOT_FOUND);

    let (first, second, third) =
        (new_case(&app, "first").await, new_case(&app, "second").await, new_case(&app, "third").await);
    for id in [&first, &second, &third] {
        let response = app
            .client
            .put(app.url(&format!("/cases/{id}/assignment")))
            .bearer_auth(&engineer)
            .json(&json!({ "assignee": "alice" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let opened = |response: reqwest::Response| async move { response.json::<NextCase>().await.unwrap().name };
    assert_eq!(opened(next(alice.clone()).await).await, "first", "all new: the oldest");
    save(&app, &alice, &third).await;
    assert_eq!(opened(next(alice.clone()).await).await, "third", "in progress before new");
    save(&app, &alice, &second).await;
    set_status(&app, &alice, &second, "submitted").await;
    set_status(&app, &rita, &second, "changes_requested").await;
    assert_eq!(opened(next(alice.clone()).await).await, "second", "sent back first");
    set_status(&app, &alice, &third, "submitted").await;
    save(&app, &alice, &second).await;
    set_status(&app, &alice, &second, "submitted").await;
    assert_eq!(opened(next(alice.clone()).await).await, "first", "submitted cases are not next");
    app.stop().await;
}

/// A NUL in a search ended full-text search's reading (and is a text PostgreSQL refuses): it
/// is a 400 naming the parameter, through REST and the page's server function alike.
#[tokio::test]
async fn a_control_character_in_a_search_is_a_bad_request() {
    let app = TestApp::spawn().await;
    let engineer = app.user("mle", &[Role::MlEngineer]).await;
    new_case(&app, "mni 152").await;
    assert_eq!(names(&worklist(&app, &engineer, "?q=mni").await.rows), ["mni 152"]);
    for query in ["?q=mni%00", "?q=mni%1B", "?q=mni&status%00=new"] {
        let response =
            app.client.get(app.url(&format!("/worklist{query}"))).bearer_auth(&engineer).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "bad_request", "{query}");
    }
    let response = app.client.get(app.url("/worklist?q=mni%00")).bearer_auth(&engineer).send().await.unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("query parameter `q` holds the control character U+0000"),
        "{body}"
    );

    // The worklist page's server function, as the browser calls it: its error is the bare
    // `{code, message}`.
    let cookie = app.login_cookie("mle", crate::common::PASSWORD).await;
    let search = |q: &'static str| {
        app.client
            .post(app.url(<seglab::pages::case_list::GetWorklist as leptos::server_fn::ServerFn>::PATH))
            .header("cookie", &cookie)
            .header("origin", &app.base)
            .form(&[("query[q]", q)])
            .send()
    };
    let found = search("mni").await.unwrap();
    assert_eq!(found.status(), StatusCode::OK);
    assert_eq!(names(&found.json::<Worklist>().await.unwrap().rows), ["mni 152"]);
    let refused = search("mni\0").await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let error: seglab::api::ApiError = refused.json().await.unwrap();
    assert_eq!(error.code, seglab::api::ErrorCode::BadRequest);
    assert!(
        error.message.starts_with("server function argument `query[q]` holds the control character U+0000"),
        "{}",
        error.message
    );
    app.stop().await;
}
