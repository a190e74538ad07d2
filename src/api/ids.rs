//! Typed ids, parsed once where they enter (a path, a body, a stored row) and passed on as
//! types, so a case id cannot be confused with a mask ref or a user id.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A case: a UUID in its hyphenated lower-case form, as the server makes them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CaseId(String);

/// Why a text is not a case id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a case id (a UUID such as 5f0c…-…)")]
pub struct NotACaseId(pub String);

impl CaseId {
    /// A new, random case id.
    pub fn random() -> CaseId {
        CaseId(uuid::Uuid::new_v4().to_string())
    }

    pub fn parse(text: &str) -> Result<CaseId, NotACaseId> {
        match uuid::Uuid::try_parse(text) {
            // The one spelling the server writes, so that equal ids are equal texts.
            Ok(uuid) if uuid.hyphenated().to_string() == text => Ok(CaseId(text.to_string())),
            _ => Err(NotACaseId(text.chars().take(64).collect())),
        }
    }

    /// An id read back from the database, which holds only ids the server wrote: taken as
    /// stored, so that reading a row never fails a request.
    #[cfg(feature = "ssr")]
    pub(crate) fn stored(text: String) -> CaseId {
        CaseId(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CaseId {
    type Error = NotACaseId;
    fn try_from(text: String) -> Result<CaseId, NotACaseId> {
        CaseId::parse(&text)
    }
}

impl From<CaseId> for String {
    fn from(id: CaseId) -> String {
        id.0
    }
}

impl fmt::Display for CaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for CaseId {
    type Err = NotACaseId;
    fn from_str(text: &str) -> Result<CaseId, NotACaseId> {
        CaseId::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::CaseId;

    #[test]
    fn a_case_id_is_a_uuid_in_the_form_the_server_writes() {
        let id = CaseId::random();
        assert_eq!(CaseId::parse(id.as_str()), Ok(id.clone()));
        assert_eq!(serde_json::from_value::<CaseId>(serde_json::json!(id.as_str())).unwrap(), id);
        assert_eq!(serde_json::to_value(&id).unwrap(), serde_json::json!(id.as_str()));
        for bad in ["", "case-1", "../x", &id.as_str().to_uppercase(), &id.as_str().replace('-', "")] {
            assert!(CaseId::parse(bad).is_err(), "{bad:?}");
            assert!(serde_json::from_value::<CaseId>(serde_json::json!(bad)).is_err(), "{bad:?}");
        }
    }
}
