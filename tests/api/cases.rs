//! The case flow through HTTP on the backend under test: import, list, artifacts with
//! presigned URLs, refusals that store nothing, health probes, pages.

use crate::common::{backend_name, test_data, TestApp, PAGE_ORIGIN};
use crate::fixtures::CaseBuilder;
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use seglab::api::{ArtifactKind, CaseArtifacts, CaseSummary};
use seglab::server::identity::Role;
use serde_json::Value;

fn form(name: &str, image: Vec<u8>, mask: Option<Vec<u8>>) -> Form {
    let mut form =
        Form::new().text("name", name.to_string()).part("image", Part::bytes(image).file_name("image.nii.gz"));
    if let Some(mask) = mask {
        form = form.part("mask", Part::bytes(mask).file_name("mask.nii.gz"));
    }
    form
}

async fn import(app: &TestApp, token: &str, form: Form) -> reqwest::Response {
    app.client.post(app.url("/cases")).bearer_auth(token).multipart(form).send().await.unwrap()
}

async fn artifacts(app: &TestApp, token: &str, case_id: &str) -> CaseArtifacts {
    let response =
        app.client.get(app.url(&format!("/cases/{case_id}/artifacts"))).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn error_message(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["error"]["message"].as_str().unwrap_or_default().to_string()
}

/// Objects stored by this app, and cases listed: both must stay empty after a refusal.
async fn assert_nothing_stored(app: &TestApp, token: &str) {
    assert_eq!(app.state.store.list("cases/").await.unwrap(), Vec::<String>::new(), "objects were stored");
    let cases: Vec<CaseSummary> = app.get_json(token, "/cases").await;
    assert!(cases.is_empty(), "a case was recorded: {cases:?}");
}

#[tokio::test]
async fn mni152_template_imports_and_its_artifacts_download_through_presigned_urls() {
    let app = TestApp::spawn().await;
    let token = app.user("mle", &[Role::MlEngineer]).await;
    let image = std::fs::read(test_data("mni152_t1.nii.gz")).unwrap();

    let response = import(&app, &token, form("MNI152 T1", image.clone(), None)).await;
    assert_eq!(response.status(), StatusCode::CREATED, "{}", backend_name());
    let case: CaseSummary = response.json().await.unwrap();
    assert_eq!(case.dims, [197, 233, 189]);
    assert_eq!(case.image_voxel_type, seglab::nifti_io::VoxelType::Uint8);

    let listed: Vec<CaseSummary> = app.get_json(&token, "/cases").await;
    assert_eq!(listed, vec![case.clone()]);

    let found = artifacts(&app, &token, case.id.as_str()).await;
    assert_eq!(found.case_name, "MNI152 T1");
    assert_eq!(found.artifacts.len(), 2);
    let image_artifact = &found.artifacts[0];
    let mask_artifact = &found.artifacts[1];
    assert_eq!(image_artifact.kind, ArtifactKind::Image);
    assert_eq!(mask_artifact.kind, ArtifactKind::Mask);
    assert_eq!(mask_artifact.object_ref, found.current_mask_ref.as_str());
    assert_eq!(image_artifact.dims, [197, 233, 189]);
    assert_eq!(mask_artifact.voxel_type, seglab::nifti_io::VoxelType::Uint8);
    assert_eq!(image_artifact.spacing_mm, [1.0, 1.0, 1.0]);

    // The browser's download: straight from storage, no credentials but the URL, cross-origin.
    let plain = reqwest::Client::new();
    let download = plain.get(&image_artifact.url).header("Origin", PAGE_ORIGIN).send().await.unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    assert!(download.headers().get("access-control-allow-origin").is_some(), "no CORS header on the presigned GET");
    assert_eq!(download.bytes().await.unwrap().to_vec(), image, "stored image differs from the upload");
    assert_eq!(image_artifact.size_bytes as usize, image.len());

    let mask_bytes = plain.get(&mask_artifact.url).send().await.unwrap().bytes().await.unwrap();
    let mask = seglab::nifti_io::Volume::parse("mask", &mask_bytes).unwrap();
    assert_eq!(mask.meta.dims, [197, 233, 189]);
    assert!(mask.into_labels("mask").unwrap().iter().all(|v| *v == 0), "a new case starts with an empty mask");

    // The same voxels in slabs, each fetched cross-origin by its own URL: joined in order
    // they are the image's voxels, and with the header they read as the image does.
    let slabs = &image_artifact.slabs;
    assert_eq!(slabs.depth, 91, "about 4 MiB slabs of 197×233 uint8 slices");
    assert_eq!((slabs.urls.len(), &slabs.slabs[..]), (3, &[0, 1, 2][..]));
    let mut joined = Vec::new();
    for (index, url) in slabs.urls.iter().enumerate() {
        let slab = plain.get(url).header("Origin", PAGE_ORIGIN).send().await.unwrap();
        assert!(slab.headers().get("access-control-allow-origin").is_some(), "no CORS header on slab {index}");
        let expected = 197 * 233 * if index < 2 { 91 } else { 189 - 2 * 91 };
        joined.extend(seglab::slabs::decompress("slab", &slab.bytes().await.unwrap(), expected).unwrap());
    }
    use base64::Engine;
    let header = base64::engine::general_purpose::STANDARD.decode(&slabs.header).unwrap();
    let from_slabs =
        seglab::nifti_io::Volume::from_parts("image", &header, joined).unwrap().into_samples("image").unwrap();
    let from_file = seglab::nifti_io::Volume::parse("image", &image).unwrap().into_samples("image").unwrap();
    assert_eq!(from_slabs.len(), from_file.len());
    assert!((0..from_file.len()).all(|i| from_slabs.get(i) == from_file.get(i)), "the slabs differ from the image");
    // The empty mask: 9 slabs of about 1 MiB, all zeros, stored as one slab and a thinner last.
    assert_eq!(mask_artifact.slabs.slabs, [0, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(mask_artifact.slabs.urls.len(), 2);

    // The URL grants that one object only: pointing it at another key breaks the signature.
    let (path, query) = image_artifact.url.split_once('?').unwrap();
    let other = format!("{}?{}", path.replace("image.nii.gz", "other.nii.gz"), query);
    assert_eq!(plain.get(&other).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    // Signed for a window's start and valid for the lifetime (300 s) plus the window (75 s).
    assert!(image_artifact.url.contains("X-Amz-Expires=375&"), "{}", image_artifact.url);
    let tampered = image_artifact.url.replace("X-Amz-Expires=375", "X-Amz-Expires=3750");
    assert_eq!(plain.get(&tampered).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    app.stop().await;
}

#[tokio::test]
async fn truncated_foreign_and_mismatched_files_are_refused_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let token = app.user("mle", &[Role::MlEngineer]).await;
    let image = std::fs::read(test_data("mni152_t1.nii.gz")).unwrap();

    let truncated = import(&app, &token, form("cut", image[..image.len() / 3].to_vec(), None)).await;
    assert_eq!(truncated.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let message = error_message(truncated).await;
    assert!(message.contains("image is not a readable NIfTI-1 volume"), "{message}");

    let foreign = import(&app, &token, form("text", b"name,age\nalice,42\n".to_vec(), None)).await;
    assert_eq!(foreign.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error_message(foreign).await.contains("not a readable NIfTI-1 volume"));

    // A mask of another size than the image.
    let phantom_mask = {
        let header = nifti::NiftiHeader::default();
        let raw = seglab::nifti_io::encode_mask(&header, [4, 4, 4], &[0; 64]);
        seglab::nifti_io::gzip(&raw, 1)
    };
    let mismatched = import(&app, &token, form("mismatch", image.clone(), Some(phantom_mask))).await;
    assert_eq!(mismatched.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error_message(mismatched).await.contains("does not match image geometry"));

    // A mask on the image's grid holding fractions: not labels.
    let fractional_mask = {
        let header = seglab::nifti_io::Volume::parse("image", &image).unwrap().header;
        let halves: Vec<u8> = (0..197 * 233 * 189).flat_map(|_| 0.5f32.to_le_bytes()).collect();
        let raw = seglab::nifti_io::encode_volume(&header, [197, 233, 189], nifti::NiftiType::Float32, &halves);
        seglab::nifti_io::gzip(&raw, 1)
    };
    let not_labels = import(&app, &token, form("float mask", image.clone(), Some(fractional_mask))).await;
    assert_eq!(not_labels.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error_message(not_labels).await.contains("integers 0–255"));

    let unnamed = app
        .client
        .post(app.url("/cases"))
        .bearer_auth(&token)
        .multipart(Form::new().part("image", Part::bytes(image.clone())))
        .send()
        .await
        .unwrap();
    assert_eq!(unnamed.status(), StatusCode::BAD_REQUEST);
    assert!(error_message(unnamed).await.contains("`name` is required"));

    let blank_name = import(&app, &token, form("   ", image.clone(), None)).await;
    assert_eq!(blank_name.status(), StatusCode::BAD_REQUEST);

    assert_nothing_stored(&app, &token).await;
    app.stop().await;
}

#[tokio::test]
async fn authentication_and_roles_are_enforced() {
    let app = TestApp::spawn().await;
    let labeler = app.user("lab", &[Role::Labeler]).await;

    let anonymous = app.client.get(app.url("/cases")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let wrong = app.client.get(app.url("/cases")).bearer_auth("sgl_nope").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let image = std::fs::read(test_data("mni152_t1.nii.gz")).unwrap();
    let forbidden = import(&app, &labeler, form("x", image, None)).await;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    assert!(error_message(forbidden).await.contains("ml_engineer or admin"));

    let missing = app.client.get(app.url("/cases/no-such-case/artifacts")).bearer_auth(&labeler).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_message(missing).await, "case no-such-case not found");
    assert_nothing_stored(&app, &labeler).await;
    app.stop().await;
}

#[tokio::test]
async fn oversized_uploads_get_413() {
    let app = TestApp::spawn_with(|args| args.max_upload_bytes = 64 * 1024).await;
    let token = app.user("mle", &[Role::MlEngineer]).await;
    let response = import(&app, &token, form("big", vec![7u8; 200 * 1024], None)).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_nothing_stored(&app, &token).await;
    app.stop().await;
}

#[tokio::test]
async fn health_and_readiness_report_the_dependencies() {
    let app = TestApp::spawn().await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["database"], "ok");
    assert_eq!(body["object_storage"], "ok");

    app.state.db.pool.close().await;
    let not_ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(not_ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = not_ready.json().await.unwrap();
    assert_eq!(body["database"], "unavailable", "the reason is not for anonymous callers");
    assert_eq!(body["object_storage"], "ok");
    app.stop().await;
}

#[tokio::test]
async fn demo_seed_runs_once_and_pages_render_before_any_script() {
    let app = TestApp::spawn().await;
    let login =
        seglab::server::demo::seed_if_empty(&app.state, None).await.unwrap().expect("first seed creates the demo user");
    let token = login.token;
    assert!(seglab::server::demo::seed_if_empty(&app.state, None).await.unwrap().is_none(), "seeding twice");

    let cases: Vec<CaseSummary> = app.get_json(&token, "/cases").await;
    assert_eq!(cases.len(), 3);

    // Without a login the pages say so and show nothing.
    let anonymous = app.client.get(app.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(anonymous.contains("authentication required") && anonymous.contains("href=\"/login\""));
    assert!(!anonymous.contains(&cases[0].name));

    // Server-rendered HTML carries the data itself: no WASM needed to read it.
    let cookie = app.login_cookie("demo", &login.password).await;
    let list = app.client.get(app.url("/")).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
    for case in &cases {
        assert!(list.contains(&case.name), "case list page lacks {}", case.name);
        assert!(list.contains(&format!("/cases/{}", case.id)));
    }
    let page = app
        .client
        .get(app.url(&format!("/cases/{}", cases[0].id)))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&cases[0].name));
    assert!(page.contains("ventricle") && page.contains("lesion"), "label names missing");
    assert!(page.contains("X-Amz-Signature"), "no presigned link on the case page");
    app.stop().await;
}

#[tokio::test]
async fn cli_import_and_user_add_work_against_the_same_backend() {
    let app = TestApp::spawn().await;
    let run = |args: &[&str]| {
        let output = app.run_cli(args);
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    };
    let (ok, stdout, stderr) = run(&["user", "add", "script", "--role", "ml_engineer", "--role", "labeler"]);
    assert!(ok, "{stderr}");
    let token =
        stdout.lines().find_map(|l| l.strip_prefix("API token (shown once): ")).expect("token printed").to_string();

    let mni = test_data("mni152_t1.nii.gz");
    let (ok, stdout, stderr) =
        run(&["import", "--name", "MNI via CLI", "--labels", "1=grey matter,2=white matter", mni.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("imported case"), "{stdout}");

    let cases: Vec<CaseSummary> = app.get_json(&token, "/cases").await;
    assert_eq!(cases.len(), 1);
    let found = artifacts(&app, &token, cases[0].id.as_str()).await;
    let names: Vec<_> = found.labels.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["grey matter", "white matter"]);

    let (ok, _, stderr) = run(&["import", "--name", "broken", "/no/such/file.nii.gz"]);
    assert!(!ok);
    assert!(stderr.contains("cannot read /no/such/file.nii.gz"), "{stderr}");
    let (ok, _, stderr) = run(&["user", "add", "x", "--role", "surgeon"]);
    assert!(!ok);
    assert!(stderr.contains("unknown role \"surgeon\""), "{stderr}");
    app.stop().await;
}

#[tokio::test]
async fn serve_answers_and_stops_cleanly_on_sigterm() {
    let app = TestApp::spawn().await;
    let (mut server, _, ready) = app.start_server_process(&[], &["--no-demo"], std::process::Stdio::null()).await;
    assert!(ready, "the server did not become ready");
    let killed = std::process::Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "still running 15 s after SIGTERM");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
    app.stop().await;
}

/// Starts an upload of `declared` bytes to `path` as `token` in form field `field`, and sends
/// its first `sent` bytes of content.
async fn start_upload(
    app: &TestApp,
    path: &str,
    token: &str,
    field: &str,
    declared: u64,
    sent: usize,
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let address = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {declared}\r\n\r\n\
         --b\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"upload.bin\"\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![0u8; sent]).await.unwrap();
    stream
}

/// Starts an upload, sends only its first megabyte, and returns the status line if the server
/// answers within ten seconds without the rest.
async fn answer_before_the_body(app: &TestApp, path: &str, token: &str, field: &str, declared: u64) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut stream = start_upload(app, path, token, field, declared, 1 << 20).await;
    let mut answer = vec![0u8; 64];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut answer)).await.ok()?.ok()?;
    Some(String::from_utf8_lossy(&answer[..read]).lines().next().unwrap_or_default().to_string())
}

