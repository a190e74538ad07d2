//! Drawing: each view's slice rendered at one pixel per voxel onto the view's small canvas,
//! then shown on its page canvas at the view's zoom and pan, with orientation letters, the
//! shared crosshair and the brush outline. Moving a view or the outline only presents again;
//! it does not re-render.

use leptos::prelude::*;
use wasm_bindgen::Clamped;
use web_sys::ImageData;

use super::state::{alive, Viewer};
use super::timing::{mark, now_ms, record_render, Milestone};
use crate::editor::render::{render_slice, Layers, OverlayLayer};
use crate::editor::ui::Layout;
use crate::geometry::{Plane, VoxelBox};

/// Crosshair colour: a cyan no label palette uses, so tests can find its lines.
pub(super) const CROSSHAIR_COLOR: &str = "#00d0ff";

impl Viewer {
    /// Renders and presents every view on screen.
    pub(super) fn draw(&mut self) {
        if !alive(self.ui) {
            return;
        }
        let started = now_ms();
        let ui = self.ui;
        self.overlay.opacity = ui.opacity.get_untracked();
        self.overlay.outline = ui.outline.get_untracked();
        self.overlay.hidden = [false; 256];
        ui.hidden.with_untracked(|hidden| hidden.iter().for_each(|&value| self.overlay.hidden[value as usize] = true));
        for plane in self.shown_planes() {
            self.render(plane, None);
            self.present(plane);
        }
        if !self.drawn_once {
            self.drawn_once = true;
            mark(Milestone::FirstSlice);
        }
        record_render(now_ms() - started);
    }

    /// Redraws only the pixels showing voxels of `area` (a brush stroke's newest stamps), in
    /// each view on screen whose slice crosses it: a stroke costs what it covers, not the slice.
    pub(super) fn draw_area(&mut self, area: VoxelBox) {
        if !alive(self.ui) {
            return;
        }
        let started = now_ms();
        for plane in self.shown_planes() {
            if self.render(plane, Some(area)) {
                self.present(plane);
            }
        }
        record_render(now_ms() - started);
    }

    /// Renders `plane`'s slice through the crosshair (all of it, or the part showing `area`)
    /// into its view's slice canvas; false when the slice does not cross `area`.
    fn render(&mut self, plane: Plane, area: Option<VoxelBox>) -> bool {
        let geometry = self.geometry_of(plane);
        let slice = self.slice_in(&geometry);
        let (w, h) = (geometry.width, geometry.height);
        let view = &mut self.views[plane.index()];
        let region = match area {
            // A view not drawn in full yet (or resized) is drawn in full.
            Some(area) if view.pixels.len() == w * h * 4 => match geometry.pixel_rect(slice, &area) {
                Some(region) => region,
                None => return false,
            },
            _ => geometry.whole(),
        };
        view.pixels.resize(w * h * 4, 0);
        let styles = self.ui.overlay_styles.get_untracked();
        let colors = self.ui.overlays.with_value(|overlays| overlays.iter().map(|o| o.color).collect::<Vec<_>>());
        let overlays: Vec<OverlayLayer> = styles
            .iter()
            .zip(&self.overlays)
            .zip(colors)
            .filter_map(|((style, labels), color)| {
                Some(OverlayLayer { labels: labels.as_deref()?, style: (*style)?, color })
            })
            .collect();
        let disagreement = self.ui.disagreement.get_untracked().and_then(|n| self.overlays.get(n)?.as_deref());
        let layers = Layers {
            mask: self.viewing.as_deref().unwrap_or(&self.editor.mask),
            preview: self.editor.preview.as_ref().filter(|_| self.viewing.is_none()),
            reference: self.reference.as_deref(),
            disagreement,
            contested: self.contested.as_deref().filter(|_| self.ui.readers_disagree.get_untracked()),
            overlays: &overlays,
        };
        let window = self.ui.window.get_untracked();
        render_slice(&self.editor.image, layers, &geometry, slice, window, &self.overlay, region, &mut view.pixels);
        if view.slice_canvas.width() != w as u32 || view.slice_canvas.height() != h as u32 {
            view.slice_canvas.set_width(w as u32);
            view.slice_canvas.set_height(h as u32);
        }
        // Only the region's pixels cross into JavaScript.
        let pixels = if region == geometry.whole() {
            std::borrow::Cow::Borrowed(&view.pixels[..])
        } else {
            let row_bytes = region.width * 4;
            let mut part = Vec::with_capacity(row_bytes * region.height);
            for row in region.row..region.row + region.height {
                let start = (row * w + region.col) * 4;
                part.extend_from_slice(&view.pixels[start..start + row_bytes]);
            }
            std::borrow::Cow::Owned(part)
        };
        if let Ok(image) =
            ImageData::new_with_u8_clamped_array_and_sh(Clamped(&pixels), region.width as u32, region.height as u32)
        {
            let _ = view.slice_context.put_image_data(&image, region.col as f64, region.row as f64);
        }
        true
    }

