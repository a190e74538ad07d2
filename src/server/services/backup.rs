//! Backups of the embedded default (`seglab backup DIR`, `seglab backup verify DIR`).
//!
//! The database is copied with SQLite's `VACUUM INTO`: one read transaction's snapshot, taken
//! while the server keeps running, written and synced to disk. Objects are never overwritten,
//! so the copy needs only their list: `objects.tsv` names every object the *copy* references
//! (reference, bytes and SHA-256 where recorded), and copying the object folder afterwards
//! (or keeping the bucket) gives a consistent pair. `backup.json` records the copy's own
//! SHA-256 and its audit chain's head. Verifying checks the copy's SHA-256 and SQLite's
//! integrity check, the audit chain inside it, that the list still matches the copy, and that
//! storage holds every listed object as recorded.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::any::AnyPoolOptions;

use super::{audit, integrity};
use crate::server::clock::now_ms;
use crate::server::db::{Backend, Db};
use crate::server::error::AppError;
use crate::server::storage::ObjectStore;

const DATABASE_FILE: &str = "seglab.db";
const OBJECTS_FILE: &str = "objects.tsv";
const MANIFEST_FILE: &str = "backup.json";

/// What `backup.json` records of a backup.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// When the copy was taken, in milliseconds since the epoch.
    pub created_at: i64,
    pub database_bytes: u64,
    pub database_sha256: String,
    /// Objects listed in `objects.tsv`.
    pub objects: usize,
    /// The copy's audit chain head, `SEQ:HASH` as `seglab audit head` prints it.
    pub audit_head: String,
}

/// One object the copy references; size and hash are unknown for predictions and model
/// artifacts stored before their size was recorded.
#[derive(Debug, PartialEq, Eq, sqlx::FromRow)]
struct Listed {
    object_ref: String,
    size_bytes: Option<i64>,
    sha256: Option<String>,
}

/// Copies the database into `dir` (new, or empty) and lists the objects the copy references.
pub async fn take(db: &Db, dir: &Path) -> Result<Manifest, AppError> {
    if db.backend != Backend::Sqlite {
        return Err(AppError::Unprocessable(
            "`seglab backup` copies the SQLite database of the embedded default; back PostgreSQL up with \
             pg_dump or its point-in-time recovery, and the bucket with its versioning (see the README)"
                .into(),
        ));
    }
    prepare_empty(dir)?;
    let database = dir.join(DATABASE_FILE);
    let path = database.to_str().ok_or_else(|| AppError::BadRequest("the backup folder's path is not UTF-8".into()))?;
    sqlx::query("VACUUM INTO $1").bind(path).execute(&db.pool).await?;
    sync(&database)?;
    let copy = open_copy(db, &database).await?;
    let listed = list_objects(&copy).await?;
    let (seq, hash) = audit::head(&copy).await?;
    copy.pool.close().await;
    let tsv: String = listed.iter().map(tsv_line).collect();
    write_synced(&dir.join(OBJECTS_FILE), tsv.as_bytes())?;
    let (database_bytes, database_sha256) = file_digest(&database)?;
    let manifest = Manifest {
        created_at: now_ms(),
        database_bytes,
        database_sha256,
        objects: listed.len(),
        audit_head: format!("{seq}:{hash}"),
    };
    write_synced(&dir.join(MANIFEST_FILE), &serde_json::to_vec_pretty(&manifest).map_err(AppError::internal)?)?;
    // The folder too, so the files' names survive a power cut.
    sync(dir)?;
    Ok(manifest)
}

/// What `backup verify` found: nothing wrong when `problems` is empty.
pub struct Verified {
    pub manifest: Manifest,
    pub audit_rows: i64,
    pub problems: Vec<String>,
}

