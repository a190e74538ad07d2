//! One view of the volume: a canvas on the page with its own zoom and pan, and the slice
//! rendered at one pixel per voxel onto a small canvas of its own, then shown scaled. Kept
//! apart from the rest of the viewer so that several views (one per plane) can sit side by side.

use wasm_bindgen::JsCast;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, PointerEvent};

use crate::geometry::SliceGeometry;

/// One canvas on the page showing a slice, with its own zoom and pan.
pub(super) struct View {
    pub(super) canvas: HtmlCanvasElement,
    pub(super) context: CanvasRenderingContext2d,
    /// The slice at one pixel per voxel; drawn scaled onto `canvas`.
    pub(super) slice_canvas: HtmlCanvasElement,
    pub(super) slice_context: CanvasRenderingContext2d,
    /// The slice's RGBA pixels, reused from draw to draw.
    pub(super) pixels: Vec<u8>,
    pub(super) zoom: f64,
    pub(super) pan: (f64, f64),
}

fn context_2d(canvas: &HtmlCanvasElement) -> CanvasRenderingContext2d {
    canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into().ok())
        .expect("every browser we support has a 2-D canvas")
}

impl View {
    /// A view on `canvas`, fitting the slice, not panned.
    pub(super) fn new(canvas: HtmlCanvasElement) -> Result<View, String> {
        let slice_canvas: HtmlCanvasElement =
            leptos::prelude::document().create_element("canvas").map_err(|e| format!("{e:?}"))?.unchecked_into();
        Ok(View {
            context: context_2d(&canvas),
            canvas,
            slice_context: context_2d(&slice_canvas),
            slice_canvas,
            pixels: Vec::new(),
            zoom: 1.0,
            pan: (0.0, 0.0),
        })
    }

    /// Top-left corner and size of one voxel on the canvas.
    pub(super) fn placement(&self, geometry: &SliceGeometry) -> (f64, f64, f64, f64) {
        let (cw, ch) = (self.canvas.width() as f64, self.canvas.height() as f64);
        let (w, h) = (geometry.width as f64, geometry.height as f64);
        let fit = (cw / w).min(ch / (h * geometry.pixel_aspect));
        let sx = fit * self.zoom;
        let sy = sx * geometry.pixel_aspect;
        ((cw - w * sx) / 2.0 + self.pan.0, (ch - h * sy) / 2.0 + self.pan.1, sx, sy)
    }

    /// Canvas pixel under a pointer event (the canvas may be scaled by CSS).
    pub(super) fn canvas_point(&self, event: &PointerEvent) -> (f64, f64) {
        let rect = self.canvas.get_bounding_client_rect();
        let scale = self.canvas.width() as f64 / rect.width().max(1.0);
        ((event.client_x() as f64 - rect.left()) * scale, (event.client_y() as f64 - rect.top()) * scale)
    }

    /// Slice (column, row) under a canvas point, fractional.
    pub(super) fn slice_point(&self, geometry: &SliceGeometry, (x, y): (f64, f64)) -> (f64, f64) {
        let (ox, oy, sx, sy) = self.placement(geometry);
        ((x - ox) / sx, (y - oy) / sy)
    }
}
