//! The readings part of a case's review panel, for a case read by several readers: how many
//! readings it needs and where they stand, taking one, planning them (coordinators, before
//! anyone saves), and, once every reading is in, their agreement, the slice where they differ
//! most, and the adjudicator's start from their consensus. Who sees what is the server's
//! decision (`services::access`): a reader sees only their own reading until all are submitted.

use leptos::prelude::*;

use crate::api::{
    ApiError, CaseActions, CaseAgreement, CaseReadings, ConsensusMethod, LabelAgreement, LabelSaved, Reading, UserName,
};
use crate::editor::ui::{Command, ViewerUi};
use crate::pages::common::loaded;

#[server(endpoint = "get_case_readings")]
pub async fn get_case_readings(case_id: String) -> Result<CaseReadings, ApiError> {
    use crate::server::services::{access, readings};
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    let access = access::authorize(&state, &user, &access::case_named(&case_id)?, access::Read).await?;
    Ok(readings::list(&state, &access).await?)
}

#[server(endpoint = "plan_case_readings")]
pub async fn plan_case_readings(case_id: String, required: u32, blind: bool) -> Result<CaseReadings, ApiError> {
    use crate::api::ReadingPlan;
    use crate::server::services::{access, readings};
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    let access = access::authorize(&state, &user, &access::case_named(&case_id)?, access::PlanReadings).await?;
    Ok(readings::plan(&state, access, &ReadingPlan { required, blind }).await?)
}

/// Takes a reading for the caller, or (a coordinator) gives one to `reader`.
#[server(endpoint = "take_case_reading")]
pub async fn take_case_reading(case_id: String, reader: Option<String>) -> Result<Reading, ApiError> {
    use crate::server::error::AppError;
    use crate::server::services::{access, readings};
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    let reader =
        reader.map(|name| UserName::parse(&name).map_err(|e| AppError::Unprocessable(e.to_string()))).transpose()?;
    let for_other = reader.as_ref().is_some_and(|reader| *reader != user.username);
    let action = access::TakeReading { for_other };
    let access = access::authorize(&state, &user, &access::case_named(&case_id)?, action).await?;
    Ok(readings::take(&state, access, reader.as_ref()).await?)
}

#[server(endpoint = "get_case_agreement")]
pub async fn get_case_agreement(case_id: String) -> Result<CaseAgreement, ApiError> {
    use crate::server::services::{access, agreement};
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    let access = access::authorize(&state, &user, &access::case_named(&case_id)?, access::CompareReadings).await?;
    Ok(agreement::of_case(&state, &access).await?)
}

/// Replaces the case's mask with the readings' consensus, once per `idempotency_key` (the page
/// makes one per click, so a retried request saves once).
#[server(endpoint = "start_from_consensus")]
pub async fn start_from_consensus(
    case_id: String,
    method: ConsensusMethod,
    idempotency_key: String,
) -> Result<LabelSaved, ApiError> {
    use crate::server::services::{access, idempotency::IdempotencyKey, readings};
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    let key = IdempotencyKey::parse(Some(&idempotency_key))?;
    let case_id = access::case_named(&case_id)?;
    let adjudicate = access::authorize(&state, &user, &case_id, access::Adjudicate).await?;
    let save = access::authorize(&state, &user, &case_id, access::Save).await?;
    readings::consensus(&state, adjudicate, save, &key, method).await?.into_saved()
}

/// The actions of the readings part; the review panel refreshes after each of them.
#[derive(Clone, Copy, Default)]
pub struct ReadingActions {
    pub plan: ServerAction<PlanCaseReadings>,
    pub take: ServerAction<TakeCaseReading>,
    pub consensus: ServerAction<StartFromConsensus>,
}

impl ReadingActions {
    /// Changes with every action taken, for the panel's refreshes to track.
    pub fn versions(&self) -> (usize, usize, usize) {
        (self.plan.version().get(), self.take.version().get(), self.consensus.version().get())
    }

    /// The last action's failure, if it failed.
    pub fn failure(&self) -> Option<String> {
        let failed = |err: Option<Result<_, ApiError>>| err.and_then(Result::err).map(|err| err.to_string());
        failed(self.plan.value().get().map(|r| r.map(|_| ())))
            .or_else(|| failed(self.take.value().get().map(|r| r.map(|_| ()))))
            .or_else(|| failed(self.consensus.value().get().map(|r| r.map(|_| ()))))
    }
}

