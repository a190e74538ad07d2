//! The case read model: the list of cases a caller may read, and a case's artifacts with
//! presigned URLs that the viewer downloads from object storage directly, its mask history,
//! the base a reviewer compares with, and the models' predictions; and the case page's whole
//! content in one read. Reads only (nothing here writes); importing is `cases`.

use super::access::{self, CaseAccess, CompareReadings, Read};
use super::jobs::{self, JobFilter};
use super::mask_versions::{self, Chain};
use super::readings;
use super::volume_slabs;
use super::workflow;
use crate::api::{
    Artifact, ArtifactKind, CaseArtifacts, CaseId, CaseOpened, CasePrediction, CaseSummary, CaseWorkflow, LabelDef,
    MaskRef, MaskVersion, ModelId, ModelState, ReviewBase, SeriesInfo, UserName, MAX_PAGE,
};
use crate::nifti_io::VoxelType;
use crate::server::error::AppError;
use crate::server::identity::User;
use crate::server::rows::Dims;
use crate::server::state::AppState;

/// Most cases `GET /cases` answers at once.
pub const MAX_CASES_PER_PAGE: u32 = 1000;

/// One page (from 1) of the cases `user` may read, oldest first, and how many there are in all.
pub(crate) async fn list_cases(
    state: &AppState,
    user: &User,
    page: u32,
    per_page: u32,
) -> Result<(Vec<CaseSummary>, i64), AppError> {
    if !(1..=MAX_PAGE).contains(&page) || per_page == 0 || per_page > MAX_CASES_PER_PAGE {
        return Err(AppError::BadRequest(format!(
            "`page` lies between 1 and {MAX_PAGE}, and `per_page` between 1 and {MAX_CASES_PER_PAGE}"
        )));
    }
    let readable = access::readable_condition(user, 1);
    let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM cases c WHERE {readable}"))
        .bind(&user.id)
        .fetch_one(&state.db.pool)
        .await?;
    #[derive(sqlx::FromRow)]
    struct Listed {
        id: CaseId,
        name: String,
        created_at: i64,
        #[sqlx(flatten)]
        dims: Dims,
        voxel_type: VoxelType,
    }
    let rows: Vec<Listed> = sqlx::query_as(&format!(
        "SELECT c.id, c.name, c.created_at, o.dim_i, o.dim_j, o.dim_k, o.voxel_type
         FROM cases c JOIN objects o ON o.object_ref = c.image_ref
         WHERE {readable}
         ORDER BY c.created_at, c.name, c.id LIMIT $2 OFFSET $3"
    ))
    .bind(&user.id)
    .bind(i64::from(per_page))
    .bind(i64::from(page - 1) * i64::from(per_page))
    .fetch_all(&state.db.pool)
    .await?;
    let cases = rows
        .into_iter()
        .map(|row| CaseSummary {
            id: row.id,
            name: row.name,
            dims: row.dims.voxels(),
            image_voxel_type: row.voxel_type,
            created_at_ms: row.created_at,
        })
        .collect();
    Ok((cases, total))
}

