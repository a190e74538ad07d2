//! A case's review panel, beside the viewer: where the case stands, who labels and who reviews
//! it, the buttons the caller may use (take, submit, approve, request changes, reopen; the
//! server says which), and the comments, each of which can move the views to its voxel.

use leptos::prelude::*;

use crate::api::{ApiError, CaseComment, CaseReview, CaseStatus, CaseWorkflow};
use crate::pages::common::{format_time, loaded};
use crate::viewer::ui::{Command, ViewerUi};

#[server]
pub async fn get_case_review(case_id: String) -> Result<CaseReview, ApiError> {
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    Ok(crate::server::services::workflow::review(&state, &user, &case_id).await?)
}

#[server]
pub async fn take_case(case_id: String) -> Result<CaseWorkflow, ApiError> {
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    Ok(crate::server::services::workflow::take(&state, &user, &case_id).await?)
}

#[server]
pub async fn change_case_status(
    case_id: String,
    status: CaseStatus,
    comment: Option<String>,
    anchor: Option<[u32; 3]>,
) -> Result<CaseWorkflow, ApiError> {
    use crate::api::ChangeStatus;
    let (state, user) = crate::server::auth::server_fn_caller().await?;
    let request = ChangeStatus { status, comment, anchor };
    Ok(crate::server::services::workflow::change_status(&state, &user, &case_id, &request).await?)
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

#[component]
pub fn ReviewPanel(ui: ViewerUi) -> impl IntoView {
    let case_id = StoredValue::new(ui.case.with_value(|case| case.case_id.clone()));
    let take = ServerAction::<TakeCase>::new();
    let change = ServerAction::<ChangeCaseStatus>::new();
    // Refreshed after each action and each save (a save moves a case back to in progress).
    let review = Resource::new(
        move || (take.version().get(), change.version().get(), ui.history.with(Vec::len)),
        move |_| get_case_review(case_id.get_value()),
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
    let failure = move || match (take.value().get(), change.value().get()) {
        (Some(Err(err)), _) | (_, Some(Err(err))) => Some(err.to_string()),
        _ => None,
    };
    view! {
        <aside class="review" data-testid="review">
            <h2>"Review"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    loaded(review.await, move |review| {
                        let CaseReview { workflow, actions, comments } = review;
                        ui.may_save.set(actions.save);
                        view! {
                            <p>
                                <span class=format!("case-status {}", workflow.status.as_str()) data-testid="case-status">
                                    {status_text(workflow.status)}
                                </span>
                            </p>
                            <p class="muted">
                                {format!(
                                    "Labeler: {} · reviewer: {}",
                                    workflow.assignee.as_deref().unwrap_or("none yet"),
                                    workflow.reviewer.as_deref().unwrap_or("any reviewer"),
                                )}
                            </p>
                            <div class="group actions">
                                {actions.take.then(|| view! {
                                    <button on:click=move |_| { take.dispatch(TakeCase { case_id: case_id.get_value() }); }>"Take this case"</button>
                                })}
                                {actions.submit.then(|| view! {
                                    <button class="primary" on:click=move |_| send(CaseStatus::Submitted)>"Submit for review"</button>
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

#[component]
fn Comments(ui: ViewerUi, comments: Vec<CaseComment>) -> impl IntoView {
    view! {
        <ol class="comments" data-testid="comments">
            {comments
                .into_iter()
                .map(|comment| {
                    view! {
                        <li>
                            <strong>{comment.username}</strong>
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
