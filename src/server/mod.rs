//! Everything that runs only on the server, in layers that import downwards only:
//!
//! - the edge: `http` (REST routes) and the server functions in `crate::pages`, both thin,
//!   authenticating through `auth` and calling `services` (`crate::cli` and `crate::startup`,
//!   above this module, are the command line and the start-up that mounts the pages);
//! - `services`: the one implementation of each operation;
//! - infrastructure: `db` (metadata database), `storage` (object storage, presigning),
//!   `embedded_s3` (the in-process S3 endpoint of the zero-dependency default), `mask_cache`
//!   (decoded mask versions), `inference` (runs models in a child process), `oip` (or on an
//!   Open Inference Protocol v2 server), `login_limit` (failed logins), `listener` (TCP
//!   without delayed writes), `scratch` (uploads on disk), `session_store`, gathered in
//!   `state`; `text`, the control characters refused in a client's text; `telemetry`, the
//!   metrics recorder and the logs' format; and `charts`, the SVG the model page shows.

pub mod auth;
pub mod charts;
pub mod clock;
pub mod config;
pub mod db;
pub mod demo;
pub mod dicom;
pub mod dicomweb;
pub mod embedded_s3;
pub mod error;
pub mod http;
pub mod identity;
pub mod inference;
pub mod listener;
pub mod login_limit;
pub mod mask_cache;
pub mod oidc;
pub mod oip;
pub mod rows;
pub mod scratch;
pub mod services;
pub mod session_store;
pub mod single_flight;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod text;
