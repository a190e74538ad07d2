//! Dataset snapshots: an immutable list of approved cases (the image and the approved mask
//! version, each with its SHA-256, the label map, and a train/validation/test split drawn
//! deterministically from a seed), made by ML engineers and admins; its manifest with presigned
//! URLs for scripts; and its export as nnU-Net v2 raw data or a MONAI datalist, every file
//! checked against its SHA-256.
//!
//! A snapshot is never changed (database triggers refuse it); a new one is a new version of
//! the name. Its version is computed in the insert itself, and `UNIQUE (name, version)` leaves
//! two concurrent requests one version each.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::audit::{self, AuditAction, AuditEvent};
use super::registry::unique_conflict;
use super::{dicom_export, mask_versions};
use crate::api::{
    CaseId, CaseStatus, DatasetSummary, LabelDef, Manifest, ManifestCase, ManifestFile, ManifestReading, MaskRef,
    NewDataset, Split, UserName, MAX_LISTED_CASES,
};
use crate::server::clock::now_ms;
use crate::server::error::AppError;
use crate::server::identity::{Role, User};
use crate::server::state::AppState;

const MAX_NAME_CHARS: usize = 100;

/// One approved case as frozen into a snapshot: a `dataset_cases` row.
#[derive(sqlx::FromRow)]
struct Frozen {
    case_id: CaseId,
    case_name: String,
    image_ref: String,
    image_sha256: String,
    mask_ref: String,
    mask_sha256: String,
    split: Split,
}

/// One reading of a case as frozen into a snapshot: a `dataset_readings` row.
#[derive(sqlx::FromRow)]
struct FrozenReading {
    case_id: CaseId,
    position: i64,
    reader: UserName,
    mask_ref: String,
    mask_sha256: String,
}

/// The readings of a case read by several readers, in the order they were taken, each with
/// its file's SHA-256 (the file written now if it never was).
async fn readings_of(state: &AppState, case_id: &CaseId) -> Result<Vec<FrozenReading>, AppError> {
    let rows: Vec<(UserName, String, String)> = sqlx::query_as(
        "SELECT u.username, g.head_mask_ref, o.sha256 FROM readings g JOIN users u ON u.id = g.reader_id
         JOIN objects o ON o.object_ref = g.head_mask_ref
         WHERE g.case_id = $1 AND g.submitted_at IS NOT NULL ORDER BY g.created_at, g.id",
    )
    .bind(case_id)
    .fetch_all(&state.db.pool)
    .await?;
    let mut readings = Vec::with_capacity(rows.len());
    for (position, (reader, mask_ref, mut mask_sha256)) in rows.into_iter().enumerate() {
        if mask_sha256.is_empty() {
            mask_sha256 = mask_versions::ensure_file(state, &mask_ref).await?;
        }
        readings.push(FrozenReading {
            case_id: case_id.clone(),
            position: position as i64,
            reader,
            mask_ref,
            mask_sha256,
        });
    }
    Ok(readings)
}

/// The split a case falls in: a hash of the seed and the case id, as a fraction in [0, 1).
fn drawn_split(seed: u64, case_id: &CaseId, validation: f64, test: f64) -> Split {
    let digest = Sha256::new().chain_update(seed.to_le_bytes()).chain_update(case_id.as_str().as_bytes()).finalize();
    let at = u64::from_le_bytes(digest[..8].try_into().expect("a SHA-256 has 8 bytes")) as f64 / 2f64.powi(64);
    if at < test {
        Split::Test
    } else if at < test + validation {
        Split::Validation
    } else {
        Split::Train
    }
}

fn check_request(request: &NewDataset) -> Result<(), AppError> {
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(AppError::Unprocessable(format!("a dataset name holds 1–{MAX_NAME_CHARS} characters")));
    }
    let listed = [("case_ids", request.case_ids.as_ref().map_or(0, Vec::len)), ("splits", request.splits.len())];
    if let Some((field, entries)) = listed.into_iter().find(|(_, entries)| *entries > MAX_LISTED_CASES) {
        return Err(AppError::Unprocessable(format!(
            "{field} lists {entries} cases; at most {MAX_LISTED_CASES} are allowed"
        )));
    }
    let fractions = [request.validation_fraction, request.test_fraction];
    if fractions.iter().any(|f| !f.is_finite() || *f < 0.0) || fractions.iter().sum::<f64>() > 1.0 {
        return Err(AppError::Unprocessable(
            "validation_fraction and test_fraction are 0–1 and add up to at most 1".into(),
        ));
    }
    Ok(())
}

