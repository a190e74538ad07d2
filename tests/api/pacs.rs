//! The PACS end to end: a real Orthanc (Debian's `orthanc` with its DICOMweb plugin), started
//! by each test on its own port and storage and filled with series written by
//! `tests/interop/dicom_series.py`. seglab searches it (QIDO-RS), imports a series (WADO-RS),
//! and stores an approved segmentation back (STOW-RS), where Orthanc must file it in the
//! study, with the right references, once however often it is sent.

use reqwest::StatusCode;
use seglab::api::{CaseArtifacts, CaseId, PacsImportJob, PacsImportStatus, PacsSent, PacsStudy};
use seglab::server::identity::Role;
use serde_json::{json, Value};

use crate::common::TestApp;
use crate::dicom::{scenario, two_structures};
use crate::orthanc::{Orthanc, PASSWORD, USER};

async fn app_with(orthanc: &Orthanc) -> TestApp {
    let url = orthanc.dicomweb();
    TestApp::spawn_configured(
        |config| {
            config.dicomweb.dicomweb_url = Some(url);
            config.dicomweb.dicomweb_username = Some(USER.into());
            config.dicomweb.dicomweb_password = Some(PASSWORD.into());
            config.dicomweb.dicomweb_timeout_secs = 10;
        },
        |_| {},
    )
    .await
}

async fn search(app: &TestApp, token: &str, query: &str) -> reqwest::Response {
    app.client.get(app.url(&format!("/pacs/studies?{query}"))).bearer_auth(token).send().await.unwrap()
}

async fn import(app: &TestApp, token: &str, study: &str, series: &str) -> reqwest::Response {
    let body = json!({ "study_instance_uid": study, "series_instance_uid": series, "labels": "1=liver,2=tumour" });
    app.client.post(app.url("/pacs/import")).bearer_auth(token).json(&body).send().await.unwrap()
}

