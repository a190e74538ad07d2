//! Pointer, wheel and key input on the views: painting, filling, region growing and moving
//! the crosshair; window/level and pan drags, zoom, slice steps, the voxel readout under the
//! pointer, and the keyboard shortcuts. A press in a view makes it the active one.

use leptos::prelude::*;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{HtmlCanvasElement, KeyboardEvent, MouseEvent, PointerEvent, WheelEvent};

use super::keep::schedule_keep;
use super::state::{ui_of, Drag, Shared, Viewer};
use crate::editor::shortcuts::{self, Action};
use crate::editor::tools::{flood_fill, Paint, Stroke};
use crate::editor::ui::{Command, Layout, Tool, ViewerUi};
use crate::geometry::Plane;

impl Viewer {
    /// What the left button paints with, from the controls.
    fn paint(&self) -> Paint {
        let ui = self.ui;
        let tool = ui.tool.get_untracked();
        Paint {
            value: if tool == Tool::Eraser { 0 } else { ui.label.get_untracked() },
            radius_mm: ui.radius_mm.get_untracked(),
            intensity_range: (tool == Tool::ThresholdBrush).then(|| ui.threshold.get_untracked()),
            area: ui.area.get_untracked(),
        }
    }

    /// The voxel under a canvas point of `plane`'s view, if the point is on the slice.
    fn voxel_at(&self, plane: Plane, point: (f64, f64)) -> Option<[usize; 3]> {
        let geometry = self.geometry_of(plane);
        let (col, row) = self.views[plane.index()].slice_point(&geometry, point);
        let inside = col >= 0.0 && row >= 0.0 && col < geometry.width as f64 && row < geometry.height as f64;
        inside.then(|| geometry.voxel(self.slice_in(&geometry), col as usize, row as usize))
    }

    /// Shows the voxel under the canvas point, its intensity and label.
    fn update_cursor(&self, plane: Plane, point: (f64, f64)) {
        let Some(voxel @ [i, j, k]) = self.voxel_at(plane, point) else {
            self.ui.cursor.set(String::new());
            return;
        };
        let index = self.editor.grid().index(voxel);
        let mask = self.viewing.as_deref().unwrap_or(&self.editor.mask);
        self.ui.cursor.set(format!(
            "voxel ({i}, {j}, {k})  value {}  label {}",
            self.editor.image.get(index),
            mask[index]
        ));
    }

    /// Left press with the current tool in `plane`'s view; the drag it starts, if any.
    fn press(&mut self, shared: &Shared, plane: Plane, point: (f64, f64)) -> Option<Drag> {
        let tool = self.ui.tool.get_untracked();
        if tool == Tool::Crosshair {
            if let Some(voxel) = self.voxel_at(plane, point) {
                self.move_point(voxel);
                self.draw();
            }
            return Some(Drag::Crosshair(plane));
        }
        if self.viewing.is_some() {
            return None;
        }
        let geometry = self.geometry_of(plane);
        let slice = self.slice_in(&geometry);
        let (col, row) = self.views[plane.index()].slice_point(&geometry, point);
        match tool {
            Tool::Fill => {
                if self.voxel_at(plane, point).is_some() {
                    let paint = self.paint();
                    let editor = &mut self.editor;
                    let delta = flood_fill(
                        &geometry,
                        &editor.image,
                        &mut editor.mask,
                        slice,
                        (col as usize, row as usize),
                        paint,
                    );
                    editor.record(delta);
                    self.draw();
                    schedule_keep_later(shared);
                }
                None
            }
            Tool::Grow => {
                if let Some(seed) = self.voxel_at(plane, point) {
                    let value = self.editor.image.get(self.editor.grid().index(seed));
                    let reach = self.ui.window.get_untracked().width / 10.0;
                    self.ui.grow_range.set((value - reach, value + reach));
                    self.grow_preview(seed);
                }
                None
            }
            _ => {
                let mut stroke = Stroke::begin(self.paint(), slice);
                let editor = &mut self.editor;
                stroke.extend_to(&geometry, &editor.image, &mut editor.mask, col, row);
                if let Some(area) = stroke.take_dirty() {
                    self.draw_area(area);
                }
                Some(Drag::Paint(stroke, plane))
            }
        }
    }
}

