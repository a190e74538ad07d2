//! The canvas viewer and mask editor in the browser: downloads the case's volumes from
//! object storage, draws the slice, turns pointer and key events into edits, and saves.

use std::cell::RefCell;
use std::rc::Rc;

use base64::Engine;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{Clamped, JsCast, JsValue};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, ImageData, KeyboardEvent, PointerEvent, WheelEvent};

use super::{kept, net};
use crate::edits::MaskEdits;
use crate::pages::case_page::get_case_artifacts;
use crate::pages::format_time;
use crate::pages::viewer_panel::{Command, KeptEdits, SaveStatus, Tool, ViewerUi};
use crate::types::{ArtifactKind, CaseArtifacts, SaveLabelRequest};
use crate::viewer::orientation::{Plane, SliceGeometry};
use crate::viewer::render::{render_slice, Overlay, Window};
use crate::viewer::tools::{flood_fill, Paint, Stroke};
use crate::viewer::Editor;

type Shared = Rc<RefCell<Viewer>>;

/// What a pointer drag is doing.
enum Drag {
    /// A stroke on one slice of one plane; it ends if either changes mid-drag.
    Paint(Stroke, Plane),
    Window { last: (f64, f64) },
    Pan { last: (f64, f64) },
}

struct Viewer {
    ui: ViewerUi,
    case_id: String,
    editor: Editor,
    canvas: HtmlCanvasElement,
    context: CanvasRenderingContext2d,
    /// One slice at one pixel per voxel; drawn scaled onto `canvas`.
    slice_canvas: HtmlCanvasElement,
    slice_context: CanvasRenderingContext2d,
    pixels: Vec<u8>,
    /// Label colours; opacity and outline follow the controls at each draw.
    overlay: Overlay,
    /// Last slice shown in each plane, so switching planes and back returns to it.
    slice_of: [usize; 3],
    zoom: f64,
    pan: (f64, f64),
    drag: Option<Drag>,
    /// Brush outline position in canvas pixels.
    pointer: Option<(f64, f64)>,
    /// Voxels of an older version being looked at (read only), instead of the edited mask.
    viewing: Option<Vec<u8>>,
    saving: bool,
    keep_scheduled: bool,
    drawn_once: bool,
}

fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}

fn context_2d(canvas: &HtmlCanvasElement) -> CanvasRenderingContext2d {
    canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into().ok())
        .expect("every browser we support has a 2-D canvas")
}

/// Timings for benchmarks and tests, in `window.__seglab`: milestones of opening a case
/// (`openStartMs`, `downloadedMs`, `decodedMs`, `firstSliceMs`, from navigation start) and
/// the duration of every repaint (`renderMs`).
fn timings() -> Option<JsValue> {
    let window = web_sys::window()?;
    let key = JsValue::from_str("__seglab");
    Some(js_sys::Reflect::get(&window, &key).ok().filter(|v| v.is_object()).unwrap_or_else(|| {
        let stats = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&stats, &"renderMs".into(), &js_sys::Array::new());
        let _ = js_sys::Reflect::set(&window, &key, &stats);
        stats.into()
    }))
}

fn mark(milestone: &str) {
    if let Some(stats) = timings() {
        let _ = js_sys::Reflect::set(&stats, &milestone.into(), &now_ms().into());
    }
}

fn record_render(render_ms: f64) {
    if let Some(times) = timings().and_then(|stats| js_sys::Reflect::get(&stats, &"renderMs".into()).ok()) {
        times.unchecked_into::<js_sys::Array>().push(&render_ms.into());
    }
}

/// False once the person has left the case page: its signals are gone, and reading one would
/// stop the whole WASM module. Checked after every await.
fn alive(ui: ViewerUi) -> bool {
    ui.ready.try_get_untracked().is_some()
}

/// Starts the viewer on `canvas` for the case in `ui`; effects and listeners live as long as `owner`.
pub fn start(ui: ViewerUi, canvas: HtmlCanvasElement, owner: Owner) {
    spawn_local(async move {
        match open(ui, canvas).await {
            Ok(shared) if alive(ui) => owner.with(|| attach(shared)),
            Ok(_) => {}
            Err(message) => {
                let _ = ui.failure.try_set(Some(message));
            }
        }
    });
}