/// The readings part of the panel. `required` is the case's plan as the review read it;
/// `labelers` (coordinators only) are whom a reading can be given to.
#[component]
pub fn ReadingsPanel(
    ui: ViewerUi,
    actions: CaseActions,
    required: u32,
    reading_actions: ReadingActions,
    labelers: Option<Vec<UserName>>,
) -> impl IntoView {
    let case_id = StoredValue::new(ui.case.with_value(|case| case.case_id.to_string()));
    let listed = fetched_in_browser(move || {
        reading_actions.versions();
        ui.history.track();
        get_case_readings(case_id.get_value())
    });
    let ReadingActions { take, .. } = reading_actions;
    view! {
        <section class="readings" data-testid="readings">
            <h3>"Readings"</h3>
            {(required > 1).then(|| view! {
                {move || match listed.get() {
                    None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                    Some(result) => loaded(result, |readings| view! { <ReadingList readings/> }),
                }}
            })}
            {actions.take_reading.then(|| view! {
                <button class="primary" on:click=move |_| { take.dispatch(TakeCaseReading { case_id: case_id.get_value(), reader: None }); }>
                    "Take a reading"
                </button>
            })}
            {actions.plan_readings.then(|| view! { <PlanForm case_id=case_id.get_value() required plan=reading_actions.plan/> })}
            {labelers.filter(|_| required > 1).map(|labelers| view! { <GiveForm case_id=case_id.get_value() labelers take/> })}
            {actions.compare_readings.then(|| view! {
                <AgreementView ui adjudicate=actions.adjudicate consensus=reading_actions.consensus/>
            })}
        </section>
    }
}