/// Checks the backup in `dir` and that `store` holds every object it lists.
pub async fn verify(db: &Db, store: &ObjectStore, dir: &Path) -> Result<Verified, AppError> {
    let read = |name: &str| {
        std::fs::read(dir.join(name)).map_err(|e| AppError::NotFound(format!("{} ({e})", dir.join(name).display())))
    };
    let manifest: Manifest = serde_json::from_slice(&read(MANIFEST_FILE)?)
        .map_err(|e| AppError::Unprocessable(format!("{MANIFEST_FILE} is not a backup manifest: {e}")))?;
    let database = dir.join(DATABASE_FILE);
    let mut problems = Vec::new();
    let (bytes, sha256) = file_digest(&database)?;
    if (bytes, sha256.as_str()) != (manifest.database_bytes, manifest.database_sha256.as_str()) {
        problems.push(format!("{DATABASE_FILE}: not the file the backup wrote ({bytes} bytes, SHA-256 differs)"));
        return Ok(Verified { manifest, audit_rows: 0, problems });
    }
    let copy = open_copy(db, &database).await?;
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&copy.pool).await?;
    if integrity != "ok" {
        problems.push(format!("{DATABASE_FILE}: SQLite's integrity check says {integrity}"));
    }
    let chain = audit::verify_chain(&copy).await?;
    if let Some((seq, reason)) = chain.first_broken {
        problems.push(format!("the audit chain is broken at row {seq}: {reason}"));
    }
    let (seq, hash) = audit::head(&copy).await?;
    if format!("{seq}:{hash}") != manifest.audit_head {
        problems.push(format!("the audit head is {seq}:{hash}, the backup recorded {}", manifest.audit_head));
    }
    let listed = list_objects(&copy).await?;
    copy.pool.close().await;
    let tsv: String = listed.iter().map(tsv_line).collect();
    if tsv.as_bytes() != read(OBJECTS_FILE)?.as_slice() {
        problems.push(format!("{OBJECTS_FILE} does not list the objects the database copy references"));
    }
    for object in &listed {
        let (size, sha256) = (object.size_bytes, object.sha256.as_deref());
        problems.extend(integrity::check_object(store, &object.object_ref, size, sha256).await);
    }
    Ok(Verified { manifest, audit_rows: chain.rows, problems })
}

/// Every object the database references, in a stable order.
async fn list_objects(db: &Db) -> Result<Vec<Listed>, AppError> {
    Ok(sqlx::query_as(
        "SELECT object_ref, size_bytes, sha256 FROM (
             SELECT object_ref, size_bytes, sha256 FROM objects WHERE file_stored = 1
             UNION ALL SELECT object_ref, size_bytes, sha256 FROM slabs
             UNION ALL SELECT artifact_ref, NULL, sha256 FROM models
             UNION ALL SELECT object_ref, NULL, NULL FROM predictions
         ) listed ORDER BY object_ref",
    )
    .fetch_all(&db.pool)
    .await?)
}

fn tsv_line(object: &Listed) -> String {
    let size = object.size_bytes.map_or("-".to_string(), |size| size.to_string());
    format!("{}\t{size}\t{}\n", object.object_ref, object.sha256.as_deref().unwrap_or("-"))
}

/// The copy at `path`, read-only (no migration, nothing written), with `db`'s audit key.
async fn open_copy(db: &Db, path: &Path) -> Result<Db, AppError> {
    let url = format!("sqlite://{}?mode=ro", path.display());
    let pool = AnyPoolOptions::new().max_connections(1).connect(&url).await?;
    Ok(Db { pool, backend: Backend::Sqlite, audit_key: db.audit_key.clone() })
}

fn prepare_empty(dir: &Path) -> Result<(), AppError> {
    let io = |e: std::io::Error| AppError::Unprocessable(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    if std::fs::read_dir(dir).map_err(io)?.next().is_some() {
        return Err(AppError::Conflict(format!("{} is not empty: back up into a new or empty folder", dir.display())));
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), AppError> {
    use std::io::Write;
    let mut file = std::fs::File::create(path).map_err(AppError::internal)?;
    file.write_all(bytes).map_err(AppError::internal)?;
    file.sync_all().map_err(AppError::internal)
}

/// Flushes a file or folder to disk.
fn sync(path: &Path) -> Result<(), AppError> {
    std::fs::File::open(path).and_then(|file| file.sync_all()).map_err(AppError::internal)
}

/// The file's size and SHA-256, read in pieces.
fn file_digest(path: &Path) -> Result<(u64, String), AppError> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| AppError::NotFound(format!("{} ({e})", path.display())))?;
    let (mut hasher, mut buffer, mut bytes) = (Sha256::new(), vec![0u8; 1 << 20], 0u64);
    loop {
        let read = file.read(&mut buffer).map_err(AppError::internal)?;
        if read == 0 {
            return Ok((bytes, hex::encode(hasher.finalize())));
        }
        hasher.update(&buffer[..read]);
        bytes += read as u64;
    }
}
