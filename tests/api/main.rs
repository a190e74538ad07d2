//! The integration tests, one binary: every module starts real servers (`common::TestApp`)
//! on the backend the environment names, and drives them over HTTP as clients would. One
//! binary links the crate once; eleven binaries used to link it eleven times.
//!
//! Run one module with `cargo test --no-default-features --features ssr --test api -- labels::`.

// Tests state what they expect by unwrapping: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;
mod fixtures;

mod access;
mod auth;
mod cases;
mod consensus_parity;
mod datasets;
mod dicom;
mod instances;
mod labels;
mod layering;
mod metric_parity;
mod models;
mod openapi;
mod operations;
mod orthanc;
mod pacs;
mod readings;
mod schema;
mod sso;
mod workflow;
mod worklist;
