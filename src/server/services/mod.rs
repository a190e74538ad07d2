//! The service layer: the one implementation of each operation, called by the REST routes,
//! the server functions and the command line alike.

pub mod audit;
pub mod cases;
pub mod evaluation;
pub mod idempotency;
pub mod labels;
pub mod models;
pub mod orchestrator;
pub mod sweeper;
pub mod users;
