//! Why a command did not happen, in the commands' own terms. The HTTP routes and sync turn it into
//! their problem answer (`From<Error> for ApiError`, below) only at their edge.

use serde_json::{Map, Value};

use crate::db::WorkError;
use crate::error::{ApiError, ErrorCode, FieldError};

/// Why a command did not happen.
#[derive(Debug, Clone)]
pub enum Error {
    /// The request breaks a rule of its own, each bad field named; nothing was changed.
    Invalid(Vec<FieldError>),
    /// No such ticket (or material line, site) that the caller may act on.
    NotFound(String),
    /// The caller's role may not do this.
    Forbidden(String),
    /// The ticket's state, or a limit, refuses it. `code` is what clients switch on; `extra` what
    /// they need to recover (the current version, the attempts left...).
    Refused { code: ErrorCode, detail: String, extra: Map<String, Value>, retry_after_secs: Option<u64> },
    /// The server failed, not the request: the database down or busy, or a bug. A transient one
    /// ([`Error::is_transient`]) may simply run again and is never the caller's fault.
    Server(ApiError),
}

impl Error {
    /// A refusal with its stable code.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Error::Refused { code, detail: detail.into(), extra: Map::new(), retry_after_secs: None }
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Error::Invalid(vec![FieldError::new(field, message)])
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        Error::Invalid(errors)
    }

    pub fn not_found(what: &str) -> Self {
        Error::NotFound(what.to_owned())
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Error::Forbidden(detail.into())
    }

    /// A failure that is ours: logged, never shown.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Error::Server(ApiError::internal(cause))
    }

    /// Adds what the client needs to recover from a refusal.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        if let Error::Refused { extra, .. } = &mut self {
            extra.insert(key.to_owned(), value.into());
        }
        self
    }

    /// When a refusal for a limit may be tried again.
    pub fn retry_after(mut self, secs: u64) -> Self {
        if let Error::Refused { retry_after_secs, .. } = &mut self {
            *retry_after_secs = Some(secs.max(1));
        }
        self
    }

    /// The stable code clients switch on.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Invalid(_) => ErrorCode::ValidationFailed,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::Forbidden(_) => ErrorCode::Forbidden,
            Error::Refused { code, .. } => *code,
            Error::Server(e) => e.code,
        }
    }

    /// The server failed in a way that may pass (see [`ApiError::is_transient`]).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Server(e) if e.is_transient())
    }

    /// The bad fields of an [`Error::Invalid`].
    pub fn fields(&self) -> &[FieldError] {
        match self {
            Error::Invalid(errors) => errors,
            _ => &[],
        }
    }

    /// What is wrong, in words.
    pub fn detail(&self) -> String {
        ApiError::from(self.clone()).detail
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code().as_str(), self.detail())
    }
}

/// The problem answer of a command's refusal, for the HTTP routes and sync.
impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(errors) => ApiError::validation(errors),
            Error::NotFound(what) => ApiError::not_found(&what),
            Error::Forbidden(detail) => ApiError::forbidden(detail),
            Error::Refused { code, detail, extra, retry_after_secs } => {
                let mut answer = ApiError::new(code, detail);
                answer.extra = extra;
                answer.retry_after_secs = retry_after_secs;
                answer
            }
            Error::Server(e) => e,
        }
    }
}

/// What the layers below the commands answer (the read model, the caller's role, the SMS
/// limits) in the commands' terms.
impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        match e.code {
            ErrorCode::ValidationFailed => Error::Invalid(e.errors),
            ErrorCode::NotFound => Error::NotFound(e.detail.trim_end_matches(" not found").to_owned()),
            ErrorCode::Forbidden => Error::Forbidden(e.detail),
            ErrorCode::DatabaseUnavailable | ErrorCode::DatabaseBusy | ErrorCode::Internal => Error::Server(e),
            code => Error::Refused { code, detail: e.detail, extra: e.extra, retry_after_secs: e.retry_after_secs },
        }
    }
}

impl From<diesel::result::Error> for Error {
    fn from(e: diesel::result::Error) -> Self {
        Error::Server(ApiError::from(e))
    }
}

/// Commands run inside [`crate::db::write_transaction`] with their own error.
impl WorkError for Error {
    fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        Error::Server(<ApiError as WorkError>::unavailable(cause))
    }

    fn crashed(cause: &dyn std::fmt::Display) -> Self {
        Error::Server(<ApiError as WorkError>::crashed(cause))
    }

    fn is_busy(&self) -> bool {
        matches!(self, Error::Server(e) if e.is_busy())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_keeps_its_code_and_what_helps_recover() {
        let e = Error::new(ErrorCode::VersionConflict, "reload").with("current_version", 7).retry_after(0);
        let answer = ApiError::from(e.clone());
        assert_eq!((answer.code, answer.extra["current_version"].as_i64()), (ErrorCode::VersionConflict, Some(7)));
        assert_eq!(answer.retry_after_secs, Some(1));
        assert_eq!(Error::from(answer).code(), ErrorCode::VersionConflict);
    }

    #[test]
    fn the_answers_of_the_layers_below_keep_their_meaning() {
        assert!(matches!(Error::from(ApiError::not_found("ticket")), Error::NotFound(w) if w == "ticket"));
        assert_eq!(ApiError::from(Error::not_found("ticket")).detail, "ticket not found");
        assert!(Error::from(ApiError::database_busy("deadlock")).is_transient());
        assert!(!Error::field("note", "is required").is_transient());
        assert_eq!(Error::field("note", "is required").fields()[0].field, "note");
    }
}
