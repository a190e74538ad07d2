//! The canvas viewer and mask editor in the browser. [`start`] opens the case (`load`), then
//! wires the page to it: redraws when a setting changes (`draw`), pointer and key input
//! (`input`), the controls' commands (`commands`), and unsaved edits kept in this browser
//! (`keep`). The shared state is in `state`, one canvas's zoom and pan in `view`, and
//! `timing` leaves marks for benchmarks and tests.

mod commands;
mod draw;
mod input;
mod keep;
mod load;
mod state;
mod timing;
mod view;

use std::cell::RefCell;
use std::rc::Rc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use web_sys::HtmlCanvasElement;

use crate::viewer::orientation::Plane;
use crate::viewer::ui::ViewerUi;
use state::{alive, Shared};

/// Starts the viewer on `canvas` for the case in `ui`; effects and listeners live as long as `owner`.
pub fn start(ui: ViewerUi, canvas: HtmlCanvasElement, owner: Owner) {
    spawn_local(async move {
        match load::open(ui, canvas).await {
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
    let (ui, canvas) = {
        let viewer = shared.borrow();
        (viewer.ui, viewer.view.canvas.clone())
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
            viewer.view.pan = (0.0, 0.0);
            viewer.show_plane(plane);
            viewer.draw();
        }
        plane
    });
    commands::receive(&shared);
    input::listen_pointer(&shared, &canvas);
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
