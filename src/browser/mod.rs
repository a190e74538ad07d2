//! Browser-only HTTP of the WASM front end, for the pages and the editor's browser side
//! (`crate::editor::browser`): object storage downloads, REST calls with typed errors, forms.

pub mod net;

/// Sends the model registration form to `POST /models`; the new model's id, or the
/// server's explanation of what is wrong.
pub async fn upload_model(form: &web_sys::HtmlFormElement) -> Result<String, String> {
    net::post_form("/models", form).await.map(|answer| answer["model_id"].as_str().unwrap_or_default().to_string())
}

/// Sends an import form (`POST /cases` for a NIfTI case, `POST /cases/dicom` for DICOM files,
/// folders or zips); the cases made (id and name), or the server's reason for refusing.
pub async fn import_cases(url: &str, form: &web_sys::HtmlFormElement) -> Result<Vec<(String, String)>, String> {
    let answer = net::post_form(url, form).await?;
    let cases = match answer {
        serde_json::Value::Array(cases) => cases,
        single => vec![single],
    };
    Ok(cases
        .iter()
        .map(|case| {
            let text = |field: &str| case[field].as_str().unwrap_or_default().to_string();
            (text("id"), text("name"))
        })
        .collect())
}
