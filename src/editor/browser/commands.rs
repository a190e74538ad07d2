//! The controls' commands carried out on the viewer: undo and redo, view resets and windows,
//! saving (retried under one idempotency key), moving onto the newest version after a
//! conflict, restoring or discarding kept edits, and viewing an older version.

use base64::Engine;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::edit3d;
use super::indexed_db as kept;
use super::keep::{keep_now, schedule_keep};
use super::state::{ui_of, Shared};
use crate::api::{ArtifactKind, ErrorCode, MaskVersion, SaveLabelRequest};
use crate::browser::net;
use crate::editor::render::Window;
use crate::editor::ui::{Command, SaveStatus};
use crate::editor::{changes_between, Editor};
use crate::edits::MaskEdits;

/// Has the commands sent through the viewer's `ViewerUi` carried out from now on. Each runs in
/// a task of its own: a command may be sent from a listener that is borrowing the viewer.
pub(super) fn receive(shared: &Shared) {
    let receiver = shared.clone();
    ui_of(shared).receive_commands(move |command| {
        let shared = receiver.clone();
        spawn_local(async move { run_command(shared, command) });
    });
}

fn run_command(shared: Shared, command: Command) {
    let ui = ui_of(&shared);
    if edit3d::run(&shared, &command) {
        return;
    }
    match command {
        Command::Save => spawn_local(save(shared)),
        Command::Undo | Command::Redo => {
            let changed = {
                let mut viewer = shared.borrow_mut();
                if viewer.viewing.is_some() {
                    return;
                }
                let editor = &mut viewer.editor;
                let changed = if command == Command::Undo { editor.undo() } else { editor.redo() };
                viewer.draw();
                changed
            };
            if changed {
                schedule_keep(&shared);
            }
        }
        Command::ResetView => {
            let mut viewer = shared.borrow_mut();
            let active = viewer.active();
            let view = &mut viewer.views[active.index()];
            view.zoom = 1.0;
            view.pan = (0.0, 0.0);
            let (low, high) = viewer.editor.robust_range;
            drop(viewer);
            ui.window.set(Window::spanning(low, high));
        }
        Command::JumpTo(voxel) => {
            let mut viewer = shared.borrow_mut();
            let voxel = [0, 1, 2].map(|axis| voxel[axis].min(viewer.editor.dims[axis] - 1));
            viewer.move_point(voxel);
            viewer.draw();
        }
        Command::WindowPercentiles(low, high) => {
            let (low, high) = shared.borrow().editor.image.percentiles(low, high);
            ui.window.set(Window::spanning(low, high));
        }
        Command::LoadNewest => spawn_local(async move {
            if let Err(message) = load_newest(&shared).await {
                let _ = ui.status.try_set(SaveStatus::Failed(message));
            }
        }),
        Command::RestoreKept => spawn_local(async move {
            if let Err(message) = restore_kept(&shared).await {
                let _ = ui.status.try_set(SaveStatus::Failed(message));
            }
        }),
        Command::DiscardKept => spawn_local(async move {
            let case_id = shared.borrow().case_id.clone();
            let _ = ui.kept.try_set(None);
            if let Err(message) = kept::forget(&case_id).await {
                let _ = ui.status.try_set(SaveStatus::Failed(message));
            }
        }),
        Command::ViewVersion(version) => spawn_local(async move {
            let shown = show_version(&shared, &version).await;
            match shown {
                Ok(()) => {
                    let _ = ui.viewing.try_set(Some(version));
                }
                Err(message) => {
                    let _ = ui.status.try_set(SaveStatus::Failed(message));
                }
            }
        }),
        Command::BackToEditing => {
            let mut viewer = shared.borrow_mut();
            viewer.viewing = None;
            viewer.draw();
            ui.viewing.set(None);
        }
        _ => {} // the 3-D tools, carried out above
    }
}

