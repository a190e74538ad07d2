//! Typed ids, parsed once where they enter (a path, a body, a stored row) and passed on as
//! types, so a case id cannot be confused with a mask ref or a user id.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Ids the server makes: a UUID in its hyphenated lower-case form, the one spelling, so that
/// equal ids are equal texts.
macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $error:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        #[doc = concat!("Why a text is not a ", $what, " id.")]
        #[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
        #[error("{0:?} is not a {what} id (a UUID such as 5f0c…-…)", what = $what)]
        pub struct $error(pub String);

        impl $name {
            pub fn random() -> $name {
                $name(uuid::Uuid::new_v4().to_string())
            }

            pub fn parse(text: &str) -> Result<$name, $error> {
                match uuid::Uuid::try_parse(text) {
                    Ok(uuid) if uuid.hyphenated().to_string() == text => Ok($name(text.to_string())),
                    _ => Err($error(text.chars().take(64).collect())),
                }
            }

            /// An id read back from the database, which holds only ids the server wrote: taken
            /// as stored, so that reading a row never fails a request.
            #[cfg(feature = "ssr")]
            pub(crate) fn stored(text: String) -> $name {
                $name(text)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = $error;
            fn try_from(text: String) -> Result<$name, $error> {
                $name::parse(&text)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = $error;
            fn from_str(text: &str) -> Result<$name, $error> {
                $name::parse(text)
            }
        }
    };
}

uuid_id!(
    /// A case.
    CaseId,
    NotACaseId,
    "case"
);

uuid_id!(
    /// A registered model version.
    ModelId,
    NotAModelId,
    "model"
);

#[cfg(test)]
mod tests {
    use super::{CaseId, ModelId};

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
        // The same id is a different type as a model's.
        let model = ModelId::parse(id.as_str()).unwrap();
        assert_eq!(model.as_str(), id.as_str());
        assert!(ModelId::parse("cube-seg").unwrap_err().to_string().contains("not a model id"));
    }
}
