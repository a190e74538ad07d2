//! The model registry pages (`/registry`; the REST API owns `/models`): the list with a
//! registration form, and one model version with its card, lifecycle buttons (and the
//! rollback of a production version), the production-versus-shadow evaluation that a
//! promotion is decided on with its charts, the timeline of states, and its jobs.

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::api::{
    AgainstReaders, ApiError, BackfillProgress, Job, ModelOverview, ModelState, ModelSummary, PairedEvaluation,
    Rollback, StateChange, Stats, VersionEvaluation,
};
use crate::display::format_time;
use crate::pages::common::loaded;

#[server]
pub async fn list_models() -> Result<Vec<ModelSummary>, ApiError> {
    let (state, _user) = crate::server::auth::server_fn_caller().await?;
    Ok(crate::server::services::registry::list_models(&state).await?)
}

#[server]
pub async fn get_model(id: String) -> Result<ModelOverview, ApiError> {
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    let id = crate::server::services::registry::model_named(&id)?;
    Ok(crate::server::services::model_view::model_overview(&state, &user, &id).await?)
}

#[server]
pub async fn start_backfill(id: String) -> Result<BackfillProgress, ApiError> {
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    let id = crate::server::services::registry::model_named(&id)?;
    Ok(crate::server::services::backfill::start(&state, &user, &id).await?)
}

#[server]
pub async fn cancel_backfill(id: String) -> Result<BackfillProgress, ApiError> {
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    Ok(crate::server::services::backfill::cancel(&state, &user, &id).await?)
}

#[server]
pub async fn roll_back_model(id: String) -> Result<Rollback, ApiError> {
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    let id = crate::server::services::registry::model_named(&id)?;
    Ok(crate::server::services::registry::rollback(&state, &user, &id).await?)
}

#[server]
pub async fn set_model_state(id: String, state: ModelState) -> Result<ModelSummary, ApiError> {
    let (app, user) = crate::server::auth::server_fn_caller().await?;
    let id = crate::server::services::registry::model_named(&id)?;
    Ok(crate::server::services::registry::transition(&app, &user, &id, state).await?)
}

/// Whether the caller may register models and change their states.
#[server]
pub async fn may_manage_models() -> Result<bool, ApiError> {
    let (_state, user) = crate::server::auth::server_fn_caller().await?;
    Ok(crate::server::services::registry::may_register(&user).is_ok())
}

#[component]
pub fn ModelsPage() -> impl IntoView {
    let models = Resource::new(|| (), |_| list_models());
    let manages = Resource::new(|| (), |_| may_manage_models());
    view! {
        <h1>"Models"</h1>
        <Suspense fallback=|| view! { <p>"Loading models…"</p> }>
            {move || Suspend::new(async move { loaded(models.await, |models| view! { <ModelTable models/> }) })}
        </Suspense>
        // The registration form only for those who may register.
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move { manages.await.unwrap_or(false).then(|| view! { <RegisterForm/> }) })}
        </Suspense>
    }
}

fn state_badge(state: ModelState) -> impl IntoView {
    view! { <span class=format!("state {}", state.as_str())>{state.as_str()}</span> }
}

