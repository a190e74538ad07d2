//! The list of cases to label.

use leptos::prelude::*;

use crate::api::{ApiError, CaseSummary};
use crate::pages::common::loaded;

#[server]
pub async fn list_cases() -> Result<Vec<CaseSummary>, ApiError> {
    let (state, _user) = crate::server::auth::server_fn_caller().await?;
    Ok(crate::server::services::cases::list_cases(&state).await?)
}

#[component]
pub fn CaseListPage() -> impl IntoView {
    let cases = Resource::new(|| (), |_| list_cases());
    view! {
        <h1>"Cases"</h1>
        <Suspense fallback=|| view! { <p>"Loading cases…"</p> }>
            {move || Suspend::new(async move {
                loaded(cases.await, |cases| match cases.is_empty() {
                    true => view! { <p>"No cases yet. Import one with `seglab import`."</p> }.into_any(),
                    false => view! { <CaseTable cases/> }.into_any(),
                })
            })}
        </Suspense>
    }
}

#[component]
fn CaseTable(cases: Vec<CaseSummary>) -> impl IntoView {
    view! {
        <table class="cases">
            <thead>
                <tr>
                    <th>"Case"</th>
                    <th>"Size (voxels)"</th>
                    <th>"Voxel type"</th>
                </tr>
            </thead>
            <tbody>
                {cases
                    .into_iter()
                    .map(|case| {
                        let [i, j, k] = case.dims;
                        view! {
                            <tr>
                                <td>
                                    <a href=format!("/cases/{}", case.id)>{case.name}</a>
                                </td>
                                <td>{format!("{i} × {j} × {k}")}</td>
                                <td>{case.image_voxel_type}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}