/// `POST /datasets`: freezes the approved cases the request selects.
pub async fn create(state: &AppState, user: &User, request: &NewDataset) -> Result<DatasetSummary, AppError> {
    user.require_any(&Role::COORDINATORS, "making dataset snapshots")?;
    check_request(request)?;
    #[derive(sqlx::FromRow)]
    struct Approved {
        id: CaseId,
        name: String,
        search_name: String,
        labels_json: String,
        image_ref: String,
        approved_mask_ref: String,
        image_sha256: String,
        mask_sha256: String,
    }
    let rows: Vec<Approved> = sqlx::query_as(
        "SELECT c.id, c.name, c.search_name, c.labels_json, c.image_ref, c.approved_mask_ref, i.sha256 AS image_sha256,
                m.sha256 AS mask_sha256
         FROM cases c JOIN objects i ON i.object_ref = c.image_ref JOIN objects m ON m.object_ref = c.approved_mask_ref
         WHERE c.status = $1 ORDER BY c.created_at, c.id",
    )
    .bind(CaseStatus::Approved)
    .fetch_all(&state.db.pool)
    .await?;
    let search = request.name_contains.as_deref().map(|text| text.trim().to_lowercase());
    // Sets, not scans of the lists: linear in the approved cases plus the ids named.
    let wanted: Option<HashSet<&CaseId>> = request.case_ids.as_ref().map(|ids| ids.iter().collect());
    let selected: Vec<Approved> = rows
        .into_iter()
        .filter(|row| wanted.as_ref().is_none_or(|ids| ids.contains(&row.id)))
        .filter(|row| search.as_deref().is_none_or(|text| row.search_name.contains(text)))
        .collect();
    let selected_ids: HashSet<&CaseId> = selected.iter().map(|row| &row.id).collect();
    for id in request.case_ids.iter().flatten().chain(request.splits.keys()) {
        if !selected_ids.contains(id) {
            return Err(AppError::Unprocessable(format!("case {id} is not an approved case this snapshot selects")));
        }
    }
    if selected.is_empty() {
        return Err(AppError::Unprocessable("no approved case matches; approve cases first".into()));
    }

    let mut label_map: BTreeMap<u8, String> = BTreeMap::new();
    let mut frozen = Vec::with_capacity(selected.len());
    let mut readings = Vec::new();
    for row in selected {
        let case_id = row.id;
        let labels: Vec<LabelDef> = serde_json::from_str(&row.labels_json).map_err(AppError::internal)?;
        for label in labels {
            match label_map.get(&label.value) {
                Some(name) if *name != label.name => {
                    return Err(AppError::Unprocessable(format!(
                        "label {} is {name:?} in one case and {:?} in case {case_id}: a snapshot needs one label map",
                        label.value, label.name
                    )))
                }
                _ => label_map.insert(label.value, label.name),
            };
        }
        let split =
            request.splits.get(&case_id).copied().unwrap_or_else(|| {
                drawn_split(request.seed, &case_id, request.validation_fraction, request.test_fraction)
            });
        let mut mask_sha256 = row.mask_sha256;
        if mask_sha256.is_empty() {
            // A version saved in slabs only: its file is written now, as a snapshot lists files.
            mask_sha256 = mask_versions::ensure_file(state, &row.approved_mask_ref).await?;
        }
        readings.extend(readings_of(state, &case_id).await?);
        frozen.push(Frozen {
            case_name: row.name,
            image_ref: row.image_ref,
            image_sha256: row.image_sha256,
            mask_ref: row.approved_mask_ref,
            mask_sha256,
            split,
            case_id,
        });
    }

    let id = Uuid::new_v4().to_string();
    let name = request.name.trim();
    let mut tx = state.db.pool.begin().await?;
    // The write comes first, with the version computed in it.
    let version: i64 = sqlx::query_scalar(
        "INSERT INTO datasets (id, name, version, created_by, created_at, request_json, label_map_json)
         SELECT $1, $2, COALESCE(MAX(version), 0) + 1, $3, $4, $5, $6 FROM datasets WHERE name = $2
         RETURNING version",
    )
    .bind(&id)
    .bind(name)
    .bind(&user.id)
    .bind(now_ms())
    .bind(serde_json::to_string(request).map_err(AppError::internal)?)
    .bind(serde_json::to_string(&label_map).map_err(AppError::internal)?)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| unique_conflict(e, format!("another snapshot of {name} was made at the same moment; try again")))?;
    for case in &frozen {
        sqlx::query(
            "INSERT INTO dataset_cases (dataset_id, case_id, case_name, image_ref, image_sha256, mask_ref, mask_sha256, split)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(&case.case_id)
        .bind(&case.case_name)
        .bind(&case.image_ref)
        .bind(&case.image_sha256)
        .bind(&case.mask_ref)
        .bind(&case.mask_sha256)
        .bind(case.split)
        .execute(&mut *tx)
        .await?;
    }
    for reading in &readings {
        sqlx::query(
            "INSERT INTO dataset_readings (dataset_id, case_id, position, reader, mask_ref, mask_sha256)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(&reading.case_id)
        .bind(reading.position)
        .bind(&reading.reader)
        .bind(&reading.mask_ref)
        .bind(&reading.mask_sha256)
        .execute(&mut *tx)
        .await?;
    }
    let details = json!({ "dataset_id": id, "name": name, "version": version, "cases": frozen.len(),
                          "readings": readings.len() });
    audit::record(
        &mut tx,
        &state.db,
        AuditEvent { action: AuditAction::DatasetCreated, user_id: Some(&user.id), case_id: None, details },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(dataset_id = %id, name, version, cases = frozen.len(), "dataset snapshot made");
    summary(state, &id).await
}

/// A snapshot with how many of its cases each split holds.
#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: String,
    name: String,
    version: i64,
    created_by: UserName,
    created_at: i64,
    train: i64,
    validation: i64,
    test: i64,
}

impl From<SummaryRow> for DatasetSummary {
    fn from(row: SummaryRow) -> DatasetSummary {
        DatasetSummary {
            id: row.id,
            name: row.name,
            version: row.version,
            created_by: row.created_by,
            created_at_ms: row.created_at,
            train: row.train as u64,
            validation: row.validation as u64,
            test: row.test as u64,
        }
    }
}

/// The statement reading [`SummaryRow`]s, `condition` and `order` added; it binds the three
/// splits as `$1` to `$3`.
fn summary_sql(condition: &str, order: &str) -> String {
    format!(
        "SELECT d.id, d.name, d.version, u.username AS created_by, d.created_at,
                SUM(CASE WHEN s.split = $1 THEN 1 ELSE 0 END) AS train,
                SUM(CASE WHEN s.split = $2 THEN 1 ELSE 0 END) AS validation,
                SUM(CASE WHEN s.split = $3 THEN 1 ELSE 0 END) AS test
         FROM datasets d JOIN users u ON u.id = d.created_by JOIN dataset_cases s ON s.dataset_id = d.id
         {condition} GROUP BY d.id, d.name, d.version, u.username, d.created_at {order}"
    )
}

fn summary_query(sql: &str) -> sqlx::query::QueryAs<'_, sqlx::Any, SummaryRow, sqlx::any::AnyArguments<'_>> {
    sqlx::query_as(sql).bind(Split::Train).bind(Split::Validation).bind(Split::Test)
}

async fn summary(state: &AppState, id: &str) -> Result<DatasetSummary, AppError> {
    let sql = summary_sql("WHERE d.id = $4", "");
    let row = summary_query(&sql)
        .bind(id)
        .fetch_optional(&state.db.pool)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("dataset {id}")))?;
    Ok(row.into())
}

