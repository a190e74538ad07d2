//! Logging in and out of the browser session.

use leptos::prelude::*;

use crate::api::ApiError;

#[server]
pub async fn log_in(username: String, password: String) -> Result<(), ApiError> {
    use crate::server::auth;
    let (state, session) = auth::server_fn_session().await?;
    let parts: axum::http::request::Parts =
        leptos_axum::extract().await.map_err(crate::server::error::AppError::internal)?;
    auth::log_in(&state, &session, auth::client_address(&parts.extensions), &username, &password).await?;
    leptos_axum::redirect("/");
    Ok(())
}

/// Ends the session, and a single sign-on's session at the provider too (the browser is sent
/// there, and the provider sends it back to the login page).
#[server(endpoint = "log_out")]
pub async fn log_out() -> Result<(), ApiError> {
    use crate::server::auth;
    let (state, session) = auth::server_fn_session().await?;
    let next = auth::log_out(&state, &session).await?;
    leptos_axum::redirect(&next);
    Ok(())
}

/// How people log in here: with a password, through the identity provider, or both.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoginMethods {
    pub passwords: bool,
    /// The provider's name, when single sign-on is configured.
    pub single_sign_on: Option<String>,
}

#[server]
pub async fn login_options() -> Result<LoginMethods, ApiError> {
    use crate::server::auth;
    let (state, _) = auth::server_fn_session().await?;
    Ok(LoginMethods {
        passwords: state.config.sso.password_login,
        single_sign_on: state.sso.as_ref().map(|provider| provider.settings().display_name.clone()),
    })
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let log_in = ServerAction::<LogIn>::new();
    let options = Resource::new(|| (), |_| login_options());
    view! {
        <h1>"Log in"</h1>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let options = options.await.ok()?;
                Some(view! {
                    {options.single_sign_on.map(|name| view! {
                        // A plain link: the sign-on leaves the app for the provider's pages.
                        <a class="button sso" href="/auth/oidc/login" rel="external">{format!("Sign in with {name}")}</a>
                    })}
                    {options.passwords.then(|| view! {
                        <ActionForm action=log_in attr:class="login">
                            <label>"Username" <input type="text" name="username" autocomplete="username" required/></label>
                            <label>
                                "Password" <input type="password" name="password" autocomplete="current-password" required/>
                            </label>
                            <button type="submit">"Log in"</button>
                        </ActionForm>
                    })}
                })
            })}
        </Suspense>
        {move || {
            log_in
                .value()
                .get()
                .and_then(Result::err)
                .map(|err| view! { <p class="error">{err.to_string()}</p> })
        }}
    }
}

/// The log-out button of the top bar.
#[component]
pub fn LogOutButton() -> impl IntoView {
    let log_out = ServerAction::<LogOut>::new();
    view! {
        <ActionForm action=log_out attr:class="logout">
            <button type="submit">"Log out"</button>
        </ActionForm>
    }
}
