//! A case's review panel, beside the viewer: where the case stands, who labels and who reviews
//! it (and, for ML engineers and admins, a form to assign them), its readings when several
//! readers read it (`case_readings`), the buttons the caller may use (take, submit, approve,
//! request changes, reopen; the server says which), and the comments, each of which can move
//! the views to its voxel.

use leptos::prelude::*;

use crate::api::{ApiError, AssignablePeople, CaseComment, CaseReview, CaseStatus, CaseWorkflow};
use crate::display::format_time;
use crate::editor::ui::{Command, ViewerUi};
use crate::pages::case_readings::{ReadingActions, ReadingsPanel};
use crate::pages::common::loaded;

#[server(endpoint = "get_case_review")]
pub async fn get_case_review(case_id: String) -> Result<CaseReview, ApiError> {
    use crate::server::services::{access, workflow};
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    let access = access::authorize(&state, &user, &access::case_named(&case_id)?, access::Read).await?;
    Ok(workflow::review(&state, &access).await?)
}

#[server(endpoint = "take_case")]
pub async fn take_case(case_id: String) -> Result<CaseWorkflow, ApiError> {
    use crate::server::services::{access, workflow};
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    let access = access::authorize(&state, &user, &access::case_named(&case_id)?, access::Take).await?;
    Ok(workflow::take(&state, access).await?)
}

/// The assignment form's save; `None` leaves the case without a labeler or with any reviewer.
#[server(endpoint = "set_case_people")]
pub async fn set_case_people(
    case_id: String,
    assignee: Option<String>,
    reviewer: Option<String>,
    restricted: bool,
) -> Result<CaseWorkflow, ApiError> {
    use crate::api::{AssignCase, UserName};
    use crate::server::error::AppError;
    use crate::server::services::{access, workflow};
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    let access = access::authorize(&state, &user, &access::case_named(&case_id)?, access::Assign).await?;
    // Names from the form, parsed as a JSON body's would be.
    let named = |name: Option<String>| {
        name.map(|name| UserName::parse(&name).map_err(|e| AppError::Unprocessable(e.to_string()))).transpose()
    };
    let request = AssignCase { assignee: named(assignee)?, reviewer: named(reviewer)?, restricted: Some(restricted) };
    Ok(workflow::assign(&state, access, &request).await?)
}

#[server(endpoint = "change_case_status")]
pub async fn change_case_status(
    case_id: String,
    status: CaseStatus,
    comment: Option<String>,
    anchor: Option<[u32; 3]>,
) -> Result<CaseWorkflow, ApiError> {
    use crate::api::ChangeStatus;
    use crate::server::services::{access, workflow};
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    let access = access::authorize(&state, &user, &access::case_named(&case_id)?, access::Transition(status)).await?;
    let request = ChangeStatus { status, comment, anchor };
    Ok(workflow::change_status(&state, access, &request).await?)
}

/// How the page names a status.
pub fn status_text(status: CaseStatus) -> &'static str {
    match status {
        CaseStatus::New => "New",
        CaseStatus::InProgress => "In progress",
        CaseStatus::Submitted => "Submitted",
        CaseStatus::ChangesRequested => "Changes requested",
        CaseStatus::Approved => "Approved",
    }
}

/// The review the case page opened with (in [`crate::api::CaseOpened`]): the panel shows it
/// without a request of its own until something changes.
#[derive(Clone, Debug)]
pub struct OpenedReview(pub CaseReview);