async fn open(ui: ViewerUi, canvas: HtmlCanvasElement) -> Result<Shared, String> {
    mark("openStartMs");
    let case = ui.case.get_value();
    let artifact = |kind| case.artifacts.iter().find(|a| a.kind == kind).ok_or("the case lacks an image or mask");
    let (image, mask) = (artifact(ArtifactKind::Image)?, artifact(ArtifactKind::Mask)?);
    let total = (image.size_bytes + mask.size_bytes) as f64;
    // Both at once: the mask's request does not wait behind the image's transfer.
    let received = std::cell::Cell::new([0.0; 2]);
    let progress = |file: usize, bytes: f64| {
        let mut both = received.get();
        both[file] = bytes;
        received.set(both);
        let _ = ui.progress.try_set((both[0] + both[1], total));
    };
    let (image_file, mask_file) = futures::future::join(
        net::download(&image.url, |bytes, _| progress(0, bytes)),
        net::download(&mask.url, |bytes, _| progress(1, bytes)),
    )
    .await;
    let (image_file, mask_file) = (image_file?, mask_file?);
    if !alive(ui) {
        return Err("the case page was left".into());
    }
    mark("downloadedMs");
    let editor = Editor::open(&image_file, &mask_file, case.current_mask_ref.clone()).map_err(|e| e.to_string())?;
    mark("decodedMs");
    drop((image_file, mask_file));

    let document = document();
    let slice_canvas: HtmlCanvasElement = document.create_element("canvas").map_err(|e| format!("{e:?}"))?.unchecked_into();
    let (low, high) = editor.robust_range;
    ui.window.set(Window::spanning(low, high));
    ui.threshold.set((low + (high - low) * 0.5, high));
    let mut viewer = Viewer {
        ui,
        case_id: case.case_id.clone(),
        context: context_2d(&canvas),
        canvas,
        slice_context: context_2d(&slice_canvas),
        slice_canvas,
        pixels: Vec::new(),
        overlay: Overlay::new(case.labels.iter().map(|l| (l.value, l.color.as_str())), 0.5, false),
        slice_of: editor.dims.map(|d| d / 2),
        editor,
        zoom: 1.0,
        pan: (0.0, 0.0),
        drag: None,
        pointer: None,
        viewing: None,
        saving: false,
        keep_scheduled: false,
        drawn_once: false,
    };
    viewer.show_plane(Plane::Axial);
    viewer.draw();
    ui.ready.set(true);
    Ok(Rc::new(RefCell::new(viewer)))
}

impl Viewer {
    fn geometry(&self) -> SliceGeometry {
        let editor = &self.editor;
        editor.orientation.slice_geometry(self.ui.plane.get_untracked(), editor.dims, editor.spacing)
    }

    fn show_plane(&mut self, plane: Plane) {
        let geometry = self.editor.orientation.slice_geometry(plane, self.editor.dims, self.editor.spacing);
        let slice = self.slice_of[geometry.through].min(geometry.depth() - 1);
        self.ui.slice_count.set(geometry.depth());
        self.ui.slice.set(slice);
    }

    fn slice(&self, geometry: &SliceGeometry) -> usize {
        self.ui.slice.get_untracked().min(geometry.depth() - 1)
    }

    /// Top-left corner and size of one voxel on the canvas.
    fn placement(&self, geometry: &SliceGeometry) -> (f64, f64, f64, f64) {
        let (cw, ch) = (self.canvas.width() as f64, self.canvas.height() as f64);
        let (w, h) = (geometry.width as f64, geometry.height as f64);
        let fit = (cw / w).min(ch / (h * geometry.pixel_aspect));
        let sx = fit * self.zoom;
        let sy = sx * geometry.pixel_aspect;
        ((cw - w * sx) / 2.0 + self.pan.0, (ch - h * sy) / 2.0 + self.pan.1, sx, sy)
    }

    /// Canvas pixel under a pointer event (the canvas may be scaled by CSS).
    fn canvas_point(&self, event: &PointerEvent) -> (f64, f64) {
        let rect = self.canvas.get_bounding_client_rect();
        let scale = self.canvas.width() as f64 / rect.width().max(1.0);
        ((event.client_x() as f64 - rect.left()) * scale, (event.client_y() as f64 - rect.top()) * scale)
    }

    /// Slice (column, row) under a canvas point, fractional.
    fn slice_point(&self, geometry: &SliceGeometry, (x, y): (f64, f64)) -> (f64, f64) {
        let (ox, oy, sx, sy) = self.placement(geometry);
        ((x - ox) / sx, (y - oy) / sy)
    }

