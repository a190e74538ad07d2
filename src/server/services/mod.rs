//! The service layer: the one implementation of each operation, called by the REST routes,
//! the server functions and the command line alike. Imports between services go one way:
//! `labels` and `orchestrator` build on `mask_versions`; `cases` and `orchestrator` on `jobs`
//! and `registry`; `evaluation` on `mask_versions` and `registry`; `labels` and `cases` on
//! `workflow`; everything that touches a case on `access`, which decides who may do what to
//! it; everything on `audit`. Commands and read models are apart where a page reads much:
//! `cases` imports and `case_view` answers the case page; `registry` registers and moves
//! versions, `evaluation` computes scores, and `model_view` (with `comparison`) answers the
//! model page. DICOM: `dicom_import` builds on `cases` (and saves segmentations through
//! `labels`), `dicom_export` on `cases` and `mask_versions`, `pacs` on both and `datasets` on
//! `dicom_export`; `workflow` queues approved versions in `pacs_outbox`, which `pacs` sends;
//! `pacs_imports` runs `pacs`'s imports in the background.
//! Several readers: `readings` plans, takes and lists readings and saves their consensus
//! through `labels`; `labels` and `workflow` save into and submit readings; `agreement`
//! measures and keeps the readers' agreement (the evaluator's loop runs it) and reads it across
//! the cases a `worklist` filter selects.

pub mod access;
pub mod accounts;
pub mod agreement;
pub mod audit;
pub mod backfill;
pub mod backup;
pub mod case_view;
pub mod cases;
pub mod comparison;
pub mod datasets;
pub mod dicom_export;
pub mod dicom_import;
pub mod evaluation;
pub mod idempotency;
pub mod integrity;
pub mod jobs;
pub mod labels;
pub mod mask_versions;
pub mod model_view;
pub mod orchestrator;
pub mod pacs;
pub mod pacs_imports;
pub mod pacs_outbox;
pub mod readings;
pub mod registry;
pub mod sso;
pub mod sweeper;
pub mod users;
pub mod volume_slabs;
pub mod workflow;
pub mod worklist;