/// What `fetch` answers, fetched in the browser once the page is hydrated and again whenever
/// a signal it reads changes; `None` until the first answer. The review panel is inside the
/// page's suspense, and a resource read there made the server's and the browser's first
/// renderings differ; an effect runs in the browser only, so both render "loading" first.
fn fetched_in_browser<T, F>(fetch: impl Fn() -> F + 'static) -> RwSignal<Option<Result<T, ApiError>>>
where
    T: Send + Sync + 'static,
    F: std::future::Future<Output = Result<T, ApiError>> + 'static,
{
    let answer = RwSignal::new(None);
    Effect::new(move |_| {
        let pending = fetch();
        leptos::task::spawn_local(async move {
            let result = pending.await;
            // The page may be gone by then.
            let _ = answer.try_set(Some(result));
        });
    });
    answer
}

/// Where the readings stand, and those the caller may see.
#[component]
fn ReadingList(readings: CaseReadings) -> impl IntoView {
    let CaseReadings { required, blind, taken, submitted, readings } = readings;
    view! {
        <p data-testid="readings-status">
            {format!("{submitted} of {required} readings submitted, {taken} taken")}
            {blind.then_some(" · readers do not see the models' predictions")}
        </p>
        <ul class="reading-list">
            {readings
                .into_iter()
                .map(|reading| view! {
                    <li>
                        {reading.reader.to_string()}
                        " "
                        <span class="muted">{if reading.submitted { "submitted" } else { "reading" }}</span>
                    </li>
                })
                .collect_view()}
        </ul>
    }
}

/// How many readings the case needs and whether its readers are blinded to the models.
#[component]
fn PlanForm(case_id: String, required: u32, plan: ServerAction<PlanCaseReadings>) -> impl IntoView {
    let wanted = RwSignal::new(required.max(2));
    let blind = RwSignal::new(false);
    let case_id = StoredValue::new(case_id);
    view! {
        <div class="group plan-readings">
            <label>
                "Readings needed "
                <select aria-label="Readings needed" on:change=move |ev| {
                    if let Ok(n) = event_target_value(&ev).parse() {
                        wanted.set(n);
                    }
                }>
                    {(1..=crate::consensus::MAX_READINGS as u32)
                        .map(|n| view! { <option value=n.to_string() selected=n == wanted.get_untracked()>{n.to_string()}</option> })
                        .collect_view()}
                </select>
            </label>
            <label class="muted">
                <input type="checkbox" prop:checked=move || blind.get() on:change=move |ev| blind.set(event_target_checked(&ev))/>
                " readers blinded to the models"
            </label>
            <button disabled=move || plan.pending().get() on:click=move |_| {
                plan.dispatch(PlanCaseReadings { case_id: case_id.get_value(), required: wanted.get_untracked(), blind: blind.get_untracked() });
            }>"Plan readings"</button>
        </div>
    }
}

/// A coordinator gives a reading to a labeler.
#[component]
fn GiveForm(case_id: String, labelers: Vec<UserName>, take: ServerAction<TakeCaseReading>) -> impl IntoView {
    let reader = RwSignal::new(String::new());
    let case_id = StoredValue::new(case_id);
    view! {
        <div class="group give-reading">
            <select aria-label="Reader" on:change=move |ev| reader.set(event_target_value(&ev))>
                <option value="" selected>"choose a labeler"</option>
                {labelers.into_iter().map(|name| view! { <option value=name.to_string()>{name.to_string()}</option> }).collect_view()}
            </select>
            <button disabled=move || reader.with(String::is_empty) on:click=move |_| {
                take.dispatch(TakeCaseReading { case_id: case_id.get_value(), reader: Some(reader.get_untracked()) });
            }>"Give a reading"</button>
        </div>
    }
}

/// The readers' agreement per label, the way to the slice where they differ most, and (for
/// the adjudicator) the start from their consensus, which the editor then loads.
#[component]
fn AgreementView(ui: ViewerUi, adjudicate: bool, consensus: ServerAction<StartFromConsensus>) -> impl IntoView {
    let case_id = StoredValue::new(ui.case.with_value(|case| case.case_id.to_string()));
    // Measured on request (STAPLE over the whole volume): loaded once the page is up rather
    // than holding its first paint.
    let agreement = fetched_in_browser(move || get_case_agreement(case_id.get_value()));
    Effect::new(move |_| {
        if let Some(Ok(_)) = consensus.value().get() {
            ui.send(Command::LoadNewest);
        }
    });
    let start = move |method: ConsensusMethod| {
        consensus.dispatch(StartFromConsensus {
            case_id: case_id.get_value(),
            method,
            idempotency_key: uuid::Uuid::new_v4().to_string(),
        });
    };
    view! {
        {move || match agreement.get() {
            None => view! { <p class="muted">"Measuring agreement…"</p> }.into_any(),
            Some(result) => loaded(result, move |agreement| {
                    let most = agreement.most_disagreement_at;
                    view! {
                        <p data-testid="disagreeing-voxels">
                            {format!("Readers disagree on {} voxels", agreement.disagreeing_voxels)}
                        </p>
                        {most.map(|[i, j, k]| view! {
                            <button on:click=move |_| ui.send(Command::JumpTo([i as usize, j as usize, k as usize]))>
                                "Go to the most disagreement"
                            </button>
                        })}
                        <table class="agreement" data-testid="agreement">
                            <thead>
                                <tr><th>"Label"</th><th>"Reader"</th><th>"Dice vs STAPLE"</th><th>"Sensitivity"</th><th>"Specificity"</th></tr>
                            </thead>
                            <tbody>{agreement.labels.into_iter().map(label_rows).collect_view()}</tbody>
                        </table>
                    }
                }),
        }}
        {adjudicate.then(|| view! {
            <div class="group actions">
                <button class="primary" disabled=move || consensus.pending().get() on:click=move |_| start(ConsensusMethod::Staple)>
                    "Start from STAPLE consensus"
                </button>
                <button disabled=move || consensus.pending().get() on:click=move |_| start(ConsensusMethod::MajorityVote)>
                    "Start from majority vote"
                </button>
            </div>
            {move || consensus.value().get().and_then(Result::ok).map(|saved| view! {
                <p role="status" data-testid="consensus-saved">
                    {format!("Consensus saved ({} voxels changed); edit it and approve", saved.voxels_changed)}
                </p>
            })}
        })}
    }
}

/// One label's rows: the mean of the pairs first, then each reader against STAPLE.
fn label_rows(label: LabelAgreement) -> impl IntoView {
    let figure = |value: Option<f64>| value.map_or("–".to_string(), |v| format!("{v:.3}"));
    let mean = format!("mean Dice between readers {}", figure(label.mean_dice));
    let name = format!("{} {}", label.label, label.name);
    let readers = label.readers.into_iter().map(move |reader| {
        view! {
            <tr>
                <td></td>
                <td>{reader.reader.to_string()}</td>
                <td>{figure(reader.dice)}</td>
                <td>{format!("{:.3}", reader.sensitivity)}</td>
                <td>{format!("{:.3}", reader.specificity)}</td>
            </tr>
        }
    });
    view! {
        <tr class="label-row"><td>{name}</td><td colspan="4">{mean}</td></tr>
        {readers.collect_view()}
    }
}