    fn draw(&mut self) {
        if !alive(self.ui) {
            return;
        }
        let started = now_ms();
        let geometry = self.geometry();
        let slice = self.slice(&geometry);
        self.slice_of[geometry.through] = slice;
        let (w, h) = (geometry.width, geometry.height);
        self.pixels.resize(w * h * 4, 0);
        let ui = self.ui;
        self.overlay.opacity = ui.opacity.get_untracked();
        self.overlay.outline = ui.outline.get_untracked();
        let overlay = &self.overlay;
        let mask = self.viewing.as_deref().unwrap_or(&self.editor.mask);
        render_slice(&self.editor.image, mask, &geometry, slice, ui.window.get_untracked(), overlay, &mut self.pixels);
        if self.slice_canvas.width() != w as u32 || self.slice_canvas.height() != h as u32 {
            self.slice_canvas.set_width(w as u32);
            self.slice_canvas.set_height(h as u32);
        }
        if let Ok(image) = ImageData::new_with_u8_clamped_array_and_sh(Clamped(&self.pixels), w as u32, h as u32) {
            let _ = self.slice_context.put_image_data(&image, 0.0, 0.0);
        }
        self.present();
        if !self.drawn_once {
            self.drawn_once = true;
            mark("firstSliceMs");
        }
        record_render(now_ms() - started);
    }

    /// Shows the rendered slice at the current zoom and pan, with the annotations. Enough by
    /// itself when only the view or the brush outline moved: the slice's pixels stay as drawn.
    fn present(&self) {
        if !alive(self.ui) {
            return;
        }
        let geometry = self.geometry();
        let context = &self.context;
        let (cw, ch) = (self.canvas.width() as f64, self.canvas.height() as f64);
        context.set_fill_style_str("#000");
        context.fill_rect(0.0, 0.0, cw, ch);
        context.set_image_smoothing_enabled(false);
        let (ox, oy, sx, sy) = self.placement(&geometry);
        let (w, h) = (geometry.width as f64, geometry.height as f64);
        let _ = context.draw_image_with_html_canvas_element_and_dw_and_dh(&self.slice_canvas, ox, oy, w * sx, h * sy);
        self.draw_annotations(sx, sy);
    }

    /// Orientation letters at the edges and the brush outline.
    fn draw_annotations(&self, sx: f64, sy: f64) {
        let context = &self.context;
        let (cw, ch) = (self.canvas.width() as f64, self.canvas.height() as f64);
        let [left, right, top, bottom] = match self.ui.plane.get_untracked() {
            Plane::Axial => ["R", "L", "A", "P"],
            Plane::Coronal => ["R", "L", "S", "I"],
            Plane::Sagittal => ["A", "P", "S", "I"],
        };
        context.set_fill_style_str("#fbbf24");
        context.set_font("bold 14px sans-serif");
        let _ = context.fill_text(left, 6.0, ch / 2.0);
        let _ = context.fill_text(right, cw - 16.0, ch / 2.0);
        let _ = context.fill_text(top, cw / 2.0, 18.0);
        let _ = context.fill_text(bottom, cw / 2.0, ch - 8.0);
        if let (Some((x, y)), true) = (self.pointer, self.ui.tool.get_untracked() != Tool::Fill) {
            let radius_mm = self.ui.radius_mm.get_untracked() as f64;
            let geometry = self.geometry();
            context.begin_path();
            let _ = context.ellipse(
                x,
                y,
                radius_mm / geometry.spacing_across as f64 * sx,
                radius_mm / geometry.spacing_down as f64 * sy,
                0.0,
                0.0,
                std::f64::consts::TAU,
            );
            context.set_stroke_style_str("rgba(255,255,255,0.8)");
            context.stroke();
        }
    }

    fn paint(&self) -> Paint {
        let ui = self.ui;
        let tool = ui.tool.get_untracked();
        Paint {
            value: if tool == Tool::Eraser { 0 } else { ui.label.get_untracked() },
            radius_mm: ui.radius_mm.get_untracked(),
            intensity_range: (tool == Tool::ThresholdBrush).then(|| ui.threshold.get_untracked()),
        }
    }