/// `GET /datasets`: every snapshot, newest first.
pub async fn list(state: &AppState) -> Result<Vec<DatasetSummary>, AppError> {
    let sql = summary_sql("", "ORDER BY d.created_at DESC, d.name, d.version DESC");
    let rows = summary_query(&sql).fetch_all(&state.db.pool).await?;
    Ok(rows.into_iter().map(DatasetSummary::from).collect())
}

/// `GET /datasets/{id}/manifest`: the snapshot's cases with presigned URLs.
pub async fn manifest(state: &AppState, id: &str) -> Result<Manifest, AppError> {
    let dataset = summary(state, id).await?;
    let label_map_json: String = sqlx::query_scalar("SELECT label_map_json FROM datasets WHERE id = $1")
        .bind(id)
        .fetch_one(&state.db.pool)
        .await?;
    let rows: Vec<Frozen> = sqlx::query_as(
        "SELECT case_id, case_name, image_ref, image_sha256, mask_ref, mask_sha256, split FROM dataset_cases
         WHERE dataset_id = $1 ORDER BY case_name, case_id",
    )
    .bind(id)
    .fetch_all(&state.db.pool)
    .await?;
    let frozen_readings: Vec<FrozenReading> = sqlx::query_as(
        "SELECT case_id, position, reader, mask_ref, mask_sha256 FROM dataset_readings WHERE dataset_id = $1
         ORDER BY case_id, position",
    )
    .bind(id)
    .fetch_all(&state.db.pool)
    .await?;
    let file = |object_ref: String, sha256: String| async move {
        Ok::<_, AppError>(ManifestFile { url: state.store.presign_get(&object_ref)?, object_ref, sha256 })
    };
    let mut readings_of: BTreeMap<CaseId, Vec<ManifestReading>> = BTreeMap::new();
    for reading in frozen_readings {
        let mask = file(reading.mask_ref, reading.mask_sha256).await?;
        readings_of.entry(reading.case_id).or_default().push(ManifestReading { reader: reading.reader, mask });
    }
    let mut cases = Vec::with_capacity(rows.len());
    for row in rows {
        cases.push(ManifestCase {
            readings: readings_of.remove(&row.case_id).unwrap_or_default(),
            case_id: row.case_id,
            case_name: row.case_name,
            split: row.split,
            image: file(row.image_ref, row.image_sha256).await?,
            mask: file(row.mask_ref, row.mask_sha256).await?,
        });
    }
    Ok(Manifest { dataset, label_map: serde_json::from_str(&label_map_json).map_err(AppError::internal)?, cases })
}

