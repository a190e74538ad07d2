//! One case: the viewer and mask editor, the version history, and the artifacts with their
//! presigned links.

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::pages::case_list::LoadError;
use crate::pages::viewer_panel::CaseViewer;
use crate::types::{Artifact, ArtifactKind, CaseArtifacts};

#[server]
pub async fn get_case_artifacts(case_id: String) -> Result<CaseArtifacts, ServerFnError> {
    let (state, _user) = crate::server::sessions::server_fn_caller().await?;
    Ok(crate::server::services::cases::case_artifacts(&state, &case_id, true).await?)
}

#[component]
pub fn CasePage() -> impl IntoView {
    let params = use_params_map();
    let case_id = move || params.read().get("id").unwrap_or_default();
    // The editor loads once per case; the links table below can refresh on its own.
    let opened = Resource::new(case_id, get_case_artifacts);
    // Bumping this re-requests the artifacts, which presigns fresh URLs.
    let refreshes = RwSignal::new(0u32);
    let artifacts = Resource::new(move || (case_id(), refreshes.get()), |(id, _)| get_case_artifacts(id));
    view! {
        <Suspense fallback=|| view! { <p>"Loading case…"</p> }>
            {move || Suspend::new(async move {
                match opened.await {
                    Ok(case) => view! { <h1>{case.case_name.clone()}</h1> <CaseViewer case/> }.into_any(),
                    Err(err) => view! { <LoadError err/> }.into_any(),
                }
            })}
        </Suspense>
        <h2>"Files"</h2>
        <Transition fallback=|| view! { <p>"Loading case…"</p> }>
            {move || Suspend::new(async move {
                match artifacts.await {
                    Ok(case) => view! { <CaseDetails case/> }.into_any(),
                    Err(err) => view! { <LoadError err/> }.into_any(),
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
        <p class="mask-ref">"Current mask version: " <code>{case.current_mask_ref}</code></p>
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
            <td>{artifact.voxel_type}</td>
            <td>{format!("{si:.2} × {sj:.2} × {sk:.2}")}</td>
            <td>
                <a href=artifact.url data-kind=kind>
                    {format!("download ({} KB)", (artifact.size_bytes + 1023) / 1024)}
                </a>
            </td>
        </tr>
    }
}
