//! One module per page, each with the server functions it calls; `common` holds the pieces
//! every page uses.

pub mod agreement;
pub mod case_list;
pub mod case_page;
pub mod case_readings;
pub mod case_workflow;
pub mod common;
pub mod datasets;
pub mod import;
pub mod login;
pub mod pacs;
pub mod registry;
