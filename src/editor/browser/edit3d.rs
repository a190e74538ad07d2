//! The 3-D tools in the browser: fill between slices and region growing (previewed, then
//! applied or cancelled), islands, holes and smoothing (applied at once). Each applied edit is
//! one undoable step, kept and saved like a brush stroke; each tool's time goes to `timing`.

use leptos::prelude::*;

use super::keep::schedule_keep;
use super::state::{GrowInputs, Shared, Viewer};
use super::timing::{now_ms, record_op};
use crate::editor::preview::{Preview, PreviewKind};
use crate::editor::ui::{Command, PreviewInfo};
use crate::editor::Smoothing;
use crate::mask_ops::components::Islands;

impl Viewer {
    /// Shows the region grown from `seed` with the range and cap set, unless it is shown already.
    pub(super) fn grow_preview(&mut self, seed: [usize; 3]) {
        let ui = self.ui;
        let inputs = GrowInputs { seed, range: ui.grow_range.get_untracked(), cap: ui.grow_cap.get_untracked().max(1) };
        if self.grown_with == Some(inputs) && self.editor.preview.is_some() {
            return;
        }
        let started = now_ms();
        let label = ui.label.get_untracked();
        let preview = self.editor.preview_grow(label, seed, inputs.range, inputs.cap);
        record_op("grow", now_ms() - started, preview.voxels().len());
        self.grown_with = Some(inputs);
        self.show_preview("Region growing");
    }

    /// Publishes the preview (or its absence) to the page and draws it.
    fn show_preview(&mut self, what: &'static str) {
        let info = self.editor.preview.as_ref().map(|p: &Preview| PreviewInfo {
            what,
            voxels: p.voxels().len(),
            capped: p.capped,
        });
        self.ui.preview.set(info);
        self.draw();
    }
}

/// Carries out a 3-D tool command (ignored while an older version is shown); false when
/// `command` is not one.
pub(super) fn run(shared: &Shared, command: &Command) -> bool {
    let is_3d = matches!(
        command,
        Command::FillBetween
            | Command::Regrow
            | Command::ApplyPreview
            | Command::CancelPreview
            | Command::KeepLargestIsland
            | Command::RemoveSmallIslands
            | Command::FillHoles
            | Command::Smooth(_)
    );
    let mut viewer = shared.borrow_mut();
    if !is_3d || viewer.viewing.is_some() {
        return is_3d;
    }
    let ui = viewer.ui;
    let label = ui.label.get_untracked();
    let area = ui.area.get_untracked();
    let started = now_ms();
    let (name, changed) = match command {
        Command::FillBetween => {
            let plane = viewer.active();
            let axis = viewer.geometry_of(plane).through;
            let found = viewer.editor.preview_fill_between(label, axis).voxels().len();
            record_op("fill_between", now_ms() - started, found);
            viewer.grown_with = None;
            if found == 0 {
                ui.notice.set(format!(
                    "Nothing to fill: paint label {label} on two {} slices with empty slices between them.",
                    plane.name().to_lowercase()
                ));
            } else {
                ui.notice.set(String::new());
            }
            viewer.show_preview("Fill between slices");
            return true;
        }
        Command::Regrow => {
            if let Some(PreviewKind::Grow { seed }) = viewer.editor.preview.as_ref().map(|p| p.kind) {
                viewer.grow_preview(seed);
            }
            return true;
        }
        Command::CancelPreview => {
            viewer.editor.preview = None;
            viewer.grown_with = None;
            viewer.show_preview("");
            return true;
        }
        Command::ApplyPreview => ("apply", viewer.editor.apply_preview(area)),
        Command::KeepLargestIsland => ("islands", viewer.editor.remove_islands(label, Islands::KeepLargest)),
        Command::RemoveSmallIslands => {
            let smallest = ui.island_min.get_untracked().max(1);
            ("islands", viewer.editor.remove_islands(label, Islands::RemoveSmallerThan(smallest)))
        }
        Command::FillHoles => ("holes", viewer.editor.fill_holes(label, area)),
        Command::Smooth(smoothing) => {
            let radius = ui.smooth_mm.get_untracked();
            let name = if *smoothing == Smoothing::Opening { "opening" } else { "closing" };
            (name, viewer.editor.smooth(label, *smoothing, radius, area))
        }
        _ => unreachable!("every 3-D command is matched above"),
    };
    record_op(name, now_ms() - started, changed);
    viewer.grown_with = None;
    ui.notice.set(format!("{}: {changed} voxels changed", tool_name(command)));
    viewer.show_preview("");
    drop(viewer);
    if changed > 0 {
        schedule_keep(shared);
    }
    true
}

/// How the page names a tool that changes the mask at once.
fn tool_name(command: &Command) -> &'static str {
    match command {
        Command::ApplyPreview => "Applied",
        Command::KeepLargestIsland => "Keep largest island",
        Command::RemoveSmallIslands => "Remove islands",
        Command::FillHoles => "Fill holes",
        Command::Smooth(Smoothing::Opening) => "Opening",
        Command::Smooth(Smoothing::Closing) => "Closing",
        _ => "Edit",
    }
}
