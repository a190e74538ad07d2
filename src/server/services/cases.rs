//! Importing a case: the image (and mask) checked, stored in slabs and recorded with its first
//! mask version, label counts and a job per active model, in one transaction. What a case
//! shows is read by `case_view`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::audit::{self, AuditAction, AuditEvent};
use super::jobs::{self, Trigger};
use super::registry;
use super::volume_slabs::{self, PackedSlab, SlabManifest};
use crate::api::{ArtifactKind, CaseId, CaseSummary, ConceptCode, LabelDef, MaskRef};
use crate::mask_ops::label_counts;
use crate::nifti_io::{gzip, gzip_empty_mask, gzip_mask, mask_header, Volume, VolumeMeta, VoxelType};
use crate::server::clock::now_ms;
use crate::server::dicom::headers::{PatientRecord, SeriesIdentity};
use crate::server::dicom::{SeriesGeometry, SourceImage};
use crate::server::error::AppError;
use crate::server::scratch::ScratchFile;
use crate::server::state::AppState;
use crate::server::telemetry;
use crate::slabs::{inspect, SlabGrid, SlabKind};

/// Distinct colours for label values 1, 2, … (cycled).
const LABEL_COLORS: [&str; 8] =
    ["#e6194b", "#3cb44b", "#4363d8", "#ffe119", "#f58231", "#911eb4", "#42d4f4", "#f032e6"];

/// A case as it arrives: its files, validated before anything is stored.
pub struct NewCase {
    pub name: String,
    pub image: CaseFile,
    pub mask: Option<CaseFile>,
    /// Named labels; values present in the mask but not named here get a default name.
    pub labels: Vec<(u8, String)>,
    /// The DICOM series the image was converted from, if it was.
    pub dicom: Option<DicomSource>,
}

/// What a case keeps of the DICOM series it was imported from.
pub struct DicomSource {
    pub identity: SeriesIdentity,
    /// One per slice, in the volume's k order.
    pub source_images: Vec<SourceImage>,
    pub geometry: SeriesGeometry,
    /// What labelers see of the patient.
    pub pseudonym: String,
    /// Who the patient is, stored for admins only; `None` where the deployment keeps no
    /// identifiers (and when read back: only `patient_record` reads it).
    pub patient: Option<PatientRecord>,
}

/// One of a new case's files: in memory (demo content, tests), or on disk (uploads and the
/// command line), where the image is checked and stored without ever being held in memory.
pub enum CaseFile {
    Bytes(Vec<u8>),
    Path(PathBuf),
}

impl From<Vec<u8>> for CaseFile {
    fn from(bytes: Vec<u8>) -> CaseFile {
        CaseFile::Bytes(bytes)
    }
}

impl CaseFile {
    fn unreadable(path: &Path, err: std::io::Error) -> AppError {
        AppError::BadRequest(format!("cannot read {}: {err}", path.display()))
    }

    fn reader(&self) -> Result<Box<dyn BufRead + '_>, AppError> {
        Ok(match self {
            CaseFile::Bytes(bytes) => Box::new(&bytes[..]),
            CaseFile::Path(path) => Box::new(BufReader::new(File::open(path).map_err(|e| Self::unreadable(path, e))?)),
        })
    }

    fn into_bytes(self) -> Result<Vec<u8>, AppError> {
        match self {
            CaseFile::Bytes(bytes) => Ok(bytes),
            CaseFile::Path(path) => std::fs::read(&path).map_err(|e| Self::unreadable(&path, e)),
        }
    }

    fn is_gzip(&self) -> Result<bool, AppError> {
        Ok(self.reader()?.fill_buf().map_err(AppError::internal)?.starts_with(&[0x1f, 0x8b]))
    }

    /// The file as stored: gzipped (level 6) unless it already is, with its size and SHA-256.
    fn into_stored_body(self, scratch: &Path) -> Result<(Body, i64, String), AppError> {
        let body = match (self.is_gzip()?, self) {
            (true, CaseFile::Bytes(bytes)) => Body::Bytes(bytes),
            (true, CaseFile::Path(path)) => Body::Path(path),
            (false, CaseFile::Bytes(bytes)) => Body::Bytes(gzip(&bytes, 6)),
            (false, file) => {
                let (output, out) = ScratchFile::create(scratch).map_err(AppError::internal)?;
                let mut encoder = flate2::write::GzEncoder::new(BufWriter::new(out), flate2::Compression::new(6));
                std::io::copy(&mut file.reader()?, &mut encoder).map_err(AppError::internal)?;
                encoder.finish().and_then(|mut out| out.flush()).map_err(AppError::internal)?;
                Body::Scratch(output)
            }
        };
        let (size, sha256) = body.size_and_sha256()?;
        Ok((body, size, sha256))
    }
}

