//! The viewer's state: the opened case's editor, its three views and the crosshair they share,
//! and what the pointer and the save are doing, shared by the page's listeners, effects and
//! tasks.

use std::cell::RefCell;
use std::rc::Rc;

use leptos::prelude::*;

use super::view::View;
use crate::api::CaseId;
use crate::editor::render::Overlay;
use crate::editor::tools::Stroke;
use crate::editor::ui::{Crosshair, Layout, ViewerUi};
use crate::editor::Editor;
use crate::geometry::{Plane, SliceGeometry};

/// The viewer as its listeners, effects and tasks hold it; borrowed briefly, never across an
/// await.
pub(super) type Shared = Rc<RefCell<Viewer>>;

/// What a pointer drag is doing, and in which view.
pub(super) enum Drag {
    /// A stroke on one slice of one plane; it ends if either changes mid-drag.
    Paint(Stroke, Plane),
    Window {
        last: (f64, f64),
    },
    Pan {
        plane: Plane,
        last: (f64, f64),
    },
    /// Moving the crosshair within one view.
    Crosshair(Plane),
}

/// The region-growing preview's inputs, so a setting that did not change recomputes nothing.
#[derive(Clone, Copy, PartialEq)]
pub(super) struct GrowInputs {
    pub(super) seed: [usize; 3],
    pub(super) range: (f32, f32),
    pub(super) cap: usize,
}

pub(super) struct Viewer {
    pub(super) ui: ViewerUi,
    pub(super) case_id: CaseId,
    pub(super) editor: Editor,
    /// One view per plane, in [`Plane::ALL`] order.
    pub(super) views: [View; 3],
    /// Label colours; opacity, outline and hidden labels follow the controls at each draw.
    pub(super) overlay: Overlay,
    /// The crosshair's voxel: each view shows the slice through it.
    pub(super) point: [usize; 3],
    pub(super) drag: Option<Drag>,
    /// Brush outline position in canvas pixels of a view.
    pub(super) pointer: Option<(Plane, (f64, f64))>,
    /// What the region-growing preview shown was computed from.
    pub(super) grown_with: Option<GrowInputs>,
    /// Voxels of an older version being looked at (read only), instead of the edited mask.
    pub(super) viewing: Option<Vec<u8>>,
    /// The review base's voxels while changes against it are shown.
    pub(super) reference: Option<Vec<u8>>,
    /// The overlays' voxels (`ViewerUi::overlays` order), each once downloaded.
    pub(super) overlays: Vec<Option<Vec<u8>>>,
    /// Where the readings differ, once every reading is downloaded and it was asked for.
    pub(super) contested: Option<Vec<bool>>,
    pub(super) saving: bool,
    pub(super) keep_scheduled: bool,
    pub(super) drawn_once: bool,
}

/// False once the person has left the case page: its signals are gone, and reading one would
/// stop the whole WASM module. Checked after every await.
pub(super) fn alive(ui: ViewerUi) -> bool {
    ui.ready.try_get_untracked().is_some()
}

pub(super) fn ui_of(shared: &Shared) -> ViewerUi {
    shared.borrow().ui
}

impl Viewer {
    /// How `plane`'s slices lie in the volume.
    pub(super) fn geometry_of(&self, plane: Plane) -> SliceGeometry {
        let editor = &self.editor;
        editor.orientation.slice_geometry(plane, editor.dims, editor.spacing)
    }

    /// The active view's plane.
    pub(super) fn active(&self) -> Plane {
        self.ui.plane.get_untracked()
    }

    /// The slice `plane`'s view shows: the one through the crosshair.
    pub(super) fn slice_in(&self, geometry: &SliceGeometry) -> usize {
        self.point[geometry.through].min(geometry.depth() - 1)
    }

    /// The views on screen.
    pub(super) fn shown_planes(&self) -> Vec<Plane> {
        match self.ui.layout.get_untracked() {
            Layout::Three => Plane::ALL.to_vec(),
            Layout::One => vec![self.active()],
        }
    }

    /// Makes `plane`'s view the active one: the slice slider now steps through it.
    pub(super) fn activate(&mut self, plane: Plane) {
        let geometry = self.geometry_of(plane);
        if self.active() != plane {
            self.ui.plane.set(plane);
        }
        self.ui.slice_count.set(geometry.depth());
        self.ui.slice.set(self.slice_in(&geometry));
    }

    /// Moves the crosshair to `voxel` and tells the page where it is.
    pub(super) fn move_point(&mut self, voxel: [usize; 3]) {
        self.point = voxel;
        let active = self.geometry_of(self.active());
        if self.ui.slice.get_untracked() != self.slice_in(&active) {
            self.ui.slice.set(self.slice_in(&active));
        }
        self.ui.crosshair.set(Some(Crosshair { voxel, scanner_mm: self.editor.scanner_mm(voxel) }));
    }
}
