//! The authenticated caller of a request, checked against the database on every request so a
//! revoked login or a deactivated user stops at once, not at token expiry.

use std::future::Future;
use std::pin::Pin;

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};

use crate::auth::Caller;
use crate::commands::session;
use crate::db;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::new(ErrorCode::MissingToken, "send Authorization: Bearer <access_token>"))?;
    let value = value.to_str().unwrap_or_default();
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(token.trim().to_owned())
        }
        _ => Err(ApiError::new(ErrorCode::MissingToken, "send Authorization: Bearer <access_token>")),
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("AppState missing"))?;
            let claims = state
                .keys
                .verify(&token?)
                .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken, "the access token is invalid or expired"))?;
            live_caller(&state, claims.sid, claims.sub).await
        })
    }
}

/// The caller of a live session, in one read: who they are, their sites and trades.
pub async fn live_caller(state: &AppState, session_id: String, user_id: String) -> Result<Caller, ApiError> {
    db::run(&state.pool, move |conn| Ok(session::live_caller(conn, &session_id, &user_id)?))
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken, "this login has ended; log in again"))
}