    fn update_cursor(&self, point: (f64, f64)) {
        let geometry = self.geometry();
        let (col, row) = self.slice_point(&geometry, point);
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

    fn after_edit(&self) {
        self.ui.can_undo.set(self.editor.history.can_undo());
        self.ui.can_redo.set(self.editor.history.can_redo());
        if matches!(self.ui.status.get_untracked(), SaveStatus::Saved { .. }) {
            self.ui.status.set(SaveStatus::Idle);
        }
    }

    fn kept_record(&self) -> (MaskEdits, kept::KeptRecord) {
        let edits = self.editor.unsaved_edits();
        let record = kept::KeptRecord {
            base_mask_ref: self.editor.base_ref.clone(),
            edits: base64::engine::general_purpose::STANDARD.encode(edits.encode()),
            voxels: edits.voxel_count(),
            saved_at_ms: js_sys::Date::now() as i64,
        };
        (edits, record)
    }
}

/// Keeps the unsaved edits in IndexedDB shortly after the latest change (one write per burst).
fn schedule_keep(shared: &Shared) {
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

async fn keep_now(shared: &Shared) {
    let (case_id, record, ui) = {
        let mut viewer = shared.borrow_mut();
        viewer.keep_scheduled = false;
        let (_, record) = viewer.kept_record();
        (viewer.case_id.clone(), record, viewer.ui)
    };
    let _ = ui.unsaved.try_set(record.voxels);
    let result = if record.voxels == 0 { kept::forget(&case_id).await } else { kept::save(&case_id, &record).await };
    if let Err(message) = result {
        let _ = ui.status.try_set(SaveStatus::Failed(format!("could not keep edits in this browser ({message})")));
    }
}

fn attach(shared: Shared) {
    let (ui, canvas) = {
        let viewer = shared.borrow();
        (viewer.ui, viewer.canvas.clone())
    };
    // Redraw whenever a display setting changes.
    let redraw = shared.clone();
    Effect::new(move |_| {
        ui.slice.track();
        ui.window.track();
        ui.opacity.track();
        ui.outline.track();
        if let Ok(mut viewer) = redraw.try_borrow_mut() {
            viewer.draw();
        }
    });
    let planes = shared.clone();
    Effect::new(move |previous: Option<Plane>| {
        let plane = ui.plane.get();
        if previous.is_some_and(|p| p != plane) {
            let mut viewer = planes.borrow_mut();
            viewer.pan = (0.0, 0.0);
            viewer.show_plane(plane);
            viewer.draw();
        }
        plane
    });
    let commands = shared.clone();
    Effect::new(move |_| {
        if let Some(command) = ui.command.get() {
            run_command(commands.clone(), command);
        }
    });
    listen_pointer(&shared, &canvas);
    listen_keys(&shared);
    // Leaving with unsaved edits asks first.
    let leaving = shared.clone();
    let handle = window_event_listener(leptos::ev::beforeunload, move |event| {
        let unsaved = leaving.try_borrow().map(|v| v.editor.unsaved_edits().voxel_count() > 0).unwrap_or(true);
        if unsaved {
            event.prevent_default();
            event.set_return_value("You have unsaved edits.");
        }
    });
    on_cleanup(move || handle.remove());
    // Offer back edits kept from an earlier visit.
    spawn_local(async move {
        let (case_id, base_ref) = {
            let viewer = shared.borrow();
            (viewer.case_id.clone(), viewer.editor.base_ref.clone())
        };
        if let Ok(Some(record)) = kept::load(&case_id).await {
            if record.voxels > 0 {
                let _ = ui.kept.try_set(Some(KeptEdits {
                    voxels: record.voxels,
                    saved_at: format_time(record.saved_at_ms),
                    on_older_version: record.base_mask_ref != base_ref,
                }));
            }
        }
    });
}

fn on_canvas<E: wasm_bindgen::convert::FromWasmAbi + 'static>(canvas: &HtmlCanvasElement, event: &str, handler: impl FnMut(E) + 'static) {
    let closure = Closure::<dyn FnMut(E)>::new(handler);
    let _ = canvas.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref());
    // The canvas owns its listeners for the page's life.
    closure.forget();
}

