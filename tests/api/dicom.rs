//! DICOM import against the reference converter: series synthesised with pydicom from the
//! MNI152 template (`tests/interop/dicom_series.py`) are imported over HTTP and from the command
//! line, and every accepted one must give the voxels and the affine (within 1e-3 mm) that
//! `dcm2niix` gives for the same files; every refused one gets its 422 and stores nothing.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use seglab::api::{ArtifactKind, CaseArtifacts, CaseSummary};
use seglab::server::identity::Role;
use serde_json::Value;

use crate::common::{test_data, TestApp};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The generated series (written once per test run) and the two SeriesInstanceUIDs of the
/// `two_series` folder.
pub(crate) fn series() -> &'static (tempfile::TempDir, Vec<String>) {
    static SERIES: OnceLock<(tempfile::TempDir, Vec<String>)> = OnceLock::new();
    SERIES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let python = root().join("target/pyenv/bin/python");
        let output = std::process::Command::new(&python)
            .arg(root().join("tests/interop/dicom_series.py"))
            .arg(test_data("mni152_t1.nii.gz"))
            .arg(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {} ({e}); `.ci/setup test` installs it", python.display()));
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let uids = String::from_utf8_lossy(&output.stdout).split_whitespace().map(str::to_string).collect();
        (dir, uids)
    })
}

pub(crate) fn scenario(name: &str) -> PathBuf {
    series().0.path().join(name)
}

pub(crate) fn files_in(folder: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

async fn post_files(app: &TestApp, token: &str, files: &[PathBuf], series: Option<&str>) -> reqwest::Response {
    let mut form = Form::new();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        form = form.part("files", Part::bytes(std::fs::read(file).unwrap()).file_name(name));
    }
    if let Some(series) = series {
        form = form.text("series", series.to_string());
    }
    app.client.post(app.url("/cases/dicom")).bearer_auth(token).multipart(form).send().await.unwrap()
}

pub(crate) async fn import_folder(app: &TestApp, token: &str, folder: &str) -> CaseSummary {
    let response = post_files(app, token, &files_in(&scenario(folder)), None).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{folder}: {body}");
    let mut cases: Vec<CaseSummary> = serde_json::from_value(body).unwrap();
    assert_eq!(cases.len(), 1);
    cases.remove(0)
}

