//! Browser-only code of the WASM front end: the canvas viewer and mask editor, HTTP to object
//! storage and the API, and edits kept in IndexedDB. Its logic lives in `crate::viewer`,
//! shared with the server build and unit-tested natively.

mod kept;
mod net;
pub mod viewer;