/// What an object is stored from.
enum Body {
    Bytes(Vec<u8>),
    /// A file someone else owns (an upload, a file named on the command line).
    Path(PathBuf),
    /// A file made for this import, removed with it.
    Scratch(ScratchFile),
}

impl Body {
    /// The stored file, read from its start.
    fn reader(&self) -> Result<Box<dyn BufRead + Send>, AppError> {
        let path = match self {
            Body::Bytes(bytes) => return Ok(Box::new(std::io::Cursor::new(bytes.clone()))),
            Body::Path(path) => path.as_path(),
            Body::Scratch(file) => file.path(),
        };
        Ok(Box::new(BufReader::new(File::open(path).map_err(AppError::internal)?)))
    }

    fn size_and_sha256(&self) -> Result<(i64, String), AppError> {
        let path = match self {
            Body::Bytes(bytes) => return Ok((bytes.len() as i64, hex::encode(Sha256::digest(bytes)))),
            Body::Path(path) => path.as_path(),
            Body::Scratch(file) => file.path(),
        };
        let mut hasher = Sha256::new();
        let size = std::io::copy(&mut File::open(path).map_err(AppError::internal)?, &mut hasher)
            .map_err(AppError::internal)?;
        Ok((size as i64, hex::encode(hasher.finalize())))
    }
}

/// Parses a form's or a body's `labels` text, `1=liver,2=tumour`, as [`parse_label_names`].
pub(crate) fn parse_label_text(text: &str) -> Result<Vec<(u8, String)>, AppError> {
    let specs: Vec<String> = text.split(',').filter(|s| !s.trim().is_empty()).map(str::to_string).collect();
    parse_label_names(&specs)
}

/// Parses `1=liver` style label names, each optionally followed by its code, and before that
/// the code's category: `3=left kidney|SCT:64033007`, `4=mass|SCT:49755003|SCT:4147007`. The
/// codes stay on the name until the case's labels are made (`label_defs`).
pub(crate) fn parse_label_names(specs: &[String]) -> Result<Vec<(u8, String)>, AppError> {
    specs
        .iter()
        .map(|spec| {
            let (value, name) = spec
                .split_once('=')
                .ok_or_else(|| AppError::BadRequest(format!("label {spec:?} should look like 1=liver")))?;
            let value: u8 = value
                .trim()
                .parse()
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| AppError::BadRequest(format!("label value in {spec:?} must be 1–255")))?;
            let (bare, _, _) = split_codes(name).ok_or_else(|| {
                AppError::BadRequest(format!(
                    "label {spec:?}: a code is SCHEME:VALUE, as in 3=left kidney|SCT:64033007 (or |CATEGORY|TYPE)"
                ))
            })?;
            if bare.is_empty() || bare.len() > 64 {
                return Err(AppError::BadRequest(format!("label name in {spec:?} must be 1–64 characters")));
            }
            Ok((value, name.trim().to_string()))
        })
        .collect()
}