#[component]
fn ModelTable(models: Vec<ModelSummary>) -> impl IntoView {
    if models.is_empty() {
        return view! { <p>"No model is registered yet."</p> }.into_any();
    }
    view! {
        <table class="models">
            <thead><tr><th>"Model"</th><th>"Version"</th><th>"State"</th><th>"Registered"</th></tr></thead>
            <tbody>
                {models
                    .into_iter()
                    .map(|m| view! {
                        <tr>
                            <td><a href=format!("/registry/{}", m.id)>{m.name.clone()}</a></td>
                            <td>{m.version.clone()}</td>
                            <td>{state_badge(m.state)}</td>
                            <td>{format_time(m.created_at_ms)}</td>
                        </tr>
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

/// Uploads a card and an ONNX file to `POST /models`, the same route scripts use.
#[component]
fn RegisterForm() -> impl IntoView {
    let message = RwSignal::new(None::<String>);
    let form = NodeRef::<leptos::html::Form>::new();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        if let Some(form) = form.get() {
            leptos::task::spawn_local(async move {
                match crate::browser::upload_model(&form).await {
                    Ok(model_id) => {
                        let _ = window().location().set_href(&format!("/registry/{model_id}"));
                    }
                    Err(error) => message.set(Some(error)),
                }
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = form;
    };
    view! {
        <h2>"Register a model version"</h2>
        <form class="register" node_ref=form on:submit=submit>
            <label>
                "Model card (JSON)"
                <textarea name="card" rows="14" required placeholder=CARD_EXAMPLE></textarea>
            </label>
            <label>"Model file (ONNX)" <input type="file" name="artifact" accept=".onnx" required/></label>
            <button type="submit" class="primary">"Register"</button>
            {move || message.get().map(|m| view! { <p class="error" role="alert">{m}</p> })}
        </form>
        <p class="muted">
            "The card schema and an example are in the README (\"Model cards\"). The file's SHA-256 must match "
            <code>"artifact.sha256"</code> "."
        </p>
    }
}

const CARD_EXAMPLE: &str = r#"{"name": "liver-seg", "version": "1.0.0", "task": "segmentation", "modality": "CT", …}"#;

#[component]
pub fn ModelPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let changes = RwSignal::new(0u32);
    let model = Resource::new(move || (id(), changes.get()), |(id, _)| get_model(id));
    view! {
        <Transition fallback=|| view! { <p>"Loading model…"</p> }>
            {move || Suspend::new(async move { loaded(model.await, move |overview| view! { <ModelView overview changes/> }) })}
        </Transition>
    }
}

#[component]
fn ModelView(overview: ModelOverview, changes: RwSignal<u32>) -> impl IntoView {
    let ModelOverview {
        detail,
        evaluation,
        chart_svg,
        jobs,
        timeline,
        rollback_to,
        backfill,
        may_backfill,
        own_evaluation,
    } = overview;
    // While results are still coming, the page reloads its figures every two seconds.
    let filling = backfill.as_ref().is_some_and(|b| !b.finished)
        || evaluation.as_ref().is_some_and(|e| e.pending_cases > 0)
        || own_evaluation.as_ref().is_some_and(|e| e.pending_cases > 0);
    #[cfg(feature = "hydrate")]
    if filling {
        set_timeout(move || changes.update(|n| *n += 1), std::time::Duration::from_secs(2));
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = filling;
    let card = detail.card.clone();
    let summary = detail.summary.clone();
    let transition = ServerAction::<SetModelState>::new();
    let rollback = ServerAction::<RollBackModel>::new();
    Effect::new(move |_| {
        if matches!(transition.value().get(), Some(Ok(_))) || matches!(rollback.value().get(), Some(Ok(_))) {
            changes.update(|n| *n += 1);
        }
    });
    let failure = move || match (transition.value().get(), rollback.value().get()) {
        (Some(Err(err)), _) | (_, Some(Err(err))) => {
            Some(view! { <p class="error" role="alert">{err.to_string()}</p> })
        }
        _ => None,
    };
    let id = summary.id.clone();
    let rollback_id = summary.id.clone();
    view! {
        <h1>{format!("{} {}", summary.name, summary.version)} " " {state_badge(summary.state)}</h1>
        <section class="lifecycle">
            <h2>"Lifecycle"</h2>
            {match evaluation {
                Some(evaluation) => view! { <EvaluationSummary evaluation/> }.into_any(),
                None => view! { <p class="muted" data-testid="evaluation">"The evaluation is shown to ML engineers and admins."</p> }.into_any(),
            }}
            {chart_svg.map(|svg| view! { <div class="chart" inner_html=svg></div> })}
            {own_evaluation.map(|own| view! { <OwnEvaluation own/> })}
            <Backfill model_id=summary.id.to_string() backfill may_backfill changes/>
            <div class="actions">
                {detail
                    .allowed_next
                    .iter()
                    .map(|next| {
                        let (id, next) = (id.clone(), *next);
                        let label = match next {
                            ModelState::Shadow => "Promote to shadow",
                            ModelState::Production => "Promote to production",
                            ModelState::Registered => "Back to registered",
                            ModelState::Archived => "Archive",
                        };
                        view! {
                            <button
                                class=if next == ModelState::Production { "primary" } else { "" }
                                on:click=move |_| { transition.dispatch(SetModelState { id: id.to_string(), state: next }); }
                            >
                                {label}
                            </button>
                        }
                    })
                    .collect_view()}
                {rollback_to.map(|version| view! {
                    <button class="danger" on:click=move |_| { rollback.dispatch(RollBackModel { id: rollback_id.to_string() }); }>
                        {format!("Roll back to {version}")}
                    </button>
                })}
            </div>
            {failure}
            <Timeline timeline/>
        </section>
        <section>
            <h2>"Model card"</h2>
            <dl class="card">
                <dt>"Task"</dt><dd>{format!("{:?} · {:?}", card.task, card.modality)}</dd>
                <dt>"Labels"</dt><dd>{card.label_map.iter().map(|(v, n)| format!("{v} {n}")).collect::<Vec<_>>().join(", ")}</dd>
                <dt>"Input"</dt>
                <dd>{format!(
                    "{} in {} orientation, {:?} normalisation{}",
                    card.input_spec.voxel_type,
                    card.input_spec.orientation,
                    card.input_spec.intensity_normalisation,
                    card.input_spec.spacing_mm.map(|s| format!(", spacing {:?} mm", s)).unwrap_or_default()
                )}</dd>
                <dt>"Intended use"</dt><dd>{card.intended_use.clone()}</dd>
                <dt>"Limitations"</dt><dd>{card.limitations.clone()}</dd>
                <dt>"Licence"</dt><dd>{card.license.clone()}</dd>
                <dt>"Reported metrics"</dt>
                <dd>{card.metrics.iter().map(|m| format!("{} {} on {}", m.name, m.value, m.dataset)).collect::<Vec<_>>().join("; ")}</dd>
                <dt>"Artifact"</dt><dd><code>{format!("ONNX, sha256 {}", card.artifact.sha256)}</code></dd>
            </dl>
        </section>
        <JobTable jobs/>
    }
}

/// A registered version against human labels on its own.
#[component]
fn OwnEvaluation(own: VersionEvaluation) -> impl IntoView {
    view! {
        <div class="evaluation" data-testid="own-evaluation">
            <h3>"This version against human labels"</h3>
            {(own.pending_cases > 0).then(|| view! { <p class="muted">{format!("{} cases still being scored…", own.pending_cases)}</p> })}
            <table>
                <thead><tr><th>"Label"</th><th>"Cases"</th><th>"Dice mean / median"</th><th>"HD95 mm mean / median"</th><th>"Against readers"</th></tr></thead>
                <tbody>
                    {own.score.labels.into_iter().map(|label| view! {
                        <tr>
                            <td>{format!("{} {}", label.label, label.name)}</td>
                            <td>{label.dice.as_ref().map_or(0, |d| d.cases)}</td>
                            <td>{figure(&label.dice)}</td>
                            <td>{figure(&label.hd95_mm)}</td>
                            <td data-testid="against-readers">{against_readers(&label.against_readers)}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

/// "Evaluate on all labelled cases": the button, and the latest backfill's progress with cancel.
#[component]
fn Backfill(
    model_id: String,
    backfill: Option<BackfillProgress>,
    may_backfill: bool,
    changes: RwSignal<u32>,
) -> impl IntoView {
    let start = ServerAction::<StartBackfill>::new();
    let cancel = ServerAction::<CancelBackfill>::new();
    Effect::new(move |_| {
        if matches!(start.value().get(), Some(Ok(_))) || matches!(cancel.value().get(), Some(Ok(_))) {
            changes.update(|n| *n += 1);
        }
    });
    let running = backfill.as_ref().is_some_and(|b| !b.finished);
    let failure = move || match (start.value().get(), cancel.value().get()) {
        (Some(Err(err)), _) | (_, Some(Err(err))) => {
            Some(view! { <p class="error" role="alert">{err.to_string()}</p> })
        }
        _ => None,
    };
    view! {
        <div class="backfill" data-testid="backfill">
            {(may_backfill && !running).then(|| view! {
                <button on:click=move |_| { start.dispatch(StartBackfill { id: model_id.clone() }); }>"Evaluate on all labelled cases"</button>
            })}
            {backfill.map(|b| {
                let done = b.succeeded + b.failed;
                let id = b.id.clone();
                let rate = match (b.per_minute, b.eta_ms) {
                    (Some(rate), Some(eta)) => format!(" · {rate:.1} cases/min · about {} s left", (eta + 999) / 1000),
                    (Some(rate), None) => format!(" · {rate:.1} cases/min"),
                    _ => String::new(),
                };
                let state = if b.cancelled_at_ms.is_some() {
                    format!(", cancelled ({} not run)", b.cancelled)
                } else if b.finished {
                    ", finished".to_string()
                } else {
                    String::new()
                };
                view! {
                    <p data-testid="backfill-progress">
                        <progress max=b.total.max(1) value=done></progress>
                        {format!(" Backfill: {done} / {} cases{}{rate}{state}", b.total, if b.failed > 0 { format!(" ({} failed)", b.failed) } else { String::new() })}
                        {(!b.finished && b.cancelled_at_ms.is_none()).then(|| view! {
                            " "
                            <button on:click=move |_| { cancel.dispatch(CancelBackfill { id: id.clone() }); }>"Cancel"</button>
                        })}
                    </p>
                }
            })}
            {failure}
        </div>
    }
}

/// Every registration and state change of the name's versions, newest first.
#[component]
fn Timeline(timeline: Vec<StateChange>) -> impl IntoView {
    view! {
        <h3>"Timeline"</h3>
        <table class="timeline" data-testid="timeline">
            <thead><tr><th>"When"</th><th>"Version"</th><th>"Change"</th><th>"By"</th><th>"Why"</th></tr></thead>
            <tbody>
                {timeline
                    .into_iter()
                    .rev()
                    .map(|change| view! {
                        <tr class:rollback=change.rollback>
                            <td>{format_time(change.at_ms)}</td>
                            <td><a href=format!("/registry/{}", change.model_id)>{change.version}</a></td>
                            <td>{match change.from {
                                Some(from) => format!("{from} → {}", change.to),
                                None => "registered".to_string(),
                            }}</td>
                            <td>{change.by.map(String::from).unwrap_or_default()}</td>
                            <td>{change.reason.unwrap_or_default()}</td>
                        </tr>
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}

/// A version's Dice next to the readers' on the cases read by several readers.
fn against_readers(against: &Option<AgainstReaders>) -> String {
    match against {
        Some(a) => format!(
            "{:.3} vs readers {:.3} on {} cases (least close reader {:.3}): {}",
            a.model_dice.mean,
            a.readers_dice.mean,
            a.model_dice.cases,
            a.least_reader_mean,
            if a.within_readers { "within inter-reader variability" } else { "outside inter-reader variability" }
        ),
        None => "–".into(),
    }
}

fn figure(stats: &Option<Stats>) -> String {
    match stats {
        Some(stats) => format!("{:.3} / {:.3}", stats.mean, stats.median),
        None => "–".into(),
    }
}

#[component]
fn EvaluationSummary(evaluation: PairedEvaluation) -> impl IntoView {
    let versions: Vec<_> = [("Production", evaluation.production.clone()), ("Shadow", evaluation.shadow.clone())]
        .into_iter()
        .filter_map(|(role, score)| score.map(|s| (role, s)))
        .collect();
    if versions.is_empty() {
        return view! { <p class="muted" data-testid="evaluation">"No version of this model is in shadow or production, so there is nothing to compare yet."</p> }.into_any();
    }
    let heading = if evaluation.paired_cases > 0 {
        format!("Against human labels, on the same {} cases (paired)", evaluation.paired_cases)
    } else {
        "Against human labels".to_string()
    };
    let excluded = evaluation.excluded_training_cases;
    let pending = evaluation.pending_cases;
    let anchored = evaluation.anchored_cases.clone();
    view! {
        <div class="evaluation" data-testid="evaluation">
            <h3>{heading}</h3>
            {(pending > 0).then(|| view! { <p class="muted" data-testid="pending">{format!("{pending} cases still being scored…")}</p> })}
            {(excluded > 0).then(|| view! {
                <p class="muted" data-testid="excluded-training">
                    {format!("{excluded} cases left out: a version was trained or validated on them (its card's training snapshots).")}
                </p>
            })}
            {(!anchored.is_empty()).then(|| view! {
                <p class="notice" data-testid="anchored">
                    {format!(
                        "{} cases began as a version's own pre-label, which the person then corrected; agreement there is inflated (anchoring): {}",
                        anchored.len(),
                        anchored.iter().map(|a| format!("{} ({})", a.case_name, a.model_version)).collect::<Vec<_>>().join(", "),
                    )}
                </p>
            })}
            <table>
                <thead><tr><th>"Version"</th><th>"Label"</th><th>"Cases"</th><th>"Dice mean / median"</th><th>"HD95 mm mean / median"</th><th>"Against readers"</th></tr></thead>
                <tbody>
                    {versions
                        .into_iter()
                        .flat_map(|(role, score)| {
                            let version = format!("{role} {}", score.model.version);
                            score.labels.into_iter().map(move |label| view! {
                                <tr>
                                    <td>{version.clone()}</td>
                                    <td>{format!("{} {}", label.label, label.name)}</td>
                                    <td>{label.dice.as_ref().map_or(0, |d| d.cases)}</td>
                                    <td>{figure(&label.dice)}</td>
                                    <td>{figure(&label.hd95_mm)}</td>
                                    <td>{against_readers(&label.against_readers)}</td>
                                </tr>
                            })
                        })
                        .collect_view()}
                </tbody>
            </table>
            {(!evaluation.disagreements.is_empty()).then(|| view! {
                <h3>"Where production and shadow disagree most"</h3>
                <table>
                    <thead><tr><th>"Case"</th><th>"Label"</th><th>"Production Dice"</th><th>"Shadow Dice"</th></tr></thead>
                    <tbody>
                        {evaluation.disagreements.iter().map(|d| view! {
                            <tr>
                                <td>
                                    <a href=format!("/cases/{}?compare=shadow&label={}", d.case_id, d.label)>{d.case_name.clone()}</a>
                                    " "
                                    <a class="muted" href=format!("/cases/{}?compare=production&label={}", d.case_id, d.label)>"(production)"</a>
                                </td>
                                <td>{d.label}</td>
                                <td>{format!("{:.3}", d.production_dice)}</td>
                                <td>{format!("{:.3}", d.shadow_dice)}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            })}
        </div>
    }
    .into_any()
}

/// Orchestrator jobs with their status, attempts and last error.
#[component]
pub fn JobTable(jobs: Vec<Job>) -> impl IntoView {
    view! {
        <section>
            <h2>"Jobs"</h2>
            {if jobs.is_empty() {
                view! { <p class="muted">"No jobs yet."</p> }.into_any()
            } else {
                view! {
                    <table class="jobs" data-testid="jobs">
                        <thead><tr><th>"Model"</th><th>"Role"</th><th>"Case"</th><th>"Trigger"</th><th>"Status"</th><th>"Attempts"</th><th>"Updated"</th></tr></thead>
                        <tbody>
                            {jobs.into_iter().map(|job| view! {
                                <tr>
                                    <td><a href=format!("/registry/{}", job.model_id)>{format!("{} {}", job.model_name, job.model_version)}</a></td>
                                    <td>{job.role.as_str()}</td>
                                    <td><a href=format!("/cases/{}", job.case_id)>{job.case_id.as_str()[..8].to_string()}</a></td>
                                    <td>{job.trigger.clone()}</td>
                                    <td class=format!("job {}", job.status.as_str())>
                                        {job.status.as_str()}
                                        {job.last_error.map(|e| view! { <br/><span class="muted">{e}</span> })}
                                        // The output, compared with the case's mask.
                                        {job.output_ref.map(|_| view! {
                                            " "
                                            <a href=format!("/cases/{}?compare={}", job.case_id, job.role.as_str())>"compare"</a>
                                        })}
                                    </td>
                                    <td>{format!("{} / {}", job.attempts, job.max_attempts)}</td>
                                    <td>{format_time(job.updated_at_ms)}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}
