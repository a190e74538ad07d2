//! Dataset snapshots, at `/snapshots` (`/datasets` is the REST resource): the list (name,
//! version, who made it, the split), and for ML engineers and admins the form that freezes the
//! approved cases into a new one.

use leptos::prelude::*;

use crate::api::{ApiError, DatasetSummary};
use crate::display::format_time;
use crate::pages::common::loaded;

#[server]
pub async fn list_datasets() -> Result<(Vec<DatasetSummary>, bool), ApiError> {
    use crate::server::services::datasets;
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    // Whether the caller may make snapshots: the same people who manage models.
    Ok((datasets::list(&state).await?, user.is_coordinator()))
}

#[server]
pub async fn make_dataset(
    name: String,
    name_contains: String,
    validation_percent: f64,
    test_percent: f64,
    seed: u64,
) -> Result<DatasetSummary, ApiError> {
    use crate::api::NewDataset;
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    let request = NewDataset {
        name,
        case_ids: None,
        name_contains: (!name_contains.trim().is_empty()).then_some(name_contains),
        validation_fraction: validation_percent / 100.0,
        test_fraction: test_percent / 100.0,
        seed,
        splits: Default::default(),
    };
    Ok(crate::server::services::datasets::create(&state, &user, &request).await?)
}

#[component]
pub fn DatasetsPage() -> impl IntoView {
    let make = ServerAction::<MakeDataset>::new();
    let datasets = Resource::new(move || make.version().get(), |_| list_datasets());
    view! {
        <h1>"Datasets"</h1>
        <p class="muted">
            "Snapshots of approved cases (image and approved mask, with their SHA-256 and split), for training and fair evaluation. Export one with "
            <code>"seglab dataset export ID DIR --format nnunet|monai"</code>
            "; scripts read "<code>"GET /datasets/{id}/manifest"</code>"."
        </p>
        <Transition fallback=|| view! { <p>"Loading datasets…"</p> }>
            {move || Suspend::new(async move {
                loaded(datasets.await, move |(datasets, may_make)| view! {
                    <DatasetTable datasets/>
                    {may_make.then(|| view! { <MakeForm make/> })}
                })
            })}
        </Transition>
    }
}

#[component]
fn DatasetTable(datasets: Vec<DatasetSummary>) -> impl IntoView {
    if datasets.is_empty() {
        return view! { <p data-testid="no-datasets">"No snapshot yet."</p> }.into_any();
    }
    view! {
        <table class="datasets">
            <thead><tr><th>"Dataset"</th><th>"Version"</th><th>"Train / validation / test"</th><th>"Made by"</th><th>"Id"</th></tr></thead>
            <tbody>
                {datasets
                    .into_iter()
                    .map(|d| view! {
                        <tr>
                            <td>{d.name}</td>
                            <td>{d.version}</td>
                            <td>{format!("{} / {} / {}", d.train, d.validation, d.test)}</td>
                            <td>{format!("{}, {}", d.created_by, format_time(d.created_at_ms))}</td>
                            <td><code>{d.id}</code></td>
                        </tr>
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

/// Freezes the approved cases (optionally those whose name contains a text) into a snapshot.
#[component]
fn MakeForm(make: ServerAction<MakeDataset>) -> impl IntoView {
    view! {
        <h2>"Make a snapshot of the approved cases"</h2>
        <ActionForm action=make attr:class="register">
            <label>"Name" <input name="name" required/></label>
            <label>"Only cases whose name contains" <input name="name_contains"/></label>
            <label>"Validation %" <input name="validation_percent" type="number" min="0" max="100" step="any" value="10"/></label>
            <label>"Test %" <input name="test_percent" type="number" min="0" max="100" step="any" value="20"/></label>
            <label>"Seed" <input name="seed" type="number" min="0" step="1" value="1"/></label>
            <button type="submit" class="primary">"Make snapshot"</button>
        </ActionForm>
        {move || match make.value().get() {
            Some(Ok(made)) => Some(view! { <p role="status">{format!("Made {} version {}.", made.name, made.version)}</p> }.into_any()),
            Some(Err(err)) => Some(view! { <p class="error" role="alert">{err.to_string()}</p> }.into_any()),
            None => None,
        }}
    }
}