/// Sends the unsaved edits; retries network errors and 5xx with the same idempotency key,
/// so a save whose answer was lost is stored exactly once.
async fn save(shared: Shared) {
    let prepared = {
        let mut viewer = shared.borrow_mut();
        if viewer.saving || viewer.viewing.is_some() {
            return;
        }
        let edits = viewer.editor.unsaved_edits();
        if edits.runs().is_empty() {
            let _ = viewer.ui.status.try_set(SaveStatus::Failed("there are no changes to save".into()));
            return;
        }
        viewer.saving = true;
        let request = SaveLabelRequest {
            case_id: viewer.case_id.to_string(),
            base_mask_ref: viewer.editor.base_ref.to_string(),
            edits: base64::engine::general_purpose::STANDARD.encode(edits.encode()),
        };
        (viewer.ui, request, edits)
    };
    let (ui, request, edits) = prepared;
    let key = uuid::Uuid::new_v4().to_string();
    let mut attempt = 0;
    let outcome = loop {
        let _ = ui.status.try_set(SaveStatus::Saving { attempt });
        match net::post_label(&request, &key).await {
            net::SaveAnswer::Retry(message) if attempt >= 5 => {
                break Err(format!("{message}. Your edits are kept in this browser; press Save to try again"))
            }
            net::SaveAnswer::Retry(_) => {
                net::sleep(400 << attempt.min(4)).await;
                attempt += 1;
            }
            net::SaveAnswer::Saved(saved) => break Ok(saved),
            net::SaveAnswer::Stale { current } => {
                let _ = ui.conflict.try_set(Some(format!(
                    "Someone else saved a newer version of this mask ({current}) while you were editing. \
                     Your edits are not lost: load the newest version and they will be re-applied on top of it, \
                     then review and save."
                )));
                break Err("someone else saved first".into());
            }
            net::SaveAnswer::Refused(error) if error.code == ErrorCode::Unauthorized => {
                break Err("your session has expired. Log in again (in a new tab) and press Save; your edits are kept in this browser".into())
            }
            net::SaveAnswer::Refused(error) => break Err(error.message),
        }
    };
    shared.borrow_mut().saving = false;
    match outcome {
        Ok(saved) => {
            shared.borrow_mut().editor.saved(saved.new_mask_ref.clone(), &edits);
            // Kept edits first: even if the person has left the page, the browser must not
            // offer back what is now saved.
            keep_now(&shared).await;
            let case_id = shared.borrow().case_id.clone();
            // The history lists the newest versions only; the count is of them all.
            let version = match net::case_artifacts(&case_id).await {
                Ok(fresh) => {
                    let _ = ui.history.try_set(fresh.history);
                    fresh.history_total as usize
                }
                Err(_) => ui.history.try_with_untracked(Vec::len).unwrap_or(0),
            };
            let _ = ui.status.try_set(SaveStatus::Saved { version, voxels: saved.voxels_changed });
        }
        Err(message) => {
            let _ = ui.status.try_set(SaveStatus::Failed(message));
        }
    }
}

/// After a conflict: moves onto the newest version and re-applies this person's edits.
async fn load_newest(shared: &Shared) -> Result<(), String> {
    let case_id = shared.borrow().case_id.clone();
    let fresh = net::case_artifacts(&case_id).await?;
    let mask = fresh.artifacts.iter().find(|a| a.kind == ArtifactKind::Mask).ok_or("the case has no mask")?;
    let file = net::get_now(&mask.url).await?;
    let ui = {
        let mut viewer = shared.borrow_mut();
        let edits = viewer.editor.unsaved_edits();
        viewer.editor.rebase(fresh.current_mask_ref.clone(), &file, &edits).map_err(|e| e.to_string())?;
        viewer.draw();
        viewer.ui
    };
    let _ = ui.history.try_set(fresh.history);
    let _ = ui.conflict.try_set(None);
    let _ = ui.status.try_set(SaveStatus::Idle);
    schedule_keep(shared);
    Ok(())
}

/// Re-applies edits kept in IndexedDB from an earlier visit onto the current mask.
async fn restore_kept(shared: &Shared) -> Result<(), String> {
    let case_id = shared.borrow().case_id.clone();
    let record = kept::load(&case_id).await?.ok_or("no kept edits were found")?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(&record.edits).map_err(|e| e.to_string())?;
    let ui = {
        let mut viewer = shared.borrow_mut();
        let voxels = viewer.editor.mask.len() as u64;
        let edits = MaskEdits::decode(&bytes, voxels, &(0..=255).collect::<Vec<u8>>()).map_err(|e| e.to_string())?;
        viewer.editor.restore(&edits);
        viewer.draw();
        viewer.ui
    };
    let _ = ui.kept.try_set(None);
    schedule_keep(shared);
    Ok(())
}

/// Shows `version`'s voxels (read only) in place of the edited mask, downloaded from a fresh
/// URL: the one in the history shown may have expired.
async fn show_version(shared: &Shared, version: &MaskVersion) -> Result<(), String> {
    let case_id = shared.borrow().case_id.clone();
    let fresh = net::case_artifacts(&case_id).await?;
    let url = fresh
        .history
        .iter()
        .find(|v| v.label_id == version.label_id)
        .map(|v| v.url.clone())
        .ok_or("that version is gone")?;
    let file = net::get_now(&url).await?;
    let mut viewer = shared.borrow_mut();
    let labels = Editor::labels_of(&file, viewer.editor.mask.len()).map_err(|e| e.to_string())?;
    viewer.viewing = Some(labels);
    viewer.draw();
    Ok(())
}

/// Shows (or stops showing) what changed against the review base: the last approved version,
/// else the imported one, downloaded from a fresh URL when first asked for.
pub(super) async fn compare(shared: &Shared, on: bool) {
    let ui = ui_of(shared);
    if !on {
        let mut viewer = shared.borrow_mut();
        viewer.reference = None;
        viewer.draw();
        let _ = ui.changes.try_set(None);
        return;
    }
    let compared = async {
        let case_id = shared.borrow().case_id.clone();
        let fresh = net::case_artifacts(&case_id).await?;
        let file = net::get_now(&fresh.review_base.url).await?;
        let mut viewer = shared.borrow_mut();
        let labels = Editor::labels_of(&file, viewer.editor.mask.len()).map_err(|e| e.to_string())?;
        let changes = changes_between(&labels, &viewer.editor.mask);
        viewer.reference = Some(labels);
        viewer.draw();
        Ok::<_, String>(changes)
    }
    .await;
    match compared {
        Ok(changes) => {
            let _ = ui.changes.try_set(Some(changes));
        }
        Err(message) => {
            let _ =
                ui.status.try_set(SaveStatus::Failed(format!("could not load the version to compare with: {message}")));
        }
    }
}
