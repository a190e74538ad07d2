//! Extractors of the REST routes: the caller (bearer token or browser session), and JSON
//! bodies, query strings and multipart forms whose rejections are `AppError`s like every
//! other failure (text holding control characters among them, see `server::text`).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use std::marker::PhantomData;
use std::path::Path;

use axum::extract::multipart::Field;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Multipart, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::Json;
use tokio::io::AsyncWriteExt;
use tower_sessions::Session;
use utoipa_axum::router::OpenApiRouter;

use crate::server::auth;
use crate::server::error::AppError;
use crate::server::identity::{Role, User};
use crate::server::scratch::ScratchFile;
use crate::server::services::idempotency::IdempotencyKey;
use crate::server::services::users;
use crate::server::state::AppState;
use crate::server::text::{check_json_text, check_text};

/// The caller of a REST route: from `Authorization: Bearer <token>` when the header is sent,
/// otherwise from the browser session.
pub struct Caller(pub User);

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        if let Some(auth::BearerCaller(user)) = parts.extensions.get::<auth::BearerCaller>() {
            return Ok(Caller(user.clone()));
        }
        if parts.headers.contains_key(header::AUTHORIZATION) {
            let token = auth::bearer_token(&parts.headers).ok_or(AppError::Unauthorized)?;
            let user = users::user_for_token(&state.db, token).await?.ok_or(AppError::Unauthorized)?;
            return Ok(Caller(user));
        }
        let session = Session::from_request_parts(parts, state).await.map_err(|_| AppError::Unauthorized)?;
        let user = auth::session_user(state, &session).await?.ok_or(AppError::Unauthorized)?;
        Ok(Caller(user))
    }
}

/// The roles a route needs, checked by [`Holding`].
pub trait RouteRoles {
    const ROLES: &'static [Role];
}

/// A caller holding one of `R::ROLES`. As a parts extractor it runs before any body extractor,
/// so a refused request never has its body read: role before body.
pub struct Holding<R>(pub User, pub PhantomData<R>);

impl<R: RouteRoles> FromRequestParts<AppState> for Holding<R> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Caller(user) = Caller::from_request_parts(parts, state).await?;
        user.require_any(R::ROLES, &format!("{} {}", parts.method, parts.uri.path()))?;
        Ok(Holding(user, PhantomData))
    }
}

/// ML engineers and admins: models, datasets, assignments, runs.
pub struct Coordinators;
impl RouteRoles for Coordinators {
    const ROLES: &'static [Role] = &Role::COORDINATORS;
}
pub type Coordinator = Holding<Coordinators>;

/// Those who save labels.
pub struct Labelers;
impl RouteRoles for Labelers {
    const ROLES: &'static [Role] = &[Role::Labeler];
}

/// Those who move cases through the workflow: labelers submit, reviewers review, admins both.
pub struct CaseWorkers;
impl RouteRoles for CaseWorkers {
    const ROLES: &'static [Role] = &[Role::Labeler, Role::Reviewer, Role::Admin];
}

/// Those who take readings, and those who give them.
pub struct ReadingTakers;
impl RouteRoles for ReadingTakers {
    const ROLES: &'static [Role] = &[Role::Labeler, Role::MlEngineer, Role::Admin];
}

/// Those who compare readers: reviewers (who adjudicate) and coordinators.
pub struct Comparers;
impl RouteRoles for Comparers {
    const ROLES: &'static [Role] = &[Role::Reviewer, Role::MlEngineer, Role::Admin];
}

/// The `Idempotency-Key` of a save, checked before the case or the body is looked at: a save
/// without a valid key is refused the same way whatever else it holds.
impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        // A value that is not text reads as empty, which the key check refuses.
        IdempotencyKey::parse(parts.headers.get("idempotency-key").map(|v| v.to_str().unwrap_or_default()))
    }
}

/// Bounds the bodies of `routes` to `max_bytes`: a request declaring a longer body is refused
/// before anything is read (413), and one that grows past the bound while read is refused too.
pub(crate) fn bounded_body(routes: OpenApiRouter<AppState>, max_bytes: usize) -> OpenApiRouter<AppState> {
    routes.layer(DefaultBodyLimit::max(max_bytes)).layer(middleware::from_fn(
        move |request: Request, next: Next| async move {
            let declared =
                request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if declared.is_some_and(|length| length > max_bytes as u64) {
                return AppError::PayloadTooLarge(format!("this request's body may hold at most {max_bytes} bytes"))
                    .into_response();
            }
            next.run(request).await
        },
    ))
}

