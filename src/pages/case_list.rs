//! The worklist: cases with their status, labeler, reviewer and last save; filtered by status,
//! assignee and name, sorted, a page at a time; and the button that opens the next case.

use leptos::prelude::*;

use crate::api::{ApiError, CaseStatus, NextCase, RowReadings, Worklist, WorklistQuery, WorklistRow, WorklistSort};
use crate::display::format_time;
use crate::pages::case_workflow::status_text;
use crate::pages::common::loaded;

/// A page of the worklist; without a query, the view the person's roles start with (a
/// labeler's own cases).
#[server]
pub async fn get_worklist(query: Option<WorklistQuery>) -> Result<Worklist, ApiError> {
    use crate::server::services::worklist;
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    let query = query.unwrap_or_else(|| worklist::default_query(&user));
    Ok(worklist::list(&state, &user, &query).await?)
}

#[server]
pub async fn open_next_case() -> Result<NextCase, ApiError> {
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    Ok(crate::server::services::worklist::next_case(&state, &user).await?)
}

#[component]
pub fn CaseListPage() -> impl IntoView {
    // None until a control changes it: the server then picks the starting view.
    let query = RwSignal::new(None::<WorklistQuery>);
    let worklist = Resource::new(move || query.get(), get_worklist);
    let next = ServerAction::<OpenNextCase>::new();
    let navigate = leptos_router::hooks::use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(case)) = next.value().get() {
            navigate(&format!("/cases/{}", case.id), Default::default());
        }
    });
    view! {
        <h1>"Cases"</h1>
        <p class="actions">
            <button class="primary" on:click=move |_| { next.dispatch(OpenNextCase {}); }>"Next case"</button>
            {move || match next.value().get() {
                Some(Err(err)) => Some(view! { <span class="muted" role="status">{err.to_string()}</span> }),
                _ => None,
            }}
        </p>
        <Transition fallback=|| view! { <p>"Loading cases…"</p> }>
            {move || Suspend::new(async move { loaded(worklist.await, move |worklist| view! { <WorklistView worklist query/> }) })}
        </Transition>
    }
}