/// A label's name and its optional category and code: `name`, `name|TYPE`, `name|CATEGORY|TYPE`.
fn split_codes(spec: &str) -> Option<(String, Option<ConceptCode>, Option<ConceptCode>)> {
    let mut parts = spec.split('|');
    let name = parts.next().unwrap_or_default().trim().to_string();
    let codes: Vec<&str> = parts.collect();
    let parse = |text: &str| ConceptCode::parse(text);
    match codes.as_slice() {
        [] => Some((name, None, None)),
        [kind] => Some((name, None, Some(parse(kind)?))),
        [category, kind] => Some((name, Some(parse(category)?), Some(parse(kind)?))),
        _ => None,
    }
}

fn label_defs(named: &[(u8, String)], present: &BTreeSet<u8>) -> Vec<LabelDef> {
    let mut values: BTreeSet<u8> = named.iter().map(|(v, _)| *v).collect();
    values.extend(present.iter().copied().filter(|v| *v > 0));
    if values.is_empty() {
        values.insert(1);
    }
    values
        .into_iter()
        .map(|value| {
            let spec = named.iter().find(|(v, _)| *v == value).map(|(_, spec)| spec.as_str());
            let (name, category, code) =
                spec.and_then(split_codes).unwrap_or_else(|| (format!("label {value}"), None, None));
            LabelDef {
                value,
                name,
                color: LABEL_COLORS[(value as usize - 1) % LABEL_COLORS.len()].to_string(),
                code,
                category,
            }
        })
        .collect()
}

/// Checks an arriving case's files against each other and the voxel budget and prepares the
/// objects to store: the image (gzipped) and the first mask version, as a file and in slabs.
/// The image is read as a stream, never held whole; a mask is decoded (one byte per voxel).
#[allow(clippy::type_complexity)] // one use, right below
fn stored_objects(
    case_id: &CaseId,
    new: NewCase,
    max_voxels: u64,
    scratch: &Path,
) -> Result<(VolumeMeta, Vec<LabelDef>, BTreeMap<u8, u64>, [StoredObject; 2], (SlabManifest, Vec<PackedSlab>)), AppError>
{
    let image = inspect("image", new.image.reader()?, max_voxels)?;
    let dims = image.meta.dims;
    let grid = SlabGrid::new(dims, 1, SlabKind::Mask);
    let (mask_file, counts, mask_slabs) = match new.mask {
        Some(file) => {
            let mask = Volume::parse_within("mask", &file.into_bytes()?, max_voxels)?;
            if !image.same_geometry(&mask.info()) {
                return Err(AppError::Unprocessable(format!(
                    "mask geometry {:?} does not match image geometry {:?} (dims and affine must agree)",
                    mask.meta.dims, dims
                )));
            }
            let header = mask.header.clone();
            let labels = mask.into_labels("mask")?;
            let counts = label_counts(&labels);
            let packed: Vec<PackedSlab> =
                (0..grid.count()).map(|index| PackedSlab::pack(&labels[grid.byte_range(index)])).collect();
            let ids = packed.iter().map(|slab| slab.id().to_string()).collect();
            let manifest = SlabManifest::new(grid, &mask_header(&header, dims), ids);
            (gzip_mask(&header, dims, &labels, 6), counts, (manifest, packed))
        }
        None => {
            // Every slab is zeros: one stored slab (and one for a thinner last) serves them all.
            let last = grid.count() - 1;
            let mut packed = vec![PackedSlab::pack(&vec![0; grid.byte_range(0).len()])];
            if grid.byte_range(last).len() != grid.byte_range(0).len() {
                packed.push(PackedSlab::pack(&vec![0; grid.byte_range(last).len()]));
            }
            let ids = (0..grid.count())
                .map(|index| packed[usize::from(index == last && packed.len() == 2)].id().to_string())
                .collect();
            let manifest = SlabManifest::new(grid, &mask_header(&image.header, dims), ids);
            (gzip_empty_mask(&image.header, dims, 6), BTreeMap::new(), (manifest, packed))
        }
    };
    let present: BTreeSet<u8> = counts.keys().copied().collect();
    let label_defs = label_defs(&new.labels, &present);
    let mask_meta = VolumeMeta { voxel_type: VoxelType::Uint8, ..image.meta.clone() };
    let (image_body, image_size, image_sha256) = new.image.into_stored_body(scratch)?;
    let mask_body = Body::Bytes(mask_file);
    let (mask_size, mask_sha256) = mask_body.size_and_sha256()?;
    let objects = [
        StoredObject {
            object_ref: format!("cases/{case_id}/image.nii.gz"),
            kind: ArtifactKind::Image,
            body: image_body,
            size_bytes: image_size,
            sha256: image_sha256,
            meta: image.meta.clone(),
        },
        StoredObject {
            object_ref: MaskRef::fresh(case_id).into(),
            kind: ArtifactKind::Mask,
            body: mask_body,
            size_bytes: mask_size,
            sha256: mask_sha256,
            meta: mask_meta,
        },
    ];
    Ok((image.meta, label_defs, counts, objects, mask_slabs))
}

