//! What every page uses: showing a loaded value or the error that stopped it (with the way to
//! the login page when that is the cause).

use leptos::prelude::*;

use crate::api::{ApiError, ErrorCode};

/// A failed load, with the way out when the cause is a missing login.
#[component]
pub fn LoadError(err: ApiError) -> impl IntoView {
    let needs_login = err.code == ErrorCode::Unauthorized;
    view! {
        <p class="error">{err.message}</p>
        {needs_login.then(|| view! { <p><a href="/login">"Log in"</a></p> })}
    }
}

/// The view of a loaded value, or [`LoadError`].
pub fn loaded<T, V: IntoView + 'static>(result: Result<T, ApiError>, show: impl FnOnce(T) -> V) -> AnyView {
    match result {
        Ok(value) => show(value).into_any(),
        Err(err) => view! { <LoadError err/> }.into_any(),
    }
}
