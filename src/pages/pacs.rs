//! Import from PACS, at `/pacs` (ML engineers and admins): search the hospital's PACS for
//! studies, by a patient's ID or pseudonym, an accession number, a modality or a date, and
//! import a series as a case. Patients are shown by pseudonym.

use leptos::prelude::*;

use crate::api::{ApiError, CaseSummary, PacsStudy};

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

#[server]
pub async fn import_from_pacs(
    study_instance_uid: String,
    series_instance_uid: String,
    labels: String,
) -> Result<Vec<CaseSummary>, ApiError> {
    use crate::api::PacsImport;
    use crate::server::identity::Role;
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    user.require_any(&Role::COORDINATORS, "importing from the PACS")?;
    let request = PacsImport { study_instance_uid, series_instance_uid, name: None, labels: Some(labels) };
    Ok(crate::server::services::pacs::import(&state, &user.id, &request).await?)
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
            Some(Ok(cases)) => Some(view! {
                <p role="status" data-testid="pacs-imported">
                    "Imported: "
                    {cases.into_iter().map(|case| view! { <a href=format!("/cases/{}", case.id)>{case.name}</a>" " }).collect_view()}
                </p>
            }.into_any()),
        }}
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