struct StoredObject {
    object_ref: String,
    kind: ArtifactKind,
    body: Body,
    size_bytes: i64,
    sha256: String,
    meta: VolumeMeta,
}

/// Validates the files, writes the image and the first mask version, then records the case;
/// `user_id` is who imported it (none for the command line and the demo seed). A NIfTI import
/// is counted in the metrics here (a DICOM one by `dicom_import`, which comes through here).
pub async fn import_case(state: &AppState, user_id: Option<&str>, new: NewCase) -> Result<CaseSummary, AppError> {
    let nifti = new.dicom.is_none();
    let result = store_case(state, user_id, new).await;
    if nifti {
        metrics::counter!("seglab_imports_total", "format" => "nifti", "outcome" => telemetry::outcome(&result))
            .increment(1);
    }
    result
}

async fn store_case(state: &AppState, user_id: Option<&str>, mut new: NewCase) -> Result<CaseSummary, AppError> {
    let name = new.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(AppError::BadRequest("case name must be 1–200 characters".into()));
    }
    let case_id = CaseId::random();
    let dicom = new.dicom.take();
    let max_voxels = state.config.max_volume_voxels;
    let scratch = state.config.scratch_dir();
    let id = case_id.clone();
    // Inflating and checking volumes is CPU work and memory: off the async threads, and a few
    // imports at a time.
    let _slot = state.imports.acquire().await.map_err(AppError::internal)?;
    let (image_meta, label_defs, counts, objects, (mask_manifest, mask_slabs)) =
        tokio::task::spawn_blocking(move || stored_objects(&id, new, max_voxels, &scratch))
            .await
            .map_err(AppError::internal)??;
    for object in &objects {
        match &object.body {
            Body::Bytes(bytes) => state.store.put(&object.object_ref, bytes.clone()).await?,
            Body::Path(path) => state.store.put_file(&object.object_ref, path).await?,
            Body::Scratch(file) => state.store.put_file(&object.object_ref, file.path()).await?,
        }
    }
    let (image_manifest, mut slabs) =
        volume_slabs::put_file(state, &case_id, "image", SlabKind::Image, objects[0].body.reader()?).await?;
    slabs.extend(volume_slabs::put(state, &case_id, mask_slabs).await?);
    let manifests = [image_manifest.to_json(), mask_manifest.to_json()];

    // A new case is a run trigger: one job per active model version, queued with the case.
    let active = registry::all_active(state).await?;
    let created_at = now_ms();
    let mut tx = state.db.begin_write().await?;
    sqlx::query(
        "INSERT INTO cases (id, name, search_name, labels_json, label_counts_json, image_ref, head_mask_ref, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&case_id)
    .bind(&name)
    .bind(name.to_lowercase())
    .bind(serde_json::to_string(&label_defs).map_err(AppError::internal)?)
    .bind(serde_json::to_string(&counts).map_err(AppError::internal)?)
    .bind(&objects[0].object_ref)
    .bind(&objects[1].object_ref)
    .bind(created_at)
    .execute(&mut *tx)
    .await?;
    for (object, manifest) in objects.iter().zip(&manifests) {
        sqlx::query(
            "INSERT INTO objects (object_ref, case_id, kind, size_bytes, sha256, dim_i, dim_j, dim_k,
                                  voxel_type, spacing_i, spacing_j, spacing_k, created_at, slabs_json)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&object.object_ref)
        .bind(&case_id)
        .bind(object.kind.as_str())
        .bind(object.size_bytes)
        .bind(&object.sha256)
        .bind(object.meta.dims[0] as i64)
        .bind(object.meta.dims[1] as i64)
        .bind(object.meta.dims[2] as i64)
        .bind(object.meta.voxel_type.as_str())
        .bind(object.meta.spacing_mm[0] as f64)
        .bind(object.meta.spacing_mm[1] as f64)
        .bind(object.meta.spacing_mm[2] as f64)
        .bind(created_at)
        .bind(manifest)
        .execute(&mut *tx)
        .await?;
    }
    volume_slabs::record(&mut tx, &case_id, &slabs, created_at).await?;
    if let Some(source) = &dicom {
        record_dicom_source(&mut tx, &case_id, source).await?;
    }
    audit::record(
        &mut tx,
        &state.db,
        AuditEvent {
            action: AuditAction::CaseImport,
            user_id,
            case_id: Some(&case_id),
            details: serde_json::json!({
                "name": name,
                "image_ref": objects[0].object_ref,
                "mask_ref": objects[1].object_ref,
                "series_instance_uid": dicom.as_ref().map(|source| &source.identity.series_instance_uid),
            }),
        },
    )
    .await?;
    if !active.is_empty() {
        jobs::enqueue(&mut tx, state, &active, &case_id, Trigger::CaseImport, user_id).await?;
    }
    tx.commit().await?;
    state.jobs_ready.notify_waiters();
    tracing::info!(%case_id, %name, dims = ?image_meta.dims, "case imported");
    Ok(CaseSummary {
        id: case_id,
        name,
        dims: image_meta.dims,
        image_voxel_type: image_meta.voxel_type,
        created_at_ms: created_at,
    })
}