/// Follows the import `accepted` answered (202) until `done` says it has got far enough.
async fn followed(
    app: &TestApp,
    token: &str,
    accepted: reqwest::Response,
    done: impl Fn(&PacsImportJob) -> bool,
) -> PacsImportJob {
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let mut job: PacsImportJob = accepted.json().await.unwrap();
    for _ in 0..300 {
        if done(&job) {
            return job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        job = app.get_json(token, &format!("/pacs/imports/{}", job.id)).await;
    }
    panic!("the PACS import did not get there: {job:?}");
}

/// Imports a series in the background and waits for it to finish; its case.
async fn imported(app: &TestApp, token: &str, study: &str, series: &str) -> CaseId {
    let job = followed(app, token, import(app, token, study, series).await, |job| job.status.is_finished()).await;
    assert_eq!((job.status, job.instances_done), (PacsImportStatus::Succeeded, job.instances_total), "{job:?}");
    job.case_id.unwrap()
}

async fn send(app: &TestApp, token: &str, case_id: &str) -> reqwest::Response {
    app.client.post(app.url(&format!("/cases/{case_id}/pacs"))).bearer_auth(token).send().await.unwrap()
}

#[tokio::test]
async fn a_series_found_on_the_pacs_is_imported_and_its_approved_segmentation_is_stored_there_once() {
    let mut orthanc = Orthanc::start().await;
    orthanc.upload(&scenario("oblique")).await;
    orthanc.upload(&scenario("coronal")).await;
    let app = app_with(&orthanc).await;
    let engineer = app.user("mle", &[Role::MlEngineer]).await;
    let labeler = app.user("lab", &[Role::Labeler]).await;
    let reviewer = app.user("rev", &[Role::Reviewer]).await;

    // Search: by PatientID, accession, modality, date; patients appear by pseudonym only.
    let response = search(&app, &engineer, "patient=SEGLAB-TEST-1").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.text().await.unwrap();
    assert!(!body.contains("Test^Patient") && !body.contains("ACC-4242"), "{body}");
    let studies: Vec<PacsStudy> = serde_json::from_str(&body).unwrap();
    assert_eq!(studies.len(), 1);
    let study = &studies[0];
    assert!(study.pseudonym.starts_with("P-"));
    assert_eq!(study.series.len(), 2);
    let count = |response: String| serde_json::from_str::<Vec<PacsStudy>>(&response).unwrap().len();
    assert_eq!(count(search(&app, &engineer, "accession=ACC-4242&date=20260101").await.text().await.unwrap()), 1);
    assert_eq!(count(search(&app, &engineer, "modality=MR").await.text().await.unwrap()), 0);
    assert_eq!(count(search(&app, &engineer, "patient=SOMEONE-ELSE").await.text().await.unwrap()), 0);
    assert_eq!(search(&app, &engineer, "date=yesterday").await.status(), StatusCode::BAD_REQUEST);
    let long = format!("accession={}", "A".repeat(65));
    assert_eq!(search(&app, &engineer, &long).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(search(&app, &labeler, "patient=SEGLAB-TEST-1").await.status(), StatusCode::FORBIDDEN);

    // Import the oblique series: the same volume as the same files uploaded.
    let oblique = study.series.iter().find(|s| s.series_description == "oblique").unwrap();
    assert_eq!((oblique.modality.as_str(), oblique.instances), ("CT", Some(24)));
    let oblique_uid = oblique.series_instance_uid.clone();
    assert_eq!(import(&app, &labeler, &study.study_instance_uid, &oblique_uid).await.status(), StatusCode::FORBIDDEN);
    // A UID that is not one is refused at once, with no job made.
    assert_eq!(import(&app, &engineer, "1.2.x", &oblique_uid).await.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.count("SELECT COUNT(*) FROM pacs_imports").await, 0);
    // In the background: the job answers at once, then counts the 24 instances as they arrive.
    let case_id = imported(&app, &engineer, &study.study_instance_uid, &oblique_uid).await;
    let artifacts: CaseArtifacts = app.get_json(&engineer, &format!("/cases/{case_id}/artifacts")).await;
    assert_eq!(artifacts.artifacts[0].dims, [48, 56, 24]);
    let listed: Vec<PacsImportJob> = app.get_json(&engineer, "/pacs/imports").await;
    assert_eq!((listed.len(), listed[0].instances_total), (1, 24));
    // Imported again: the same case at once, not retrieved again.
    let again: PacsImportJob =
        import(&app, &engineer, &study.study_instance_uid, &oblique_uid).await.json().await.unwrap();
    assert_eq!((again.status, again.case_id.as_ref()), (PacsImportStatus::Succeeded, Some(&case_id)));
    assert_eq!(app.count("SELECT COUNT(*) FROM cases").await, 1);
    // The same files uploaded to another instance give the same stored image.
    let other = TestApp::spawn().await;
    let other_engineer = other.user("mle", &[Role::MlEngineer]).await;
    let uploaded = crate::dicom::import_folder(&other, &other_engineer, "oblique").await;
    let sha = |app: &TestApp, case_id: String| {
        let pool = app.state.db.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT o.sha256 FROM cases c JOIN objects o ON o.object_ref = c.image_ref WHERE c.id = $1",
            )
            .bind(case_id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(
        sha(&app, case_id.to_string()).await,
        sha(&other, uploaded.id.to_string()).await,
        "the PACS import differs from the upload"
    );
    other.stop().await;
    // The pseudonym search finds the patient again.
    assert_eq!(count(search(&app, &engineer, &format!("patient={}", study.pseudonym)).await.text().await.unwrap()), 1);

    // Nothing to send before a reviewer approves.
    let case_id = case_id.to_string();
    assert_eq!(send(&app, &engineer, &case_id).await.status(), StatusCode::CONFLICT);
    let base = app.head_mask_ref(&case_id).await;
    let mask = two_structures();
    let edits = seglab::edits::MaskEdits::diff(&vec![0u8; mask.len()], &mask).encode();
    assert_eq!(app.post_label(&labeler, &case_id, &base, &edits).await.status(), StatusCode::CREATED);
    assert_eq!(app.set_case_status(&labeler, &case_id, "submitted").await.status(), StatusCode::OK);
    assert_eq!(app.set_case_status(&reviewer, &case_id, "approved").await.status(), StatusCode::OK);
    assert_eq!(send(&app, &labeler, &case_id).await.status(), StatusCode::FORBIDDEN);

    // Sent twice (a retry): stored once, in the study, with the patient the PACS knows and
    // references to the series it was drawn on.
    let sent: PacsSent = send(&app, &engineer, &case_id).await.json().await.unwrap();
    let again: PacsSent = send(&app, &engineer, &case_id).await.json().await.unwrap();
    assert_eq!(sent, again);
    let found: Vec<Value> = reqwest::Client::new()
        .post(format!("{}/tools/lookup", orthanc.url))
        .basic_auth(USER, Some(PASSWORD))
        .body(sent.sop_instance_uid.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    let instance = found[0]["ID"].as_str().unwrap();
    let tags = orthanc.rest(&format!("/instances/{instance}/simplified-tags")).await;
    assert_eq!(tags["Modality"], "SEG");
    assert_eq!(tags["PatientID"], "SEGLAB-TEST-1");
    assert_eq!(tags["PatientName"], "Test^Patient");
    assert_eq!(tags["AccessionNumber"], "ACC-4242");
    assert_eq!(tags["StudyInstanceUID"], study.study_instance_uid.as_str());
    assert_eq!(tags["ReferencedSeriesSequence"][0]["SeriesInstanceUID"], oblique_uid.as_str());
    let studies = orthanc.rest("/studies").await;
    assert_eq!(studies.as_array().unwrap().len(), 1, "the SEG was filed in the source study");
    let instances = orthanc.rest(&format!("/studies/{}/instances", studies[0].as_str().unwrap())).await;
    let segs = instances
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["MainDicomTags"]["SOPInstanceUID"] == sent.sop_instance_uid.as_str());
    assert_eq!(segs.count(), 1, "a retried send stores no second SEG");
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'segmentation_sent'").await, 2);

    // The PACS down: the import waits to be tried again, saying why, and nothing is stored.
    orthanc.stop();
    let cases = app.count("SELECT COUNT(*) FROM cases").await;
    let coronal = study.series.iter().find(|s| s.series_description == "coronal").unwrap();
    let response = import(&app, &engineer, &study.study_instance_uid, &coronal.series_instance_uid).await;
    let waiting = followed(&app, &engineer, response, |job| job.attempts == 1 && job.error.is_some()).await;
    assert_eq!(waiting.status, PacsImportStatus::Queued);
    assert!(waiting.error.as_deref().unwrap().contains("the PACS is unavailable"));
    assert_eq!(search(&app, &engineer, "patient=SEGLAB-TEST-1").await.status(), StatusCode::SERVICE_UNAVAILABLE);
    let response = send(&app, &engineer, &case_id).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let message = response.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("queued and will be sent when the PACS answers"), "{message}");
    assert_eq!(app.count("SELECT COUNT(*) FROM pacs_outbox WHERE sent_at IS NULL").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM cases").await, cases);

    // The PACS back: the waiting import's next attempt brings the series in.
    orthanc.restart().await;
    let accepted = import(&app, &engineer, &study.study_instance_uid, &coronal.series_instance_uid).await;
    let done = followed(&app, &engineer, accepted, |job| job.status.is_finished()).await;
    assert_eq!(
        (done.id, done.status, done.attempts),
        (waiting.id, PacsImportStatus::Succeeded, 2),
        "the same job, retried"
    );
    app.stop().await;
}

#[tokio::test]
async fn without_a_pacs_the_routes_say_so() {
    let app = TestApp::spawn().await;
    let engineer = app.user("mle", &[Role::MlEngineer]).await;
    let response = search(&app, &engineer, "patient=x").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let message = response.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("--dicomweb-url"), "{message}");
    app.stop().await;
}

/// A PACS that lists the oblique series, serves `whole` instances, then breaks off in the
/// middle of the next one (the connection cut under the transfer), as a PACS going down
/// during an import does. Its DICOMweb root's URL.
async fn failing_pacs(whole: usize) -> String {
    use axum::body::{Body, Bytes};
    use axum::extract::Path as UrlPath;
    use axum::routing::get;
    let files: Vec<Vec<u8>> =
        crate::dicom::files_in(&scenario("oblique")).iter().map(|f| std::fs::read(f).unwrap()).collect();
    let count = files.len();
    let listing = move || async move {
        let instances: Vec<Value> =
            (1..=count).map(|n| json!({ "00080018": { "vr": "UI", "Value": [format!("1.2.3.{n}")] } })).collect();
        axum::Json(instances)
    };
    let instance = move |UrlPath((_, _, uid)): UrlPath<(String, String, String)>| {
        let files = files.clone();
        async move {
            let number: usize = uid.rsplit('.').next().unwrap().parse().unwrap();
            let mut part = b"--cut\r\nContent-Type: application/dicom\r\n\r\n".to_vec();
            part.extend_from_slice(&files[number - 1]);
            part.extend_from_slice(b"\r\n--cut--\r\n");
            let body = match number <= whole {
                true => Body::from(part),
                false => {
                    let half = Bytes::from(part[..part.len() / 2].to_vec());
                    Body::from_stream(futures::stream::iter([Ok(half), Err(std::io::Error::other("cut"))]))
                }
            };
            ([("content-type", "multipart/related; type=\"application/dicom\"; boundary=cut")], body)
        }
    };
    let router = axum::Router::new()
        .route("/dicom-web/studies/{study}/series/{series}/instances", get(listing))
        .route("/dicom-web/studies/{study}/series/{series}/instances/{instance}", get(instance));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}/dicom-web")
}

#[tokio::test]
async fn a_pacs_going_down_during_an_import_leaves_nothing_behind() {
    let url = failing_pacs(10).await;
    let app = TestApp::spawn_configured(|config| config.dicomweb.dicomweb_url = Some(url), |_| {}).await;
    let engineer = app.user("mle", &[Role::MlEngineer]).await;
    let response = import(&app, &engineer, "1.2.3", "1.2.4").await;
    // The first attempt got 10 of the 24 instances, then the PACS broke off: it waits to be
    // tried again, and nothing of it is kept.
    let waiting = followed(&app, &engineer, response, |job| job.attempts == 1 && job.error.is_some()).await;
    assert_eq!((waiting.status, waiting.instances_total, waiting.instances_done), (PacsImportStatus::Queued, 24, 10));
    assert!(waiting.error.unwrap().contains("the PACS is unavailable"));
    crate::dicom::assert_nothing_stored(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn an_approval_sends_the_segmentation_and_a_pacs_that_is_down_gets_it_when_back() {
    let mut orthanc = Orthanc::start().await;
    orthanc.upload(&scenario("oblique")).await;
    let url = orthanc.dicomweb();
    let app = TestApp::spawn_configured(
        |config| {
            config.dicomweb.dicomweb_url = Some(url);
            config.dicomweb.dicomweb_username = Some(USER.into());
            config.dicomweb.dicomweb_password = Some(PASSWORD.into());
            config.dicomweb.dicomweb_timeout_secs = 5;
            config.dicomweb.pacs_send_on_approval = true;
            config.dicomweb.pacs_retry_base_ms = 200;
        },
        |_| {},
    )
    .await;
    let engineer = app.user("mle", &[Role::MlEngineer]).await;
    let labeler = app.user("lab", &[Role::Labeler]).await;
    let reviewer = app.user("rev", &[Role::Reviewer]).await;
    let studies: Vec<PacsStudy> = search(&app, &engineer, "patient=SEGLAB-TEST-1").await.json().await.unwrap();
    let (study, series) = (&studies[0].study_instance_uid, &studies[0].series[0].series_instance_uid);
    let case_id = imported(&app, &engineer, study, series).await.to_string();
    let base = app.head_mask_ref(&case_id).await;
    let mask = two_structures();
    let edits = seglab::edits::MaskEdits::diff(&vec![0u8; mask.len()], &mask).encode();
    assert_eq!(app.post_label(&labeler, &case_id, &base, &edits).await.status(), StatusCode::CREATED);
    assert_eq!(app.set_case_status(&labeler, &case_id, "submitted").await.status(), StatusCode::OK);

    // Approved while the PACS is down: queued, tried, and waiting with the reason.
    orthanc.stop();
    assert_eq!(app.set_case_status(&reviewer, &case_id, "approved").await.status(), StatusCode::OK);
    let row = || async {
        sqlx::query_as::<_, (i64, Option<String>, Option<i64>)>(
            "SELECT attempts, last_error, sent_at FROM pacs_outbox WHERE case_id = $1",
        )
        .bind(&case_id)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
    };
    let mut waited = 0;
    while row().await.0 < 2 {
        assert!(waited < 150, "the sender did not try: {:?}", row().await);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    let (_, error, sent_at) = row().await;
    let error = error.unwrap_or_default();
    assert!(error.contains("the PACS is unavailable"), "{error}");
    assert_eq!(sent_at, None);

    // The PACS back: the segmentation arrives, once, audited as seglab's own send.
    orthanc.restart().await;
    let mut waited = 0;
    while row().await.2.is_none() {
        assert!(waited < 300, "the sender did not send: {:?}", row().await);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    let studies = orthanc.rest("/studies").await;
    let instances = orthanc.rest(&format!("/studies/{}/instances", studies[0].as_str().unwrap())).await;
    let segs = instances
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["MainDicomTags"]["SOPInstanceUID"].as_str().unwrap().starts_with("2.25."));
    assert_eq!(segs.count(), 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'segmentation_sent' AND user_id IS NULL").await,
        1
    );
    // The queue as coordinators see it; not labelers.
    let queued: Vec<seglab::api::PacsQueued> = app.get_json(&engineer, "/pacs/outbox").await;
    assert_eq!(queued.len(), 1);
    assert!(queued[0].sent_at_ms.is_some() && queued[0].next_attempt_at_ms.is_none() && queued[0].attempts >= 3);
    let refused = app.client.get(app.url("/pacs/outbox")).bearer_auth(&labeler).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    app.stop().await;
}
