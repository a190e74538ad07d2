//! Predictions and readings over the mask (`crate::editor::overlays`): each downloaded once
//! when first drawn or compared, the disagreement with the mask counted, the views moved to
//! the slice where it is largest when a comparison is turned on, and the voxels where the
//! readings differ found once when their highlight is first asked for.

use leptos::prelude::*;

use super::state::{alive, ui_of, Shared, Viewer};
use crate::browser::net;
use crate::editor::disagreement::largest_disagreement;
use crate::editor::overlays::{contested, url_of, OverlayKind};
use crate::editor::ui::SaveStatus;
use crate::editor::{changes_between, Editor};

impl Viewer {
    /// Counts the disagreement with the compared overlay (after each edit too).
    pub(super) fn count_disagreement(&self) {
        let counts = self
            .ui
            .disagreement
            .get_untracked()
            .and_then(|n| self.overlays.get(n)?.as_deref())
            .map(|predicted| changes_between(predicted, &self.editor.mask));
        self.ui.disagreement_counts.set(counts);
    }
}

/// Shows the overlays the controls ask for; with `jump`, moves the views to where the compared
/// one disagrees most with the mask.
pub(super) async fn show(shared: &Shared, jump: bool) {
    let ui = ui_of(shared);
    let styles = ui.overlay_styles.get_untracked();
    let compared = ui.disagreement.get_untracked();
    let readings: Vec<usize> = ui.overlays.with_value(|overlays| {
        overlays.iter().enumerate().filter(|(_, o)| o.kind == OverlayKind::Reading).map(|(n, _)| n).collect()
    });
    let highlight = ui.readers_disagree.get_untracked();
    let wanted = styles
        .iter()
        .enumerate()
        .filter(|(_, style)| style.is_some())
        .map(|(n, _)| n)
        .chain(compared)
        .chain(readings.iter().copied().filter(|_| highlight));
    for n in wanted.collect::<Vec<_>>() {
        if shared.borrow().overlays.get(n).is_none_or(Option::is_some) {
            continue;
        }
        if let Err(message) = download(shared, n).await {
            let _ = ui.status.try_set(SaveStatus::Failed(format!("could not load the overlay: {message}")));
            return;
        }
        if !alive(ui) {
            return;
        }
    }
    let mut viewer = shared.borrow_mut();
    if highlight && viewer.contested.is_none() {
        let downloaded: Option<Vec<&[u8]>> = readings.iter().map(|&n| viewer.overlays[n].as_deref()).collect();
        viewer.contested = downloaded.map(|readings| contested(&readings));
    }
    viewer.count_disagreement();
    if jump {
        let target = compared.and_then(|n| {
            let overlaid = viewer.overlays.get(n)?.as_deref()?;
            let axis = viewer.geometry_of(viewer.active()).through;
            largest_disagreement(
                overlaid,
                &viewer.editor.mask,
                ui.focus_label.get_untracked(),
                viewer.editor.dims,
                axis,
            )
        });
        if let Some(voxel) = target {
            viewer.move_point(voxel);
        }
    }
    viewer.draw();
}

/// Downloads overlay `n` from a freshly presigned URL (the page's may have expired).
async fn download(shared: &Shared, n: usize) -> Result<(), String> {
    let (case_id, overlay) = {
        let viewer = shared.borrow();
        (viewer.case_id.clone(), viewer.ui.overlays.with_value(|overlays| overlays[n].clone()))
    };
    let fresh = net::case_artifacts(&case_id).await?;
    let url = url_of(&fresh, &overlay)
        .ok_or("it is no longer listed (the model version changed state, or the case moved on); reload the page")?;
    let file = net::get_now(&url).await?;
    let mut viewer = shared.borrow_mut();
    let labels = Editor::labels_of(&file, viewer.editor.mask.len()).map_err(|e| e.to_string())?;
    viewer.overlays[n] = Some(labels);
    Ok(())
}