#[component]
pub fn ReviewPanel(ui: ViewerUi) -> impl IntoView {
    let case_id = StoredValue::new(ui.case.with_value(|case| case.case_id.to_string()));
    let take = ServerAction::<TakeCase>::new();
    let change = ServerAction::<ChangeCaseStatus>::new();
    let assign = ServerAction::<SetCasePeople>::new();
    let reading_actions = ReadingActions::default();
    // Refreshed after each action and each save (a save moves a case back to in progress).
    let opened = use_context::<OpenedReview>().map(|OpenedReview(review)| review);
    let as_opened = (0, 0, 0, (0, 0, 0), ui.history.with_untracked(Vec::len));
    let review = Resource::new(
        move || {
            let versions = (take.version().get(), change.version().get(), assign.version().get());
            (versions.0, versions.1, versions.2, reading_actions.versions(), ui.history.with(Vec::len))
        },
        move |changes| {
            let opened = opened.clone().filter(|_| changes == as_opened);
            async move {
                match opened {
                    Some(review) => Ok(review),
                    None => get_case_review(case_id.get_value()).await,
                }
            }
        },
    );
    let comment = RwSignal::new(String::new());
    let at_crosshair = RwSignal::new(true);
    let send = move |status: CaseStatus| {
        let text = comment.get_untracked();
        let anchor = at_crosshair
            .get_untracked()
            .then(|| ui.crosshair.get_untracked().map(|point| point.voxel.map(|at| at as u32)))
            .flatten();
        change.dispatch(ChangeCaseStatus {
            case_id: case_id.get_value(),
            status,
            comment: (!text.trim().is_empty()).then_some(text),
            anchor: anchor.filter(|_| !comment.get_untracked().trim().is_empty()),
        });
    };
    // Clear the comment once it went through.
    Effect::new(move |_| {
        if let Some(Ok(_)) = change.value().get() {
            comment.set(String::new());
        }
    });
    let failure = move || match (take.value().get(), change.value().get(), assign.value().get()) {
        (Some(Err(err)), _, _) | (_, Some(Err(err)), _) | (_, _, Some(Err(err))) => Some(err.to_string()),
        _ => reading_actions.failure(),
    };
    view! {
        <aside class="review" data-testid="review">
            <h2>"Review"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    loaded(review.await, move |review| {
                        let CaseReview { workflow, actions, comments, assignable } = review;
                        ui.may_save.set(actions.save);
                        let required = workflow.readings_required;
                        let labelers = assignable.as_ref().map(|people| people.labelers.clone());
                        view! {
                            <p>
                                <span class=format!("case-status {}", workflow.status.as_str()) data-testid="case-status">
                                    {status_text(workflow.status)}
                                </span>
                            </p>
                            <p class="muted">
                                {match required {
                                    1 => format!("Labeler: {} · ", workflow.assignee.as_deref().unwrap_or("none yet")),
                                    n => format!("Read by {n} readers · "),
                                }}
                                {format!("reviewer: {}", workflow.reviewer.as_deref().unwrap_or("any reviewer"))}
                            </p>
                            {assignable.map(|people| view! { <AssignForm case_id=case_id.get_value() workflow=workflow.clone() people assign/> })}
                            {(required > 1 || actions.plan_readings).then(|| view! {
                                <ReadingsPanel ui actions required reading_actions labelers/>
                            })}
                            <div class="group actions">
                                {actions.take.then(|| view! {
                                    <button on:click=move |_| { take.dispatch(TakeCase { case_id: case_id.get_value() }); }>"Take this case"</button>
                                })}
                                {actions.submit.then(|| view! {
                                    <button class="primary" on:click=move |_| send(CaseStatus::Submitted)>
                                        {if required > 1 { "Submit my reading" } else { "Submit for review" }}
                                    </button>
                                })}
                                {actions.review.then(|| view! {
                                    <button class="primary" on:click=move |_| send(CaseStatus::Approved)>"Approve"</button>
                                    <button on:click=move |_| send(CaseStatus::ChangesRequested)>"Request changes"</button>
                                })}
                                {actions.reopen.then(|| view! {
                                    <button on:click=move |_| send(CaseStatus::InProgress)>"Reopen"</button>
                                })}
                            </div>
                            {(actions.submit || actions.review || actions.reopen).then(|| view! {
                                <textarea
                                    aria-label="Comment" rows="2" placeholder="Comment (needed to request changes or reopen)"
                                    prop:value=move || comment.get()
                                    on:input=move |ev| comment.set(event_target_value(&ev))
                                ></textarea>
                                <label class="muted">
                                    <input type="checkbox" prop:checked=move || at_crosshair.get()
                                        on:change=move |ev| at_crosshair.set(event_target_checked(&ev))/>
                                    " at the crosshair"
                                </label>
                            })}
                            <label class="muted">
                                <input type="checkbox" prop:checked=move || ui.compare.get()
                                    on:change=move |ev| ui.compare.set(event_target_checked(&ev))/>
                                {if ui.case.with_value(|case| case.review_base.approved) {
                                    " Show changes since the approved version"
                                } else {
                                    " Show changes since import"
                                }}
                            </label>
                            {move || ui.changes.get().map(|(added, removed)| view! {
                                <p data-testid="changes">
                                    <span class="added">{format!("{added} voxels added")}</span>
                                    ", "
                                    <span class="removed">{format!("{removed} removed")}</span>
                                </p>
                            })}
                            <Comments ui comments/>
                        }
                    })
                })}
            </Transition>
            {move || failure().map(|message| view! { <p class="error" role="alert">{message}</p> })}
        </aside>
    }
}

