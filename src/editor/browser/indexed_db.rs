//! Unsaved edits kept in the browser's IndexedDB, one record per case, so a reload, a crash
//! or an expired session loses nothing. IndexedDB rather than localStorage: no 5 MB cap, and
//! writes do not block the page.

use js_sys::Promise;
use serde::{Deserialize, Serialize};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbDatabase, IdbRequest, IdbTransactionMode};

use crate::api::CaseId;

const DATABASE: &str = "seglab";
const STORE: &str = "unsaved_edits";

/// The record kept for a case.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeptRecord {
    /// The mask version the edits were made on.
    pub base_mask_ref: String,
    /// Base64 of the encoded [`crate::edits::MaskEdits`].
    pub edits: String,
    pub voxels: u64,
    pub saved_at_ms: i64,
}

fn error(err: JsValue) -> String {
    format!("browser storage: {err:?}")
}

/// Resolves with the request's result once it succeeds.
async fn finished(request: &IdbRequest) -> Result<JsValue, String> {
    let promise = Promise::new(&mut |resolve, reject| {
        let done = request.clone();
        let on_success = Closure::once_into_js(move || {
            let _ = resolve.call1(&JsValue::NULL, &done.result().unwrap_or(JsValue::UNDEFINED));
        });
        let on_error = Closure::once_into_js(move || {
            let _ = reject.call0(&JsValue::NULL);
        });
        request.set_onsuccess(Some(on_success.unchecked_ref()));
        request.set_onerror(Some(on_error.unchecked_ref()));
    });
    JsFuture::from(promise).await.map_err(error)
}

async fn open() -> Result<IdbDatabase, String> {
    let factory =
        web_sys::window().ok_or("no window")?.indexed_db().map_err(error)?.ok_or("IndexedDB is unavailable")?;
    let request = factory.open_with_u32(DATABASE, 1).map_err(error)?;
    let upgrade = request.clone();
    let on_upgrade = Closure::once_into_js(move || {
        if let Ok(db) = upgrade.result().and_then(|db| db.dyn_into::<IdbDatabase>()) {
            let _ = db.create_object_store(STORE);
        }
    });
    request.set_onupgradeneeded(Some(on_upgrade.unchecked_ref()));
    finished(&request).await?.dyn_into().map_err(error)
}

async fn store_request(
    mode: IdbTransactionMode,
    operation: impl FnOnce(&web_sys::IdbObjectStore) -> Result<IdbRequest, JsValue>,
) -> Result<JsValue, String> {
    let db = open().await?;
    let transaction = db.transaction_with_str_and_mode(STORE, mode).map_err(error)?;
    let store = transaction.object_store(STORE).map_err(error)?;
    let request = operation(&store).map_err(error)?;
    let result = finished(&request).await;
    db.close();
    result
}

pub async fn load(case_id: &CaseId) -> Result<Option<KeptRecord>, String> {
    let value = store_request(IdbTransactionMode::Readonly, |store| store.get(&case_id.as_str().into())).await?;
    match value.as_string() {
        Some(json) => serde_json::from_str(&json).map(Some).map_err(|e| e.to_string()),
        None => Ok(None),
    }
}

pub async fn save(case_id: &CaseId, record: &KeptRecord) -> Result<(), String> {
    let json = serde_json::to_string(record).map_err(|e| e.to_string())?;
    store_request(IdbTransactionMode::Readwrite, |store| store.put_with_key(&json.into(), &case_id.as_str().into()))
        .await?;
    Ok(())
}

pub async fn forget(case_id: &CaseId) -> Result<(), String> {
    store_request(IdbTransactionMode::Readwrite, |store| store.delete(&case_id.as_str().into())).await?;
    Ok(())
}