/// A JSON object body whose rejections are `AppError`s: syntax or a control character in any
/// string → 400, anything but an object, wrong fields or types → 422.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        // Read as a JSON value first, so that every string is checked, whatever `T` makes of it.
        let value = match Json::<serde_json::Value>::from_request(req, state).await {
            Ok(Json(value)) => value,
            Err(JsonRejection::BytesRejection(e)) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(AppError::PayloadTooLarge(format!("request body too large: {}", e.body_text())))
            }
            Err(other) => return Err(AppError::BadRequest(other.body_text())),
        };
        check_json_text("JSON body", &value)?;
        // Every body is an object: serde would otherwise take a struct from an array of its
        // fields in order.
        if !value.is_object() {
            return Err(AppError::Unprocessable("the JSON body must be an object".into()));
        }
        serde_path_to_error::deserialize(value).map(ApiJson).map_err(|e| {
            AppError::Unprocessable(format!("Failed to deserialize the JSON body into the target type: {e}"))
        })
    }
}

/// Query parameters whose rejection is a JSON 400 like every other error.
pub struct ApiQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let Query(value) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e: QueryRejection| AppError::BadRequest(e.body_text()))?;
        Ok(ApiQuery(value))
    }
}

/// A multipart form whose rejection (not a form, or no boundary) is a JSON 400 like every
/// other error.
pub struct ApiMultipart(pub Multipart);

impl<S: Send + Sync> FromRequest<S> for ApiMultipart {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let form = Multipart::from_request(req, state)
            .await
            .map_err(|e| AppError::BadRequest(format!("expected a multipart/form-data body: {}", e.body_text())))?;
        Ok(ApiMultipart(form))
    }
}

/// A multipart body that cannot be read: 400.
pub(crate) fn bad_form(err: axum::extract::multipart::MultipartError) -> AppError {
    AppError::BadRequest(format!("invalid multipart form: {err}"))
}

/// A text field of a form, refused past `max_bytes` without reading further.
pub(crate) async fn field_text(mut field: Field<'_>, max_bytes: usize) -> Result<String, AppError> {
    let name = field.name().unwrap_or_default().to_string();
    let mut text = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(bad_form)? {
        if text.len() + chunk.len() > max_bytes {
            return Err(AppError::BadRequest(format!("form field `{name}` is longer than {max_bytes} bytes")));
        }
        text.extend_from_slice(&chunk);
    }
    let text =
        String::from_utf8(text).map_err(|_| AppError::BadRequest(format!("form field `{name}` is not UTF-8 text")))?;
    check_text(&format!("form field `{name}`"), &text)?;
    Ok(text)
}

/// A file field of a form with the name its sender gave it, written to scratch as
/// [`field_to_file`] writes it; `None` for a file input left empty, which a browser's form
/// sends as an empty part without a name.
pub(crate) async fn chosen_file(field: Field<'_>, dir: &Path) -> Result<Option<(ScratchFile, String)>, AppError> {
    let name: String = field.file_name().unwrap_or_default().chars().take(200).collect();
    let file = field_to_file(field, dir).await?;
    let empty = std::fs::metadata(file.path()).map_err(AppError::internal)?.len() == 0;
    Ok((!(name.is_empty() && empty)).then(|| (file, if name.is_empty() { "upload".to_string() } else { name })))
}

/// A file field of a form, written to a scratch file in `dir` as it arrives: an upload is
/// never held in memory.
pub(crate) async fn field_to_file(mut field: Field<'_>, dir: &Path) -> Result<ScratchFile, AppError> {
    let (scratch, file) = ScratchFile::create(dir).map_err(AppError::internal)?;
    let mut file = tokio::fs::File::from_std(file);
    while let Some(chunk) = field.chunk().await.map_err(bad_form)? {
        file.write_all(&chunk).await.map_err(AppError::internal)?;
    }
    file.flush().await.map_err(AppError::internal)?;
    Ok(scratch)
}

/// Path parameters: each route's `{…}` as a typed extractor that also describes it in the API
/// document.
macro_rules! path_params {
    ($($(#[$doc:meta])* $name:ident { $($(#[$field_doc:meta])* $field:ident),+ })+) => {$(
        $(#[$doc])*
        #[derive(serde::Deserialize, utoipa::IntoParams)]
        #[into_params(parameter_in = Path)]
        pub struct $name {
            $($(#[$field_doc])* pub $field: String,)+
        }
    )+};
}

path_params! {
    /// A case's routes.
    CasePath {
        /// The case's id.
        id
    }
    /// A mask version's file.
    MaskFilePath {
        /// The case's id.
        id,
        /// The version's file name: its mask ref with `.nii.gz`.
        file
    }
    /// A model version's routes.
    ModelPath {
        /// The model version's id.
        id
    }
    /// A run's routes.
    RunPath {
        /// The run's id, as `POST /cases/{id}/runs` answered it.
        id
    }
    /// A backfill's routes.
    BackfillPath {
        /// The backfill's id.
        id
    }
    /// A dataset's routes.
    DatasetPath {
        /// The dataset's id.
        id
    }
    /// A PACS import's routes.
    PacsImportPath {
        /// The import's id.
        id
    }
    /// A user's routes.
    UserPath {
        /// The user's name.
        username
    }
}
