//! Whether storage holds what the database says it does: every recorded object (volume files
//! written so far, and slabs) is fetched and compared with its recorded size and SHA-256
//! (`seglab objects verify`). Objects are checked
//! one at a time, so memory holds one object.

use sha2::{Digest, Sha256};

use crate::server::error::AppError;
use crate::server::state::AppState;
use crate::server::storage::ObjectStore;

pub struct ObjectsReport {
    pub checked: usize,
    /// One line per object that is missing or differs, naming it and how.
    pub problems: Vec<String>,
}

pub(crate) async fn verify_objects(state: &AppState) -> Result<ObjectsReport, AppError> {
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT object_ref, size_bytes, sha256 FROM (
             SELECT object_ref, size_bytes, sha256, created_at FROM objects WHERE file_stored = 1
             UNION ALL SELECT object_ref, size_bytes, sha256, created_at FROM slabs
         ) stored ORDER BY created_at, object_ref",
    )
    .fetch_all(&state.db.pool)
    .await?;
    let checked = rows.len();
    let mut problems = Vec::new();
    for (object_ref, size, sha256) in rows {
        problems.extend(check_object(&state.store, &object_ref, Some(size), Some(&sha256)).await);
    }
    Ok(ObjectsReport { checked, problems })
}

/// Why the stored object at `object_ref` is not as recorded (its size and SHA-256, each where
/// known), or `None` when it is.
pub(crate) async fn check_object(
    store: &ObjectStore,
    object_ref: &str,
    size: Option<i64>,
    sha256: Option<&str>,
) -> Option<String> {
    match store.get(object_ref).await {
        Err(err) => Some(format!("{object_ref}: cannot be read ({err})")),
        Ok(bytes) if size.is_some_and(|size| size != bytes.len() as i64) => {
            Some(format!("{object_ref}: {} bytes stored, {} recorded", bytes.len(), size.unwrap_or_default()))
        }
        Ok(bytes) if sha256.is_some_and(|sha256| sha256 != hex::encode(Sha256::digest(&bytes))) => {
            Some(format!("{object_ref}: its SHA-256 differs from the recorded one"))
        }
        Ok(_) => None,
    }
}
