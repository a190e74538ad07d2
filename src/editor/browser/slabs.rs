//! Slabs of the case's volumes fetched by Web Workers (`/slab_worker.js`): each arrives as
//! its stored, gzipped bytes, which the page inflates (`crate::slabs::decompress`) one slab at
//! a time, so drawing waits at most one slab's inflating (a few milliseconds per MiB).

use futures::channel::mpsc::{unbounded, UnboundedReceiver};
use futures::StreamExt;
use js_sys::{ArrayBuffer, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{MessageEvent, Worker};

use crate::browser::net::describe;

/// Workers: one per core here; each has many fetches in flight.
const WORKERS: usize = 2;

/// A slab that arrived (still gzipped), or why it did not.
pub(super) struct Arrived {
    /// Which volume, as numbered by the requester.
    pub volume: usize,
    pub index: usize,
    pub bytes: Result<Uint8Array, String>,
}

pub(super) struct SlabFetcher {
    workers: Vec<Worker>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    arrivals: UnboundedReceiver<Arrived>,
    sent: usize,
}

impl SlabFetcher {
    pub(super) fn start() -> Result<SlabFetcher, String> {
        let (sender, arrivals) = unbounded();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let data = event.data();
            let field = |key: &str| Reflect::get(&data, &key.into()).unwrap_or(JsValue::UNDEFINED);
            let number = |key: &str| field(key).as_f64().unwrap_or(f64::NAN) as usize;
            let bytes = match field("bytes") {
                buffer if buffer.is_instance_of::<ArrayBuffer>() => Ok(Uint8Array::new(&buffer)),
                _ => Err(field("error").as_string().unwrap_or_else(|| "it could not be read".into())),
            };
            let _ = sender.unbounded_send(Arrived { volume: number("volume"), index: number("index"), bytes });
        });
        let workers = (0..WORKERS)
            .map(|_| {
                let worker = Worker::new("/slab_worker.js").map_err(describe)?;
                worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
                Ok(worker)
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(SlabFetcher { workers, _on_message: on_message, arrivals, sent: 0 })
    }

    /// Asks for slab `index` of `volume` at `url`; requests start in the order made.
    pub(super) fn request(&mut self, volume: usize, index: usize, url: &str) -> Result<(), String> {
        let message = Object::new();
        for (key, value) in
            [("volume", JsValue::from(volume as f64)), ("index", JsValue::from(index as f64)), ("url", url.into())]
        {
            Reflect::set(&message, &key.into(), &value).map_err(describe)?;
        }
        self.workers[self.sent % self.workers.len()].post_message(&message).map_err(describe)?;
        self.sent += 1;
        Ok(())
    }

    /// The next slab to arrive, in whatever order they do.
    pub(super) async fn next(&mut self) -> Option<Arrived> {
        self.arrivals.next().await
    }
}

impl Drop for SlabFetcher {
    fn drop(&mut self) {
        self.workers.iter().for_each(Worker::terminate);
    }
}
