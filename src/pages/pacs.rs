//! Import from PACS, at `/pacs` (ML engineers and admins): search the hospital's PACS for
//! studies, by a patient's ID or pseudonym, an accession number, a modality or a date, and
//! import a series as a case, in the background, its progress shown as it goes. Patients are
//! shown by pseudonym.

use leptos::prelude::*;

use crate::api::{ApiError, PacsImportJob, PacsImportStatus, PacsStudy};

#[server]
pub async fn search_pacs(
    patient: String,
    accession: String,
    modality: String,
    date: String,
) -> Result<Vec<PacsStudy>, ApiError> {
    use crate::api::PacsQuery;
    use crate::server::identity::Role;
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    user.require_any(&Role::COORDINATORS, "searching the PACS")?;
    let given = |text: String| (!text.trim().is_empty()).then_some(text);
    let query = PacsQuery {
        patient: given(patient),
        accession: given(accession),
        modality: given(modality),
        date: given(date),
    };
    Ok(crate::server::services::pacs::search(&state, &query).await?)
}

/// Starts importing a series in the background; the page follows the job.
#[server]
pub async fn import_from_pacs(
    study_instance_uid: String,
    series_instance_uid: String,
    labels: String,
) -> Result<PacsImportJob, ApiError> {
    use crate::api::PacsImport;
    use crate::server::identity::Role;
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    user.require_any(&Role::COORDINATORS, "importing from the PACS")?;
    let request = PacsImport { study_instance_uid, series_instance_uid, name: None, labels: Some(labels) };
    Ok(crate::server::services::pacs_imports::enqueue(&state, &user, &request).await?)
}

#[server]
pub async fn follow_pacs_import(id: String) -> Result<PacsImportJob, ApiError> {
    use crate::server::identity::Role;
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    user.require_any(&Role::COORDINATORS, "following PACS imports")?;
    Ok(crate::server::services::pacs_imports::get(&state, &id).await?)
}

#[component]
pub fn PacsPage() -> impl IntoView {
    let search = ServerAction::<SearchPacs>::new();
    let import = ServerAction::<ImportFromPacs>::new();
    let labels = RwSignal::new(String::new());
    view! {
        <h1>"Import from PACS"</h1>
        <p class="muted">"Search the hospital's PACS (DICOMweb) and import a series as a case. Patients appear by pseudonym."</p>
        <ActionForm action=search attr:class="register">
            <label>"Patient ID or pseudonym" <input name="patient" data-testid="pacs-patient"/></label>
            <label>"Accession number" <input name="accession"/></label>
            <label>"Modality" <input name="modality" size="4" placeholder="CT, MR…"/></label>
            <label>"Study date" <input name="date" placeholder="YYYYMMDD or a range"/></label>
            <button type="submit" class="primary" data-testid="pacs-search">"Search"</button>
        </ActionForm>
        <label>"Labels of imported cases " <input prop:value=move || labels.get() data-testid="pacs-labels" placeholder="1=liver,2=tumour"
            on:change=move |ev| labels.set(event_target_value(&ev))/></label>
        {move || match search.value().get() {
            None => None,
            Some(Err(err)) => Some(view! { <p class="error" role="alert">{err.to_string()}</p> }.into_any()),
            Some(Ok(studies)) if studies.is_empty() => Some(view! { <p data-testid="pacs-none">"No study matches."</p> }.into_any()),
            Some(Ok(studies)) => Some(view! { <StudyTable studies import labels/> }.into_any()),
        }}
        {move || match import.value().get() {
            None => None,
            Some(Err(err)) => Some(view! { <p class="error" role="alert">{err.to_string()}</p> }.into_any()),
            Some(Ok(job)) => Some(view! { <ImportProgress job/> }.into_any()),
        }}
    }
}

/// A background import as it goes: the instances retrieved, the attempts while the PACS is
/// down, then the case or the reason it failed. Asked again every second until it finishes.
#[component]
fn ImportProgress(job: PacsImportJob) -> impl IntoView {
    let current = RwSignal::new(job);
    #[cfg(feature = "hydrate")]
    {
        let handle = set_interval_with_handle(
            move || {
                let Some(job) = current.try_get_untracked().filter(|job| !job.status.is_finished()) else { return };
                leptos::task::spawn_local(async move {
                    if let Ok(fresh) = follow_pacs_import(job.id).await {
                        let _ = current.try_set(fresh);
                    }
                });
            },
            std::time::Duration::from_secs(1),
        );
        if let Ok(handle) = handle {
            on_cleanup(move || handle.clear());
        }
    }
    move || {
        let job = current.get();
        match (job.status, job.case_id) {
            (PacsImportStatus::Succeeded, Some(case_id)) => view! {
                <p role="status" data-testid="pacs-imported">
                    "Imported: " <a href=format!("/cases/{case_id}")>"open the case"</a>
                </p>
            }
            .into_any(),
            (PacsImportStatus::Failed, _) => view! {
                <p class="error" role="alert">{format!("The import failed: {}", job.error.unwrap_or_default())}</p>
            }
            .into_any(),
            _ => view! {
                <p role="status" data-testid="pacs-importing">
                    {match job.instances_total {
                        0 => "Listing the series' instances…".to_string(),
                        total => format!("Retrieving: {} of {total} instances", job.instances_done),
                    }}
                    {job.error.map(|error| format!(" (attempt {}; the last one failed: {error})", job.attempts))}
                </p>
            }
            .into_any(),
        }
    }
}

#[component]
fn StudyTable(
    studies: Vec<PacsStudy>,
    import: ServerAction<ImportFromPacs>,
    labels: RwSignal<String>,
) -> impl IntoView {
    view! {
        <table class="pacs" data-testid="pacs-studies">
            <thead><tr><th>"Patient"</th><th>"Date"</th><th>"Study"</th><th>"Series"</th><th>"Images"</th><th></th></tr></thead>
            <tbody>
                {studies
                    .into_iter()
                    .flat_map(|study| {
                        let study_uid = study.study_instance_uid.clone();
                        let (pseudonym, date, description) =
                            (study.pseudonym, study.study_date.unwrap_or_default(), study.study_description.unwrap_or_default());
                        study.series.into_iter().map(move |series| {
                            let (study_instance_uid, series_instance_uid) = (study_uid.clone(), series.series_instance_uid.clone());
                            view! {
                                <tr>
                                    <td>{pseudonym.clone()}</td>
                                    <td>{date.clone()}</td>
                                    <td>{description.clone()}</td>
                                    <td>{format!("{} {}", series.modality, series.series_description)}</td>
                                    <td>{series.instances.map(|n| n.to_string()).unwrap_or_default()}</td>
                                    <td>
                                        <button data-testid="pacs-import" disabled=move || import.pending().get()
                                            on:click=move |_| {
                                                import.dispatch(ImportFromPacs {
                                                    study_instance_uid: study_instance_uid.clone(),
                                                    series_instance_uid: series_instance_uid.clone(),
                                                    labels: labels.get_untracked(),
                                                });
                                            }>
                                            "Import"
                                        </button>
                                    </td>
                                </tr>
                            }
                        })
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}
