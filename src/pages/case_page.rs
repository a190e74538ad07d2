//! One case: the viewer and mask editor, the version history, and the artifacts with their
//! presigned links. The page opens with one read (`get_case_page`); its parts refresh on their
//! own after a change.

use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::{
    ApiError, Artifact, ArtifactKind, CaseArtifacts, CaseOpened, Job, JobStatus, ModelState, PacsSent, RunStarted,
};
use crate::editor::panel::CaseViewer;
use crate::editor::ui::ViewerUi;
use crate::pages::case_workflow::{OpenedReview, ReviewPanel};
use crate::pages::common::loaded;
use crate::pages::registry::JobTable;

#[server(endpoint = "get_case_page")]
pub async fn get_case_page(case_id: String) -> Result<CaseOpened, ApiError> {
    use crate::server::services::{access, case_view};
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    let access = access::authorize(&state, &user, &access::case_named(&case_id)?, access::Read).await?;
    Ok(case_view::case_page(&state, &access).await?)
}

#[server(endpoint = "get_case_artifacts")]
pub async fn get_case_artifacts(case_id: String) -> Result<CaseArtifacts, ApiError> {
    use crate::server::services::{access, case_view};
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    let access = access::authorize(&state, &user, &access::case_named(&case_id)?, access::Read).await?;
    Ok(case_view::case_artifacts(&state, &access, true).await?)
}

#[server(endpoint = "case_jobs")]
pub async fn case_jobs(case_id: String) -> Result<Vec<Job>, ApiError> {
    use crate::server::services::access;
    use crate::server::services::jobs::{list_jobs, JobFilter};
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    let access = access::authorize(&state, &user, &access::case_named(&case_id)?, access::Read).await?;
    Ok(list_jobs(&state, &user, JobFilter::Case(&access)).await?)
}

/// Stores the case's approved mask version in the PACS as a segmentation of its series.
#[server(endpoint = "send_to_pacs")]
pub async fn send_to_pacs(case_id: String) -> Result<PacsSent, ApiError> {
    use crate::server::services::{access, pacs};
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    let access = access::authorize(&state, &user, &access::case_named(&case_id)?, access::SendToPacs).await?;
    Ok(pacs::send(&state, &access).await?)
}

/// The manual run trigger: every active model version on this case.
#[server(endpoint = "run_models")]
pub async fn run_models(case_id: String) -> Result<RunStarted, ApiError> {
    use crate::server::services::{access, orchestrator};
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    let access = access::authorize(&state, &user, &access::case_named(&case_id)?, access::RunModels).await?;
    Ok(orchestrator::run_on_case(&state, access).await?)
}

#[component]
pub fn CasePage() -> impl IntoView {
    let params = use_params_map();
    let case_id = move || params.read().get("id").unwrap_or_default();
    // `?compare=shadow&label=1` (the evaluation's links): compare that prediction with the mask.
    let query = use_query_map();
    let compare_with = query.read_untracked().get("compare").and_then(|role| ModelState::parse(&role));
    let focus_label = query.read_untracked().get("label").and_then(|label| label.parse::<u8>().ok());
    // The editor loads once per case; the links table below can refresh on its own.
    let opened = Resource::new(case_id, get_case_page);
    view! {
        <Suspense fallback=|| view! { <p>"Loading case…"</p> }>
            {move || Suspend::new(async move {
                loaded(opened.await, move |CaseOpened { artifacts, review, jobs }| {
                    let may_run = review.actions.run_models;
                    let may_send = review.actions.send_to_pacs && artifacts.series.is_some();
                    provide_context(OpenedReview(review));
                    view! {
                        <h1>{artifacts.case_name.clone()}</h1>
                        {artifacts.series.clone().map(|series| view! {
                            <p class="series" data-testid="series">
                                <span data-testid="pseudonym" title="Patient pseudonym">{series.pseudonym.clone()}</span>
                                {format!(" · {} · {}", series.modality, series.series_description)}
                                <span class="muted" title="StudyInstanceUID">{format!(" · study {}", series.study_instance_uid)}</span>
                            </p>
                        })}
                        <CaseViewer case=artifacts.clone() compare_with focus_label review=review_panel/>
                        <ModelRuns case_id=artifacts.case_id.to_string() jobs may_run/>
                        {may_send.then(|| view! { <SendToPacs case_id=artifacts.case_id.to_string()/> })}
                        <Files case=artifacts/>
                    }
                })
            })}
        </Suspense>
    }
}

/// The button that stores the approved mask version in the PACS, and what became of it.
#[component]
fn SendToPacs(case_id: String) -> impl IntoView {
    let send = ServerAction::<SendToPacs>::new();
    view! {
        <h2>"PACS"</h2>
        <p class="actions">
            <button data-testid="send-to-pacs" on:click=move |_| { send.dispatch(SendToPacs { case_id: case_id.clone() }); }
                disabled=move || send.pending().get()>
                "Send approved segmentation to PACS"
            </button>
            {move || match send.value().get() {
                Some(Ok(sent)) => Some(view! {
                    <span role="status" data-testid="sent-to-pacs">{format!("Stored in the PACS as {}", sent.sop_instance_uid)}</span>
                }.into_any()),
                Some(Err(err)) => Some(view! { <span class="error" role="alert">{err.to_string()}</span> }.into_any()),
                None => None,
            }}
        </p>
    }
}

