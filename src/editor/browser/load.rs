//! Opening a case: the image and the mask arrive in slabs (see `crate::slabs`), fetched by Web
//! Workers and inflated here one at a time, the slabs of the middle slice first. The views are drawn as soon
//! as that slice is in, then redrawn as the rest arrives; editing starts once all of it has.

use std::collections::HashMap;

use base64::Engine;
use leptos::prelude::*;
use web_sys::HtmlCanvasElement;

use super::slabs::SlabFetcher;
use super::state::{alive, Viewer};
use super::timing::{mark, now_ms, record_loading, timed, LoadingWork, Milestone};
use super::view::View;
use crate::api::ArtifactKind;
use crate::browser::net;
use crate::editor::render::{Overlay, Window};
use crate::editor::ui::ViewerUi;
use crate::editor::Editor;
use crate::geometry::Plane;
use crate::slabs::SlabGrid;

/// While slabs arrive, the views are redrawn at most this often.
const REDRAW_EVERY_MS: f64 = 200.0;
/// Slab requests in flight at once: as many as a browser opens connections to one host.
const SLABS_IN_FLIGHT: usize = 6;
const IMAGE: usize = 0;
const MASK: usize = 1;

/// The viewer of the case in `ui` on the three `canvases`, its crosshair at the centre, with
/// every slab of the image and mask in.
pub(super) async fn open(ui: ViewerUi, canvases: [HtmlCanvasElement; 3]) -> Result<Viewer, String> {
    mark(Milestone::OpenStart);
    let case = ui.case.get_value();
    let artifact = |kind| case.artifacts.iter().find(|a| a.kind == kind).ok_or("the case lacks an image or mask");
    let (image, mask) = (artifact(ArtifactKind::Image)?, artifact(ArtifactKind::Mask)?);
    let volumes = [&image.slabs, &mask.slabs];
    let voxel_bytes = image.voxel_type.bytes();
    let grids = [
        SlabGrid { dims: image.dims, voxel_bytes, depth: volumes[IMAGE].depth },
        SlabGrid { dims: image.dims, voxel_bytes: 1, depth: volumes[MASK].depth },
    ];
    let listed_well = |v: usize| {
        volumes[v].depth > 0
            && volumes[v].slabs.len() == grids[v].count()
            && volumes[v].slabs.iter().all(|&stored| (stored as usize) < volumes[v].urls.len())
    };
    if mask.dims != image.dims || !listed_well(IMAGE) || !listed_well(MASK) {
        return Err("the case's slabs do not match its volumes".into());
    }
    let dims = image.dims;
    // A DICOM series' own WindowCenter/WindowWidth, as the scanner or radiologist set it.
    let series_window = case
        .series
        .as_ref()
        .and_then(|series| series.window)
        .map(|[center, width]| Window { center: center as f32, width: width as f32 });

    // The middle slice's slabs first, then the mask's (small), then the image's outwards.
    let middle = dims[2] as usize / 2;
    let mut order: Vec<(usize, usize)> =
        vec![(IMAGE, grids[IMAGE].slab_of_slice(middle)), (MASK, grids[MASK].slab_of_slice(middle))];
    for volume in [MASK, IMAGE] {
        let first = grids[volume].slab_of_slice(middle);
        let mut rest: Vec<usize> = (0..grids[volume].count()).filter(|&i| i != first).collect();
        rest.sort_by_key(|&i| i.abs_diff(first));
        order.extend(rest.into_iter().map(|i| (volume, i)));
    }
    // A stored slab listed at several places (the zeros of an empty mask) is fetched once. A
    // few requests are in flight at a time, so the first ones do not share the network and the
    // workers with all the others, and only a few slabs wait in memory.
    let mut places: HashMap<(usize, u32), Vec<usize>> = HashMap::new();
    let mut requests = Vec::new();
    for &(volume, index) in &order {
        let stored = volumes[volume].slabs[index];
        let at = places.entry((volume, stored)).or_default();
        if at.is_empty() {
            requests.push((volume, index, volumes[volume].urls[stored as usize].as_str()));
        }
        at.push(index);
    }
    // The middle slice's slabs come straight to the page, with no worker to wait for; the
    // workers start meanwhile and fetch the rest once those are in.
    let mut pending = requests.into_iter();
    let first: Vec<_> =
        pending.by_ref().take(2).map(|(volume, index, url)| (volume, index, net::get_now(url))).collect();
    let mut fetcher = SlabFetcher::start()?;

    // The editor's volumes are made while the first slabs travel.
    let header = |index: usize| {
        base64::engine::general_purpose::STANDARD
            .decode(&volumes[index].header)
            .map_err(|e| format!("a volume header is unreadable: {e}"))
    };
    let editor = Editor::awaiting_slabs(&header(IMAGE)?, &header(MASK)?, case.current_mask_ref.clone())
        .map_err(|e| e.to_string())?;
    if editor.dims != dims.map(|d| d as usize) || editor.image.voxel_bytes() != voxel_bytes as usize {
        return Err("the case's volumes do not match their headers".into());
    }

    let total = (grids[IMAGE].total_bytes() + grids[MASK].total_bytes()) as f64;
    let mut viewer = viewer(ui, canvases, editor, &case)?;
    let (mut received, mut remaining, mut drawn_at) = (0.0, places.len(), None::<f64>);
    let mut middle_in = [false; 2];
    let mut work = LoadingWork::default();
    let mut first_window = None;
    let mut direct = Vec::with_capacity(first.len());
    for (volume, index, bytes) in first {
        direct.push((volume, index, bytes.await));
    }
    mark(Milestone::FirstSlab);
    for (volume, index, url) in pending.by_ref().take(SLABS_IN_FLIGHT) {
        fetcher.request(volume, index, url)?;
    }
    while remaining > 0 {
        let (volume, slab, bytes) = match direct.pop() {
            Some(arrived) => arrived,
            None => {
                let waiting_from = now_ms();
                let arrived = fetcher.next().await.ok_or("the slab workers stopped")?;
                work.waiting += now_ms() - waiting_from;
                if let Some((volume, index, url)) = pending.next() {
                    fetcher.request(volume, index, url)?;
                }
                (arrived.volume, arrived.index, arrived.bytes.map(|bytes| bytes.to_vec()))
            }
        };
        if !alive(ui) {
            return Err("the case page was left".into());
        }
        let what = ["image", "mask"].get(volume).ok_or("a slab of no volume arrived")?;
        let stored = bytes.map_err(|e| format!("slab {slab} of the {what} could not be loaded: {e}"))?;
        let grid = grids[volume];
        let raw = timed(&mut work.inflating, || {
            crate::slabs::decompress(&format!("slab {slab} of the {what}"), &stored, grid.byte_range(slab).len())
        })
        .map_err(|e| e.to_string())?;
        let filling_from = now_ms();
        for &index in places.get(&(volume, volumes[volume].slabs[slab])).map(Vec::as_slice).unwrap_or_default() {
            let range = grid.byte_range(index);
            if range.len() != raw.len() {
                return Err(format!("slab {index} of the {what} is listed with a slab of another size"));
            }
            match volume {
                IMAGE => viewer.editor.fill_image_slab(range.start / grid.voxel_bytes as usize, &raw),
                _ => viewer.editor.fill_mask_slab(range.start, &raw),
            }
            received += range.len() as f64;
            middle_in[volume] |= index == grid.slab_of_slice(middle);
        }
        remaining -= 1;
        work.filling += now_ms() - filling_from;
        let drawing_from = now_ms();
        let _ = ui.progress.try_set((received, total));
        match drawn_at {
            // The middle slice is complete: draw, windowed by the intensities of its slab.
            None if middle_in == [true, true] => {
                let voxels = grids[IMAGE].byte_range(grids[IMAGE].slab_of_slice(middle));
                let per_voxel = grids[IMAGE].voxel_bytes as usize;
                let (low, high) =
                    viewer.editor.image.percentiles_of(voxels.start / per_voxel..voxels.end / per_voxel, 0.005, 0.995);
                first_window = Some(series_window.unwrap_or(Window::spanning(low, high)));
                ui.window.set(series_window.unwrap_or(Window::spanning(low, high)));
                ui.threshold.set((low + (high - low) * 0.5, high));
                viewer.draw();
                ui.streaming.set(true);
                drawn_at = Some(now_ms());
            }
            Some(at) if now_ms() - at >= REDRAW_EVERY_MS => {
                viewer.draw();
                drawn_at = Some(now_ms());
            }
            _ => {}
        }
        work.drawing += now_ms() - drawing_from;
    }
    record_loading(&work);
    mark(Milestone::Downloaded);
    viewer.editor.loaded();
    mark(Milestone::Decoded);
    // The whole volume's window (or the series' own), unless the person has set one meanwhile.
    let (low, high) = viewer.editor.robust_range;
    if ui.window.get_untracked() == first_window.unwrap_or(Window::spanning(low, high)) {
        ui.window.set(series_window.unwrap_or(Window::spanning(low, high)));
        ui.threshold.set((low + (high - low) * 0.5, high));
    }
    ui.counts.set(viewer.editor.counts.to_vec());
    viewer.draw();
    ui.streaming.set(false);
    ui.ready.set(true);
    Ok(viewer)
}

/// The viewer on `editor`, its crosshair at the volume's centre, nothing drawn yet.
fn viewer(
    ui: ViewerUi,
    canvases: [HtmlCanvasElement; 3],
    editor: Editor,
    case: &crate::api::CaseArtifacts,
) -> Result<Viewer, String> {
    let [axial, coronal, sagittal] = canvases;
    let views = [View::new(axial)?, View::new(coronal)?, View::new(sagittal)?];
    ui.voxel_ml.set(editor.grid().voxel_volume_mm3() / 1000.0);
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
        overlays: vec![None; ui.overlays.with_value(Vec::len)],
        contested: None,
        saving: false,
        keep_scheduled: false,
        drawn_once: false,
    };
    viewer.activate(Plane::Axial);
    viewer.move_point(viewer.point);
    Ok(viewer)
}
