//! Decoding what clients send, for every edge that takes it (the HTTP routes, sync): JSON
//! documents and query strings, refused with problem answers that name the field, and the text
//! no engine stores alike (NUL characters, lone surrogates) refused the same way on both.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, ErrorCode, FieldError};

/// What every text from outside is refused for: PostgreSQL cannot store the NUL character,
/// though SQLite would.
pub const NUL_MESSAGE: &str = "must not contain the NUL character (\\u0000)";

/// Parses a JSON document: a syntax error is 400 `malformed_json`, a value of the wrong shape is
/// 422 naming its field, and so is a string (or a member name) holding a NUL character or a lone
/// UTF-16 surrogate (`"\ud800"`), which no engine can store alike.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // a raw NUL byte is a JSON syntax error already; only the escape `\u0000` can carry one
    if has_nul_escape(bytes) {
        if let Some(field) = serde_json::from_slice::<Value>(bytes).ok().as_ref().and_then(nul_field) {
            return Err(ApiError::field(if field.is_empty() { "body" } else { &field }, NUL_MESSAGE));
        }
    }
    parse_json_allowing_nul(bytes)
}

/// [`parse_json`] without the NUL check, for a body whose parts are checked one by one (a sync
/// push refuses each operation on its own).
pub fn parse_json_allowing_nul<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde would take a struct from an array of its fields in order; every body is an object
    if bytes.trim_ascii_start().starts_with(b"[") {
        return Err(ApiError::validation(vec![FieldError::new("body", "must be a JSON object")]));
    }
    decode(bytes)
}

/// [`parse_json_allowing_nul`] for a body that is a list of objects (an RxDB push): each item is
/// read on its own, and a refusal names it (`[3].newDocumentState`).
pub fn parse_json_list_allowing_nul<T: DeserializeOwned>(bytes: &[u8]) -> Result<Vec<T>, ApiError> {
    if !bytes.trim_ascii_start().starts_with(b"[") {
        return Err(ApiError::field("body", "must be a JSON array"));
    }
    let items: Vec<Value> = decode(bytes)?;
    let (mut read, mut errors) = (Vec::with_capacity(items.len()), Vec::new());
    for (i, item) in items.into_iter().enumerate() {
        if !item.is_object() {
            errors.push(FieldError::new(format!("[{i}]"), "must be a JSON object"));
            continue;
        }
        match serde_path_to_error::deserialize(item) {
            Ok(item) => read.push(item),
            Err(e) => {
                let path = e.path().to_string();
                let message = e.into_inner().to_string();
                let field = match (path.as_str(), message.strip_prefix("missing field `")) {
                    (".", Some(rest)) => format!("[{i}].{}", rest.trim_end_matches('`')),
                    (".", None) => format!("[{i}]"),
                    _ => format!("[{i}].{path}"),
                };
                errors.push(FieldError::new(field, message));
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    Ok(read)
}

/// A document of any shape, refused as [`parse_json`] says.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize(&mut de).or_else(|e| match whole_floats_as_integers(bytes, &e) {
        Some(value) => serde_path_to_error::deserialize(value),
        None => Err(e),
    });
    parsed.map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // serde_json refuses an escaped lone surrogate as a syntax error; it is a bad value
        if inner.is_syntax() && is_lone_surrogate(&inner.to_string(), bytes) {
            let field = if path == "." { "body".to_owned() } else { path };
            return ApiError::field(&field, "must be valid Unicode text: a lone UTF-16 surrogate escape is not");
        }
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            return ApiError::new(ErrorCode::MalformedJson, format!("the body is not valid JSON: {inner}"));
        }
        let message = inner.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
        // serde names a missing field in its message, not in the path
        let field = match (path.as_str(), message.strip_prefix("missing field `")) {
            (".", Some(rest)) => rest.trim_end_matches('`').to_owned(),
            (".", None) => "body".to_owned(),
            _ => path,
        };
        ApiError::validation(vec![FieldError::new(field, message)])
    })
}

/// `2.0` is the integer 2 to JSON Schema, so to the spec's `type: integer`, though not to serde.
/// When a document was refused for a float: the document again, each whole float in it (within
/// `i64`) made an integer. `None` when it was refused for something else.
fn whole_floats_as_integers(bytes: &[u8], refusal: &serde_path_to_error::Error<serde_json::Error>) -> Option<Value> {
    fn walk(value: &mut Value) {
        match value {
            Value::Number(n) if n.is_f64() => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                // i64::MIN is -2^63 exactly; 2^63 is one past i64::MAX
                if f.fract() == 0.0 && f >= i64::MIN as f64 && f < -(i64::MIN as f64) {
                    *value = Value::from(f as i64);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            Value::Object(members) => members.values_mut().for_each(walk),
            _ => {}
        }
    }
    if !refusal.inner().to_string().starts_with("invalid type: floating point") {
        return None;
    }
    let mut value: Value = serde_json::from_slice(bytes).ok()?;
    walk(&mut value);
    Some(value)
}

/// Whether a JSON text holds the escape `\u0000` (not an escaped backslash followed by `u0000`).
fn has_nul_escape(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes[i + 1..].starts_with(b"u0000") {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// serde_json's errors for `"\\ud800"` (a leading surrogate alone, or before something else than a
/// trailing one) and `"\\udc00"`.
fn is_lone_surrogate(message: &str, bytes: &[u8]) -> bool {
    message.starts_with("lone leading surrogate")
        || (message.starts_with("unexpected end of hex escape")
            && bytes
                .windows(3)
                .any(|w| w[0] == b'u' && w[1].eq_ignore_ascii_case(&b'd') && b"89abcdefABCDEF".contains(&w[2])))
}

/// Where the first NUL character of a JSON value is, as `field.list[2].name` (empty: the value
/// itself); `None` when it holds none.
pub fn nul_field(value: &Value) -> Option<String> {
    fn join(head: String, rest: String) -> String {
        match rest.chars().next() {
            None => head,
            Some('[') => head + &rest,
            Some(_) => format!("{head}.{rest}"),
        }
    }
    match value {
        Value::String(s) => s.contains('\0').then(String::new),
        Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, item)| nul_field(item).map(|rest| join(format!("[{i}]"), rest)))
        }
        Value::Object(members) => members.iter().find_map(|(name, item)| {
            if name.contains('\0') {
                return Some(name.replace('\0', "\u{FFFD}"));
            }
            nul_field(item).map(|rest| join(name.clone(), rest))
        }),
        _ => None,
    }
}

/// Replaces each NUL character of `text` with U+FFFD; `true` when there was one.
pub fn scrub_nul(text: &mut String) -> bool {
    if !text.contains('\0') {
        return false;
    }
    *text = text.replace('\0', "\u{FFFD}");
    true
}

/// Parses a query string (`a=1&b=x`) into `T`.
pub fn parse_query<T: DeserializeOwned>(raw: &str) -> Result<T, ApiError> {
    for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
        if name.contains('\0') || value.contains('\0') {
            return Err(ApiError::field(&name.replace('\0', "\u{FFFD}"), NUL_MESSAGE));
        }
    }
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(raw.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "query".to_owned() } else { path };
        ApiError::field(&field, e.into_inner().to_string())
    })
}
