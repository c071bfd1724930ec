//! The rules of the repair desk as plain functions over plain data: no I/O here.
//!
//! A rule's numbers and patterns are named consts: the checks use them, and the schema of the
//! API doc states them (`tests/api/openapi.rs` holds the two together).

pub mod access;
pub mod bill;
pub mod category;
pub mod code;
pub mod edit;
pub mod handover;
pub mod material;
pub mod matter;
pub mod messages;
pub mod phone;
pub mod place;
pub mod push;
pub mod report;
pub mod site;
pub mod ticket;
pub mod time;
pub mod user;

/// The schema pattern of a text that must not be blank: texts are trimmed, and one left empty
/// is refused where it is required. Like every text, it may not hold the NUL character.
pub const NOT_BLANK: &str = r"^[^\u0000]*[^\s\u0000][^\u0000]*$";

/// A schema pattern `^(?:...)$` without its anchors, for proptest's `string_regex`, which takes
/// none.
#[cfg(test)]
pub(crate) fn unanchored(pattern: &str) -> String {
    pattern.strip_prefix('^').and_then(|p| p.strip_suffix('$')).expect("an anchored pattern").to_owned()
}
