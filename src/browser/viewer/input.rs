//! Pointer, wheel and key input on the viewer: painting and filling, window/level and pan
//! drags, zoom, slice steps, the voxel readout under the pointer, and the keyboard shortcuts.

use leptos::prelude::*;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{HtmlCanvasElement, KeyboardEvent, PointerEvent, WheelEvent};

use super::keep::schedule_keep;
use super::state::{ui_of, Drag, Shared, Viewer};
use crate::viewer::orientation::Plane;
use crate::viewer::tools::{flood_fill, Paint, Stroke};
use crate::viewer::ui::{Command, Tool, ViewerUi};

impl Viewer {
    /// What the left button paints with, from the controls.
    fn paint(&self) -> Paint {
        let ui = self.ui;
        let tool = ui.tool.get_untracked();
        Paint {
            value: if tool == Tool::Eraser { 0 } else { ui.label.get_untracked() },
            radius_mm: ui.radius_mm.get_untracked(),
            intensity_range: (tool == Tool::ThresholdBrush).then(|| ui.threshold.get_untracked()),
        }
    }

    /// Shows the voxel under the canvas point, its intensity and label.
    fn update_cursor(&self, point: (f64, f64)) {
        let geometry = self.geometry();
        let (col, row) = self.view.slice_point(&geometry, point);
        if col < 0.0 || row < 0.0 || col >= geometry.width as f64 || row >= geometry.height as f64 {
            self.ui.cursor.set(String::new());
            return;
        }
        let slice = self.slice(&geometry);
        let [i, j, k] = geometry.voxel(slice, col as usize, row as usize);
        let index = geometry.index(slice, col as usize, row as usize);
        let mask = self.viewing.as_deref().unwrap_or(&self.editor.mask);
        self.ui.cursor.set(format!("voxel ({i}, {j}, {k})  value {}  label {}", self.editor.image.get(index), mask[index]));
    }
}

fn on_canvas<E: wasm_bindgen::convert::FromWasmAbi + 'static>(canvas: &HtmlCanvasElement, event: &str, handler: impl FnMut(E) + 'static) {
    let closure = Closure::<dyn FnMut(E)>::new(handler);
    let _ = canvas.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref());
    // The canvas owns its listeners for the page's life.
    closure.forget();
}