/// Keeps the edits once the listener running now has let go of the viewer.
fn schedule_keep_later(shared: &Shared) {
    let shared = shared.clone();
    leptos::task::spawn_local(async move { schedule_keep(&shared) });
}

fn on_canvas<E: wasm_bindgen::convert::FromWasmAbi + 'static>(
    canvas: &HtmlCanvasElement,
    event: &str,
    handler: impl FnMut(E) + 'static,
) {
    let closure = Closure::<dyn FnMut(E)>::new(handler);
    let _ = canvas.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref());
    // The canvas owns its listeners for the page's life.
    closure.forget();
}

/// Listens to the pointer and the wheel on `plane`'s view.
pub(super) fn listen_pointer(shared: &Shared, plane: Plane) {
    let canvas = shared.borrow().views[plane.index()].canvas.clone();
    let down = shared.clone();
    on_canvas(&canvas, "pointerdown", move |event: PointerEvent| {
        let mut viewer = down.borrow_mut();
        let view = &viewer.views[plane.index()];
        let point = view.canvas_point(&event);
        let _ = view.canvas.set_pointer_capture(event.pointer_id());
        let _ = view.canvas.focus();
        if viewer.active() != plane {
            viewer.activate(plane);
        }
        viewer.drag = match (event.button(), event.shift_key()) {
            (2, _) => Some(Drag::Window { last: point }),
            (1, _) | (0, true) => Some(Drag::Pan { plane, last: point }),
            (0, false) => viewer.press(&down, plane, point),
            _ => None,
        };
    });
    let moved = shared.clone();
    on_canvas(&canvas, "pointermove", move |event: PointerEvent| {
        let mut viewer = moved.borrow_mut();
        let point = viewer.views[plane.index()].canvas_point(&event);
        viewer.pointer = Some((plane, point));
        viewer.update_cursor(plane, point);
        let geometry = viewer.geometry_of(plane);
        match viewer.drag.take() {
            // The button came up where no pointerup reached us (another window, a dialog), or
            // the slice changed under the stroke (keys, wheel): the stroke ends.
            Some(Drag::Paint(stroke, on))
                if event.buttons() & 1 == 0 || on != plane || stroke.slice() != viewer.slice_in(&geometry) =>
            {
                viewer.editor.record(stroke.finish());
                viewer.present(plane);
                drop(viewer);
                schedule_keep(&moved);
            }
            Some(Drag::Paint(mut stroke, on)) => {
                let (col, row) = viewer.views[plane.index()].slice_point(&geometry, point);
                let editor = &mut viewer.editor;
                stroke.extend_to(&geometry, &editor.image, &mut editor.mask, col, row);
                let area = stroke.take_dirty();
                viewer.drag = Some(Drag::Paint(stroke, on));
                if let Some(area) = area {
                    viewer.draw_area(area);
                }
            }
            Some(Drag::Crosshair(on)) if on == plane && event.buttons() & 1 != 0 => {
                if let Some(voxel) = viewer.voxel_at(plane, point).filter(|&voxel| voxel != viewer.point) {
                    viewer.move_point(voxel);
                    viewer.draw();
                }
                viewer.drag = Some(Drag::Crosshair(on));
            }
            Some(Drag::Window { last }) => {
                let (low, high) = viewer.editor.robust_range;
                let window = viewer.ui.window.get_untracked().dragged(point.0 - last.0, point.1 - last.1, high - low);
                viewer.drag = Some(Drag::Window { last: point });
                drop(viewer);
                ui_of(&moved).window.set(window);
            }
            Some(Drag::Pan { plane: on, last }) => {
                let pan = &mut viewer.views[on.index()].pan;
                pan.0 += point.0 - last.0;
                pan.1 += point.1 - last.1;
                viewer.drag = Some(Drag::Pan { plane: on, last: point });
                viewer.present(on);
            }
            // Only the brush outline moved.
            _ => viewer.present(plane),
        }
    });
    let up = shared.clone();
    let finish = move |_: PointerEvent| {
        let stroke = match up.borrow_mut().drag.take() {
            Some(Drag::Paint(stroke, _)) => stroke,
            _ => return,
        };
        up.borrow_mut().editor.record(stroke.finish());
        schedule_keep(&up);
    };
    on_canvas(&canvas, "pointerup", finish.clone());
    on_canvas(&canvas, "pointercancel", finish);
    let left = shared.clone();
    on_canvas(&canvas, "pointerleave", move |_: PointerEvent| {
        let mut viewer = left.borrow_mut();
        viewer.pointer = None;
        viewer.present(plane);
    });
    let double = shared.clone();
    on_canvas(&canvas, "dblclick", move |_: MouseEvent| toggle_layout(ui_of(&double)));
    let wheel = shared.clone();
    on_canvas(&canvas, "wheel", move |event: WheelEvent| {
        event.prevent_default();
        let mut viewer = wheel.borrow_mut();
        if event.ctrl_key() {
            let factor = if event.delta_y() < 0.0 { 1.15 } else { 1.0 / 1.15 };
            let view = &mut viewer.views[plane.index()];
            view.zoom = (view.zoom * factor).clamp(0.25, 32.0);
            viewer.present(plane);
        } else {
            if viewer.active() != plane {
                viewer.activate(plane);
            }
            let ui = viewer.ui;
            drop(viewer);
            step_slice(ui, if event.delta_y() < 0.0 { 1 } else { -1 });
        }
    });
}