/// Who labels and who reviews the case, and whether it is restricted to them: for ML engineers
/// and admins.
#[component]
fn AssignForm(
    case_id: String,
    workflow: CaseWorkflow,
    people: AssignablePeople,
    assign: ServerAction<SetCasePeople>,
) -> impl IntoView {
    let labeler = RwSignal::new(workflow.assignee.as_deref().unwrap_or_default().to_string());
    let reviewer = RwSignal::new(workflow.reviewer.as_deref().unwrap_or_default().to_string());
    let restricted = RwSignal::new(workflow.restricted);
    let case_id = StoredValue::new(case_id);
    let chosen = |name: String| (!name.is_empty()).then_some(name);
    let submit = move |_| {
        assign.dispatch(SetCasePeople {
            case_id: case_id.get_value(),
            assignee: chosen(labeler.get_untracked()),
            reviewer: chosen(reviewer.get_untracked()),
            restricted: restricted.get_untracked(),
        });
    };
    let options = move |mut names: Vec<String>, current: RwSignal<String>, none: &'static str| {
        // Keep the current choice listed even if that person lost the role since.
        let now = current.get_untracked();
        if !now.is_empty() && !names.contains(&now) {
            names.insert(0, now);
        }
        std::iter::once((String::new(), none.to_string()))
            .chain(names.into_iter().map(|name| (name.clone(), name)))
            .map(|(value, shown)| {
                let selected = current.get_untracked() == value;
                view! { <option value=value selected=selected>{shown}</option> }
            })
            .collect_view()
    };
    let AssignablePeople { labelers, reviewers } = people;
    view! {
        <div class="group assign" data-testid="assign">
            <label>
                "Labeler "
                <select aria-label="Labeler" on:change=move |ev| labeler.set(event_target_value(&ev))>
                    {options(labelers.into_iter().map(String::from).collect(), labeler, "nobody")}
                </select>
            </label>
            <label>
                "Reviewer "
                <select aria-label="Reviewer" on:change=move |ev| reviewer.set(event_target_value(&ev))>
                    {options(reviewers.into_iter().map(String::from).collect(), reviewer, "any reviewer")}
                </select>
            </label>
            <label class="muted">
                <input type="checkbox" prop:checked=move || restricted.get() on:change=move |ev| restricted.set(event_target_checked(&ev))/>
                " only they can open it"
            </label>
            <button on:click=submit disabled=move || assign.pending().get()>"Assign"</button>
        </div>
    }
}

#[component]
fn Comments(ui: ViewerUi, comments: Vec<CaseComment>) -> impl IntoView {
    view! {
        <ol class="comments" data-testid="comments">
            {comments
                .into_iter()
                .map(|comment| {
                    view! {
                        <li>
                            <strong>{comment.username.to_string()}</strong>
                            " "
                            <span class="muted">{format_time(comment.created_at_ms)}</span>
                            <p>{comment.body}</p>
                            {comment.anchor.map(|[i, j, k]| view! {
                                <button on:click=move |_| ui.send(Command::JumpTo([i as usize, j as usize, k as usize]))>
                                    {format!("Go to ({i}, {j}, {k})")}
                                </button>
                            })}
                        </li>
                    }
                })
                .collect_view()}
        </ol>
    }
}