#[tokio::test]
async fn uploads_go_to_disk_as_they_arrive_and_an_abandoned_one_leaves_nothing() {
    let app = TestApp::spawn().await;
    let engineer = app.user("mle", &[Role::MlEngineer]).await;
    let uploads = app.data_dir.path().join("uploads");
    let largest_upload = || {
        std::fs::read_dir(&uploads)
            .map_or(0, |files| files.filter_map(|f| f.ok()?.metadata().ok()).map(|m| m.len()).max().unwrap_or(0))
    };
    let stream = start_upload(&app, "/cases", &engineer, "image", 512 << 20, 8 << 20).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // All that was sent but the few bytes the form parser holds back (a boundary may follow).
    while largest_upload() < (8 << 20) - 64 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(largest_upload() >= (8 << 20) - 64, "only {} bytes of the upload are on disk", largest_upload());
    drop(stream); // the client gives up
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while largest_upload() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 0, "the abandoned upload is removed");
    assert_eq!(app.count("SELECT COUNT(*) FROM cases").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn uploads_by_callers_without_the_role_are_refused_before_the_body_is_read() {
    let app = TestApp::spawn().await;
    let labeler = app.user("lab", &[Role::Labeler]).await;
    for (path, field) in [("/models", "artifact"), ("/cases", "image")] {
        let status = answer_before_the_body(&app, path, &labeler, field, 512 << 20).await;
        assert_eq!(status.as_deref(), Some("HTTP/1.1 403 Forbidden"), "{path}: the server waited for the body");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM models").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn voxels_are_read_at_vox_offset_past_header_extensions_as_nibabel_reads_them() {
    let app = TestApp::spawn().await;
    let token = app.user("mle", &[Role::MlEngineer]).await;
    let dir = tempfile::tempdir().unwrap();
    let (file, voxels) = (dir.path().join("extended.nii.gz"), dir.path().join("voxels.bin"));
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyenv/bin/python");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/write_with_extension.py");
    let output = std::process::Command::new(python)
        .args([script, file.to_str().unwrap(), voxels.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let vox_offset: u32 = String::from_utf8_lossy(&output.stdout).trim().parse().unwrap();
    assert!(vox_offset > 352, "the extension moves the voxels: vox_offset {vox_offset}");

    let bytes = std::fs::read(&file).unwrap();
    let expected: Vec<f32> =
        std::fs::read(&voxels).unwrap().chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]]) as f32).collect();
    let samples = seglab::nifti_io::Volume::parse("image", &bytes).unwrap().into_samples("image").unwrap();
    let read: Vec<f32> = (0..samples.len()).map(|i| samples.get(i)).collect();
    assert_eq!(read, expected);

    let response = import(&app, &token, form("extended", bytes, None)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let case: CaseSummary = response.json().await.unwrap();
    assert_eq!(case.dims, [7, 5, 3]);
    app.stop().await;
}

