//! Everything that runs only on the server.
//!
//! The arrows of the design map to modules: `http` (REST) and the server functions in
//! `crate::pages` are thin and call `services`; `storage` talks to object storage (and
//! presigns), `db` to the metadata database; `embedded_s3` is the in-process S3 endpoint of
//! the zero-dependency default; `inference` runs models for the orchestrator.

pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod embedded_s3;
pub mod error;
pub mod http;
pub mod inference;
pub mod services;
pub mod sessions;
pub mod state;
pub mod storage;

pub use error::AppError;
pub use state::AppState;

/// Milliseconds since the Unix epoch; all timestamps are stored this way on both databases.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