    /// Shows `plane`'s rendered slice at its view's zoom and pan, with the annotations. Enough
    /// by itself when only the view, the crosshair or the brush outline moved.
    pub(super) fn present(&self, plane: Plane) {
        if !alive(self.ui) {
            return;
        }
        let geometry = self.geometry_of(plane);
        let view = &self.views[plane.index()];
        let context = &view.context;
        let (cw, ch) = (view.canvas.width() as f64, view.canvas.height() as f64);
        context.set_fill_style_str("#000");
        context.fill_rect(0.0, 0.0, cw, ch);
        context.set_image_smoothing_enabled(false);
        let (ox, oy, sx, sy) = view.placement(&geometry);
        let (w, h) = (geometry.width as f64, geometry.height as f64);
        let _ = context.draw_image_with_html_canvas_element_and_dw_and_dh(&view.slice_canvas, ox, oy, w * sx, h * sy);
        self.draw_annotations(plane, (ox, oy, sx, sy));
    }

    /// Orientation letters at the edges, the crosshair (with three views) and the brush outline,
    /// sized for the canvas as shown: a view shrunk by the page keeps readable letters and lines.
    fn draw_annotations(&self, plane: Plane, (ox, oy, sx, sy): (f64, f64, f64, f64)) {
        let view = &self.views[plane.index()];
        let context = &view.context;
        let (cw, ch) = (view.canvas.width() as f64, view.canvas.height() as f64);
        let shown_width = view.canvas.client_width();
        let scale = if shown_width > 0 { (cw / shown_width as f64).max(1.0) } else { 1.0 };
        let [left, right, top, bottom] = match plane {
            Plane::Axial => ["R", "L", "A", "P"],
            Plane::Coronal => ["R", "L", "S", "I"],
            Plane::Sagittal => ["A", "P", "S", "I"],
        };
        let font = 13.0 * scale;
        context.set_fill_style_str("#fbbf24");
        context.set_font(&format!("bold {font:.0}px sans-serif"));
        let _ = context.fill_text(left, 0.4 * font, ch / 2.0);
        let _ = context.fill_text(right, cw - 1.1 * font, ch / 2.0);
        let _ = context.fill_text(top, cw / 2.0, 1.2 * font);
        let _ = context.fill_text(bottom, cw / 2.0, ch - 0.5 * font);
        let geometry = self.geometry_of(plane);
        if self.ui.layout.get_untracked() == Layout::Three {
            // Whole-pixel lines with a gap around the point, so the voxel itself stays visible.
            let (col, row) = geometry.pixel_of(self.point);
            let width = scale.round();
            let x = (ox + (col as f64 + 0.5) * sx - width / 2.0).round();
            let y = (oy + (row as f64 + 0.5) * sy - width / 2.0).round();
            let gap = 10.0 * scale;
            context.set_fill_style_str(CROSSHAIR_COLOR);
            context.fill_rect(x, 0.0, width, (y - gap).max(0.0));
            context.fill_rect(x, y + gap, width, (ch - y - gap).max(0.0));
            context.fill_rect(0.0, y, (x - gap).max(0.0), width);
            context.fill_rect(x + gap, y, (cw - x - gap).max(0.0), width);
        }
        let brush = self.ui.tool.get_untracked().is_brush();
        if let Some((x, y)) = self.pointer.filter(|(over, _)| brush && *over == plane).map(|(_, at)| at) {
            let radius_mm = self.ui.radius_mm.get_untracked() as f64;
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