#[tokio::test]
async fn a_volume_over_the_voxel_budget_is_refused_from_its_header_and_nothing_is_stored() {
    let app = TestApp::spawn_configured(|config| config.max_volume_voxels = 64 * 64 * 64, |_| {}).await;
    let token = app.user("mle", &[Role::MlEngineer]).await;
    let header = crate::fixtures::header();
    let raw = seglab::nifti_io::encode_volume(&header, [65, 64, 64], nifti::NiftiType::Uint8, &vec![0; 65 * 64 * 64]);
    let response = import(&app, &token, form("too big", seglab::nifti_io::gzip(&raw, 1), None)).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("65 × 64 × 64 = 266240 voxels") && message.contains("budget of 262144 voxels"),
        "{message}"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM cases").await, 0);
    assert!(app.state.store.list("cases/").await.unwrap().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn the_demo_user_is_made_only_on_the_embedded_default() {
    let app = TestApp::spawn().await;
    let (mut server, _, ready) = app.start_server_process(&["--workers", "0"], &[], std::process::Stdio::piped()).await;
    server.kill().unwrap();
    let output = server.wait_with_output().unwrap();
    assert!(ready, "the server did not become ready");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let demo_users = app.count("SELECT COUNT(*) FROM users WHERE username = 'demo'").await;
    if backend_name() == "sqlite+embedded-s3" {
        assert_eq!(demo_users, 1);
        assert!(stdout.contains("as this is the embedded default"), "{stdout}");
    } else {
        assert_eq!(demo_users, 0, "a demo login on a PostgreSQL + S3 deployment");
        assert!(!stdout.contains("demo"), "{stdout}");
    }
    app.stop().await;
}

#[tokio::test]
async fn health_probes_answer_quickly_while_two_large_imports_run() {
    let app = TestApp::spawn().await;
    let token = app.user("mle", &[Role::MlEngineer]).await;
    // Uncompressed 320³ int16 volumes of noise (62.5 MiB): the server checks and gzips them,
    // seconds of CPU work.
    const N: u32 = 320;
    let header = crate::fixtures::header();
    let voxels: Vec<u8> =
        (0..N * N * N).flat_map(|i| ((i.wrapping_mul(2_654_435_761) >> 13) as i16).to_le_bytes()).collect();
    let raw = seglab::nifti_io::encode_volume(&header, [N; 3], nifti::NiftiType::Int16, &voxels);
    drop(voxels);
    let imports: Vec<_> = (0..2)
        .map(|n| {
            let (client, url, token, file) = (app.client.clone(), app.url("/cases"), token.clone(), raw.clone());
            tokio::spawn(async move {
                let form = Form::new()
                    .text("name", format!("large {n}"))
                    .part("image", Part::bytes(file).file_name("large.nii"));
                let response = client.post(url).bearer_auth(token).multipart(form).send().await.unwrap();
                (response.status(), response.text().await.unwrap())
            })
        })
        .collect();
    // Probe from a thread of its own, as a load balancer would, until both imports have
    // finished: through the uploads and the checking and compressing that follow.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let (done, address) = (done.clone(), app.base.trim_start_matches("http://").to_string());
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            let mut probes = Vec::new();
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let started = std::time::Instant::now();
                let mut stream = std::net::TcpStream::connect(&address).unwrap();
                stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
                stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: seglab\r\nConnection: close\r\n\r\n").unwrap();
                let mut answer = String::new();
                stream.read_to_string(&mut answer).unwrap();
                assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
                probes.push(started.elapsed());
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            probes
        })
    };
    for import in imports {
        let (status, body) = import.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    // Joined off the runtime, which also runs the server: a probe still in flight gets its
    // answer instead of waiting on a blocked runtime.
    let mut probes = tokio::task::spawn_blocking(move || prober.join().unwrap()).await.unwrap();
    probes.sort();
    assert!(probes.len() >= 5, "only {} probes while the imports ran", probes.len());
    let (median, slowest) = (probes[probes.len() / 2], probes[probes.len() - 1]);
    assert!(median < std::time::Duration::from_millis(100), "healthz took {median:?} (median) while imports ran");
    assert!(slowest < std::time::Duration::from_millis(500), "healthz took {slowest:?} at worst while imports ran");
    app.stop().await;
}