fn listen_pointer(shared: &Shared, canvas: &HtmlCanvasElement) {
    let down = shared.clone();
    on_canvas(canvas, "pointerdown", move |event: PointerEvent| {
        let mut viewer = down.borrow_mut();
        let point = viewer.canvas_point(&event);
        let _ = viewer.canvas.set_pointer_capture(event.pointer_id());
        let _ = viewer.canvas.focus();
        viewer.drag = match (event.button(), event.shift_key()) {
            (2, _) => Some(Drag::Window { last: point }),
            (1, _) | (0, true) => Some(Drag::Pan { last: point }),
            (0, false) if viewer.viewing.is_none() => {
                let geometry = viewer.geometry();
                let slice = viewer.slice(&geometry);
                let (col, row) = viewer.slice_point(&geometry, point);
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
        let point = viewer.canvas_point(&event);
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
                let (col, row) = viewer.slice_point(&geometry, point);
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
                viewer.pan.0 += point.0 - last.0;
                viewer.pan.1 += point.1 - last.1;
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
            viewer.zoom = (viewer.zoom * factor).clamp(0.25, 32.0);
            viewer.present();
        } else {
            let step = if event.delta_y() < 0.0 { 1 } else { -1 };
            let ui = viewer.ui;
            drop(viewer);
            step_slice(ui, step);
        }
    });
}

fn ui_of(shared: &Shared) -> ViewerUi {
    shared.borrow().ui
}

fn step_slice(ui: ViewerUi, step: isize) {
    let count = ui.slice_count.get_untracked() as isize;
    let next = (ui.slice.get_untracked() as isize + step).clamp(0, count - 1);
    ui.slice.set(next as usize);
}

fn listen_keys(shared: &Shared) {
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

fn run_command(shared: Shared, command: Command) {
    let ui = ui_of(&shared);
    match command {
        Command::Save => spawn_local(save(shared)),
        Command::Undo | Command::Redo => {
            let changed = {
                let mut viewer = shared.borrow_mut();
                if viewer.viewing.is_some() {
                    return;
                }
                let editor = &mut viewer.editor;
                let changed = if command == Command::Undo { editor.history.undo(&mut editor.mask) } else { editor.history.redo(&mut editor.mask) };
                viewer.draw();
                changed
            };
            if changed {
                schedule_keep(&shared);
            }
        }
        Command::ResetView => {
            let mut viewer = shared.borrow_mut();
            viewer.zoom = 1.0;
            viewer.pan = (0.0, 0.0);
            let (low, high) = viewer.editor.robust_range;
            drop(viewer);
            ui.window.set(Window::spanning(low, high));
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
            let result = async {
                let case_id = shared.borrow().case_id.clone();
                let fresh = get_case_artifacts(case_id).await.map_err(|e| e.to_string())?;
                let url = fresh.history.iter().find(|v| v.label_id == version.label_id).map(|v| v.url.clone()).ok_or("that version is gone")?;
                let file = net::download(&url, |_, _| {}).await?;
                let mut viewer = shared.borrow_mut();
                let labels = Editor::labels_of(&file, viewer.editor.mask.len()).map_err(|e| e.to_string())?;
                viewer.viewing = Some(labels);
                viewer.draw();
                Ok::<_, String>(())
            };
            match result.await {
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
            case_id: viewer.case_id.clone(),
            base_mask_ref: viewer.editor.base_ref.clone(),
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
            net::SaveAnswer::Refused { status: 401, .. } => {
                break Err("your session has expired. Log in again (in a new tab) and press Save; your edits are kept in this browser".into())
            }
            net::SaveAnswer::Refused { message, .. } => break Err(message),
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
            if let Ok(fresh) = get_case_artifacts(case_id).await {
                let _ = ui.history.try_set(fresh.history);
            }
            let _ = ui.status.try_set(SaveStatus::Saved {
                version: ui.history.try_with_untracked(Vec::len).unwrap_or(0),
                voxels: saved.voxels_changed,
            });
        }
        Err(message) => {
            let _ = ui.status.try_set(SaveStatus::Failed(message));
        }
    }
}

/// After a conflict: moves onto the newest version and re-applies this person's edits.
async fn load_newest(shared: &Shared) -> Result<(), String> {
    let case_id = shared.borrow().case_id.clone();
    let fresh: CaseArtifacts = get_case_artifacts(case_id).await.map_err(|e| e.to_string())?;
    let mask = fresh.artifacts.iter().find(|a| a.kind == ArtifactKind::Mask).ok_or("the case has no mask")?;
    let file = net::download(&mask.url, |_, _| {}).await?;
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
        edits.apply(&mut viewer.editor.mask);
        viewer.editor.history.clear();
        viewer.draw();
        viewer.ui
    };
    let _ = ui.kept.try_set(None);
    schedule_keep(shared);
    Ok(())
}
