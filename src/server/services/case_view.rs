//! The case read model: the list of cases a caller may read, and a case's artifacts with
//! presigned URLs that the viewer downloads from object storage directly, its mask history,
//! the base a reviewer compares with, and the models' predictions. Reads only; importing is
//! `cases`.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::access::{self, CaseAccess, Read};
use super::mask_versions;
use super::volume_slabs::{self, SlabManifest};
use super::workflow;
use crate::api::{
    Artifact, ArtifactKind, CaseArtifacts, CaseId, CasePrediction, CaseSummary, LabelDef, MaskVersion, ModelState,
    ReviewBase,
};
use crate::nifti_io::VoxelType;
use crate::server::clock::now_ms;
use crate::server::error::AppError;
use crate::server::identity::User;
use crate::server::state::AppState;

/// An object row's voxel type; a name this build does not know is a damaged row, not a guess.
fn stored_voxel_type(row: &AnyRow) -> Result<VoxelType, AppError> {
    let name: String = row.get("voxel_type");
    VoxelType::parse(&name).ok_or_else(|| AppError::internal(format!("an object row holds voxel type {name:?}")))
}

fn dims_of(row: &AnyRow) -> [u32; 3] {
    ["dim_i", "dim_j", "dim_k"].map(|c| row.get::<i64, _>(c) as u32)
}

/// Most cases `GET /cases` answers at once.
pub const MAX_CASES_PER_PAGE: u32 = 1000;

/// One page (from 1) of the cases `user` may read, oldest first, and how many there are in all.
pub async fn list_cases(
    state: &AppState,
    user: &User,
    page: u32,
    per_page: u32,
) -> Result<(Vec<CaseSummary>, i64), AppError> {
    if page == 0 || per_page == 0 || per_page > MAX_CASES_PER_PAGE {
        return Err(AppError::BadRequest(format!(
            "`page` counts from 1 and `per_page` lies between 1 and {MAX_CASES_PER_PAGE}"
        )));
    }
    let readable = access::readable_condition(user, 1);
    let total: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM cases c WHERE {readable}"))
        .bind(&user.id)
        .fetch_one(&state.db.pool)
        .await?
        .get(0);
    let rows = sqlx::query(&format!(
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
        .iter()
        .map(|row| {
            Ok(CaseSummary {
                id: row.get("id"),
                name: row.get("name"),
                dims: dims_of(row),
                image_voxel_type: stored_voxel_type(row)?,
                created_at_ms: row.get("created_at"),
            })
        })
        .collect::<Result<_, AppError>>()?;
    Ok((cases, total))
}

/// The image and the current mask of a case, each with a presigned GET URL. With
/// `include_history`, also its newest saved mask versions (at most [`HISTORY_LIMIT`]).
pub async fn case_artifacts(
    state: &AppState,
    access: &CaseAccess<Read>,
    include_history: bool,
) -> Result<CaseArtifacts, AppError> {
    let (user, case_id) = (access.user(), access.case_id());
    let case = sqlx::query("SELECT name, labels_json, image_ref, head_mask_ref FROM cases WHERE id = $1")
        .bind(case_id)
        .fetch_optional(&state.db.pool)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("case {case_id}")))?;
    let image_ref: String = case.get("image_ref");
    let head_mask_ref: String = case.get("head_mask_ref");
    let rows = sqlx::query(
        "SELECT object_ref, kind, size_bytes, dim_i, dim_j, dim_k, voxel_type,
                spacing_i, spacing_j, spacing_k, created_at, slabs_json, file_stored
         FROM objects WHERE object_ref = $1 OR object_ref = $2",
    )
    .bind(&image_ref)
    .bind(&head_mask_ref)
    .fetch_all(&state.db.pool)
    .await?;

    let expires_at = now_ms() + state.store.presign_ttl().as_millis() as i64;
    let mut artifacts = Vec::with_capacity(rows.len());
    for row in &rows {
        let object_ref: String = row.get("object_ref");
        let kind = volume_slabs::stored_kind(row)?;
        let manifest = match SlabManifest::parse(&row.get::<String, _>("slabs_json"))? {
            Some(manifest) => manifest,
            None => volume_slabs::ensure(state, &object_ref).await?,
        };
        artifacts.push(Artifact {
            kind,
            url: mask_versions::file_url(state, &object_ref, row.get::<i64, _>("file_stored") == 1).await?,
            slabs: volume_slabs::urls(state, case_id, &manifest).await?,
            url_expires_at_ms: expires_at,
            object_ref,
            size_bytes: row.get("size_bytes"),
            dims: dims_of(row),
            voxel_type: stored_voxel_type(row)?,
            spacing_mm: ["spacing_i", "spacing_j", "spacing_k"].map(|c| row.get::<f64, _>(c) as f32),
            created_at_ms: row.get("created_at"),
        });
    }
    artifacts.sort_by_key(|a| a.kind != ArtifactKind::Image);
    let labels: Vec<LabelDef> = serde_json::from_str(&case.get::<String, _>("labels_json"))
        .map_err(|e| AppError::internal(format!("labels of case {case_id}: {e}")))?;
    let (history, history_total) = if include_history { mask_history(state, case_id).await? } else { (Vec::new(), 0) };
    let workflow = workflow::workflow_of(&mut *state.db.pool.acquire().await?, case_id).await?;
    let review_base = review_base(state, case_id, workflow.approved_mask_ref.as_deref()).await?;
    let predictions = if user.is_coordinator() { predictions(state, case_id).await? } else { Vec::new() };
    Ok(CaseArtifacts {
        case_id: case_id.clone(),
        case_name: case.get("name"),
        labels,
        current_mask_ref: head_mask_ref,
        artifacts,
        history,
        history_total,
        workflow,
        review_base,
        predictions,
    })
}