/// Imports at once all commit: each new case also updates the name index (a trigger on
/// SQLite), which must not meet a stale snapshot when another import committed meanwhile.
#[tokio::test]
async fn concurrent_imports_all_commit() {
    let app = TestApp::spawn().await;
    let token = app.user("mle", &[Role::MlEngineer]).await;
    let header = crate::fixtures::header();
    let image = seglab::nifti_io::gzip(
        &seglab::nifti_io::encode_volume(&header, [8; 3], nifti::NiftiType::Uint8, &[7; 512]),
        1,
    );
    let imports: Vec<_> = (0..12)
        .map(|n| {
            let (client, url, token, image) = (app.client.clone(), app.url("/cases"), token.clone(), image.clone());
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .bearer_auth(token)
                    .multipart(form(&format!("parallel {n}"), image, None))
                    .send()
                    .await
                    .unwrap();
                (response.status(), response.text().await.unwrap())
            })
        })
        .collect();
    for import in imports {
        let (status, body) = import.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let found: seglab::api::Worklist = app.get_json(&token, "/worklist?q=PARALLEL&per_page=20").await;
    assert_eq!(found.total, 12);
    app.stop().await;
}

/// A small case made directly by the service, with an empty mask.
async fn tiny_case(app: &TestApp, name: &str) -> String {
    CaseBuilder::new(name).dims([4, 4, 2]).int16(|_| 0).import(app).await
}

