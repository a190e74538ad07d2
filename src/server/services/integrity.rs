//! Whether storage holds what the database says it does: every recorded object (volume files
//! written so far, and slabs) is fetched and compared with its recorded size and SHA-256
//! (`seglab objects verify`). Objects are checked
//! one at a time, so memory holds one object.

use sha2::{Digest, Sha256};

use crate::server::error::AppError;
use crate::server::state::AppState;

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
        match state.store.get(&object_ref).await {
            Err(err) => problems.push(format!("{object_ref}: cannot be read ({err})")),
            Ok(bytes) if bytes.len() as i64 != size => {
                problems.push(format!("{object_ref}: {} bytes stored, {size} recorded", bytes.len()))
            }
            Ok(bytes) if hex::encode(Sha256::digest(&bytes)) != sha256 => {
                problems.push(format!("{object_ref}: its SHA-256 differs from the recorded one"))
            }
            Ok(_) => {}
        }
    }
    Ok(ObjectsReport { checked, problems })
}
