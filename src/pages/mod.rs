//! One module per page, each with the server functions it calls.

pub mod case_list;
pub mod case_page;
pub mod login;
