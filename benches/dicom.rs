//! DICOM in and out at hospital size: a 512 × 512 × 300 CT series (one file per slice, written
//! by `benches/dicom_ct.py` from the MNI152 template) imported from local files, against
//! dcm2niix converting the same files on the same machine; imported from a real Orthanc over
//! DICOMweb; and a three-label mask of it exported as DICOM SEG.
//!
//! Run: `cargo bench --features ssr --bench dicom` (after `.ci/setup test`: Python with
//! pydicom, dcm2niix, Orthanc).

// A benchmark stops at the first failure: it unwraps.
#![allow(clippy::unwrap_used)]

#[path = "../tests/api/common.rs"]
mod common;
#[path = "../tests/api/orthanc.rs"]
mod orthanc;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::TestApp;
use seglab::api::PacsImport;
use seglab::edits::MaskEdits;
use seglab::server::dicom::headers::SourceFile;
use seglab::server::dicom::SeriesChoice;
use seglab::server::identity::Role;
use seglab::server::services::dicom_import::{import_dicom, DicomImport};
use seglab::server::services::pacs;

const RUNS: usize = 3;

fn median(mut seconds: Vec<f64>) -> f64 {
    seconds.sort_by(f64::total_cmp);
    seconds[seconds.len() / 2]
}

fn files(folder: &Path) -> Vec<SourceFile> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(folder).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths.into_iter().map(|path| SourceFile { name: path.display().to_string(), path }).collect()
}

/// dcm2niix on the folder, `-z y` (gzip, as seglab stores) or `-z n`: median seconds.
fn dcm2niix(folder: &Path, gzip: bool) -> f64 {
    let times = (0..RUNS)
        .map(|_| {
            let out = tempfile::tempdir().unwrap();
            let start = Instant::now();
            let status = Command::new("dcm2niix")
                .args(["-z", if gzip { "y" } else { "n" }, "-b", "n", "-f", "bench", "-o"])
                .arg(out.path())
                .arg(folder)
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(status.success());
            start.elapsed().as_secs_f64()
        })
        .collect();
    median(times)
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let series = tempfile::tempdir().unwrap();
    let status = Command::new(root.join("target/pyenv/bin/python"))
        .arg(root.join("benches/dicom_ct.py"))
        .arg(root.join("target/testdata/mni152_t1.nii.gz"))
        .arg(series.path())
        .status()
        .unwrap();
    assert!(status.success(), "benches/dicom_ct.py failed");
    let folder = series.path();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut orthanc = orthanc::Orthanc::start().await;
        orthanc.upload(folder).await;
        // Each import on a fresh instance: one that holds the series answers with its case.
        let instance = || async {
            let url = orthanc.dicomweb();
            TestApp::spawn_configured(
                |config| {
                    config.dicomweb.dicomweb_url = Some(url);
                    config.dicomweb.dicomweb_username = Some(orthanc::USER.into());
                    config.dicomweb.dicomweb_password = Some(orthanc::PASSWORD.into());
                },
                |_| {},
            )
            .await
        };

        // Local files: conversion, slabs stored, database rows, as `seglab import-dicom` does.
        let mut local = Vec::new();
        let mut last = None;
        for _ in 0..RUNS {
            let app = instance().await;
            let labels = vec![(1, "liver".into()), (2, "kidney".into()), (3, "tumour".into())];
            let import = DicomImport { files: files(folder), series: SeriesChoice::Only, name: None, labels };
            let start = Instant::now();
            let cases = import_dicom(&app.state, None, import).await.unwrap();
            local.push(start.elapsed().as_secs_f64());
            if let Some((previous, _)) = last.replace((app, cases[0].id.to_string())) {
                TestApp::stop(previous).await;
            }
        }
        let local = median(local);
        let (app, case_id) = last.unwrap();
        let token = app.user("bench", &[Role::Admin, Role::Labeler]).await;

        // From Orthanc: QIDO-RS for the instances, WADO-RS for each, then the same import.
        let (study, series_uid): (String, String) =
            sqlx::query_as("SELECT study_instance_uid, series_instance_uid FROM case_dicom LIMIT 1")
                .fetch_one(&app.state.db.pool)
                .await
                .unwrap();
        let request =
            PacsImport { study_instance_uid: study, series_instance_uid: series_uid, name: None, labels: None };
        let mut from_pacs = Vec::new();
        for _ in 0..RUNS {
            let fresh = instance().await;
            let start = Instant::now();
            pacs::import(&fresh.state, "bench", &request, &Default::default()).await.unwrap();
            from_pacs.push(start.elapsed().as_secs_f64());
            fresh.stop().await;
        }
        let from_pacs = median(from_pacs);
        orthanc.stop();

        // SEG export of a three-label mask: three balls across most of the volume.
        let (ni, nj, nk) = (512usize, 512usize, 300usize);
        let mut mask = vec![0u8; ni * nj * nk];
        for (value, (ci, cj, ck, r)) in
            [(1u8, (256i64, 256i64, 150i64, 150i64)), (2, (200, 220, 140, 50)), (3, (330, 300, 170, 40))]
        {
            for k in (ck - r).max(0)..(ck + r).min(nk as i64) {
                for j in (cj - r)..(cj + r) {
                    for i in (ci - r)..(ci + r) {
                        if (i - ci).pow(2) + (j - cj).pow(2) + (k - ck).pow(2) <= r * r {
                            mask[i as usize + ni * (j as usize + nj * k as usize)] = value;
                        }
                    }
                }
            }
        }
        let base = app.head_mask_ref(&case_id).await;
        let edits = MaskEdits::diff(&vec![0u8; mask.len()], &mask).encode();
        assert_eq!(app.post_label(&token, &case_id, &base, &edits).await.status(), reqwest::StatusCode::CREATED);
        let labelled = app.head_mask_ref(&case_id).await;
        let mut export = Vec::new();
        let mut seg_bytes = 0;
        for _ in 0..5 {
            let start = Instant::now();
            let response = app
                .client
                .get(app.url(&format!("/{labelled}?format=dicom-seg")))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), reqwest::StatusCode::OK);
            seg_bytes = response.bytes().await.unwrap().len();
            export.push(start.elapsed().as_secs_f64());
        }
        let export = median(export);
        app.stop().await;

        let gz = dcm2niix(folder, true);
        let raw = dcm2niix(folder, false);
        println!("512 × 512 × 300 CT, 300 files (medians of {RUNS} runs; SEG of 5):");
        println!("| step | seconds |");
        println!("|---|---|");
        println!("| seglab import, local files (converted, stored as slabs, recorded) | {local:.2} |");
        println!("| dcm2niix -z y (gzip) | {gz:.2} |");
        println!("| dcm2niix -z n (uncompressed) | {raw:.2} |");
        println!("| seglab import from Orthanc over DICOMweb | {from_pacs:.2} ({:.2}× local) |", from_pacs / local);
        println!("| SEG export, three labels ({:.1} MB) | {export:.3} |", seg_bytes as f64 / 1e6);
    });
}