async fn record_dicom_source(
    tx: &mut sqlx::AnyConnection,
    case_id: &CaseId,
    source: &DicomSource,
) -> Result<(), AppError> {
    let identity = &source.identity;
    sqlx::query(
        "INSERT INTO case_dicom (case_id, study_instance_uid, series_instance_uid, frame_of_reference_uid,
                                 sop_class_uid, modality, series_description, window_center, window_width,
                                 source_images_json, geometry_json, pseudonym)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(case_id)
    .bind(&identity.study_instance_uid)
    .bind(&identity.series_instance_uid)
    .bind(&identity.frame_of_reference_uid)
    .bind(&identity.sop_class_uid)
    .bind(&identity.modality)
    .bind(&identity.series_description)
    .bind(identity.window.map(|(center, _)| center))
    .bind(identity.window.map(|(_, width)| width))
    .bind(serde_json::to_string(&source.source_images).map_err(AppError::internal)?)
    .bind(serde_json::to_string(&source.geometry).map_err(AppError::internal)?)
    .bind(&source.pseudonym)
    .execute(&mut *tx)
    .await?;
    if let Some(patient) = &source.patient {
        sqlx::query(
            "INSERT INTO case_dicom_identity (case_id, patient_name, patient_id, issuer_of_patient_id, patient_birth_date,
                                              patient_sex, accession_number, study_date, study_description,
                                              institution_name, referring_physician_name)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(case_id)
        .bind(&patient.patient_name)
        .bind(&patient.patient_id)
        .bind(&patient.issuer_of_patient_id)
        .bind(&patient.patient_birth_date)
        .bind(&patient.patient_sex)
        .bind(&patient.accession_number)
        .bind(&patient.study_date)
        .bind(&patient.study_description)
        .bind(&patient.institution_name)
        .bind(&patient.referring_physician_name)
        .execute(tx)
        .await?;
    }
    Ok(())
}