fn step_slice(ui: ViewerUi, step: isize) {
    let count = ui.slice_count.get_untracked() as isize;
    let next = (ui.slice.get_untracked() as isize + step).clamp(0, count - 1);
    ui.slice.set(next as usize);
}

/// Three views, or the active one maximised.
fn toggle_layout(ui: ViewerUi) {
    ui.layout.update(|layout| *layout = if *layout == Layout::Three { Layout::One } else { Layout::Three });
}

pub(super) fn listen_keys(shared: &Shared) {
    let keys = shared.clone();
    let handle = window_event_listener(leptos::ev::keydown, move |event: KeyboardEvent| {
        // Keys typed into a text field or list belong to it; sliders and buttons do not take text.
        let typing = event.target().and_then(|t| t.dyn_into::<web_sys::Element>().ok()).is_some_and(|el| {
            match el.tag_name().as_str() {
                "INPUT" => {
                    !matches!(el.get_attribute("type").as_deref(), Some("range" | "checkbox" | "radio" | "button"))
                }
                tag => matches!(tag, "SELECT" | "TEXTAREA"),
            }
        });
        if typing {
            return;
        }
        let ui = ui_of(&keys);
        let command = event.ctrl_key() || event.meta_key();
        let Some(action) = shortcuts::action_for(&event.key(), command, event.shift_key()) else {
            return;
        };
        match action {
            Action::Tool(tool) => ui.tool.set(tool),
            Action::FillBetween => ui.send(Command::FillBetween),
            Action::ApplyPreview if ui.preview.get_untracked().is_some() => ui.send(Command::ApplyPreview),
            Action::ApplyPreview => return,
            Action::Dismiss => {
                ui.help.set(false);
                if ui.preview.get_untracked().is_some() {
                    ui.send(Command::CancelPreview);
                }
            }
            Action::Label(position) => {
                match ui.case.with_value(|case| case.labels.get(position - 1).map(|l| l.value)) {
                    Some(value) => ui.label.set(value),
                    None => return,
                }
            }
            Action::SmallerBrush => ui.radius_mm.update(|r| *r = (*r - 0.5).max(0.5)),
            Action::LargerBrush => ui.radius_mm.update(|r| *r = (*r + 0.5).min(30.0)),
            Action::NextSlice => step_slice(ui, 1),
            Action::PreviousSlice => step_slice(ui, -1),
            Action::Plane(plane) => ui.plane.set(plane),
            Action::ToggleLayout => toggle_layout(ui),
            Action::ToggleOutline => ui.outline.update(|o| *o = !*o),
            Action::ResetView => ui.send(Command::ResetView),
            Action::Undo => ui.send(Command::Undo),
            Action::Redo => ui.send(Command::Redo),
            Action::Save => ui.send(Command::Save),
            Action::ToggleHelp => ui.help.update(|h| *h = !*h),
        }
        event.prevent_default();
    });
    on_cleanup(move || handle.remove());
}
