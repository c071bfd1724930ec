//! HTTP handlers, one file per resource. Handlers parse, authorise, call domain and db, answer.

pub mod auth;
pub mod catalogue;
pub mod escalations;
pub mod health;
pub mod onsite;
pub mod pool;
pub mod sites;
pub mod sync;
pub mod tickets;
pub mod users;

use std::future::Future;
use std::pin::Pin;

use actix_web::error::PayloadError;
use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::error::{ApiError, ErrorCode, FieldError};

/// Largest request body accepted (a signature PNG, a day's sync batch).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .configure(auth::configure)
            .configure(sites::configure)
            .configure(users::configure)
            .configure(tickets::configure)
            .configure(pool::configure)
            .configure(escalations::configure)
            .configure(onsite::configure)
            .configure(catalogue::configure)
            .configure(sync::configure)
            .service(web::resource("/openapi.json").route(web::get().to(health::openapi_json))),
    )
    .configure(health::configure);
}

/// A JSON body. Unlike actix's `Json`, every failure is a problem+json answer and a type error
/// names the field it is in.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<mime::Mime>().ok())
            .is_some_and(|m| m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON));
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !is_json {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    "send the body as JSON with Content-Type: application/json",
                ));
            }
            let bytes = bytes.await.map_err(|e| match e.as_error::<PayloadError>() {
                Some(PayloadError::Overflow) => {
                    ApiError::new(ErrorCode::PayloadTooLarge, format!("the body may be at most {MAX_BODY_BYTES} bytes"))
                }
                _ => ApiError::new(ErrorCode::MalformedJson, format!("the body could not be read: {e}")),
            })?;
            parse_json(&bytes).map(JsonBody)
        })
    }
}

/// Parses a JSON document: a syntax error is 400 `malformed_json`, a value of the wrong shape is
/// 422 naming its field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde would take a struct from an array of its fields in order; every body is an object
    if bytes.trim_ascii_start().starts_with(b"[") {
        return Err(ApiError::validation(vec![FieldError::new("body", "must be a JSON object")]));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
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

/// For PATCH bodies: tells an absent field (`None`) from an explicit `null` (`Some(None)`).
pub fn nullable<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

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
