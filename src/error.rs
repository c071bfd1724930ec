//! One error type for the whole API, answered as `application/problem+json` with a stable `code`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// The stable machine codes apps switch on. Add new ones; never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    ValidationFailed,
    MalformedJson,
    UnsupportedMediaType,
    PayloadTooLarge,
    NotFound,
    MethodNotAllowed,
    MissingToken,
    InvalidToken,
    InvalidCredentials,
    InvalidRefreshToken,
    TooManyAttempts,
    WrongPassword,
    Forbidden,
    UsernameTaken,
    SiteCodeTaken,
    AlreadyClaimed,
    NotClaimable,
    TooManyActive,
    InvalidTransition,
    TicketChanged,
    IdempotencyKeyReused,
    IdempotencyKeyInUse,
    InvalidCode,
    CodeLocked,
    SmsRateLimited,
    QuoteRequired,
    VersionConflict,
    NotYourTicket,
    UnknownOperation,
    UnsupportedSchemaVersion,
    ClientOfAnotherUser,
    OpsMissing,
    /// An escalation or a handover someone of the desk already acknowledged.
    AlreadyAcknowledged,
    /// A handover is acknowledged by the incoming shift, not by whoever wrote it.
    OwnHandover,
    DatabaseUnavailable,
    /// A deadlock or serialization failure that retries did not get past: try again shortly.
    DatabaseBusy,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ValidationFailed => "validation_failed",
            Self::MalformedJson => "malformed_json",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::MissingToken => "missing_token",
            Self::InvalidToken => "invalid_token",
            Self::InvalidCredentials => "invalid_credentials",
            Self::InvalidRefreshToken => "invalid_refresh_token",
            Self::TooManyAttempts => "too_many_attempts",
            Self::WrongPassword => "wrong_password",
            Self::Forbidden => "forbidden",
            Self::UsernameTaken => "username_taken",
            Self::SiteCodeTaken => "site_code_taken",
            Self::AlreadyClaimed => "already_claimed",
            Self::NotClaimable => "not_claimable",
            Self::TooManyActive => "too_many_active",
            Self::InvalidTransition => "invalid_transition",
            Self::TicketChanged => "ticket_changed",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::IdempotencyKeyInUse => "idempotency_key_in_use",
            Self::InvalidCode => "invalid_code",
            Self::CodeLocked => "code_locked",
            Self::SmsRateLimited => "sms_rate_limited",
            Self::QuoteRequired => "quote_required",
            Self::VersionConflict => "version_conflict",
            Self::NotYourTicket => "not_your_ticket",
            Self::UnknownOperation => "unknown_operation",
            Self::UnsupportedSchemaVersion => "unsupported_schema_version",
            Self::ClientOfAnotherUser => "client_of_another_user",
            Self::OpsMissing => "ops_missing",
            Self::AlreadyAcknowledged => "already_acknowledged",
            Self::OwnHandover => "own_handover",
            Self::DatabaseUnavailable => "database_unavailable",
            Self::DatabaseBusy => "database_busy",
            Self::Internal => "internal_error",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::ValidationFailed | Self::IdempotencyKeyReused | Self::InvalidCode => StatusCode::UNPROCESSABLE_ENTITY,
            Self::CodeLocked => StatusCode::LOCKED,
            Self::UnknownOperation => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnsupportedSchemaVersion => StatusCode::UPGRADE_REQUIRED,
            Self::ClientOfAnotherUser => StatusCode::FORBIDDEN,
            Self::SmsRateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::MalformedJson => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::MissingToken | Self::InvalidToken | Self::InvalidCredentials | Self::InvalidRefreshToken => {
                StatusCode::UNAUTHORIZED
            }
            Self::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            Self::Forbidden => StatusCode::FORBIDDEN,
            // not 401: the caller's login is fine, and apps read 401 as "logged out"
            Self::WrongPassword => StatusCode::FORBIDDEN,
            Self::UsernameTaken
            | Self::SiteCodeTaken
            | Self::AlreadyClaimed
            | Self::NotClaimable
            | Self::TooManyActive
            | Self::InvalidTransition
            | Self::TicketChanged
            | Self::QuoteRequired
            | Self::VersionConflict
            | Self::NotYourTicket
            | Self::OpsMissing
            | Self::AlreadyAcknowledged
            | Self::OwnHandover
            | Self::IdempotencyKeyInUse => StatusCode::CONFLICT,
            Self::DatabaseUnavailable | Self::DatabaseBusy => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::ValidationFailed => "The request has invalid fields",
            Self::MalformedJson => "The body is not valid JSON",
            Self::UnsupportedMediaType => "The body must be application/json",
            Self::PayloadTooLarge => "The body is too large",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::MissingToken => "Authentication required",
            Self::InvalidToken => "The access token is not valid",
            Self::InvalidCredentials => "Wrong username or password",
            Self::InvalidRefreshToken => "The refresh token is not valid",
            Self::TooManyAttempts => "Too many failed logins",
            Self::WrongPassword => "The current password is wrong",
            Self::Forbidden => "Not allowed for your role",
            Self::UsernameTaken => "The username is taken",
            Self::SiteCodeTaken => "The site code is taken",
            Self::AlreadyClaimed => "Another technician has this ticket",
            Self::NotClaimable => "The ticket cannot be claimed",
            Self::TooManyActive => "You hold too many active tickets",
            Self::InvalidTransition => "Not possible in the ticket's current state",
            Self::TicketChanged => "The ticket changed meanwhile",
            Self::IdempotencyKeyReused => "The Idempotency-Key was used for another request",
            Self::IdempotencyKeyInUse => "A request with this Idempotency-Key is in progress",
            Self::InvalidCode => "The code is wrong",
            Self::CodeLocked => "Too many wrong codes",
            Self::SmsRateLimited => "Too many messages",
            Self::QuoteRequired => "The quote must be accepted first",
            Self::VersionConflict => "Changed by someone else meanwhile",
            Self::NotYourTicket => "The ticket is no longer yours",
            Self::UnknownOperation => "Unknown operation",
            Self::UnsupportedSchemaVersion => "Update the app",
            Self::ClientOfAnotherUser => "This app install belongs to another user",
            Self::OpsMissing => "Earlier operations are missing",
            Self::AlreadyAcknowledged => "Already acknowledged",
            Self::OwnHandover => "Your own handover",
            Self::DatabaseUnavailable => "The database is unavailable",
            Self::DatabaseBusy => "The database was busy",
            Self::Internal => "Internal error",
        }
    }
}

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// The problem+json body (RFC 9457) every error answers with.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub retry_after_secs: Option<u64>,
    /// Extra members of the problem object (e.g. `attempts_left`).
    pub extra: Map<String, Value>,
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self { code, detail: detail.into(), errors: Vec::new(), retry_after_secs: None, extra: Map::new() }
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        let detail = format!("invalid fields: {}", fields.join(", "));
        Self { errors, ..Self::new(ErrorCode::ValidationFailed, detail) }
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, detail)
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs.max(1));
        self
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    /// A failure that is ours, not the caller's: the cause is logged, never shown.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::Internal, "something went wrong on our side; it has been logged")
    }

    pub fn database_unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "database unavailable");
        Self::new(ErrorCode::DatabaseUnavailable, "the database did not answer; try again shortly").retry_after(2)
    }

    /// A deadlock or serialization failure: the transaction was undone and may simply run again.
    pub fn database_busy(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "transaction conflict; it is run again or answered 503");
        Self::new(ErrorCode::DatabaseBusy, "the database was busy with other changes; try again shortly").retry_after(1)
    }

    /// A failure of the database rather than of the request (down, a dropped connection, a
    /// deadlock or serialization failure): the same request may succeed when sent again, and
    /// nothing about it may be kept as the request's fault.
    pub fn is_transient(&self) -> bool {
        matches!(self.code, ErrorCode::DatabaseUnavailable | ErrorCode::DatabaseBusy)
    }

    pub fn problem(&self) -> Problem {
        Problem {
            type_: format!("https://repairdesk.dev/problems/{}", self.code.as_str()),
            title: self.code.title().to_owned(),
            status: self.code.status().as_u16(),
            detail: self.detail.clone(),
            code: self.code.as_str().to_owned(),
            errors: (!self.errors.is_empty()).then(|| self.errors.clone()),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

/// Marks an error answer whose request left a trace that stands (a wrong code was counted): an
/// `Idempotency-Key` keeps it, so sending the request again does not count twice.
#[derive(Debug, Clone, Copy)]
pub struct LeavesTrace;

impl ErrorCode {
    /// A refusal of this kind commits what it counted.
    pub fn leaves_trace(self) -> bool {
        matches!(self, Self::InvalidCode)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = match serde_json::to_value(self.problem()) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        for (k, v) in &self.extra {
            body.insert(k.clone(), v.clone());
        }
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if let Some(secs) = self.retry_after_secs {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        let mut response = response.body(Value::Object(body).to_string());
        if self.code.leaves_trace() {
            response.extensions_mut().insert(LeavesTrace);
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Collects field errors while a request is checked, so one answer names every bad field.
#[derive(Default)]
pub struct Checks(Vec<FieldError>);

impl Checks {
    /// Keeps the parsed value, or records the message against `field`.
    pub fn take<T>(&mut self, field: &str, parsed: Result<T, String>) -> Option<T> {
        parsed.map_err(|m| self.0.push(FieldError::new(field, m))).ok()
    }

    pub fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self.0))
        }
    }
}