/// Nothing of a refused import remains: no case, no stored object, no scratch file.
pub(crate) async fn assert_nothing_stored(app: &TestApp) {
    assert_eq!(app.count("SELECT COUNT(*) FROM cases").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM case_dicom").await, 0);
    assert_eq!(app.state.store.list("cases/").await.unwrap(), Vec::<String>::new(), "objects were stored");
    let scratch: Vec<_> = std::fs::read_dir(app.data_dir.path().join("uploads")).unwrap().collect();
    assert!(scratch.is_empty(), "scratch files were left: {scratch:?}");
}

/// The case's stored image, fetched as the viewer fetches it (presigned URL), written to `dir`.
async fn stored_image(app: &TestApp, token: &str, case_id: &str, dir: &Path, name: &str) -> PathBuf {
    let artifacts: CaseArtifacts = app.get_json(token, &format!("/cases/{case_id}/artifacts")).await;
    let image = artifacts.artifacts.iter().find(|a| a.kind == ArtifactKind::Image).unwrap();
    let path = dir.join(format!("{name}.nii.gz"));
    std::fs::write(&path, app.download(token, &image.url).await).unwrap();
    path
}

/// dcm2niix's conversion of a folder, as `.nii`.
fn dcm2niix(folder: &Path, into: &Path) -> PathBuf {
    std::fs::create_dir_all(into).unwrap();
    let output = std::process::Command::new("dcm2niix")
        .args(["-z", "n", "-b", "n", "-f", "reference", "-o"])
        .arg(into)
        .arg(folder)
        .output()
        .expect("dcm2niix (Debian's package; `.ci/setup test` installs it)");
    assert!(output.status.success(), "dcm2niix: {}", String::from_utf8_lossy(&output.stdout));
    into.join("reference.nii")
}

/// Each pair the same volume; lossy ones (baseline JPEG) within the decoders' rounding.
fn assert_same_volumes(pairs: &[(PathBuf, PathBuf, bool)]) {
    let output = std::process::Command::new(root().join("target/pyenv/bin/python"))
        .arg(root().join("tests/interop/same_volume.py"))
        .args(pairs.iter().flat_map(|(ours, theirs, lossy)| {
            [ours.as_os_str(), theirs.as_os_str(), std::ffi::OsStr::new(if *lossy { "1" } else { "0" })]
        }))
        .output()
        .unwrap();
    println!("{}", String::from_utf8_lossy(&output.stdout));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[tokio::test]
async fn imported_series_match_dcm2niix_voxel_for_voxel_and_in_world_space() {
    let app = TestApp::spawn().await;
    let token = app.user("coordinator", &[Role::MlEngineer]).await;
    let work = tempfile::tempdir().unwrap();
    // Each folder, and the folder dcm2niix converts for reference: dcm2niix reads no deflated
    // files, and the `deflate` series holds the same slices as `axial`.
    let scenarios = [
        ("axial", "axial"),
        ("implicit", "implicit"),
        ("big_endian", "big_endian"),
        ("deflate", "axial"),
        ("rle", "rle"),
        ("jpeg2000", "jpeg2000"),
        ("jpeg_lossless", "jpeg_lossless"),
        ("jpeg_baseline", "jpeg_baseline"),
        ("sagittal", "sagittal"),
        ("coronal", "coronal"),
        ("oblique", "oblique"),
        ("fractional_slope", "fractional_slope"),
        ("varying_slope", "varying_slope"),
        ("unsigned", "unsigned"),
        ("enhanced", "enhanced"),
    ];
    let mut pairs = Vec::new();
    for (folder, reference) in scenarios {
        let case = import_folder(&app, &token, folder).await;
        assert_eq!(case.dims, [48, 56, 24], "{folder}");
        let ours = stored_image(&app, &token, case.id.as_str(), work.path(), folder).await;
        let theirs = dcm2niix(&scenario(reference), &work.path().join(format!("{folder}-dcm2niix")));
        pairs.push((ours, theirs, folder == "jpeg_baseline"));
    }
    assert_same_volumes(&pairs);

    // The stored type follows dcm2niix's choice.
    let types: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.name, o.voxel_type FROM cases c JOIN objects o ON o.object_ref = c.image_ref ORDER BY c.created_at",
    )
    .fetch_all(&app.state.db.pool)
    .await
    .unwrap();
    let type_of = |name: &str| types.iter().find(|(n, _)| n.ends_with(name)).map(|(_, t)| t.as_str()).unwrap();
    assert_eq!(type_of(" axial"), "int16");
    assert_eq!(type_of(" varying_slope"), "float32");
    assert_eq!(type_of(" unsigned"), "int16", "unsigned samples that fit are stored signed");
    // DCMTK's lossy encoder rescales each image to its own range: the intercepts differ.
    assert_eq!(type_of(" jpeg_baseline"), "float32");

    // The series' identity is kept with the case, the source images in slice order.
    let (modality, study, sources): (String, String, String) = sqlx::query_as(
        "SELECT d.modality, d.study_instance_uid, d.source_images_json FROM case_dicom d
         JOIN cases c ON c.id = d.case_id WHERE c.name = 'CT enhanced'",
    )
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap();
    assert_eq!(modality, "CT");
    assert!(study.starts_with("1.2.826.0.1.3680043.8.498."), "{study}");
    let sources: Vec<Value> = serde_json::from_str(&sources).unwrap();
    let frames: Vec<u64> = sources.iter().map(|s| s["frame"].as_u64().unwrap()).collect();
    // The enhanced file stores its frames from the last slice to the first.
    assert_eq!(frames, (1..=24).rev().collect::<Vec<_>>());
    app.stop().await;
}

#[tokio::test]
async fn a_zip_of_two_series_names_them_and_imports_the_one_asked_for_or_each() {
    let app = TestApp::spawn().await;
    let token = app.user("coordinator", &[Role::MlEngineer]).await;
    let work = tempfile::tempdir().unwrap();
    let zip_path = work.path().join("study.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
    for part in ["first", "second"] {
        for file in files_in(&scenario(&format!("two_series/{part}"))) {
            let name = format!("{part}/{}", file.file_name().unwrap().to_string_lossy());
            zip.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
            std::io::Write::write_all(&mut zip, &std::fs::read(file).unwrap()).unwrap();
        }
    }
    zip.finish().unwrap();
    let uids = &series().1;

    let response = post_files(&app, &token, std::slice::from_ref(&zip_path), None).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let message = response.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("2 series") && message.contains(&uids[0]) && message.contains(&uids[1]), "{message}");
    assert_eq!(app.count("SELECT COUNT(*) FROM cases").await, 0);

    let response = post_files(&app, &token, std::slice::from_ref(&zip_path), Some(&uids[1])).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let chosen: Vec<CaseSummary> = response.json().await.unwrap();
    assert_eq!(chosen.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["CT second"]);

    let response = post_files(&app, &token, std::slice::from_ref(&zip_path), Some("all")).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let each: Vec<CaseSummary> = response.json().await.unwrap();
    assert_eq!(each.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["CT first", "CT second"]);
    // The second series was imported before: its case answers, and no other is made.
    assert_eq!(each[1].id, chosen[0].id);
    assert_eq!(app.count("SELECT COUNT(*) FROM cases").await, 2);

    // The worklist finds them by modality and study.
    let study: String = sqlx::query_scalar("SELECT study_instance_uid FROM case_dicom LIMIT 1")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    let total = |worklist: Value| worklist["total"].as_u64().unwrap();
    assert_eq!(total(app.get_json(&token, "/worklist?modality=ct").await), 2);
    assert_eq!(total(app.get_json(&token, "/worklist?modality=MR").await), 0);
    assert_eq!(total(app.get_json(&token, &format!("/worklist?study={study}")).await), 2);
    assert_eq!(total(app.get_json(&token, "/worklist?study=1.2.3").await), 0);
    app.stop().await;
}

#[tokio::test]
async fn defective_series_are_refused_with_the_reason_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let token = app.user("coordinator", &[Role::MlEngineer]).await;
    let refusals = [
        ("missing_slice", "1 slice is missing between"),
        ("gantry_tilt", "gantry tilt"),
        ("jpeg_ls", "JPEG-LS"),
        ("not_dicom", "notes.txt is not a DICOM file"),
    ];
    for (folder, reason) in refusals {
        let response = post_files(&app, &token, &files_in(&scenario(folder)), None).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{folder}");
        let message = response.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains(reason), "{folder}: {message}");
    }
    // Two series sent as plain files (not a zip) are told apart as well.
    let mut mixed = files_in(&scenario("two_series/first"));
    mixed.extend(files_in(&scenario("axial")));
    let response = post_files(&app, &token, &mixed, None).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // A label code that is not SCHEME:VALUE.
    let form = Form::new()
        .text("labels", "1=liver|10200004")
        .part("files", Part::bytes(std::fs::read(&files_in(&scenario("axial"))[0]).unwrap()).file_name("a.dcm"));
    let response = app.client.post(app.url("/cases/dicom")).bearer_auth(&token).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let message = response.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("SCHEME:VALUE"), "{message}");
    // A labeler may not import.
    let labeler = app.user("labeler", &[Role::Labeler]).await;
    let response = post_files(&app, &labeler, &files_in(&scenario("axial")), None).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    assert_nothing_stored(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn the_command_line_imports_a_folder() {
    let app = TestApp::spawn().await;
    let output = app.run_cli(&["import-dicom", scenario("oblique").to_str().unwrap(), "--name", "oblique"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("(oblique), [48, 56, 24] int16"));
    let output = app.run_cli(&["import-dicom", scenario("gantry_tilt").to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("gantry tilt"));
    assert_eq!(app.count("SELECT COUNT(*) FROM case_dicom").await, 1);
    app.stop().await;
}

/// Runs an interop script with the test environment's Python; its JSON answer.
fn python_json(script: &str, args: &[&std::ffi::OsStr]) -> Value {
    let output = std::process::Command::new(root().join("target/pyenv/bin/python"))
        .arg(root().join("tests/interop").join(script))
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{script}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{script}: {e}: {}", String::from_utf8_lossy(&output.stdout)))
}

/// dciodvfy's errors on a file (its warnings aside).
fn dciodvfy_errors(file: &Path) -> Vec<String> {
    let output = std::process::Command::new("dciodvfy")
        .arg("-new")
        .arg(file)
        .output()
        .expect("dciodvfy (Debian's dicom3tools; `.ci/setup test` installs it)");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    println!("dciodvfy {}:\n{report}", file.display());
    report.lines().filter(|line| line.starts_with("Error")).map(str::to_string).collect()
}

pub(crate) const SEG_LABELS: &str = "1=liver,2=tumour,3=other";
/// The same labels as imported: the tumour with codes of its own (a mass, SNOMED CT 4147007),
/// the others coded from their names.
const SEG_LABELS_CODED: &str = "1=liver,2=tumour|SCT:49755003|SCT:4147007,3=other";

/// A label map on the 48 × 56 × 24 test grid: a liver ball, a tumour inside it, no `other`.
pub(crate) fn two_structures() -> Vec<u8> {
    let mut labels = vec![0u8; 48 * 56 * 24];
    for k in 0..24i64 {
        for j in 0..56i64 {
            for i in 0..48i64 {
                let ball = |(ci, cj, ck): (i64, i64, i64), radius: i64| {
                    (i - ci).pow(2) + (j - cj).pow(2) + ((k - ck) * 3).pow(2) <= radius * radius
                };
                let index = (k * 56 * 48 + j * 48 + i) as usize;
                if ball((20, 26, 12), 4) {
                    labels[index] = 2;
                } else if ball((24, 28, 12), 15) {
                    labels[index] = 1;
                }
            }
        }
    }
    labels
}

async fn import_labelled(app: &TestApp, token: &str, folder: &str) -> String {
    let mut form = Form::new().text("labels", SEG_LABELS_CODED);
    for file in files_in(&scenario(folder)) {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        form = form.part("files", Part::bytes(std::fs::read(file).unwrap()).file_name(name));
    }
    let response = app.client.post(app.url("/cases/dicom")).bearer_auth(token).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Vec<CaseSummary>>().await.unwrap().remove(0).id.to_string()
}

async fn get_seg(app: &TestApp, token: &str, mask_ref: &str) -> reqwest::Response {
    app.client.get(app.url(&format!("/{mask_ref}?format=dicom-seg"))).bearer_auth(token).send().await.unwrap()
}

async fn post_seg(app: &TestApp, token: &str, case_id: &str, base: &str, seg: &Path, key: &str) -> reqwest::Response {
    let form = Form::new()
        .text("base_mask_ref", base.to_string())
        .part("file", Part::bytes(std::fs::read(seg).unwrap()).file_name("seg.dcm"));
    app.client
        .post(app.url(&format!("/cases/{case_id}/segmentation")))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn masks_go_out_as_dicom_seg_that_highdicom_reads_voxel_for_voxel_and_dciodvfy_accepts() {
    let app = TestApp::spawn().await;
    let token = app.user("uploader", &[Role::Admin, Role::Labeler]).await;
    let work = tempfile::tempdir().unwrap();
    let mask = two_structures();
    let labelled = mask.iter().filter(|&&v| v > 0).count() as u64;
    // Frames: one per segment and slice holding any of it.
    let frames: usize = [1u8, 2]
        .iter()
        .map(|&value| (0..24).filter(|k| mask[k * 48 * 56..(k + 1) * 48 * 56].contains(&value)).count())
        .sum();
    let edits = seglab::edits::MaskEdits::diff(&vec![0u8; mask.len()], &mask).encode();

    // One file per slice, and one enhanced file whose frames run from the last slice to the first.
    for folder in ["oblique", "enhanced"] {
        let case_id = import_labelled(&app, &token, folder).await;
        let empty = app.head_mask_ref(&case_id).await;
        let response = get_seg(&app, &token, &empty).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "an empty mask has no segment");
        let saved = app.post_label(&token, &case_id, &empty, &edits).await;
        assert_eq!(saved.status(), StatusCode::CREATED);
        let mask_ref = app.head_mask_ref(&case_id).await;

        let response = get_seg(&app, &token, &mask_ref).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "application/dicom");
        assert!(response.headers()["content-disposition"].to_str().unwrap().ends_with(".seg.dcm\""));
        let bytes = response.bytes().await.unwrap();
        let again = get_seg(&app, &token, &mask_ref).await.bytes().await.unwrap();
        assert_eq!(bytes, again, "the same version gives the same object");
        let seg_file = work.path().join(format!("{folder}.seg.dcm"));
        std::fs::write(&seg_file, &bytes).unwrap();
        let mask_file = work.path().join(format!("{folder}.nii.gz"));
        std::fs::write(&mask_file, app.mask_file(&token, &mask_ref).await).unwrap();

        let source = scenario(folder);
        let read =
            python_json("read_seg.py", &[seg_file.as_ref(), mask_file.as_ref(), source.as_ref(), SEG_LABELS.as_ref()]);
        assert_eq!(read["sop_class"], "1.2.840.10008.5.1.4.1.1.66.4");
        assert_eq!(read["mismatched"], 0, "{folder}: {read}");
        assert_eq!(read["outside"], 0, "{folder}: {read}");
        assert_eq!(read["labelled"], labelled, "{folder}: {read}");
        assert_eq!(read["compared"], 48 * 56 * 24);
        assert_eq!(read["frames"], frames);
        let segments: Vec<(String, String, String)> = read["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["label"].as_str().unwrap().into(),
                    s["category"].as_str().unwrap().into(),
                    s["type"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(
            segments,
            [
                ("liver".into(), "123037004".into(), "10200004".into()),
                ("tumour".into(), "49755003".into(), "4147007".into())
            ]
        );
        let (series, frame_of_reference): (String, String) =
            sqlx::query_as("SELECT series_instance_uid, frame_of_reference_uid FROM case_dicom WHERE case_id = $1")
                .bind(&case_id)
                .fetch_one(&app.state.db.pool)
                .await
                .unwrap();
        assert_eq!(read["referenced_series"], serde_json::json!([series]));
        assert_eq!(read["frame_of_reference"], frame_of_reference);
        assert_eq!(dciodvfy_errors(&seg_file), Vec::<String>::new(), "{folder}");
    }

    // A case imported from NIfTI has no series to reference.
    let nifti_case = crate::fixtures::CaseBuilder::new("nifti").import(&app).await;
    let head = app.head_mask_ref(&nifti_case).await;
    assert_eq!(get_seg(&app, &token, &head).await.status(), StatusCode::CONFLICT);
    app.stop().await;
}

#[tokio::test]
async fn a_segmentation_written_by_highdicom_becomes_the_next_mask_version_voxel_for_voxel() {
    let app = TestApp::spawn().await;
    let token = app.user("uploader", &[Role::Admin, Role::Labeler]).await;
    let work = tempfile::tempdir().unwrap();
    let theirs = work.path().join("highdicom.seg.dcm");
    let output = std::process::Command::new(root().join("target/pyenv/bin/python"))
        .arg(root().join("tests/interop/write_seg.py"))
        .arg(scenario("oblique"))
        .arg(&theirs)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let drawn: u64 = String::from_utf8_lossy(&output.stdout).trim().parse().unwrap();

    let case_id = import_labelled(&app, &token, "oblique").await;
    let base = app.head_mask_ref(&case_id).await;
    let response = post_seg(&app, &token, &case_id, &base, &theirs, "seg-1").await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let saved: seglab::api::LabelSaved = response.json().await.unwrap();
    let retried = post_seg(&app, &token, &case_id, &base, &theirs, "seg-1").await;
    assert_eq!(retried.status(), StatusCode::CREATED);
    assert_eq!(retried.headers()["idempotent-replayed"], "true");
    assert_eq!(app.count("SELECT COUNT(*) FROM labels").await, 1, "a retried import saves once");

    let mask_file = work.path().join("imported.nii.gz");
    std::fs::write(&mask_file, app.mask_file(&token, saved.new_mask_ref.as_str()).await).unwrap();
    let source = scenario("oblique");
    let read = python_json("read_seg.py", &[theirs.as_ref(), mask_file.as_ref(), source.as_ref(), SEG_LABELS.as_ref()]);
    assert_eq!(read["mismatched"], 0, "{read}");
    assert_eq!(read["labelled"], drawn, "{read}");

    // Refused, with nothing saved: a SEG made on another series' slices, a file that is not a
    // SEG, a case imported from NIfTI.
    let other = import_labelled(&app, &token, "sagittal").await;
    let other_base = app.head_mask_ref(&other).await;
    let response = post_seg(&app, &token, &other, &other_base, &theirs, "seg-2").await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let image = files_in(&scenario("oblique")).remove(0);
    let response = post_seg(&app, &token, &other, &other_base, &image, "seg-3").await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let message = response.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("not a DICOM Segmentation"), "{message}");
    let nifti_case = crate::fixtures::CaseBuilder::new("nifti").import(&app).await;
    let nifti_base = app.head_mask_ref(&nifti_case).await;
    let response = post_seg(&app, &token, &nifti_case, &nifti_base, &theirs, "seg-4").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(app.count("SELECT COUNT(*) FROM labels").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn labelers_see_a_pseudonym_and_only_admins_who_the_patient_is() {
    let app = TestApp::spawn().await;
    let admin = app.user("admin", &[Role::Admin]).await;
    let labeler = app.user("labeler", &[Role::Labeler]).await;
    // Two series of one patient, imported apart.
    let first = import_folder(&app, &admin, "axial").await.id.to_string();
    let second = import_folder(&app, &admin, "sagittal").await.id.to_string();

    let artifacts: CaseArtifacts = app.get_json(&labeler, &format!("/cases/{first}/artifacts")).await;
    let pseudonym = artifacts.series.unwrap().pseudonym;
    assert!(pseudonym.starts_with("P-") && pseudonym.len() == 12, "{pseudonym}");
    let other: CaseArtifacts = app.get_json(&labeler, &format!("/cases/{second}/artifacts")).await;
    assert_eq!(other.series.unwrap().pseudonym, pseudonym, "one patient, one pseudonym");
    // Nothing a labeler reads names the patient.
    for path in [
        format!("/cases/{first}/artifacts?history=true"),
        format!("/cases/{first}/overview"),
        "/worklist".to_string(),
        "/cases".to_string(),
    ] {
        let body = app.client.get(app.url(&path)).bearer_auth(&labeler).send().await.unwrap().text().await.unwrap();
        for identifier in ["Test^Patient", "SEGLAB-TEST-1", "ACC-4242", "19700101", "Seglab General", "Referring"] {
            assert!(!body.contains(identifier), "{path} shows {identifier}: {body}");
        }
    }
    let total = |worklist: Value| worklist["total"].as_u64().unwrap();
    assert_eq!(total(app.get_json(&labeler, &format!("/worklist?patient={pseudonym}")).await), 2);
    assert_eq!(total(app.get_json(&labeler, "/worklist?patient=P-0000000000").await), 0);

    // Admins read who it is; each reading is audited.
    let refused =
        app.client.get(app.url(&format!("/cases/{first}/patient"))).bearer_auth(&labeler).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let record: Value = app.get_json(&admin, &format!("/cases/{first}/patient")).await;
    assert_eq!(record["patient_name"], "Test^Patient");
    assert_eq!(record["patient_id"], "SEGLAB-TEST-1");
    assert_eq!(record["study_date"], "20260101");
    assert_eq!(record["accession_number"], "ACC-4242");
    assert_eq!(record["institution_name"], "Seglab General Hospital");
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'patient_read'").await, 1);

    // A deployment that keeps no identifiers stores none; the pseudonym stays the same.
    let app = app.restart(|config| config.dicom_identifiers = seglab::server::config::IdentifierPolicy::Drop).await;
    let admin = app.user("admin2", &[Role::Admin]).await;
    let third = import_folder(&app, &admin, "coronal").await.id.to_string();
    let artifacts: CaseArtifacts = app.get_json(&admin, &format!("/cases/{third}/artifacts")).await;
    assert_eq!(artifacts.series.unwrap().pseudonym, pseudonym);
    let record: Value = app.get_json(&admin, &format!("/cases/{third}/patient")).await;
    assert!(record.as_object().unwrap().values().all(Value::is_null), "{record}");
    assert_eq!(app.count("SELECT COUNT(*) FROM case_dicom_identity").await, 2);
    app.stop().await;
}

#[tokio::test]
async fn hostile_uploads_get_a_bounded_refusal_and_store_nothing() {
    // A budget of 200,000 voxels: a zip may inflate to 400 KB of voxels and 64 MiB of headers.
    let app = TestApp::spawn_configured(|config| config.max_volume_voxels = 200_000, |_| {}).await;
    let token = app.user("coordinator", &[Role::MlEngineer]).await;
    let refusals = [
        // 128 MiB of zeros in a zip of about 130 KB: inflation stops at the bound.
        ("zip_bomb", "inflates to more than"),
        // A header claiming 65535 × 65535 pixels: refused before any pixel is decoded.
        ("huge_header", "budget"),
        // One slice's pixel data cut in half.
        ("truncated", "file005.dcm"),
    ];
    for (folder, reason) in refusals {
        let response = post_files(&app, &token, &files_in(&scenario(folder)), None).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{folder}");
        let message = response.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains(reason), "{folder}: {message}");
    }
    assert_nothing_stored(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn a_dataset_export_writes_the_masks_of_dicom_cases_as_seg_too() {
    let app = TestApp::spawn().await;
    let admin = app.user("root", &[Role::Labeler, Role::Admin]).await;
    let reviewer = app.user("rita", &[Role::Reviewer]).await;
    let dicom_case = import_labelled(&app, &admin, "oblique").await;
    // One label map for the snapshot: the DICOM case's.
    let nifti_case = crate::fixtures::CaseBuilder::new("nifti")
        .labels(&[(1, "liver"), (2, "tumour"), (3, "other")])
        .import(&app)
        .await;
    let mask = two_structures();
    let edits = seglab::edits::MaskEdits::diff(&vec![0u8; mask.len()], &mask).encode();
    let base = app.head_mask_ref(&dicom_case).await;
    assert_eq!(app.post_label(&admin, &dicom_case, &base, &edits).await.status(), StatusCode::CREATED);
    let nifti_base = app.head_mask_ref(&nifti_case).await;
    let nifti_edit = seglab::edits::MaskEdits::diff(&[0u8; 4], &[1u8; 4]).encode();
    assert_eq!(app.post_label(&admin, &nifti_case, &nifti_base, &nifti_edit).await.status(), StatusCode::CREATED);
    for case_id in [&dicom_case, &nifti_case] {
        for (status, token) in [("submitted", &admin), ("approved", &reviewer)] {
            assert_eq!(app.set_case_status(token, case_id, status).await.status(), StatusCode::OK);
        }
    }
    let response = app
        .client
        .post(app.url("/datasets"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({ "name": "dicom", "test_fraction": 0.5, "seed": 3 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "{}", response.text().await.unwrap());
    let dataset = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();

    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("export");
    let output =
        app.run_cli(&["dataset", "export", &dataset, dir.to_str().unwrap(), "--format", "monai", "--dicom-seg"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let index: Value = serde_json::from_slice(&std::fs::read(dir.join("seglab_manifest.json")).unwrap()).unwrap();
    let cases = index["cases"].as_array().unwrap();
    let entry = |case_id: &str| cases.iter().find(|c| c["case_id"] == case_id).unwrap().clone();
    assert_eq!(entry(&nifti_case)["segmentation"], Value::Null, "a NIfTI case has no series to reference");
    let dicom_entry = entry(&dicom_case);
    let seg = dir.join(dicom_entry["segmentation"].as_str().unwrap());
    let label = dir.join(dicom_entry["label"].as_str().unwrap());
    let source = scenario("oblique");
    let read = python_json("read_seg.py", &[seg.as_ref(), label.as_ref(), source.as_ref(), SEG_LABELS.as_ref()]);
    assert_eq!(read["mismatched"], 0, "{read}");
    assert_eq!(read["labelled"], mask.iter().filter(|&&v| v > 0).count() as u64);
    app.stop().await;
}

#[tokio::test]
async fn a_file_input_left_empty_in_a_browser_form_sends_no_file() {
    let app = TestApp::spawn().await;
    let token = app.user("coordinator", &[Role::MlEngineer]).await;
    // A browser sends an untouched file input as an empty part with an empty file name.
    let mut form = Form::new().part("files", Part::bytes(Vec::new()).file_name(""));
    for file in files_in(&scenario("sagittal")) {
        form = form.part("files", Part::bytes(std::fs::read(file).unwrap()).file_name("slice.dcm"));
    }
    let response = app.client.post(app.url("/cases/dicom")).bearer_auth(&token).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "{}", response.text().await.unwrap());
    // Only empty parts: no file at all.
    let form = Form::new().part("files", Part::bytes(Vec::new()).file_name(""));
    let response = app.client.post(app.url("/cases/dicom")).bearer_auth(&token).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    app.stop().await;
}
