//! Timings for benchmarks and tests, in `window.__seglab`: milestones of opening a case (from
//! navigation start), the duration of every repaint (`renderMs`), and of every 3-D tool run
//! (`ops`: name, milliseconds, voxels), and where the page's time went while a case's slabs
//! arrived (`loading`). The property names are read by the benchmarks and the
//! end-to-end tests.

use wasm_bindgen::{JsCast, JsValue};

/// A moment in opening a case.
#[derive(Clone, Copy)]
pub(super) enum Milestone {
    OpenStart,
    FirstSlab,
    Downloaded,
    Decoded,
    FirstSlice,
}

impl Milestone {
    fn property(self) -> &'static str {
        match self {
            Milestone::OpenStart => "openStartMs",
            Milestone::FirstSlab => "firstSlabMs",
            Milestone::Downloaded => "downloadedMs",
            Milestone::Decoded => "decodedMs",
            Milestone::FirstSlice => "firstSliceMs",
        }
    }
}

/// Milliseconds since navigation start.
pub(super) fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}

/// `window.__seglab`, made on first use.
fn timings() -> Option<JsValue> {
    let window = web_sys::window()?;
    let key = JsValue::from_str("__seglab");
    Some(js_sys::Reflect::get(&window, &key).ok().filter(|v| v.is_object()).unwrap_or_else(|| {
        let stats = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&stats, &"renderMs".into(), &js_sys::Array::new());
        let _ = js_sys::Reflect::set(&stats, &"ops".into(), &js_sys::Array::new());
        let _ = js_sys::Reflect::set(&window, &key, &stats);
        stats.into()
    }))
}

pub(super) fn mark(milestone: Milestone) {
    if let Some(stats) = timings() {
        let _ = js_sys::Reflect::set(&stats, &milestone.property().into(), &now_ms().into());
    }
}

pub(super) fn record_render(render_ms: f64) {
    if let Some(times) = timings().and_then(|stats| js_sys::Reflect::get(&stats, &"renderMs".into()).ok()) {
        times.unchecked_into::<js_sys::Array>().push(&render_ms.into());
    }
}

/// Records a 3-D tool's run: `name`, its duration and the voxels it found or changed.
pub(super) fn record_op(name: &str, ms: f64, voxels: usize) {
    if let Some(ops) = timings().and_then(|stats| js_sys::Reflect::get(&stats, &"ops".into()).ok()) {
        let entry = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&entry, &"name".into(), &name.into());
        let _ = js_sys::Reflect::set(&entry, &"ms".into(), &ms.into());
        let _ = js_sys::Reflect::set(&entry, &"voxels".into(), &(voxels as f64).into());
        ops.unchecked_into::<js_sys::Array>().push(&entry);
    }
}

/// Where the page's time went while slabs arrived, in milliseconds: waiting for the next slab,
/// inflating, copying into the volumes, and drawing (with the progress bar).
#[derive(Default)]
pub(super) struct LoadingWork {
    pub waiting: f64,
    pub inflating: f64,
    pub filling: f64,
    pub drawing: f64,
}

/// Runs `work`, adding its duration to `total`.
pub(super) fn timed<T>(total: &mut f64, work: impl FnOnce() -> T) -> T {
    let from = now_ms();
    let result = work();
    *total += now_ms() - from;
    result
}

/// Records `work` as `window.__seglab.loading` (`waitingMs`, `inflatingMs`, `fillingMs`,
/// `drawingMs`).
pub(super) fn record_loading(work: &LoadingWork) {
    if let Some(stats) = timings() {
        let entry = js_sys::Object::new();
        let phases = [
            ("waitingMs", work.waiting),
            ("inflatingMs", work.inflating),
            ("fillingMs", work.filling),
            ("drawingMs", work.drawing),
        ];
        for (name, ms) in phases {
            let _ = js_sys::Reflect::set(&entry, &name.into(), &ms.into());
        }
        let _ = js_sys::Reflect::set(&stats, &"loading".into(), &entry);
    }
}