/// A presigned URL of mask version `cases/{case_id}/masks/{file}` as a `.nii.gz`, written from
/// its slabs first if nobody asked for it before.
pub async fn mask_file_url(state: &AppState, access: &CaseAccess<Read>, file: &str) -> Result<String, AppError> {
    let object_ref = format!("cases/{}/masks/{file}", access.case_id());
    mask_versions::ensure_file(state, &object_ref).await?;
    state.store.presign_get(&object_ref).await
}

/// The latest prediction of each production and shadow version on the case, production first.
async fn predictions(state: &AppState, case_id: &CaseId) -> Result<Vec<CasePrediction>, AppError> {
    let rows = sqlx::query(
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
        let object_ref: String = row.get("object_ref");
        let state_name: String = row.get("state");
        predictions.push(CasePrediction {
            role: ModelState::parse(&state_name)
                .ok_or_else(|| AppError::internal(format!("model state {state_name:?}")))?,
            model_id: row.get("id"),
            model_name: row.get("name"),
            model_version: row.get("version"),
            url: state.store.presign_get(&object_ref).await?,
            object_ref,
            created_at_ms: row.get("created_at"),
        });
    }
    Ok(predictions)
}

/// The last approved version, else the mask the case was imported with (its oldest).
async fn review_base(state: &AppState, case_id: &CaseId, approved: Option<&str>) -> Result<ReviewBase, AppError> {
    let base = match approved {
        Some(approved) => sqlx::query("SELECT object_ref, file_stored FROM objects WHERE object_ref = $1").bind(approved),
        None => sqlx::query(
            "SELECT object_ref, file_stored FROM objects WHERE case_id = $1 AND kind = $2 ORDER BY created_at, object_ref LIMIT 1",
        )
        .bind(case_id)
        .bind(ArtifactKind::Mask.as_str()),
    }
    .fetch_one(&state.db.pool)
    .await?;
    let (mask_ref, file_stored): (String, i64) = (base.get("object_ref"), base.get("file_stored"));
    Ok(ReviewBase {
        url: mask_versions::file_url(state, &mask_ref, file_stored == 1).await?,
        mask_ref,
        approved: approved.is_some(),
    })
}

/// Most versions a history lists: the newest ones.
pub const HISTORY_LIMIT: i64 = 200;

/// The newest saved versions of the case, newest first, and how many there are in all.
async fn mask_history(state: &AppState, case_id: &CaseId) -> Result<(Vec<MaskVersion>, i64), AppError> {
    let total: i64 = sqlx::query("SELECT COUNT(*) FROM labels WHERE case_id = $1")
        .bind(case_id)
        .fetch_one(&state.db.pool)
        .await?
        .get(0);
    let rows = sqlx::query(
        "SELECT l.id, u.username, l.old_mask_ref, l.new_mask_ref, l.voxels_changed, l.created_at, o.file_stored
         FROM labels l JOIN users u ON u.id = l.user_id JOIN objects o ON o.object_ref = l.new_mask_ref
         WHERE l.case_id = $1 ORDER BY l.created_at DESC, l.id LIMIT $2",
    )
    .bind(case_id)
    .bind(HISTORY_LIMIT)
    .fetch_all(&state.db.pool)
    .await?;
    let mut history = Vec::with_capacity(rows.len());
    for row in rows {
        let new_mask_ref: String = row.get("new_mask_ref");
        history.push(MaskVersion {
            label_id: row.get("id"),
            username: row.get("username"),
            old_mask_ref: row.get("old_mask_ref"),
            url: mask_versions::file_url(state, &new_mask_ref, row.get::<i64, _>("file_stored") == 1).await?,
            new_mask_ref,
            voxels_changed: row.get("voxels_changed"),
            created_at_ms: row.get("created_at"),
        });
    }
    Ok((history, total))
}
