//! Case routes: the list, importing a case (multipart upload), the case page's content, the artifacts with presigned
//! URLs that the viewer downloads from object storage directly, and mask versions as files.

use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::extract::{bad_form, chosen_file, field_text, ApiQuery, Caller, Coordinator, Holding, Labelers};
use crate::api::{CaseArtifacts, CaseOpened, CaseSummary};
use crate::server::dicom::files::MAX_FILES;
use crate::server::dicom::headers::{PatientRecord, SourceFile};
use crate::server::dicom::SeriesChoice;
use crate::server::error::AppError;
use crate::server::services::access::{self, Read, ReadPatient, Save};
use crate::server::services::case_view;
use crate::server::services::cases::{self, CaseFile, NewCase};
use crate::server::services::dicom_export;
use crate::server::services::dicom_import::{self, DicomImport};
use crate::server::state::AppState;

/// Longest `name` or `labels` field accepted.
const MAX_TEXT_FIELD_BYTES: usize = 64 * 1024;

pub fn routes(max_upload_bytes: usize) -> Router<AppState> {
    Router::new()
        .route("/cases", get(list_cases).post(import_case).layer(DefaultBodyLimit::max(max_upload_bytes)))
        .route("/cases/dicom", post(import_dicom).layer(DefaultBodyLimit::max(max_upload_bytes)))
        .route("/cases/{id}/overview", get(case_page))
        .route("/cases/{id}/artifacts", get(case_artifacts))
        .route("/cases/{id}/masks/{file}", get(mask_file))
        .route("/cases/{id}/patient", get(patient))
        .route("/cases/{id}/segmentation", post(import_segmentation).layer(DefaultBodyLimit::max(max_upload_bytes)))
}

/// `?format=` of a mask version: the stored NIfTI (the default) or a DICOM Segmentation.
#[derive(serde::Deserialize, Default, PartialEq)]
#[serde(rename_all = "kebab-case")]
enum MaskFormat {
    #[default]
    Nifti,
    DicomSeg,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MaskFileQuery {
    #[serde(default)]
    format: MaskFormat,
}

/// A mask version as a `.nii.gz`: written from its slabs on first request, then a redirect
/// (303) to a presigned URL of the file. With `?format=dicom-seg`, the version of a case
/// imported from DICOM as a Segmentation object, answered directly.
async fn mask_file(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path((case_id, file)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<MaskFileQuery>,
) -> Result<axum::response::Response, AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&case_id)?, Read).await?;
    if query.format == MaskFormat::Nifti {
        let url = case_view::mask_file_url(&state, &access, &file).await?;
        return Ok(axum::response::Redirect::to(&url).into_response());
    }
    let (bytes, file_name) = dicom_export::segmentation(&state, &access, &file).await?;
    let disposition =
        HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")).map_err(AppError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/dicom")),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CasesQuery {
    #[serde(default = "first_page")]
    page: u32,
    #[serde(default = "default_per_page")]
    per_page: u32,
}

fn first_page() -> u32 {
    1
}

fn default_per_page() -> u32 {
    100
}

/// `GET /cases?page=&per_page=`: a page of the cases the caller may read, with their number in
/// `X-Total-Count` and the next page in a `Link` header while there is one.
async fn list_cases(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiQuery(query): ApiQuery<CasesQuery>,
) -> Result<impl IntoResponse, AppError> {
    let (cases, total) = case_view::list_cases(&state, &user, query.page, query.per_page).await?;
    let mut headers = HeaderMap::new();
    headers.insert("x-total-count", HeaderValue::from(total));
    if i64::from(query.page) * i64::from(query.per_page) < total {
        let next = format!("</cases?page={}&per_page={}>; rel=\"next\"", query.page + 1, query.per_page);
        headers.insert(header::LINK, HeaderValue::from_str(&next).map_err(AppError::internal)?);
    }
    Ok((headers, Json(cases)))
}

#[derive(serde::Deserialize)]
struct ArtifactsQuery {
    #[serde(default)]
    history: bool,
}

/// `GET /cases/{id}/overview`: what the case page shows, in one answer.
async fn case_page(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(case_id): Path<String>,
) -> Result<Json<CaseOpened>, AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&case_id)?, Read).await?;
    Ok(Json(case_view::case_page(&state, &access).await?))
}

async fn case_artifacts(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(case_id): Path<String>,
    ApiQuery(query): ApiQuery<ArtifactsQuery>,
) -> Result<Json<CaseArtifacts>, AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&case_id)?, Read).await?;
    Ok(Json(case_view::case_artifacts(&state, &access, query.history).await?))
}