/// The image and the current mask of a case, each with a presigned GET URL. With
/// `include_history`, also its newest saved mask versions (at most [`HISTORY_LIMIT`]).
pub(crate) async fn case_artifacts(
    state: &AppState,
    access: &CaseAccess<Read>,
    include_history: bool,
) -> Result<CaseArtifacts, AppError> {
    let (user, case_id) = (access.user(), access.case_id());
    /// The case, and the DICOM series it came from if it did.
    #[derive(sqlx::FromRow)]
    struct CaseRow {
        name: String,
        labels_json: String,
        image_ref: String,
        head_mask_ref: MaskRef,
        modality: Option<String>,
        series_description: Option<String>,
        study_instance_uid: Option<String>,
        series_instance_uid: Option<String>,
        window_center: Option<f64>,
        window_width: Option<f64>,
        pseudonym: Option<String>,
    }
    let case: CaseRow = sqlx::query_as(
        "SELECT c.name, c.labels_json, c.image_ref, c.head_mask_ref, d.modality, d.series_description,
                d.study_instance_uid, d.series_instance_uid, d.window_center, d.window_width, d.pseudonym
         FROM cases c LEFT JOIN case_dicom d ON d.case_id = c.id WHERE c.id = $1",
    )
    .bind(case_id)
    .fetch_optional(&state.db.pool)
    .await?
    .ok_or_else(|| AppError::NotFound(format!("case {case_id}")))?;
    let series = match (case.modality, case.study_instance_uid, case.series_instance_uid) {
        (Some(modality), Some(study_instance_uid), Some(series_instance_uid)) => Some(SeriesInfo {
            modality,
            series_description: case.series_description.unwrap_or_default(),
            study_instance_uid,
            series_instance_uid,
            window: case.window_center.zip(case.window_width).map(|(center, width)| [center, width]),
            pseudonym: case.pseudonym.unwrap_or_default(),
        }),
        _ => None,
    };
    let facts = access.facts();
    // A reader sees their reading, never the case's mask an adjudicator makes from them all.
    let head_mask_ref = match facts.my_reading_id.as_deref() {
        Some(reading) => Chain::Reading(reading).head(&mut *state.db.pool.acquire().await?).await?,
        None => case.head_mask_ref,
    };
    let (name, labels_json, image_ref) = (case.name, case.labels_json, case.image_ref);
    /// The image or the current mask, as stored.
    #[derive(sqlx::FromRow)]
    struct Stored {
        object_ref: String,
        kind: ArtifactKind,
        size_bytes: i64,
        #[sqlx(flatten)]
        dims: Dims,
        voxel_type: VoxelType,
        spacing_i: f64,
        spacing_j: f64,
        spacing_k: f64,
        created_at: i64,
        slabs_json: String,
        file_stored: i64,
    }
    let objects: Vec<Stored> = sqlx::query_as(
        "SELECT object_ref, kind, size_bytes, dim_i, dim_j, dim_k, voxel_type, spacing_i, spacing_j, spacing_k,
                created_at, slabs_json, file_stored
         FROM objects WHERE object_ref = $1 OR object_ref = $2",
    )
    .bind(&image_ref)
    .bind(&head_mask_ref)
    .fetch_all(&state.db.pool)
    .await?;

    let expires_at = state.store.presigned_urls_expire_at_ms();
    let mut artifacts = Vec::with_capacity(objects.len());
    for object in objects {
        artifacts.push(Artifact {
            kind: object.kind,
            url: mask_versions::file_url(state, &object.object_ref, object.file_stored == 1).await?,
            slabs: volume_slabs::urls(state, case_id, &object.object_ref, &object.slabs_json)?,
            url_expires_at_ms: expires_at,
            size_bytes: object.size_bytes,
            dims: object.dims.voxels(),
            voxel_type: object.voxel_type,
            spacing_mm: [object.spacing_i, object.spacing_j, object.spacing_k].map(|s| s as f32),
            created_at_ms: object.created_at,
            object_ref: object.object_ref,
        });
    }
    artifacts.sort_by_key(|a| a.kind != ArtifactKind::Image);
    let labels: Vec<LabelDef> =
        serde_json::from_str(&labels_json).map_err(|e| AppError::internal(format!("labels of case {case_id}: {e}")))?;
    let (history, history_total) = match include_history {
        true => mask_history(state, case_id, facts.my_reading_id.as_deref()).await?,
        false => (Vec::new(), 0),
    };
    let workflow: CaseWorkflow = facts.workflow.clone().into();
    let review_base = review_base(state, case_id, workflow.approved_mask_ref.as_ref()).await?;
    let predictions = match user.is_coordinator() && !facts.blinded_to_models() {
        true => predictions(state, case_id).await?,
        false => Vec::new(),
    };
    Ok(CaseArtifacts {
        case_id: case_id.clone(),
        case_name: name,
        labels,
        current_mask_ref: head_mask_ref,
        artifacts,
        history,
        history_total,
        workflow,
        review_base,
        predictions,
        series,
        readings: match access::may(access, &CompareReadings, access::rules(state)) {
            true => readings::list(state, access).await?.readings,
            false => Vec::new(),
        },
    })
}

/// `GET /cases/{id}/overview` and the case page: everything the page shows, under one access decision:
/// the artifacts with the mask history, the review panel, and the case's model jobs.
pub(crate) async fn case_page(state: &AppState, access: &CaseAccess<Read>) -> Result<CaseOpened, AppError> {
    Ok(CaseOpened {
        artifacts: case_artifacts(state, access, true).await?,
        review: workflow::review(state, access).await?,
        jobs: jobs::list_jobs(state, access.user(), JobFilter::Case(access)).await?,
    })
}

/// A presigned URL of mask version `cases/{case_id}/masks/{file}` as a `.nii.gz`, written from
/// its slabs first if nobody asked for it before.
/// A version of a reading is served to its reader and to those who may compare the readings.
pub(crate) async fn mask_file_url(state: &AppState, access: &CaseAccess<Read>, file: &str) -> Result<String, AppError> {
    let object_ref = format!("cases/{}/masks/{file}", access.case_id());
    let reading: Option<Option<String>> = sqlx::query_scalar("SELECT reading_id FROM labels WHERE new_mask_ref = $1")
        .bind(&object_ref)
        .fetch_optional(&state.db.pool)
        .await?;
    if let Some(Some(reading)) = reading {
        let own = access.facts().my_reading_id.as_deref() == Some(reading.as_str());
        if !own && !access::may(access, &CompareReadings, access::rules(state)) {
            return Err(AppError::NotFound(format!("mask version {object_ref}")));
        }
    }
    mask_versions::ensure_file(state, &object_ref).await?;
    state.store.presign_get(&object_ref)
}

