//! The authenticated caller of a request, checked against the database on every request so a
//! revoked login or a deactivated user stops at once, not at token expiry.

use std::future::Future;
use std::pin::Pin;

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};

use std::sync::Arc;

use crate::auth::{Caller, Membership};
use crate::db;
use crate::domain::user::Role;
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
    let (sid, sub) = (session_id.clone(), user_id.clone());
    let who = db::run(&state.pool, move |conn| Ok(db::tokens::live_session(conn, &sid, &sub)?))
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken, "this login has ended; log in again"))?;
    let role = Role::parse(&who.role).ok_or_else(|| ApiError::internal(format!("unknown role {}", who.role)))?;
    let membership = Some(Arc::new(Membership { sites: who.sites, trades: who.trades }));
    Ok(Caller { user_id, session_id, role, membership })
}
