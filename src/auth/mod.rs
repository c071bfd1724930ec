//! Who is calling: passwords, tokens, the request extractor and login throttling.

pub mod extractor;
pub mod password;
pub mod throttle;
pub mod tokens;

pub use extractor::{Caller, Membership};
