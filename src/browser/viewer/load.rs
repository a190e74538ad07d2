//! Opening a case: the image and the mask downloaded at once from object storage (with
//! progress shown), decoded into the editor, and the first slices drawn, the crosshair at the
//! volume's centre.

use leptos::prelude::*;
use web_sys::HtmlCanvasElement;

use super::state::{alive, Viewer};
use super::timing::{mark, Milestone};
use super::view::View;
use crate::api::ArtifactKind;
use crate::browser::net;
use crate::viewer::orientation::Plane;
use crate::viewer::render::{Overlay, Window};
use crate::viewer::ui::ViewerUi;
use crate::viewer::Editor;

/// The viewer of the case in `ui` on the three `canvases`, its crosshair at the centre.
pub(super) async fn open(ui: ViewerUi, canvases: [HtmlCanvasElement; 3]) -> Result<Viewer, String> {
    mark(Milestone::OpenStart);
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
    mark(Milestone::Downloaded);
    let editor = Editor::open(&image_file, &mask_file, case.current_mask_ref.clone()).map_err(|e| e.to_string())?;
    mark(Milestone::Decoded);
    drop((image_file, mask_file));

    let [axial, coronal, sagittal] = canvases;
    let views = [View::new(axial)?, View::new(coronal)?, View::new(sagittal)?];
    let (low, high) = editor.robust_range;
    ui.window.set(Window::spanning(low, high));
    ui.threshold.set((low + (high - low) * 0.5, high));
    ui.voxel_ml.set(editor.grid().voxel_volume_mm3() / 1000.0);
    ui.counts.set(editor.counts.to_vec());
    let mut viewer = Viewer {
        ui,
        case_id: case.case_id.clone(),
        views,
        overlay: Overlay::new(case.labels.iter().map(|l| (l.value, l.color.as_str())), 0.5, false),
        point: editor.dims.map(|d| d / 2),
        editor,
        drag: None,
        pointer: None,
        grown_with: None,
        viewing: None,
        reference: None,
        predictions: vec![None; case.predictions.len()],
        saving: false,
        keep_scheduled: false,
        drawn_once: false,
    };
    viewer.activate(Plane::Axial);
    viewer.move_point(viewer.point);
    viewer.draw();
    ui.ready.set(true);
    Ok(viewer)
}