/// The labels and the artifacts with their links, which the button presigns afresh.
#[component]
fn Files(case: CaseArtifacts) -> impl IntoView {
    let case_id = case.case_id.to_string();
    let refreshes = RwSignal::new(0u32);
    let refreshed = Resource::new(
        move || refreshes.get(),
        move |refresh| {
            let case_id = case_id.clone();
            async move {
                match refresh {
                    0 => None,
                    _ => Some(get_case_artifacts(case_id).await),
                }
            }
        },
    );
    let opened = StoredValue::new(case);
    view! {
        <h2>"Files"</h2>
        <Transition fallback=|| view! { <p>"Loading case…"</p> }>
            {move || Suspend::new(async move {
                match refreshed.await {
                    None => view! { <CaseDetails case=opened.get_value()/> }.into_any(),
                    Some(result) => loaded(result, |case| view! { <CaseDetails case/> }),
                }
            })}
        </Transition>
        <p class="actions">
            <button data-testid="refresh-links" on:click=move |_| refreshes.update(|n| *n += 1)>
                "Refresh links"
            </button>
            <span data-testid="refresh-count">
                {move || match refreshes.get() {
                    0 => String::new(),
                    n => format!("Links refreshed ({n}×)"),
                }}
            </span>
        </p>
    }
}

#[component]
fn CaseDetails(case: CaseArtifacts) -> impl IntoView {
    view! {
        <p class="labels">
            "Labels: "
            {case
                .labels
                .into_iter()
                .map(|label| {
                    view! {
                        <span class="label" style=format!("--label-color: {}", label.color)>
                            {format!("{} {}", label.value, label.name)}
                        </span>
                    }
                })
                .collect_view()}
        </p>
        <table class="artifacts">
            <thead>
                <tr>
                    <th>"Artifact"</th>
                    <th>"Size (voxels)"</th>
                    <th>"Voxel type"</th>
                    <th>"Spacing (mm)"</th>
                    <th>"File"</th>
                </tr>
            </thead>
            <tbody>
                {case.artifacts.into_iter().map(artifact_row).collect_view()}
            </tbody>
        </table>
        <p class="mask-ref">
            "Current mask version: " <code>{case.current_mask_ref.to_string()}</code>
            // A case imported from DICOM goes back to the hospital as a Segmentation object.
            {case.series.is_some().then(|| view! {
                " "
                <a data-testid="download-seg" href=format!("/{}?format=dicom-seg", case.current_mask_ref) download>
                    "Download as DICOM SEG"
                </a>
            })}
        </p>
    }
}

fn artifact_row(artifact: Artifact) -> impl IntoView {
    let [i, j, k] = artifact.dims;
    let [si, sj, sk] = artifact.spacing_mm;
    let kind = match artifact.kind {
        ArtifactKind::Image => "Image",
        ArtifactKind::Mask => "Mask",
    };
    view! {
        <tr>
            <td>{kind}</td>
            <td>{format!("{i} × {j} × {k}")}</td>
            <td>{artifact.voxel_type.as_str()}</td>
            <td>{format!("{si:.2} × {sj:.2} × {sk:.2}")}</td>
            <td>
                <a href=artifact.url data-kind=kind>
                    {format!("download ({} KB)", (artifact.size_bytes + 1023) / 1024)}
                </a>
            </td>
        </tr>
    }
}

/// Model jobs of this case (`jobs` as the page opened) and, for those who may run models, the
/// button that runs the active models on it. The list refreshes every two seconds while a job
/// is queued or running.
#[component]
fn ModelRuns(case_id: String, jobs: Vec<Job>, may_run: bool) -> impl IntoView {
    let run = ServerAction::<RunModels>::new();
    let ticks = RwSignal::new(0u32);
    let id = case_id.clone();
    let listed = Resource::new(
        move || (ticks.get(), run.version().get()),
        move |changes| {
            let (id, opened) = (id.clone(), (changes == (0, 0)).then(|| jobs.clone()));
            async move {
                match opened {
                    Some(jobs) => Ok(jobs),
                    None => case_jobs(id).await,
                }
            }
        },
    );
    let busy = move || {
        listed
            .get()
            .and_then(Result::ok)
            .is_some_and(|jobs| jobs.iter().any(|j| matches!(j.status, JobStatus::Queued | JobStatus::Running)))
    };
    #[cfg(feature = "hydrate")]
    {
        let handle = set_interval_with_handle(
            move || {
                if busy() {
                    ticks.update(|n| *n += 1);
                }
            },
            std::time::Duration::from_secs(2),
        );
        if let Ok(handle) = handle {
            on_cleanup(move || handle.clear());
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = busy;
    view! {
        <section class="runs">
            <p class="actions">
                {may_run.then(|| view! {
                    <button on:click=move |_| { run.dispatch(RunModels { case_id: case_id.clone() }); }>
                        "Run models on this case"
                    </button>
                })}
                {move || match run.value().get() {
                    Some(Ok(started)) => Some(view! { <span data-testid="run-status">{format!("Jobs queued: {}", started.jobs.len())}</span> }.into_any()),
                    Some(Err(err)) => Some(view! { <span class="error" role="alert">{err.to_string()}</span> }.into_any()),
                    None => None,
                }}
            </p>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move { loaded(listed.await, |jobs| view! { <JobTable jobs/> }) })}
            </Transition>
        </section>
    }
}

/// The review panel the editor shows for this case.
fn review_panel(ui: ViewerUi) -> AnyView {
    view! { <ReviewPanel ui/> }.into_any()
}
