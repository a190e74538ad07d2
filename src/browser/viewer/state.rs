//! The viewer's state: the opened case's editor, its view, and what the pointer and the save
//! are doing, shared by the page's listeners, effects and tasks.

use std::cell::RefCell;
use std::rc::Rc;

use leptos::prelude::*;

use super::view::View;
use crate::viewer::orientation::{Plane, SliceGeometry};
use crate::viewer::render::Overlay;
use crate::viewer::tools::Stroke;
use crate::viewer::ui::ViewerUi;
use crate::viewer::Editor;

/// The viewer as its listeners, effects and tasks hold it; borrowed briefly, never across an
/// await.
pub(super) type Shared = Rc<RefCell<Viewer>>;

/// What a pointer drag is doing.
pub(super) enum Drag {
    /// A stroke on one slice of one plane; it ends if either changes mid-drag.
    Paint(Stroke, Plane),
    Window { last: (f64, f64) },
    Pan { last: (f64, f64) },
}

pub(super) struct Viewer {
    pub(super) ui: ViewerUi,
    pub(super) case_id: String,
    pub(super) editor: Editor,
    /// The page's canvas, showing the slice in the plane chosen.
    pub(super) view: View,
    /// Label colours; opacity and outline follow the controls at each draw.
    pub(super) overlay: Overlay,
    /// Last slice shown in each plane, so switching planes and back returns to it.
    pub(super) slice_of: [usize; 3],
    pub(super) drag: Option<Drag>,
    /// Brush outline position in canvas pixels.
    pub(super) pointer: Option<(f64, f64)>,
    /// Voxels of an older version being looked at (read only), instead of the edited mask.
    pub(super) viewing: Option<Vec<u8>>,
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
    /// How the current plane's slices lie in the volume.
    pub(super) fn geometry(&self) -> SliceGeometry {
        let editor = &self.editor;
        editor.orientation.slice_geometry(self.ui.plane.get_untracked(), editor.dims, editor.spacing)
    }

    /// Switches the slice controls to `plane`, at the slice last shown in it.
    pub(super) fn show_plane(&mut self, plane: Plane) {
        let geometry = self.editor.orientation.slice_geometry(plane, self.editor.dims, self.editor.spacing);
        let slice = self.slice_of[geometry.through].min(geometry.depth() - 1);
        self.ui.slice_count.set(geometry.depth());
        self.ui.slice.set(slice);
    }

    /// The slice shown, within the plane's depth.
    pub(super) fn slice(&self, geometry: &SliceGeometry) -> usize {
        self.ui.slice.get_untracked().min(geometry.depth() - 1)
    }
}