#[tokio::test]
async fn the_case_list_and_a_case_history_come_in_bounded_pages() {
    let app = TestApp::spawn().await;
    let token = app.user("lab", &[Role::Labeler]).await;
    let ids = [tiny_case(&app, "a").await, tiny_case(&app, "b").await, tiny_case(&app, "c").await];
    let page = |query: &'static str| app.client.get(app.url(&format!("/cases{query}"))).bearer_auth(&token).send();
    let first = page("?per_page=2").await.unwrap();
    assert_eq!(first.headers()["x-total-count"], "3");
    assert_eq!(first.headers()["link"], "</cases?page=2&per_page=2>; rel=\"next\"");
    let first: Vec<CaseSummary> = first.json().await.unwrap();
    let second = page("?page=2&per_page=2").await.unwrap();
    assert!(second.headers().get("link").is_none());
    let second: Vec<CaseSummary> = second.json().await.unwrap();
    let listed: Vec<String> = first.iter().chain(&second).map(|case| case.id.to_string()).collect();
    assert_eq!(listed, ids);
    for bad in ["?per_page=0", "?per_page=1001", "?page=0", "?page=x", "?limit=5"] {
        assert_eq!(page(bad).await.unwrap().status(), StatusCode::BAD_REQUEST, "{bad}");
    }

    // A history lists the newest 200 versions, and how many there are.
    let case_id = &ids[0];
    for n in 0..201u32 {
        let head = artifacts(&app, &token, case_id).await.current_mask_ref;
        // Each pass over the 32 voxels flips them: on, then off again.
        let (voxel, was) = ((n % 32) as usize, ((n / 32) % 2) as u8);
        let (mut from, mut to) = (vec![0u8; 32], vec![0u8; 32]);
        (from[voxel], to[voxel]) = (was, 1 - was);
        let edits = seglab::edits::MaskEdits::diff(&from, &to).encode();
        assert_eq!(
            app.post_label(&token, case_id, head.as_str(), &edits).await.status(),
            StatusCode::CREATED,
            "save {n}"
        );
    }
    let with_history: CaseArtifacts = app.get_json(&token, &format!("/cases/{case_id}/artifacts?history=true")).await;
    assert_eq!((with_history.history.len(), with_history.history_total), (200, 201));
    app.stop().await;
}
