//! The data shapes on the wire, shared by the REST API, the server functions and the browser:
//! cases and labels, several readers' readings, user accounts, the model registry, and errors.

pub mod accounts;
pub mod cases;
pub mod datasets;
pub mod error;
pub mod ids;
pub mod pacs;
pub mod readings;
pub mod registry;

pub use accounts::*;
pub use cases::*;
pub use datasets::*;
pub use error::{ApiError, ErrorBody, ErrorCode};
pub use ids::{CaseId, MaskRef, ModelId, NotACaseId, NotAMaskRef, NotAModelId, NotAUserName, UserName};
pub use pacs::*;
pub use readings::*;
pub use registry::*;