/// The DICOM series case `case_id` was imported from, and the case's labels; `None` for a
/// case imported from NIfTI.
pub(crate) async fn dicom_source(
    state: &AppState,
    case_id: &CaseId,
) -> Result<Option<(DicomSource, Vec<LabelDef>)>, AppError> {
    #[derive(sqlx::FromRow)]
    struct SeriesRow {
        study_instance_uid: String,
        series_instance_uid: String,
        frame_of_reference_uid: Option<String>,
        sop_class_uid: String,
        modality: String,
        series_description: String,
        source_images_json: String,
        geometry_json: String,
        pseudonym: String,
        labels_json: String,
    }
    let row: Option<SeriesRow> = sqlx::query_as(
        "SELECT d.study_instance_uid, d.series_instance_uid, d.frame_of_reference_uid, d.sop_class_uid, d.modality,
                d.series_description, d.source_images_json, d.geometry_json, d.pseudonym, c.labels_json
         FROM case_dicom d JOIN cases c ON c.id = d.case_id WHERE d.case_id = $1",
    )
    .bind(case_id)
    .fetch_optional(&state.db.pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let stored = |what: &str, e: serde_json::Error| AppError::internal(format!("{what} of case {case_id}: {e}"));
    let source = DicomSource {
        identity: SeriesIdentity {
            study_instance_uid: row.study_instance_uid,
            series_instance_uid: row.series_instance_uid,
            frame_of_reference_uid: row.frame_of_reference_uid,
            sop_class_uid: row.sop_class_uid,
            modality: row.modality,
            series_description: row.series_description,
            series_number: None,
            window: None,
        },
        source_images: serde_json::from_str(&row.source_images_json).map_err(|e| stored("source images", e))?,
        geometry: serde_json::from_str(&row.geometry_json).map_err(|e| stored("geometry", e))?,
        pseudonym: row.pseudonym,
        patient: None,
    };
    let labels = serde_json::from_str(&row.labels_json).map_err(|e| stored("labels", e))?;
    Ok(Some((source, labels)))
}

/// The case imported from series `series_instance_uid`, if one was.
pub(crate) async fn case_of_series(
    state: &AppState,
    series_instance_uid: &str,
) -> Result<Option<CaseSummary>, AppError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: CaseId,
        name: String,
        created_at: i64,
        #[sqlx(flatten)]
        dims: crate::server::rows::Dims,
        voxel_type: VoxelType,
    }
    let row: Option<Row> = sqlx::query_as(
        "SELECT c.id, c.name, c.created_at, o.dim_i, o.dim_j, o.dim_k, o.voxel_type
         FROM case_dicom d JOIN cases c ON c.id = d.case_id JOIN objects o ON o.object_ref = c.image_ref
         WHERE d.series_instance_uid = $1",
    )
    .bind(series_instance_uid)
    .fetch_optional(&state.db.pool)
    .await?;
    Ok(row.map(|row| CaseSummary {
        id: row.id,
        name: row.name,
        dims: row.dims.voxels(),
        image_voxel_type: row.voxel_type,
        created_at_ms: row.created_at,
    }))
}

/// Who the patient of case `case_id` is, as its import kept it: `None` for a case not imported
/// from DICOM; a record of `None`s where identifiers are not kept. Only for admins' eyes: the
/// caller decides and audits.
pub(crate) async fn patient_record(state: &AppState, case_id: &CaseId) -> Result<Option<PatientRecord>, AppError> {
    Ok(sqlx::query_as(
        "SELECT i.patient_name, i.patient_id, i.issuer_of_patient_id, i.patient_birth_date, i.patient_sex,
                i.accession_number, i.study_date, i.study_description, i.institution_name, i.referring_physician_name
         FROM case_dicom d LEFT JOIN case_dicom_identity i ON i.case_id = d.case_id WHERE d.case_id = $1",
    )
    .bind(case_id)
    .fetch_optional(&state.db.pool)
    .await?)
}
