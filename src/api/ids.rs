//! Typed ids, parsed once where they enter (a path, a body, a stored row) and passed on as
//! types, so a case id cannot be confused with a mask ref or a user id.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What every text newtype here has besides its parser (`$name::parse`): its text, a value
/// read back from the database as stored, and the conversions serde and `Display` use.
macro_rules! parsed_text {
    ($name:ident, $error:ident) => {
        impl $name {
            /// A value read back from the database, which holds only values the server parsed or
            /// made: taken as stored, so that reading a row never fails a request.
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
            fn from(value: $name) -> String {
                value.0
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

/// Whether `text` is a UUID in its hyphenated lower-case form, the one spelling the server
/// writes, so that equal ids are equal texts.
fn is_canonical_uuid(text: &str) -> bool {
    uuid::Uuid::try_parse(text).is_ok_and(|uuid| uuid.hyphenated().to_string() == text)
}

/// Ids the server makes: a UUID in its canonical form (see [`is_canonical_uuid`]).
macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $error:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "ssr", derive(utoipa::ToSchema), schema(format = Uuid))]
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
                match is_canonical_uuid(text) {
                    true => Ok($name(text.to_string())),
                    false => Err($error(text.chars().take(64).collect())),
                }
            }
        }

        parsed_text!($name, $error);
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

/// A mask version: the immutable object key `cases/{case id}/masks/{uuid}.nii.gz` it is
/// stored under, never written twice.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(try_from = "String", into = "String")]
pub struct MaskRef(String);

/// Why a text is not a mask version's reference.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a mask version (cases/{{case id}}/masks/{{uuid}}.nii.gz)")]
pub struct NotAMaskRef(pub String);

impl MaskRef {
    /// A fresh, never-used reference for a mask version of `case_id`.
    pub fn fresh(case_id: &CaseId) -> MaskRef {
        MaskRef(format!("cases/{case_id}/masks/{}.nii.gz", uuid::Uuid::new_v4()))
    }

    pub fn parse(text: &str) -> Result<MaskRef, NotAMaskRef> {
        let refused = || NotAMaskRef(text.chars().take(128).collect());
        let rest = text.strip_prefix("cases/").ok_or_else(refused)?;
        let (case, file) = rest.split_once("/masks/").ok_or_else(refused)?;
        let version = file.strip_suffix(".nii.gz").ok_or_else(refused)?;
        match is_canonical_uuid(case) && is_canonical_uuid(version) {
            true => Ok(MaskRef(text.to_string())),
            false => Err(refused()),
        }
    }
}

parsed_text!(MaskRef, NotAMaskRef);

/// A person's login name: 1 to 64 letters, digits, `.`, `_` or `-`, so that it is safe in a
/// path, a log line and the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(try_from = "String", into = "String")]
pub struct UserName(String);

/// Why a text is not a username.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a username (1–64 letters, digits, `.`, `_` or `-`)")]
pub struct NotAUserName(pub String);

impl UserName {
    pub fn parse(text: &str) -> Result<UserName, NotAUserName> {
        let valid =
            (1..=64).contains(&text.len()) && text.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        match valid {
            true => Ok(UserName(text.to_string())),
            false => Err(NotAUserName(text.chars().take(64).collect())),
        }
    }
}

parsed_text!(UserName, NotAUserName);

/// Read as the text it is wherever text is wanted (a page, a comparison), since any username
/// is a valid text; the reverse goes through [`UserName::parse`].
impl std::ops::Deref for UserName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::{CaseId, MaskRef, ModelId, UserName};

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

    #[test]
    fn a_mask_ref_is_the_key_of_a_mask_version_of_a_case() {
        let case = CaseId::random();
        let mask = MaskRef::fresh(&case);
        assert!(mask.as_str().starts_with(&format!("cases/{case}/masks/")), "{mask}");
        assert_eq!(MaskRef::parse(mask.as_str()), Ok(mask.clone()));
        assert_eq!(serde_json::from_value::<MaskRef>(serde_json::json!(mask.as_str())).unwrap(), mask);
        let other = MaskRef::fresh(&case);
        for bad in [
            "",
            "cases/c/masks/m.nii.gz",
            &mask.as_str().replace(".nii.gz", ".nii"),
            &mask.as_str().replace("/masks/", "/slabs/"),
            &format!("{}/../x", mask),
            &format!("cases/{case}/masks/{}", other.as_str()),
            &mask.as_str().to_uppercase(),
        ] {
            assert!(MaskRef::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_username_is_safe_in_a_path_and_a_log_line() {
        for good in ["alice", "a.b-c_d", "x", &"n".repeat(64)] {
            assert_eq!(UserName::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", "al ice", "../x", "alice\n", "ålice", &"n".repeat(65)] {
            assert!(UserName::parse(bad).is_err(), "{bad:?}");
            assert!(serde_json::from_value::<UserName>(serde_json::json!(bad)).is_err(), "{bad:?}");
        }
    }
}
