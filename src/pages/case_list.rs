//! The list of cases to label.

use leptos::prelude::*;

use crate::types::CaseSummary;

/// A failed load, with the way out when the cause is a missing login.
#[component]
pub fn LoadError(err: ServerFnError) -> impl IntoView {
    let message = err.to_string();
    let needs_login = message.contains("authentication required");
    view! {
        <p class="error">{message}</p>
        {needs_login.then(|| view! { <p><a href="/login">"Log in"</a></p> })}
    }
}

#[server]
pub async fn list_cases() -> Result<Vec<CaseSummary>, ServerFnError> {
    let (state, _user) = crate::server::sessions::server_fn_caller().await?;
    Ok(crate::server::services::cases::list_cases(&state).await?)
}

#[component]
pub fn CaseListPage() -> impl IntoView {
    let cases = Resource::new(|| (), |_| list_cases());
    view! {
        <h1>"Cases"</h1>
        <Suspense fallback=|| view! { <p>"Loading cases…"</p> }>
            {move || Suspend::new(async move {
                match cases.await {
                    Ok(cases) if cases.is_empty() => {
                        view! { <p>"No cases yet. Import one with `seglab import`."</p> }.into_any()
                    }
                    Ok(cases) => view! { <CaseTable cases/> }.into_any(),
                    Err(err) => view! { <LoadError err/> }.into_any(),
                }
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
