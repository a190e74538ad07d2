//! Browser-only code of the WASM front end: the canvas viewer and mask editor, HTTP to object
//! storage and the API, and edits kept in IndexedDB. Its logic lives in `crate::viewer`,
//! shared with the server build and unit-tested natively.

mod kept;
mod net;
pub mod viewer;

/// Sends the model registration form to `POST /models`; the new model's id, or the
/// server's explanation of what is wrong.
pub async fn upload_model(form: &web_sys::HtmlFormElement) -> Result<String, String> {
    net::post_form("/models", form).await.map(|answer| answer["model_id"].as_str().unwrap_or_default().to_string())
}
