//! HTTP handlers, one file per resource. Handlers parse, authorise, call domain and db, answer.

pub mod auth;
pub mod caller;
pub mod catalogue;
pub mod devices;
pub mod escalations;
pub mod handovers;
pub mod health;
pub mod matters;
pub mod onsite;
pub mod openapi;
pub mod pool;
pub mod reports;
pub mod sites;
pub mod sync;
pub mod tickets;
pub mod users;

use std::future::{ready, Future, Ready};
use std::ops::Deref;
use std::pin::Pin;

use actix_web::error::PayloadError;
use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;
use utoipa_actix_web::{scope, service_config::ServiceConfig};

pub use crate::commands::nullable;
pub use crate::error::Checks;
use crate::error::{ApiError, ErrorCode};
pub use crate::input::{nul_field, parse_json, parse_json_allowing_nul, parse_query, scrub_nul, NUL_MESSAGE};

/// Largest request body accepted (a signature PNG, a day's sync batch).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Every route, registered once: a handler's `#[utoipa::path]` and its actix route macro are
/// its spec entry and its route, collected together (`utoipa-actix-web`), so what is served is
/// what is documented. The spec is built from this same function (`openapi::spec`).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(
        scope("/api/v1")
            .configure(auth::configure)
            .configure(sites::configure)
            .configure(users::configure)
            .configure(tickets::configure)
            .configure(pool::configure)
            .configure(escalations::configure)
            .configure(handovers::configure)
            .configure(matters::configure)
            .configure(reports::configure)
            .configure(onsite::configure)
            .configure(catalogue::configure)
            .configure(sync::configure)
            .configure(devices::configure)
            .route("/openapi.json", web::get().to(health::openapi_json)),
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

/// A path parameter. Unlike actix's `Path`, a segment holding a NUL character is 404, as is one
/// that does not parse (PostgreSQL cannot compare text holding one).
pub struct Path<T>(pub T);

impl<T> Path<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Path<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned> FromRequest for Path<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let path = req.match_info();
        let has_nul = path.iter().any(|(_, segment)| {
            segment.contains('\0') || percent_encoding::percent_decode_str(segment).any(|b| b == 0)
        });
        ready(match has_nul {
            true => Err(ApiError::not_found("resource")),
            false => path.load::<T>().map(Path).map_err(|_| ApiError::not_found("resource")),
        })
    }
}

/// Query parameters. Unlike actix's `Query`, a bad value is 422 naming its parameter, and so is
/// one holding a NUL character.
pub struct Query<T>(pub T);

impl<T> Query<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Query<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parse_query(req.query_string()).map(Query))
    }
}
