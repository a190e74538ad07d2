//! The canvas viewer and mask editor in the browser. [`start`] opens the case (`load`), then
//! wires the page to it: redraws when a setting changes (`draw`), pointer and key input
//! (`input`), the controls' commands (`commands`, with the 3-D tools in `edit3d`), model
//! predictions over the mask (`predictions`), and unsaved edits kept in this browser
//! (`keep`). The shared state is in `state`, one canvas's zoom and pan in `view`, and
//! `timing` leaves marks for benchmarks and tests.

mod commands;
mod draw;
mod edit3d;
mod indexed_db;
mod input;
mod keep;
mod load;
mod overlays;
mod slabs;
mod state;
mod timing;
mod view;

use std::cell::RefCell;
use std::rc::Rc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use web_sys::HtmlCanvasElement;

use crate::editor::ui::{Command, ViewerUi};
use crate::geometry::Plane;
use state::{alive, Shared};

/// Starts the viewer on the three `canvases` (axial, coronal, sagittal) for the case in `ui`;
/// effects and listeners live as long as `owner`.
pub fn start(ui: ViewerUi, canvases: [HtmlCanvasElement; 3], owner: Owner) {
    spawn_local(async move {
        match load::open(ui, canvases).await {
            Ok(viewer) if alive(ui) => owner.with(|| attach(Rc::new(RefCell::new(viewer)))),
            Ok(_) => {}
            Err(message) => {
                let _ = ui.failure.try_set(Some(message));
            }
        }
    });
}

/// Connects the opened viewer to the page: settings, input, commands, leaving the page, and
/// edits kept from an earlier visit.
fn attach(shared: Shared) {
    let ui = shared.borrow().ui;
    // Redraw whenever a display setting changes.
    let redraw = shared.clone();
    Effect::new(move |_| {
        ui.window.track();
        ui.opacity.track();
        ui.outline.track();
        ui.hidden.track();
        if let Ok(mut viewer) = redraw.try_borrow_mut() {
            viewer.draw();
        }
    });
    // A new layout or window size changes how large each view is shown: draw once the page
    // is laid out, so the annotations are sized for it.
    let relayout = shared.clone();
    let draw_next_frame = move || {
        let relayout = relayout.clone();
        request_animation_frame(move || {
            if let Ok(mut viewer) = relayout.try_borrow_mut() {
                viewer.draw();
            }
        });
    };
    let on_layout = draw_next_frame.clone();
    Effect::new(move |_| {
        ui.layout.track();
        on_layout();
    });
    let resized = window_event_listener(leptos::ev::resize, move |_| draw_next_frame());
    on_cleanup(move || resized.remove());
    // The slider, keys and wheel move the active view's slice: the crosshair moves with it.
    let slices = shared.clone();
    Effect::new(move |_| {
        let slice = ui.slice.get();
        if let Ok(mut viewer) = slices.try_borrow_mut() {
            let through = viewer.geometry_of(viewer.active()).through;
            if viewer.point[through] != slice {
                let mut voxel = viewer.point;
                voxel[through] = slice;
                viewer.move_point(voxel);
                viewer.draw();
            }
        }
    });
    let planes = shared.clone();
    Effect::new(move |previous: Option<Plane>| {
        let plane = ui.plane.get();
        if previous.is_some_and(|p| p != plane) {
            if let Ok(mut viewer) = planes.try_borrow_mut() {
                viewer.activate(plane);
                viewer.draw();
            }
        }
        plane
    });
    // A changed range or cap recomputes the region-growing preview.
    Effect::new(move |_| {
        ui.grow_range.track();
        ui.grow_cap.track();
        ui.send(Command::Regrow);
    });
    // Changes against the review base, downloaded when first asked for.
    let comparing = shared.clone();
    Effect::new(move |_| {
        let on = ui.compare.get();
        let shared = comparing.clone();
        spawn_local(async move { commands::compare(&shared, on).await });
    });
    // Overlays drawn or compared, downloaded when first asked for; turning a comparison on
    // moves the views to where it disagrees most.
    let overlaying = shared.clone();
    Effect::new(move |previous: Option<Option<usize>>| {
        ui.overlay_styles.track();
        ui.readers_disagree.track();
        let compared = ui.disagreement.get();
        let jump = compared.is_some() && previous.flatten() != compared;
        let shared = overlaying.clone();
        spawn_local(async move { overlays::show(&shared, jump).await });
        compared
    });
    commands::receive(&shared);
    for plane in Plane::ALL {
        input::listen_pointer(&shared, plane);
    }
    input::listen_keys(&shared);
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
    keep::offer_kept(shared);
}
