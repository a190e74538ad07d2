//! Text a client sends may not hold control characters, bar tab and line breaks (comments may
//! have several lines). PostgreSQL refuses a NUL in any text parameter (SQLSTATE 22021) and
//! SQLite's full-text search stops reading at one, so such text is refused with 400 where it
//! enters: the path and query string, JSON bodies, form fields, server function arguments.

use crate::server::error::AppError;

/// Whether `c` is refused in a client's text: a Unicode control character other than tab, line
/// feed and carriage return.
fn is_refused(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// 400 naming `place` (e.g. "query parameter `q`") when `text` holds a refused character.
pub(crate) fn check_text(place: &str, text: &str) -> Result<(), AppError> {
    match text.chars().find(|&c| is_refused(c)) {
        Some(c) => Err(AppError::BadRequest(format!(
            "{place} holds the control character U+{:04X}; text may hold no control characters but tab and line breaks",
            c as u32
        ))),
        None => Ok(()),
    }
}

/// [`check_text`] on every string of a JSON document, object keys included, naming the field by its
/// path (`splits.case-1`, `anchor[2]`); `document` says what the JSON is ("JSON body").
pub(crate) fn check_json_text(document: &str, value: &serde_json::Value) -> Result<(), AppError> {
    check_json_at(document, value, &mut String::new())
}

fn check_json_at(document: &str, value: &serde_json::Value, path: &mut String) -> Result<(), AppError> {
    use serde_json::Value;
    let field = |path: &str| match path {
        "" => format!("the {document}"),
        path => format!("{document} field `{path}`"),
    };
    match value {
        Value::String(text) => check_text(&field(path), text),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{index}]"));
                check_json_at(document, item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                check_text(&format!("a key of {}", field(path)), key)?;
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                check_json_at(document, item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refusal(result: Result<(), AppError>) -> String {
        match result {
            Err(AppError::BadRequest(message)) => message,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn control_characters_are_refused_but_tab_and_line_breaks() {
        for c in ['\0', '\u{1}', '\u{8}', '\u{b}', '\u{c}', '\u{1b}', '\u{1f}', '\u{7f}', '\u{85}', '\u{9f}'] {
            assert!(is_refused(c), "U+{:04X}", c as u32);
        }
        // Format characters (zero-width space, bidi marks) are not control characters.
        for c in ['\t', '\n', '\r', ' ', 'a', 'é', 'Ü', '\u{a0}', '\u{200b}', '\u{202e}', '\u{feff}', '🫁'] {
            assert!(!is_refused(c), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn the_refusal_names_the_place_and_the_character() {
        assert!(check_text("comment", "two lines\r\n\tindented").is_ok());
        let message = refusal(check_text("query parameter `q`", "mni\0"));
        assert!(message.starts_with("query parameter `q` holds the control character U+0000;"), "{message}");
        assert!(refusal(check_text("x", "bell\u{7}")).contains("U+0007"));
    }

    #[test]
    fn every_string_of_a_json_document_is_checked_keys_included() {
        let clean =
            json!({ "name": "liver", "splits": { "case-1": "train" }, "anchor": [1, 2, 3], "note": null, "ok": true });
        assert!(check_json_text("JSON body", &clean).is_ok());
        let message = refusal(check_json_text("JSON body", &json!({ "status": "approved", "comment": "fine\u{0}" })));
        assert!(message.starts_with("JSON body field `comment` holds the control character U+0000"), "{message}");
        let message = refusal(check_json_text("JSON body", &json!({ "splits": { "a": "train", "b\u{1}": "test" } })));
        assert!(
            message.starts_with("a key of JSON body field `splits` holds the control character U+0001"),
            "{message}"
        );
        let message =
            refusal(check_json_text("model card", &json!({ "metrics": [{ "name": "dice" }, { "name": "hd\u{1b}" }] })));
        assert!(message.starts_with("model card field `metrics[1].name`"), "{message}");
        assert!(refusal(check_json_text("JSON body", &json!("\u{0}"))).starts_with("the JSON body holds"));
        assert!(
            refusal(check_json_text("JSON body", &json!({ "\u{0}": 1 }))).starts_with("a key of the JSON body holds")
        );
    }
}
