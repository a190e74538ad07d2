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

#[server]
pub async fn log_out() -> Result<(), ApiError> {
    use crate::server::auth;
    let (_, session) = auth::server_fn_session().await?;
    auth::log_out(&session).await?;
    leptos_axum::redirect("/login");
    Ok(())
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let log_in = ServerAction::<LogIn>::new();
    view! {
        <h1>"Log in"</h1>
        <ActionForm action=log_in attr:class="login">
            <label>"Username" <input type="text" name="username" autocomplete="username" required/></label>
            <label>
                "Password" <input type="password" name="password" autocomplete="current-password" required/>
            </label>
            <button type="submit">"Log in"</button>
        </ActionForm>
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
