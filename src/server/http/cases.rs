//! Case routes: the list, importing a case (multipart upload), the case page's content, the artifacts with presigned
//! URLs that the viewer downloads from object storage directly, and mask versions as files.

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use super::extract::{
    bad_form, chosen_file, field_text, ApiMultipart, ApiQuery, Caller, CasePath, Coordinator, Holding, Labelers,
    MaskFilePath,
};
use crate::api::{CaseArtifacts, CaseOpened, CaseSummary, LabelSaved};
use crate::server::dicom::files::MAX_FILES;
use crate::server::dicom::headers::{PatientRecord, SourceFile};
use crate::server::dicom::SeriesChoice;
use crate::server::error::AppError;
use crate::server::services::access::{self, Read, ReadPatient, Save};
use crate::server::services::case_view;
use crate::server::services::cases::{self, CaseFile, NewCase};
use crate::server::services::dicom_export;
use crate::server::services::dicom_import::{self, DicomImport};
use crate::server::services::idempotency::IdempotencyKey;
use crate::server::state::AppState;

/// Longest `name` or `labels` field accepted.
const MAX_TEXT_FIELD_BYTES: usize = 64 * 1024;

pub fn routes(max_upload_bytes: usize) -> OpenApiRouter<AppState> {
    let uploads = DefaultBodyLimit::max(max_upload_bytes);
    OpenApiRouter::new()
        .routes(routes!(list_cases, import_case).layer(uploads))
        .routes(routes!(import_dicom).layer(uploads))
        .routes(routes!(case_page))
        .routes(routes!(case_artifacts))
        .routes(routes!(mask_file))
        .routes(routes!(patient))
        .routes(routes!(import_segmentation).layer(uploads))
}

/// `?format=` of a mask version: the stored NIfTI (the default) or a DICOM Segmentation.
#[derive(serde::Deserialize, Default, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
enum MaskFormat {
    #[default]
    Nifti,
    DicomSeg,
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct MaskFileQuery {
    /// `nifti` (the default) or `dicom-seg`.
    #[serde(default)]
    #[param(inline)]
    format: MaskFormat,
}

/// A mask version as a file: the `.nii.gz`, written from its slabs on first request, by a
/// redirect (303) to a presigned URL; with `?format=dicom-seg`, for a case imported from DICOM,
/// a DICOM Segmentation, answered directly.
#[utoipa::path(get, path = "/cases/{id}/masks/{file}", tag = "cases", params(MaskFilePath, MaskFileQuery),
    responses(
        (status = 303, description = "The `.nii.gz` is at the presigned URL in `Location`",
            headers(("location" = String, description = "A presigned URL of the file"))),
        (status = 200, description = "The DICOM Segmentation", content_type = "application/dicom",
            body = Vec<u8>),
    ))]
async fn mask_file(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(MaskFilePath { id: case_id, file }): Path<MaskFilePath>,
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

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct CasesQuery {
    /// From 1.
    #[serde(default = "first_page")]
    #[param(minimum = 1, maximum = 1000000, default = 1)]
    page: u32,
    #[serde(default = "default_per_page")]
    #[param(minimum = 1, maximum = 1000, default = 100)]
    per_page: u32,
}

fn first_page() -> u32 {
    1
}

fn default_per_page() -> u32 {
    100
}

/// A page of the cases the caller may read, with their number in `X-Total-Count` and the next
/// page in a `Link` header while there is one.
#[utoipa::path(get, path = "/cases", tag = "cases", params(CasesQuery),
    responses((status = 200, description = "The page", body = [CaseSummary], headers(
        ("x-total-count" = i64, description = "How many cases the caller may read"),
        ("link" = String, description = "`<…>; rel=\"next\"` while there is a next page"),
    ))))]
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

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ArtifactsQuery {
    /// With every mask version, not only the newest.
    #[serde(default)]
    history: bool,
}

/// What the case page shows, in one answer.
#[utoipa::path(get, path = "/cases/{id}/overview", tag = "cases", params(CasePath),
    responses((status = 200, description = "The case", body = CaseOpened)))]
async fn case_page(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(CasePath { id: case_id }): Path<CasePath>,
) -> Result<Json<CaseOpened>, AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&case_id)?, Read).await?;
    Ok(Json(case_view::case_page(&state, &access).await?))
}

/// The case's artifacts (image, mask versions, predictions) with presigned URLs the viewer
/// downloads from object storage directly.
#[utoipa::path(get, path = "/cases/{id}/artifacts", tag = "cases", params(CasePath, ArtifactsQuery),
    responses((status = 200, description = "The artifacts", body = CaseArtifacts)))]