pub(super) fn listen_pointer(shared: &Shared, canvas: &HtmlCanvasElement) {
    let down = shared.clone();
    on_canvas(canvas, "pointerdown", move |event: PointerEvent| {
        let mut viewer = down.borrow_mut();
        let point = viewer.view.canvas_point(&event);
        let _ = viewer.view.canvas.set_pointer_capture(event.pointer_id());
        let _ = viewer.view.canvas.focus();
        viewer.drag = match (event.button(), event.shift_key()) {
            (2, _) => Some(Drag::Window { last: point }),
            (1, _) | (0, true) => Some(Drag::Pan { last: point }),
            (0, false) if viewer.viewing.is_none() => {
                let geometry = viewer.geometry();
                let slice = viewer.slice(&geometry);
                let (col, row) = viewer.view.slice_point(&geometry, point);
                let paint = viewer.paint();
                if viewer.ui.tool.get_untracked() == Tool::Fill {
                    let inside = col >= 0.0 && row >= 0.0 && col < geometry.width as f64 && row < geometry.height as f64;
                    if inside {
                        let editor = &mut viewer.editor;
                        let delta = flood_fill(&geometry, &editor.image, &mut editor.mask, slice, (col as usize, row as usize), paint);
                        editor.record(delta);
                        viewer.draw();
                        drop(viewer);
                        schedule_keep(&down);
                    }
                    return;
                }
                let mut stroke = Stroke::begin(paint, slice);
                let editor = &mut viewer.editor;
                stroke.extend_to(&geometry, &editor.image, &mut editor.mask, col, row);
                viewer.draw();
                Some(Drag::Paint(stroke, viewer.ui.plane.get_untracked()))
            }
            _ => None,
        };
    });
    let moved = shared.clone();
    on_canvas(canvas, "pointermove", move |event: PointerEvent| {
        let mut viewer = moved.borrow_mut();
        let point = viewer.view.canvas_point(&event);
        viewer.pointer = Some(point);
        viewer.update_cursor(point);
        let geometry = viewer.geometry();
        match viewer.drag.take() {
            // The button came up where no pointerup reached us (another window, a dialog), or
            // the plane or slice changed under the stroke (keys, wheel): the stroke ends.
            Some(Drag::Paint(stroke, plane))
                if event.buttons() & 1 == 0
                    || plane != viewer.ui.plane.get_untracked()
                    || stroke.slice() != viewer.slice(&geometry) =>
            {
                viewer.editor.record(stroke.finish());
                drop(viewer);
                schedule_keep(&moved);
            }
            Some(Drag::Paint(mut stroke, plane)) => {
                let (col, row) = viewer.view.slice_point(&geometry, point);
                let editor = &mut viewer.editor;
                stroke.extend_to(&geometry, &editor.image, &mut editor.mask, col, row);
                viewer.drag = Some(Drag::Paint(stroke, plane));
                viewer.draw();
            }
            Some(Drag::Window { last }) => {
                let (low, high) = viewer.editor.robust_range;
                let window = viewer.ui.window.get_untracked().dragged(point.0 - last.0, point.1 - last.1, high - low);
                viewer.drag = Some(Drag::Window { last: point });
                drop(viewer);
                ui_of(&moved).window.set(window);
            }
            Some(Drag::Pan { last }) => {
                viewer.view.pan.0 += point.0 - last.0;
                viewer.view.pan.1 += point.1 - last.1;
                viewer.drag = Some(Drag::Pan { last: point });
                viewer.present();
            }
            None => viewer.present(), // only the brush outline moved
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
    on_canvas(canvas, "pointerup", finish.clone());
    on_canvas(canvas, "pointercancel", finish);
    let left = shared.clone();
    on_canvas(canvas, "pointerleave", move |_: PointerEvent| {
        let mut viewer = left.borrow_mut();
        viewer.pointer = None;
        viewer.present();
    });
    let wheel = shared.clone();
    on_canvas(canvas, "wheel", move |event: WheelEvent| {
        event.prevent_default();
        let mut viewer = wheel.borrow_mut();
        if event.ctrl_key() {
            let factor = if event.delta_y() < 0.0 { 1.15 } else { 1.0 / 1.15 };
            viewer.view.zoom = (viewer.view.zoom * factor).clamp(0.25, 32.0);
            viewer.present();
        } else {
            let step = if event.delta_y() < 0.0 { 1 } else { -1 };
            let ui = viewer.ui;
            drop(viewer);
            step_slice(ui, step);
        }
    });
}

fn step_slice(ui: ViewerUi, step: isize) {
    let count = ui.slice_count.get_untracked() as isize;
    let next = (ui.slice.get_untracked() as isize + step).clamp(0, count - 1);
    ui.slice.set(next as usize);
}

pub(super) fn listen_keys(shared: &Shared) {
    let keys = shared.clone();
    let handle = window_event_listener(leptos::ev::keydown, move |event: KeyboardEvent| {
        // Keys typed into a text field or list belong to it; sliders and buttons do not take text.
        let typing = event.target().and_then(|t| t.dyn_into::<web_sys::Element>().ok()).is_some_and(|el| {
            match el.tag_name().as_str() {
                "INPUT" => !matches!(el.get_attribute("type").as_deref(), Some("range" | "checkbox" | "radio" | "button")),
                tag => matches!(tag, "SELECT" | "TEXTAREA"),
            }
        });
        if typing {
            return;
        }
        let ui = ui_of(&keys);
        let command = event.ctrl_key() || event.meta_key();
        let key = event.key();
        match (command, key.as_str()) {
            (true, "z") | (true, "Z") if event.shift_key() => ui.send(Command::Redo),
            (true, "z") => ui.send(Command::Undo),
            (true, "y") => ui.send(Command::Redo),
            (true, "s") => ui.send(Command::Save),
            (true, _) => return,
            (false, "b" | "B") => ui.tool.set(Tool::Brush),
            (false, "e" | "E") => ui.tool.set(Tool::Eraser),
            (false, "t" | "T") => ui.tool.set(Tool::ThresholdBrush),
            (false, "f" | "F") => ui.tool.set(Tool::Fill),
            (false, "a" | "A") => ui.plane.set(Plane::Axial),
            (false, "c" | "C") => ui.plane.set(Plane::Coronal),
            (false, "s" | "S") => ui.plane.set(Plane::Sagittal),
            (false, "o" | "O") => ui.outline.update(|o| *o = !*o),
            (false, "r" | "R") => ui.send(Command::ResetView),
            (false, "[") => ui.radius_mm.update(|r| *r = (*r - 0.5).max(0.5)),
            (false, "]") => ui.radius_mm.update(|r| *r = (*r + 0.5).min(30.0)),
            (false, "ArrowUp" | "PageUp") => step_slice(ui, 1),
            (false, "ArrowDown" | "PageDown") => step_slice(ui, -1),
            (false, "?") => ui.help.update(|h| *h = !*h),
            (false, "Escape") => ui.help.set(false),
            (false, digit) if digit.len() == 1 && digit.as_bytes()[0].is_ascii_digit() => {
                let position = (digit.as_bytes()[0] - b'0') as usize;
                match ui.case.with_value(|case| case.labels.get(position.wrapping_sub(1)).map(|l| l.value)) {
                    Some(value) => ui.label.set(value),
                    None => return,
                }
            }
            _ => return,
        }
        event.prevent_default();
    });
    on_cleanup(move || handle.remove());
}