/// The layout an export writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// nnU-Net v2 raw data: `imagesTr`, `labelsTr` (training and validation), `imagesTs`,
    /// `labelsTs` (test), `dataset.json`, and the split as `splits_final.json`.
    Nnunet,
    /// `images/`, `labels/` and a MONAI datalist `datalist.json` (training, validation, test).
    Monai,
}

/// Writes the snapshot into the empty (or new) folder `dir` in `format`, every file checked
/// against its SHA-256 before it is written; with `dicom_seg`, each non-empty mask of a case
/// imported from DICOM also as a Segmentation in `segmentations/`. `progress(done, total)`
/// after each case. Returns the number of cases written.
pub async fn export(
    state: &AppState,
    id: &str,
    dir: &Path,
    format: ExportFormat,
    dicom_seg: bool,
    mut progress: impl FnMut(usize, usize),
) -> Result<usize, AppError> {
    let manifest = manifest(state, id).await?;
    if dir.exists() && std::fs::read_dir(dir).map_err(AppError::internal)?.next().is_some() {
        return Err(AppError::Conflict(format!("{} is not empty; export into a new or empty folder", dir.display())));
    }
    let folders: &[&str] = match format {
        ExportFormat::Nnunet => &["imagesTr", "labelsTr", "imagesTs", "labelsTs"],
        ExportFormat::Monai => &["images", "labels"],
    };
    for folder in folders.iter().chain(dicom_seg.then_some(&"segmentations")) {
        tokio::fs::create_dir_all(dir.join(folder)).await.map_err(AppError::internal)?;
    }
    let total = manifest.cases.len();
    let mut entries = Vec::with_capacity(total);
    for (n, case) in manifest.cases.iter().enumerate() {
        let identifier = format!("case_{:04}", n + 1);
        let (image_path, label_path) = match (format, case.split) {
            (ExportFormat::Nnunet, Split::Test) => {
                (format!("imagesTs/{identifier}_0000.nii.gz"), format!("labelsTs/{identifier}.nii.gz"))
            }
            (ExportFormat::Nnunet, _) => {
                (format!("imagesTr/{identifier}_0000.nii.gz"), format!("labelsTr/{identifier}.nii.gz"))
            }
            (ExportFormat::Monai, _) => (format!("images/{identifier}.nii.gz"), format!("labels/{identifier}.nii.gz")),
        };
        // The readings go beside the adjudicated label in MONAI's layout (nnU-Net has no place
        // for them).
        let reading_paths: Vec<String> = match format {
            ExportFormat::Monai => {
                (1..=case.readings.len()).map(|n| format!("labels/{identifier}_reader{n}.nii.gz")).collect()
            }
            ExportFormat::Nnunet => Vec::new(),
        };
        let files = [(&case.image, &image_path), (&case.mask, &label_path)]
            .into_iter()
            .chain(case.readings.iter().map(|reading| &reading.mask).zip(&reading_paths));
        for (file, path) in files {
            let bytes = state.store.get(&file.object_ref).await?;
            let sha256 = hex::encode(Sha256::digest(&bytes));
            if sha256 != file.sha256 {
                return Err(AppError::internal(format!(
                    "{} of case {} has SHA-256 {sha256}, the snapshot recorded {}: the stored object changed",
                    file.object_ref, case.case_name, file.sha256
                )));
            }
            tokio::fs::write(dir.join(path), bytes).await.map_err(AppError::internal)?;
        }
        let mut segmentation_path = None;
        if dicom_seg {
            let mask_ref = MaskRef::parse(&case.mask.object_ref).map_err(AppError::internal)?;
            if let Some(Some(bytes)) = dicom_export::of_version(state, &case.case_id, &mask_ref, None).await? {
                let path = format!("segmentations/{identifier}.seg.dcm");
                tokio::fs::write(dir.join(&path), bytes).await.map_err(AppError::internal)?;
                segmentation_path = Some(path);
            }
        }
        entries.push((identifier, image_path, label_path, segmentation_path, reading_paths, case));
        progress(n + 1, total);
    }

    let in_split = |split: Split| entries.iter().filter(move |(.., case)| case.split == split);
    let write_json = |name: &str, value: serde_json::Value| {
        let text = serde_json::to_string_pretty(&value).expect("JSON values serialise");
        std::fs::write(dir.join(name), text).map_err(AppError::internal)
    };
    match format {
        ExportFormat::Nnunet => {
            let mut labels = serde_json::Map::new();
            labels.insert("background".into(), json!(0));
            for (value, name) in &manifest.label_map {
                labels.insert(name.clone(), json!(value));
            }
            let training = entries.iter().filter(|(.., case)| case.split != Split::Test).count();
            write_json(
                "dataset.json",
                json!({
                    "name": manifest.dataset.name,
                    "description": format!("seglab dataset {} version {} ({})", manifest.dataset.name, manifest.dataset.version, id),
                    "channel_names": { "0": "image" },
                    "labels": labels,
                    "numTraining": training,
                    "file_ending": ".nii.gz",
                }),
            )?;
            let identifiers = |split| in_split(split).map(|(identifier, ..)| identifier.clone()).collect::<Vec<_>>();
            write_json(
                "splits_final.json",
                json!([{ "train": identifiers(Split::Train), "val": identifiers(Split::Validation) }]),
            )?;
        }
        ExportFormat::Monai => {
            let list = |split| {
                in_split(split)
                    .map(|(_, image, label, _, readings, _)| {
                        // MONAI datalist keys for training with label uncertainty.
                        let mut entry = json!({ "image": image, "label": label });
                        for (n, path) in readings.iter().enumerate() {
                            entry[format!("label_reader{}", n + 1)] = json!(path);
                        }
                        entry
                    })
                    .collect::<Vec<_>>()
            };
            write_json(
                "datalist.json",
                json!({
                    "labels": manifest.label_map,
                    "training": list(Split::Train),
                    "validation": list(Split::Validation),
                    "test": list(Split::Test),
                }),
            )?;
        }
    }
    // Which file is which case, with the checked SHA-256s: the export traces back to the snapshot.
    let cases: Vec<_> = entries
        .iter()
        .map(|(identifier, image, label, segmentation, readings, case)| {
            let readings: Vec<_> = case
                .readings
                .iter()
                .zip(readings)
                .map(|(reading, path)| json!({ "reader": reading.reader, "label": path, "label_sha256": reading.mask.sha256 }))
                .collect();
            json!({
                "identifier": identifier, "case_id": case.case_id, "case_name": case.case_name, "split": case.split,
                "image": image, "image_sha256": case.image.sha256, "label": label, "label_sha256": case.mask.sha256,
                "segmentation": segmentation, "readings": readings,
            })
        })
        .collect();
    write_json(
        "seglab_manifest.json",
        json!({ "dataset": manifest.dataset, "label_map": manifest.label_map, "cases": cases }),
    )?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_are_drawn_from_the_seed_and_the_case_alone() {
        let ids: Vec<CaseId> = (0..2000).map(|_| CaseId::random()).collect();
        let draw = |seed| ids.iter().map(|id| drawn_split(seed, id, 0.2, 0.1)).collect::<Vec<_>>();
        assert_eq!(draw(7), draw(7), "the same seed gives the same split");
        assert_ne!(draw(7), draw(8));
        let tests = draw(7).iter().filter(|s| **s == Split::Test).count();
        let validations = draw(7).iter().filter(|s| **s == Split::Validation).count();
        assert!((150..250).contains(&tests), "{tests} of 2000 near 10 %");
        assert!((340..460).contains(&validations), "{validations} of 2000 near 20 %");
        assert!(ids.iter().all(|id| drawn_split(1, id, 0.0, 0.0) == Split::Train));
    }
}