async fn case_artifacts(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(CasePath { id: case_id }): Path<CasePath>,
    ApiQuery(query): ApiQuery<ArtifactsQuery>,
) -> Result<Json<CaseArtifacts>, AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&case_id)?, Read).await?;
    Ok(Json(case_view::case_artifacts(&state, &access, query.history).await?))
}

/// The multipart form of `POST /cases`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "describes the form in the API document; the handler reads it field by field")]
struct CaseUpload {
    name: String,
    /// The image, `.nii` or `.nii.gz`.
    #[schema(value_type = String, content_media_type = "application/octet-stream")]
    image: Vec<u8>,
    /// A first mask on the image's grid.
    #[schema(value_type = Option<String>, content_media_type = "application/octet-stream")]
    mask: Option<Vec<u8>>,
    /// The label names, `1=liver,2=tumour`.
    labels: Option<String>,
}

/// Imports a NIfTI image, and a first mask, as a new case (ML engineers, admins).
#[utoipa::path(post, path = "/cases", tag = "cases",
    request_body(content = CaseUpload, content_type = "multipart/form-data"),
    responses((status = 201, description = "The new case", body = CaseSummary)))]
async fn import_case(
    State(state): State<AppState>,
    Holding(user, _): Coordinator,
    ApiMultipart(mut form): ApiMultipart,
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

/// The multipart form of `POST /cases/dicom`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "describes the form in the API document; the handler reads it field by field")]
struct DicomUpload {
    /// DICOM files, or zips of them.
    #[schema(value_type = Vec<String>, content_media_type = "application/octet-stream")]
    files: Vec<Vec<u8>>,
    /// The SeriesInstanceUID to import when the files hold several series, or `all` for a case
    /// per series.
    series: Option<String>,
    name: Option<String>,
    /// The label names, `1=liver,2=tumour`.
    labels: Option<String>,
}

/// Imports a DICOM series as a new case, or each series as its own (ML engineers, admins).
/// Slices are ordered along the slice normal; rescale is applied; who the patient is stays
/// with admins.
#[utoipa::path(post, path = "/cases/dicom", tag = "cases",
    request_body(content = DicomUpload, content_type = "multipart/form-data"),
    responses((status = 201, description = "The new cases, in SeriesNumber order", body = [CaseSummary])))]
async fn import_dicom(
    State(state): State<AppState>,
    Holding(user, _): Coordinator,
    ApiMultipart(mut form): ApiMultipart,
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

/// The multipart form of `POST /cases/{id}/segmentation`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "describes the form in the API document; the handler reads it field by field")]
struct SegmentationUpload {
    /// A DICOM Segmentation made on the case's series.
    #[schema(value_type = String, content_media_type = "application/dicom")]
    file: Vec<u8>,
    /// The mask version it replaces.
    base_mask_ref: String,
}

/// Saves a DICOM Segmentation made on the case's series as its next mask version; answers as
/// `POST /labels`.
#[utoipa::path(post, path = "/cases/{id}/segmentation", tag = "cases",
    params(CasePath, ("Idempotency-Key" = String, Header, description = "Unique per save (a UUID), sent again unchanged with each retry")),
    request_body(content = SegmentationUpload, content_type = "multipart/form-data"),
    responses((status = 201, description = "Saved as a new mask version", body = LabelSaved)))]
async fn import_segmentation(
    State(state): State<AppState>,
    Holding(user, _): Holding<Labelers>,
    key: IdempotencyKey,
    Path(CasePath { id: case_id }): Path<CasePath>,
    ApiMultipart(mut form): ApiMultipart,
) -> Result<axum::response::Response, AppError> {
    // Access is decided before the upload is read.
    let access = access::authorize(&state, &user, &access::case_named(&case_id)?, Save).await?;
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
    super::labels::saved(dicom_import::import_segmentation(&state, access, &key, &base, file.path()).await?)
}

/// Who the patient of a case imported from DICOM is, as the import kept it (admins); audited.
#[utoipa::path(get, path = "/cases/{id}/patient", tag = "cases", params(CasePath),
    responses((status = 200, description = "The patient", body = PatientRecord)))]
async fn patient(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(CasePath { id: case_id }): Path<CasePath>,
) -> Result<Json<PatientRecord>, AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&case_id)?, ReadPatient).await?;
    Ok(Json(dicom_import::patient(&state, &access).await?))
}
