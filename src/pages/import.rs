//! Import, at `/import` (ML engineers and admins): a NIfTI case (image, optional mask), or DICOM
//! files, a folder or a zip of them, sent to the REST routes that scripts use; or the PACS. The
//! page lists what will be sent, says while it is sent, and shows the cases made or the
//! server's reason for refusing.

use leptos::prelude::*;

/// What one form did: nothing yet, sending, the cases made, or the reason for a refusal.
#[derive(Clone, Debug, PartialEq)]
// Only the browser sends forms: the server renders the idle page.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
enum Outcome {
    Idle,
    Sending(String),
    Made(Vec<(String, String)>),
    Refused(String),
}

#[component]
pub fn ImportPage() -> impl IntoView {
    view! {
        <h1>"Import"</h1>
        <p class="muted">
            "Import a case from NIfTI files, or a DICOM series from files, a folder or a zip; or "
            <a href="/pacs">"search the PACS"</a>". Labels look like "<code>"1=liver,2=tumour"</code>
            ", optionally with codes: "<code>"3=left kidney|SCT:64033007"</code>"."
        </p>
        <ImportForm
            title="NIfTI case"
            url="/cases"
            testid="import-nifti"
            fields=view! {
                <label>"Name" <input name="name" required/></label>
                <label>"Image (.nii, .nii.gz)" <input type="file" name="image" accept=".nii,.gz" required/></label>
                <label>"Mask (optional)" <input type="file" name="mask" accept=".nii,.gz"/></label>
                <label>"Labels" <input name="labels" placeholder="1=liver,2=tumour"/></label>
            }
            .into_any()
        />
        <ImportForm
            title="DICOM series"
            url="/cases/dicom"
            testid="import-dicom"
            fields=view! {
                <label>"Files or a zip" <input type="file" name="files" multiple data-testid="dicom-files"/></label>
                <label>"Or a folder" <input type="file" name="files" multiple webkitdirectory=""/></label>
                <label>"Series (a SeriesInstanceUID, or all)" <input name="series"/></label>
                <label>"Name (optional)" <input name="name"/></label>
                <label>"Labels" <input name="labels" placeholder="1=liver,2=tumour"/></label>
            }
            .into_any()
        />
    }
}

/// One import form: its chosen files listed with their sizes, then what became of them.
#[component]
fn ImportForm(title: &'static str, url: &'static str, testid: &'static str, fields: AnyView) -> impl IntoView {
    let outcome = RwSignal::new(Outcome::Idle);
    let chosen = RwSignal::new(Vec::<(String, f64)>::new());
    let form = NodeRef::<leptos::html::Form>::new();
    // The files of every file input of the form, as they will be sent.
    let list_files = move |_| {
        #[cfg(feature = "hydrate")]
        if let Some(form) = form.get() {
            use wasm_bindgen::JsCast;
            let mut files = Vec::new();
            if let Ok(inputs) = form.query_selector_all("input[type=file]") {
                for index in 0..inputs.length() {
                    let input = inputs.item(index).and_then(|node| node.dyn_into::<web_sys::HtmlInputElement>().ok());
                    let Some(list) = input.and_then(|input| input.files()) else { continue };
                    for n in 0..list.length() {
                        if let Some(file) = list.item(n) {
                            files.push((file.name(), file.size()));
                        }
                    }
                }
            }
            chosen.set(files);
        }
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        if let Some(form) = form.get() {
            let (count, bytes) =
                chosen.with_untracked(|files| (files.len(), files.iter().map(|(_, size)| size).sum::<f64>()));
            outcome.set(Outcome::Sending(format!("Sending {count} files ({:.1} MB)…", bytes / 1e6)));
            leptos::task::spawn_local(async move {
                outcome.set(match crate::browser::import_cases(url, &form).await {
                    Ok(cases) => Outcome::Made(cases),
                    Err(reason) => Outcome::Refused(reason),
                });
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (form, url);
    };
    view! {
        <h2>{title}</h2>
        <form class="register" node_ref=form on:submit=submit on:change=list_files data-testid=testid>
            {fields}
            <button type="submit" class="primary" disabled=move || matches!(outcome.get(), Outcome::Sending(_))>"Import"</button>
        </form>
        {move || {
            let files = chosen.get();
            (!files.is_empty()).then(|| view! {
                <details class="chosen">
                    <summary>{format!("{} files chosen", files.len())}</summary>
                    <ul>
                        {files.into_iter().map(|(name, size)| view! { <li>{format!("{name} ({:.1} KB)", size / 1024.0)}</li> }).collect_view()}
                    </ul>
                </details>
            })
        }}
        {move || match outcome.get() {
            Outcome::Idle => None,
            Outcome::Sending(text) => Some(view! { <p role="status">{text}</p> }.into_any()),
            Outcome::Refused(reason) => Some(view! { <p class="error" role="alert">{reason}</p> }.into_any()),
            Outcome::Made(cases) => Some(view! {
                <p role="status" data-testid="imported">
                    "Imported: "
                    {cases.into_iter().map(|(id, name)| view! { <a href=format!("/cases/{id}")>{name}</a>" " }).collect_view()}
                </p>
            }.into_any()),
        }}
    }
}
