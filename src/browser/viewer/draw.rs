//! Drawing: the slice rendered at one pixel per voxel onto the view's small canvas, then
//! shown on the page's canvas at the view's zoom and pan, with orientation letters and the
//! brush outline. Moving the view or the outline only presents again; it does not re-render.

use leptos::prelude::*;
use wasm_bindgen::Clamped;
use web_sys::ImageData;

use super::state::{alive, Viewer};
use super::timing::{mark, now_ms, record_render, Milestone};
use crate::viewer::orientation::Plane;
use crate::viewer::render::render_slice;
use crate::viewer::ui::Tool;

impl Viewer {
    /// Renders the current slice and presents it.
    pub(super) fn draw(&mut self) {
        if !alive(self.ui) {
            return;
        }
        let started = now_ms();
        let geometry = self.geometry();
        let slice = self.slice(&geometry);
        self.slice_of[geometry.through] = slice;
        let (w, h) = (geometry.width, geometry.height);
        let view = &mut self.view;
        view.pixels.resize(w * h * 4, 0);
        let ui = self.ui;
        self.overlay.opacity = ui.opacity.get_untracked();
        self.overlay.outline = ui.outline.get_untracked();
        let overlay = &self.overlay;
        let mask = self.viewing.as_deref().unwrap_or(&self.editor.mask);
        render_slice(&self.editor.image, mask, &geometry, slice, ui.window.get_untracked(), overlay, &mut view.pixels);
        if view.slice_canvas.width() != w as u32 || view.slice_canvas.height() != h as u32 {
            view.slice_canvas.set_width(w as u32);
            view.slice_canvas.set_height(h as u32);
        }
        if let Ok(image) = ImageData::new_with_u8_clamped_array_and_sh(Clamped(&view.pixels), w as u32, h as u32) {
            let _ = view.slice_context.put_image_data(&image, 0.0, 0.0);
        }
        self.present();
        if !self.drawn_once {
            self.drawn_once = true;
            mark(Milestone::FirstSlice);
        }
        record_render(now_ms() - started);
    }

    /// Shows the rendered slice at the current zoom and pan, with the annotations. Enough by
    /// itself when only the view or the brush outline moved: the slice's pixels stay as drawn.
    pub(super) fn present(&self) {
        if !alive(self.ui) {
            return;
        }
        let geometry = self.geometry();
        let view = &self.view;
        let context = &view.context;
        let (cw, ch) = (view.canvas.width() as f64, view.canvas.height() as f64);
        context.set_fill_style_str("#000");
        context.fill_rect(0.0, 0.0, cw, ch);
        context.set_image_smoothing_enabled(false);
        let (ox, oy, sx, sy) = view.placement(&geometry);
        let (w, h) = (geometry.width as f64, geometry.height as f64);
        let _ = context.draw_image_with_html_canvas_element_and_dw_and_dh(&view.slice_canvas, ox, oy, w * sx, h * sy);
        self.draw_annotations(sx, sy);
    }

    /// Orientation letters at the edges and the brush outline.
    fn draw_annotations(&self, sx: f64, sy: f64) {
        let context = &self.view.context;
        let (cw, ch) = (self.view.canvas.width() as f64, self.view.canvas.height() as f64);
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
}
