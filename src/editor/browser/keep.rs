//! Unsaved edits kept in this browser (IndexedDB, through `browser::kept`) shortly after every
//! change, so a reload, a crash or an expired session loses nothing; and edits kept on an
//! earlier visit offered back when the case opens.

use base64::Engine;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::indexed_db as kept;
use super::state::{Shared, Viewer};
use crate::browser::net;
use crate::editor::changes_between;
use crate::editor::ui::{KeptEdits, SaveStatus};

impl Viewer {
    /// Undo and redo follow the history, the label list its counts; a "Saved" notice no
    /// longer holds.
    fn after_edit(&self) {
        self.ui.can_undo.set(self.editor.history.can_undo());
        self.ui.can_redo.set(self.editor.history.can_redo());
        self.ui.counts.set(self.editor.counts.to_vec());
        if let Some(reference) = &self.reference {
            self.ui.changes.set(Some(changes_between(reference, &self.editor.mask)));
        }
        if self.ui.disagreement_counts.get_untracked().is_some() {
            self.count_disagreement();
        }
        if matches!(self.ui.status.get_untracked(), SaveStatus::Saved { .. }) {
            self.ui.status.set(SaveStatus::Idle);
        }
    }

    fn kept_record(&self) -> kept::KeptRecord {
        let edits = self.editor.unsaved_edits();
        kept::KeptRecord {
            base_mask_ref: self.editor.base_ref.to_string(),
            edits: base64::engine::general_purpose::STANDARD.encode(edits.encode()),
            voxels: edits.voxel_count(),
            saved_at_ms: js_sys::Date::now() as i64,
        }
    }
}

/// Keeps the unsaved edits in IndexedDB shortly after the latest change (one write per burst).
pub(super) fn schedule_keep(shared: &Shared) {
    {
        let mut viewer = shared.borrow_mut();
        viewer.after_edit();
        if viewer.keep_scheduled {
            return;
        }
        viewer.keep_scheduled = true;
    }
    let shared = shared.clone();
    spawn_local(async move {
        net::sleep(300).await;
        keep_now(&shared).await;
    });
}

/// Keeps the unsaved edits now, or forgets the kept ones when nothing is unsaved.
pub(super) async fn keep_now(shared: &Shared) {
    let (case_id, record, ui) = {
        let mut viewer = shared.borrow_mut();
        viewer.keep_scheduled = false;
        (viewer.case_id.clone(), viewer.kept_record(), viewer.ui)
    };
    let _ = ui.unsaved.try_set(record.voxels);
    let result = if record.voxels == 0 { kept::forget(&case_id).await } else { kept::save(&case_id, &record).await };
    if let Err(message) = result {
        let _ = ui.status.try_set(SaveStatus::Failed(format!("could not keep edits in this browser ({message})")));
    }
}

/// Offers back edits kept from an earlier visit, if there are any.
pub(super) fn offer_kept(shared: Shared) {
    spawn_local(async move {
        let (ui, case_id, base_ref) = {
            let viewer = shared.borrow();
            (viewer.ui, viewer.case_id.clone(), viewer.editor.base_ref.clone())
        };
        if let Ok(Some(record)) = kept::load(&case_id).await {
            if record.voxels > 0 {
                let _ = ui.kept.try_set(Some(KeptEdits {
                    voxels: record.voxels,
                    saved_at_ms: record.saved_at_ms,
                    on_older_version: record.base_mask_ref != base_ref.as_str(),
                }));
            }
        }
    });
}
