//! seglab: a medical-image segmentation labeling platform with a model lifecycle.
//!
//! One crate, two builds: with `ssr` it is the server (REST API, server-rendered pages,
//! object storage, database, background work); with `hydrate` it is the WASM front end
//! that takes over the server-rendered pages in the browser.

// The editor's view types nest deeply when components are not erased (release builds).
#![recursion_limit = "256"]

pub mod api;
pub mod app;
#[cfg(feature = "hydrate")]
pub mod browser;
pub mod consensus;
pub mod display;
pub mod editor;
pub mod edits;
pub mod geometry;
pub mod mask_ops;
pub mod metrics;
pub mod nifti_io;
pub mod pages;
pub mod slabs;

#[cfg(feature = "ssr")]
pub mod cli;
#[cfg(feature = "ssr")]
pub mod server;
#[cfg(feature = "ssr")]
pub mod startup;

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
    // A marker for end-to-end tests and scripts: the page is now interactive.
    if let Some(body) = leptos::prelude::document().body() {
        let _ = body.set_attribute("data-hydrated", "true");
    }
}