/// The latest prediction of each production and shadow version on the case, production first.
async fn predictions(state: &AppState, case_id: &CaseId) -> Result<Vec<CasePrediction>, AppError> {
    #[derive(sqlx::FromRow)]
    struct PredictionRow {
        object_ref: String,
        created_at: i64,
        id: ModelId,
        name: String,
        version: String,
        state: ModelState,
    }
    let rows: Vec<PredictionRow> = sqlx::query_as(
        "SELECT p.object_ref, p.created_at, m.id, m.name, m.version, m.state FROM predictions p JOIN models m ON m.id = p.model_id
         WHERE p.case_id = $1 AND m.state IN ($2, $3)
           AND p.created_at = (SELECT MAX(q.created_at) FROM predictions q WHERE q.model_id = p.model_id AND q.case_id = p.case_id)
         ORDER BY m.state, m.name",
    )
    .bind(case_id)
    .bind(ModelState::Production.as_str())
    .bind(ModelState::Shadow.as_str())
    .fetch_all(&state.db.pool)
    .await?;
    let mut predictions = Vec::with_capacity(rows.len());
    for row in rows {
        predictions.push(CasePrediction {
            role: row.state,
            model_id: row.id,
            model_name: row.name,
            model_version: row.version,
            url: state.store.presign_get(&row.object_ref)?,
            object_ref: row.object_ref,
            created_at_ms: row.created_at,
        });
    }
    Ok(predictions)
}

/// The last approved version, else the mask the case was imported with (its oldest).
async fn review_base(state: &AppState, case_id: &CaseId, approved: Option<&MaskRef>) -> Result<ReviewBase, AppError> {
    let (mask_ref, file_stored): (MaskRef, i64) = match approved {
        Some(approved) => {
            sqlx::query_as("SELECT object_ref, file_stored FROM objects WHERE object_ref = $1").bind(approved)
        }
        None => sqlx::query_as(
            "SELECT object_ref, file_stored FROM objects WHERE case_id = $1 AND kind = $2 ORDER BY created_at, object_ref LIMIT 1",
        )
        .bind(case_id)
        .bind(ArtifactKind::Mask.as_str()),
    }
    .fetch_one(&state.db.pool)
    .await?;
    Ok(ReviewBase {
        url: mask_versions::file_url(state, mask_ref.as_str(), file_stored == 1).await?,
        mask_ref,
        approved: approved.is_some(),
    })
}

/// Most versions a history lists: the newest ones.
pub const HISTORY_LIMIT: i64 = 200;

/// The newest saved versions of the case's own mask (or of `reading`), newest first, and how
/// many there are in all.
async fn mask_history(
    state: &AppState,
    case_id: &CaseId,
    reading: Option<&str>,
) -> Result<(Vec<MaskVersion>, i64), AppError> {
    let reading = reading.unwrap_or_default();
    let total: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM labels WHERE case_id = $1 AND COALESCE(reading_id, '') = $2")
            .bind(case_id)
            .bind(reading)
            .fetch_one(&state.db.pool)
            .await?;
    #[derive(sqlx::FromRow)]
    struct VersionRow {
        id: String,
        username: UserName,
        old_mask_ref: MaskRef,
        new_mask_ref: MaskRef,
        voxels_changed: i64,
        created_at: i64,
        file_stored: i64,
    }
    let rows: Vec<VersionRow> = sqlx::query_as(
        "SELECT l.id, u.username, l.old_mask_ref, l.new_mask_ref, l.voxels_changed, l.created_at, o.file_stored
         FROM labels l JOIN users u ON u.id = l.user_id JOIN objects o ON o.object_ref = l.new_mask_ref
         WHERE l.case_id = $1 AND COALESCE(l.reading_id, '') = $3 ORDER BY l.created_at DESC, l.id LIMIT $2",
    )
    .bind(case_id)
    .bind(HISTORY_LIMIT)
    .bind(reading)
    .fetch_all(&state.db.pool)
    .await?;
    let mut history = Vec::with_capacity(rows.len());
    for row in rows {
        history.push(MaskVersion {
            label_id: row.id,
            username: row.username,
            old_mask_ref: row.old_mask_ref,
            url: mask_versions::file_url(state, row.new_mask_ref.as_str(), row.file_stored == 1).await?,
            new_mask_ref: row.new_mask_ref,
            voxels_changed: row.voxels_changed,
            created_at_ms: row.created_at,
        });
    }
    Ok((history, total))
}
