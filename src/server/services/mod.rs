//! The service layer: the one implementation of each operation, called by the REST routes,
//! the server functions and the command line alike.

pub mod cases;
pub mod users;
