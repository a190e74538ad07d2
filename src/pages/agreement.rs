//! The readers page (`/readers`): how much readers agree across the cases a worklist filter selects (by name and modality):
//! the spread per label and per reader as charts and tables, and the cases they agree least
//! on, each a link to its page. For reviewers, ML engineers and admins.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::{AgreementOverview, ApiError, Spread};
use crate::pages::common::loaded;

#[server(endpoint = "get_agreement_overview")]
pub async fn get_agreement_overview(
    q: Option<String>,
    modality: Option<String>,
) -> Result<AgreementOverview, ApiError> {
    use crate::api::WorklistQuery;
    use crate::server::identity::Role;
    use crate::server::services::agreement;
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    user.require_any(&[Role::Reviewer, Role::MlEngineer, Role::Admin], "comparing readers")?;
    let query = WorklistQuery { q, modality, ..WorklistQuery::default() };
    Ok(agreement::overview(&state, &user, &query).await?)
}

fn figure(value: f64) -> String {
    format!("{value:.3}")
}

fn spread_cells(spread: &Spread) -> impl IntoView {
    view! {
        <td class="count">{figure(spread.median)}</td>
        <td class="count">{format!("{} – {}", figure(spread.q1), figure(spread.q3))}</td>
        <td class="count">{format!("{} – {}", figure(spread.min), figure(spread.max))}</td>
    }
}

#[component]
pub fn AgreementPage() -> impl IntoView {
    // The filter lives in the address, so a view can be shared as a link.
    let query = use_query_map();
    let given = move |key: &str| query.read().get(key).filter(|value| !value.trim().is_empty());
    let overview =
        Resource::new(move || (given("q"), given("modality")), |(q, modality)| get_agreement_overview(q, modality));
    view! {
        <h1>"Readers' agreement"</h1>
        <form class="filters" method="get" action="/readers">
            <label>"Name contains " <input name="q" aria-label="Name contains" prop:value=move || given("q").unwrap_or_default()/></label>
            <label>"Modality " <input name="modality" aria-label="Modality" size="4" prop:value=move || given("modality").unwrap_or_default()/></label>
            <button>"Show"</button>
        </form>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move { loaded(overview.await, |overview| view! { <Overview overview/> }) })}
        </Transition>
    }
}

#[component]
fn Overview(overview: AgreementOverview) -> impl IntoView {
    let AgreementOverview { cases, measured, pending, labels, readers, least_agreed, chart_svg } = overview;
    view! {
        <p data-testid="agreement-counts">
            {format!(
                "{cases} {} read by several readers: {measured} measured, {pending} being measured",
                if cases == 1 { "case" } else { "cases" }
            )}
        </p>
        {chart_svg.map(|svg| view! { <div class="chart" inner_html=svg></div> })}
        <h2>"Per label"</h2>
        <table class="agreement-labels">
            <thead><tr><th>"Label"</th><th>"Cases"</th><th>"Median of mean Dice"</th><th>"Quartiles"</th><th>"Range"</th></tr></thead>
            <tbody>
                {labels.into_iter().map(|label| view! {
                    <tr>
                        <td>{format!("{} {}", label.label, label.name)}</td>
                        <td class="count">{label.mean_dice.n}</td>
                        {spread_cells(&label.mean_dice)}
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
        <h2>"Per reader"</h2>
        <table class="agreement-readers" data-testid="agreement-readers">
            <thead>
                <tr><th>"Reader"</th><th>"Cases"</th><th>"Median Dice vs STAPLE"</th><th>"Quartiles"</th><th>"Range"</th><th>"Sensitivity"</th><th>"Specificity"</th></tr>
            </thead>
            <tbody>
                {readers.into_iter().map(|reader| view! {
                    <tr>
                        <td>{reader.reader.to_string()}</td>
                        <td class="count">{reader.cases}</td>
                        {spread_cells(&reader.dice_vs_staple)}
                        <td class="count">{figure(reader.mean_sensitivity)}</td>
                        <td class="count">{figure(reader.mean_specificity)}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
        <h2>"Cases readers agree least on"</h2>
        <table class="least-agreed" data-testid="least-agreed">
            <thead><tr><th>"Case"</th><th>"Readers"</th><th>"Mean Dice between readers"</th></tr></thead>
            <tbody>
                {least_agreed.into_iter().map(|case| view! {
                    <tr>
                        <td><a href=format!("/cases/{}", case.case_id)>{case.case_name}</a></td>
                        <td class="count">{case.readers}</td>
                        <td class="count">{figure(case.mean_dice)}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}
