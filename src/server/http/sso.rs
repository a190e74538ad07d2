//! The browser's side of single sign-on: `GET /auth/oidc/login` sends it to the provider,
//! `GET /auth/oidc/callback` is where the provider sends it back. Pages, not JSON: a person
//! follows these.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use tower_sessions::Session;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::ApiQuery;
use crate::server::auth;
use crate::server::error::AppError;
use crate::server::services::sso;
use crate::server::state::AppState;

/// The cookie holding an attempt's `state` in the browser that started it. `SameSite=Lax`: the
/// provider's redirect back is a cross-site navigation, which a Strict cookie would miss.
const STATE_COOKIE: &str = "seglab_sso_state";

/// Whether cookies are marked `Secure` (`--cookie-secure`).
#[derive(Clone, Copy)]
struct SecureCookies(bool);

pub fn routes(cookie_secure: bool) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sign_on))
        .routes(routes!(sign_on_callback))
        .layer(Extension(SecureCookies(cookie_secure)))
}

/// Starts a single sign-on: a redirect to the identity provider's login, with PKCE, `state`
/// and `nonce`. 404 when no provider is configured.
#[utoipa::path(get, path = "/auth/oidc/login", tag = "accounts", security(()),
    responses((status = 303, description = "To the provider's login page",
        headers(("location" = String, description = "The provider's authorisation URL")))))]
async fn sign_on(
    State(state): State<AppState>,
    Extension(SecureCookies(secure)): Extension<SecureCookies>,
) -> Result<Response, AppError> {
    let (url, attempt) = sso::begin(&state).await?;
    let secure = if secure { "; Secure" } else { "" };
    let max_age = sso::ATTEMPT_TTL_MS / 1000;
    let cookie =
        format!("{STATE_COOKIE}={attempt}; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, HeaderValue::from_str(&url).map_err(AppError::internal)?),
            (header::SET_COOKIE, HeaderValue::from_str(&cookie).map_err(AppError::internal)?),
        ],
    )
        .into_response())
}

/// What the provider sends back: a code and the attempt's state, or an error.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    /// The provider's refusal (the person cancelled, or is not allowed).
    error: Option<String>,
    error_description: Option<String>,
}

/// Where the provider sends the browser back. On success the session starts and the page
/// moves on to the app (a page, not a redirect: the session cookie is SameSite=Strict, which
/// the browser sends only once it navigates from this site's own page); otherwise a page
/// saying why, and nobody is logged in.
#[utoipa::path(get, path = "/auth/oidc/callback", tag = "accounts", security(()), params(Callback),
    responses(
        (status = 200, description = "Signed on: a page that moves on to the app", body = String,
            content_type = "text/html"),
        (status = "4XX", description = "Refused: a page saying why (a malformed request: the JSON error)",
            content((String = "text/html"), (crate::api::ErrorBody = "application/json"))),
        (status = "5XX", description = "The provider or the server failed: a page saying why",
            content((String = "text/html"), (crate::api::ErrorBody = "application/json"))),
    ))]
async fn sign_on_callback(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    ApiQuery(callback): ApiQuery<Callback>,
) -> Response {
    let cookie_state = cookie(&headers, STATE_COOKIE);
    let outcome = match (&callback.error, &callback.code, &callback.state) {
        (Some(error), _, _) => Err(AppError::SignOnRefused(format!(
            "the identity provider said {error}{}",
            callback.error_description.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
        ))),
        (None, Some(code), Some(query_state)) => {
            match sso::finish(&state, cookie_state.as_deref(), query_state, code).await {
                Ok((user, id_token)) => auth::start_session(&session, &user, Some(&id_token)).await.map(|()| user),
                Err(err) => Err(err),
            }
        }
        _ => Err(AppError::BadRequest("the provider's answer lacks `code` or `state`".into())),
    };
    // The attempt is over either way.
    let clear = format!("{STATE_COOKIE}=; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age=0");
    let (status, page) = match outcome {
        Ok(user) => (
            StatusCode::OK,
            format!(
                "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"0; url=/\">\
                 <title>Signed in</title></head><body><p>Signed in as {}. <a href=\"/\">Continue</a></p></body></html>",
                escape(user.username.as_str())
            ),
        ),
        Err(err) => {
            tracing::info!(%err, "single sign-on refused");
            // An internal error's details are for the log only.
            let message = match &err {
                AppError::Internal(_) => "internal error; the details are in the server log".to_string(),
                other => other.to_string(),
            };
            (
                err.status(),
                format!(
                    "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Sign-on failed</title></head><body>\
                     <h1>Sign-on failed</h1><p class=\"error\">{}</p><p><a href=\"/login\">Back to the login page</a></p>\
                     </body></html>",
                    escape(&message)
                ),
            )
        }
    };
    let mut response = (status, Html(page)).into_response();
    if let Ok(clear) = HeaderValue::from_str(&clear) {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    response
}

/// The value of cookie `name` in the request.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('=').map(str::to_string))
}

/// Text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
