//! Browser-only HTTP of the WASM front end, for the pages and the editor's browser side
//! (`crate::editor::browser`): object storage downloads, REST calls with typed errors, forms.

pub mod net;

/// Sends the model registration form to `POST /models`; the new model's id, or the
/// server's explanation of what is wrong.
pub async fn upload_model(form: &web_sys::HtmlFormElement) -> Result<String, String> {
    net::post_form("/models", form).await.map(|answer| answer["model_id"].as_str().unwrap_or_default().to_string())
}