#[component]
fn WorklistView(worklist: Worklist, query: RwSignal<Option<WorklistQuery>>) -> impl IntoView {
    let Worklist { query: applied, rows, total, counts } = worklist;
    let applied = StoredValue::new(applied);
    // A change of filter or order starts again at page 1.
    let change = move |edit: &dyn Fn(&mut WorklistQuery)| {
        let mut next = applied.get_value();
        next.page = 1;
        edit(&mut next);
        query.set(Some(next));
    };
    let all: u64 = counts.iter().map(|count| count.cases).sum();
    let current = applied.get_value();
    let pages = total.div_ceil(current.per_page as u64).max(1);
    let tab = move |status: Option<CaseStatus>, label: String| {
        view! {
            <button class:active=current.status == status on:click=move |_| change(&|q| q.status = status)>{label}</button>
        }
    };
    let sorter = move |sort: WorklistSort, label: &'static str| {
        let arrow = match (current.sort == sort, current.desc) {
            (true, false) => " ▲",
            (true, true) => " ▼",
            _ => "",
        };
        view! {
            <th>
                <button class="sort" on:click=move |_| change(&|q| {
                    q.desc = q.sort == sort && !q.desc;
                    q.sort = sort;
                })>
                    {format!("{label}{arrow}")}
                </button>
            </th>
        }
    };
    view! {
        <div class="toolbar worklist-filters">
            <div class="group" role="tablist" aria-label="Status">
                {tab(None, format!("All ({all})"))}
                {counts.iter().map(|count| tab(Some(count.status), format!("{} ({})", status_text(count.status), count.cases))).collect_view()}
            </div>
            <label class="group">
                "Assigned to"
                <select aria-label="Assigned to" on:change=move |ev| {
                    let choice = event_target_value(&ev);
                    change(&|q| q.assignee = (!choice.is_empty()).then(|| choice.clone()));
                }>
                    <option value="" selected=current.assignee.is_none()>"anyone"</option>
                    <option value="me" selected=current.assignee.as_deref() == Some("me")>"me"</option>
                    <option value="none" selected=current.assignee.as_deref() == Some("none")>"nobody yet"</option>
                </select>
            </label>
            <label class="group">
                "Name"
                <input type="search" aria-label="Search by name" prop:value=current.q.clone().unwrap_or_default()
                    on:change=move |ev| {
                        let text = event_target_value(&ev);
                        change(&|q| q.q = (!text.trim().is_empty()).then(|| text.clone()));
                    }/>
            </label>
            <label class="group">
                "Modality"
                <input type="search" size="4" aria-label="Modality" placeholder="CT, MR…" prop:value=current.modality.clone().unwrap_or_default()
                    on:change=move |ev| {
                        let text = event_target_value(&ev);
                        change(&|q| q.modality = (!text.trim().is_empty()).then(|| text.clone()));
                    }/>
            </label>
            <label class="group">
                "Patient"
                <input type="search" size="12" aria-label="Patient pseudonym" placeholder="P-…" prop:value=current.patient.clone().unwrap_or_default()
                    on:change=move |ev| {
                        let text = event_target_value(&ev);
                        change(&|q| q.patient = (!text.trim().is_empty()).then(|| text.clone()));
                    }/>
            </label>
        </div>
        {match rows.is_empty() {
            true => view! { <p data-testid="no-cases">"No cases here. Change the filters, or import cases with "<code>"seglab import"</code>"."</p> }.into_any(),
            false => view! {
                <table class="cases">
                    <thead>
                        <tr>
                            {sorter(WorklistSort::Name, "Case")}
                            {sorter(WorklistSort::Status, "Status")}
                            <th>"Labeler or readers"</th>
                            <th>"Reviewer"</th>
                            {sorter(WorklistSort::LastSaved, "Last save")}
                            <th>"Labelled voxels"</th>
                            <th>"Size (voxels)"</th>
                        </tr>
                    </thead>
                    <tbody>{rows.into_iter().map(row).collect_view()}</tbody>
                </table>
            }.into_any(),
        }}
        <p class="actions pager">
            <button prop:disabled={current.page <= 1} on:click=move |_| query.set(Some(WorklistQuery { page: applied.get_value().page - 1, ..applied.get_value() }))>
                "Previous"
            </button>
            <span data-testid="page">{format!("Page {} of {pages} · {total} cases", current.page)}</span>
            <button prop:disabled={current.page as u64 >= pages} on:click=move |_| query.set(Some(WorklistQuery { page: applied.get_value().page + 1, ..applied.get_value() }))>
                "Next"
            </button>
        </p>
    }
}

/// The labeler cell of a case read by several readers.
fn readers_text(readings: &RowReadings) -> String {
    let RowReadings { required, taken, submitted, mine } = readings;
    let yours = match mine {
        Some(true) => " · yours submitted",
        Some(false) => " · yours to finish",
        None if taken < required => " · a reading to take",
        None => "",
    };
    format!("{taken} of {required} readers, {submitted} submitted{yours}")
}

fn row(case: WorklistRow) -> impl IntoView {
    let [i, j, k] = case.dims;
    let labelled = match case.label_counts {
        Some(counts) if counts.is_empty() => "none".to_string(),
        Some(counts) => {
            counts.iter().map(|(label, voxels)| format!("{label}: {voxels}")).collect::<Vec<_>>().join(" · ")
        }
        None => "–".to_string(),
    };
    let last_save = match (case.last_saved_by, case.last_saved_at_ms) {
        (Some(who), Some(at)) => format!("{who}, {}", format_time(at)),
        _ => "–".to_string(),
    };
    view! {
        <tr>
            <td><a href=format!("/cases/{}", case.id)>{case.name}</a></td>
            <td><span class=format!("case-status {}", case.status.as_str())>{status_text(case.status)}</span></td>
            <td>{match case.readings {
                Some(readings) => readers_text(&readings),
                None => case.assignee.map_or_else(|| "–".into(), String::from),
            }}</td>
            <td>{case.reviewer.map_or_else(|| "–".into(), String::from)}</td>
            <td>{last_save}</td>
            <td class="counts">{labelled}</td>
            <td>{format!("{i} × {j} × {k}")}</td>
        </tr>
    }
}