/// `POST /cases`, multipart: `name`, `image` (file), optional `mask` (file) and `labels`
/// (`1=liver,2=tumour`).
async fn import_case(
    State(state): State<AppState>,
    Holding(user, _): Coordinator,
    mut form: Multipart,
) -> Result<(StatusCode, Json<CaseSummary>), AppError> {
    // The files go to scratch files as they arrive; they are removed when this request ends.
    let scratch = state.config.scratch_dir();
    let (mut name, mut image, mut mask, mut labels) = (None, None, None, String::new());
    while let Some(field) = form.next_field().await.map_err(bad_form)? {
        let field_name = field.name().unwrap_or_default().to_string();
        match field_name.as_str() {
            "name" => name = Some(field_text(field, MAX_TEXT_FIELD_BYTES).await?),
            "image" => image = chosen_file(field, &scratch).await?.map(|(file, _)| file),
            "mask" => mask = chosen_file(field, &scratch).await?.map(|(file, _)| file),
            "labels" => labels = field_text(field, MAX_TEXT_FIELD_BYTES).await?,
            other => return Err(AppError::BadRequest(format!("unknown form field {other:?}"))),
        }
    }
    let image = image.ok_or_else(|| AppError::BadRequest("form field `image` is required".into()))?;
    let new_case = NewCase {
        name: name.ok_or_else(|| AppError::BadRequest("form field `name` is required".into()))?,
        image: CaseFile::Path(image.path().to_path_buf()),
        mask: mask.as_ref().map(|file| CaseFile::Path(file.path().to_path_buf())),
        labels: cases::parse_label_text(&labels)?,
        dicom: None,
    };
    Ok((StatusCode::CREATED, Json(cases::import_case(&state, Some(&user.id), new_case).await?)))
}

/// `POST /cases/dicom`, multipart: one or more `files` (DICOM files, or zips of them), optional
/// `series` (a SeriesInstanceUID, or `all` for a case per series), `name` and `labels`.
/// Answers 201 with the new cases, in SeriesNumber order.
async fn import_dicom(
    State(state): State<AppState>,
    Holding(user, _): Coordinator,
    mut form: Multipart,
) -> Result<(StatusCode, Json<Vec<CaseSummary>>), AppError> {
    let scratch = state.config.scratch_dir();
    let (mut uploads, mut series, mut name, mut labels) = (Vec::new(), None, None, String::new());
    while let Some(field) = form.next_field().await.map_err(bad_form)? {
        let field_name = field.name().unwrap_or_default().to_string();
        match field_name.as_str() {
            "files" => {
                if uploads.len() == MAX_FILES {
                    return Err(AppError::BadRequest(format!("an import holds at most {MAX_FILES} files; send a zip")));
                }
                uploads.extend(chosen_file(field, &scratch).await?);
            }
            "series" => series = Some(field_text(field, MAX_TEXT_FIELD_BYTES).await?),
            "name" => name = Some(field_text(field, MAX_TEXT_FIELD_BYTES).await?),
            "labels" => labels = field_text(field, MAX_TEXT_FIELD_BYTES).await?,
            other => return Err(AppError::BadRequest(format!("unknown form field {other:?}"))),
        }
    }
    if uploads.is_empty() {
        return Err(AppError::BadRequest("form field `files` is required (DICOM files or a zip)".into()));
    }
    let import = DicomImport {
        files: uploads
            .iter()
            .map(|(file, name)| SourceFile { path: file.path().to_path_buf(), name: name.clone() })
            .collect(),
        series: SeriesChoice::parse(series.as_deref()),
        name: name.filter(|n| !n.trim().is_empty()),
        labels: cases::parse_label_text(&labels)?,
    };
    Ok((StatusCode::CREATED, Json(dicom_import::import_dicom(&state, Some(&user.id), import).await?)))
}

/// `POST /cases/{id}/segmentation`, multipart: `file` (a DICOM Segmentation made on the case's
/// series) and `base_mask_ref` (the version it replaces), with an `Idempotency-Key`. Saved as
/// the next mask version, answered as `POST /labels` answers.
async fn import_segmentation(
    State(state): State<AppState>,
    Holding(user, _): Holding<Labelers>,
    Path(case_id): Path<String>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Result<axum::response::Response, AppError> {
    // Access is decided before the upload is read.
    let access = access::authorize(&state, &user, &access::case_named(&case_id)?, Save).await?;
    let key = headers.get("idempotency-key").map(|v| v.to_str().unwrap_or_default());
    let scratch = state.config.scratch_dir();
    let (mut file, mut base) = (None, None);
    while let Some(field) = form.next_field().await.map_err(bad_form)? {
        match field.name().unwrap_or_default() {
            "file" => file = chosen_file(field, &scratch).await?.map(|(file, _)| file),
            "base_mask_ref" => base = Some(field_text(field, MAX_TEXT_FIELD_BYTES).await?),
            other => return Err(AppError::BadRequest(format!("unknown form field {other:?}"))),
        }
    }
    let file = file.ok_or_else(|| AppError::BadRequest("form field `file` is required (a DICOM SEG)".into()))?;
    let base = base.ok_or_else(|| AppError::BadRequest("form field `base_mask_ref` is required".into()))?;
    super::labels::saved(dicom_import::import_segmentation(&state, access, key, &base, file.path()).await?)
}

/// `GET /cases/{id}/patient` (admins): who the patient of a case imported from DICOM is, as the
/// import kept it; audited.
async fn patient(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(case_id): Path<String>,
) -> Result<Json<PatientRecord>, AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&case_id)?, ReadPatient).await?;
    Ok(Json(dicom_import::patient(&state, &access).await?))
}
