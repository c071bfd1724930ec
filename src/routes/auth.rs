use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;
use actix_web::{get, post};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::users::UserView;
use super::{Checks, JsonBody};
use crate::auth::{password, throttle, Caller};
use crate::commands::session;
use crate::db::{self, tokens::Refresh};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(login).service(refresh).service(logout).service(me).service(change_password);
}

/// Tokens, the user and their refusals must never sit in a browser's or a proxy's cache.
pub(super) fn no_store() -> DefaultHeaders {
    DefaultHeaders::new().add((header::CACHE_CONTROL, "no-store"))
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub username: String,
    /// A longer one is nobody's password (`invalid_credentials`).
    #[schema(max_length = 128)]
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    /// A longer one is nobody's password (`wrong_password`).
    #[schema(max_length = 128)]
    pub current_password: String,
    #[schema(min_length = 8, max_length = 128)]
    pub new_password: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub user: UserView,
}

/// Log in with a username and password.
#[utoipa::path(
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "`invalid_credentials`", body = crate::error::Problem),
        (status = 429, description = "`too_many_attempts`, with Retry-After", body = crate::error::Problem),
    )
)]
#[post("/auth/login", wrap = "no_store()")]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<LoginRequest>,
) -> ApiResult<HttpResponse> {
    let LoginRequest { username, password } = body.0;
    let limits = throttle::limits(&username, client_address(&state, &req));
    let user = db::run(&state.pool, {
        let limits = limits.clone();
        move |conn| Ok(session::login_candidate(conn, &limits, &username)?)
    })
    .await?;

    // Too long to be anyone's password: refuse without spending a hash on it.
    let plausible = password.chars().count() <= password::MAX_LEN;
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let verified = plausible && state.hasher.verify(password, stored).await?;
    let user = user.filter(|u| verified && u.active);
    let Some(user) = user else {
        db::run(&state.pool, move |conn| Ok(session::record_failures(conn, &limits)?)).await?;
        return Err(ApiError::new(ErrorCode::InvalidCredentials, "wrong username or password"));
    };

    let ttl = state.settings.refresh_token_ttl_secs;
    let user_id = user.id.clone();
    let (session_id, refresh_token, record) =
        db::transaction(&state.pool, move |conn| Ok(session::start_session(conn, &limits, &user_id, ttl)?)).await?;
    tracing::info!(user_id = %record.row.id, "logged in");
    Ok(HttpResponse::Ok().json(token_response(&state, &session_id, refresh_token, record.into())))
}

fn client_address(state: &AppState, req: &HttpRequest) -> Option<std::net::IpAddr> {
    let forwarded = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
    throttle::client_address(req.peer_addr().map(|a| a.ip()), forwarded, &state.settings.trusted_proxies)
}

fn token_response(state: &AppState, session_id: &str, refresh_token: String, user: UserView) -> TokenResponse {
    let (access_token, expires_in) = state.keys.issue(&user.id, session_id, state.settings.access_token_ttl_secs);
    TokenResponse { access_token, refresh_token, token_type: "Bearer", expires_in, user }
}

/// Trade a refresh token for new tokens. The presented token is used up; presenting it again
/// ends the whole login, except a retry within 30 s whose new token has not been used yet.
#[utoipa::path(
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "`invalid_refresh_token`", body = crate::error::Problem),
    )
)]
#[post("/auth/refresh", wrap = "no_store()")]
pub async fn refresh(state: web::Data<AppState>, body: JsonBody<RefreshRequest>) -> ApiResult<HttpResponse> {
    let presented = body.0.refresh_token;
    let ttl = state.settings.refresh_token_ttl_secs;
    let outcome = db::transaction(&state.pool, move |conn| {
        Ok(match db::tokens::rotate(conn, &presented, ttl)? {
            Refresh::Issued { user_id, session_id, token } => {
                let record = db::users::find(conn, &user_id)?.ok_or_else(|| ApiError::not_found("user"))?;
                Some((session_id, token, record))
            }
            Refresh::Refused => None,
        })
    })
    .await?;
    let (session_id, token, record) = outcome.ok_or_else(|| {
        ApiError::new(ErrorCode::InvalidRefreshToken, "the refresh token is unknown, expired or used; log in again")
    })?;
    Ok(HttpResponse::Ok().json(token_response(&state, &session_id, token, record.into())))
}

/// End the login the refresh token belongs to. Always 204.
#[utoipa::path(
    tag = "auth",
    request_body = RefreshRequest,
    responses((status = 204, description = "logged out"))
)]
#[post("/auth/logout", wrap = "no_store()")]
pub async fn logout(state: web::Data<AppState>, body: JsonBody<RefreshRequest>) -> ApiResult<HttpResponse> {
    let presented = body.0.refresh_token;
    db::run(&state.pool, move |conn| Ok(db::tokens::revoke_by_token(conn, &presented)?)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The calling user.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, body = crate::error::Problem))
)]
#[get("/me", wrap = "no_store()")]
pub async fn me(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    let record = db::run(&state.pool, move |conn| Ok(db::users::find(conn, &caller.user_id)?))
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(HttpResponse::Ok().json(UserView::from(record)))
}

/// Change your own password. Every login of yours ends, this one included. A wrong current
/// password counts as a failed login of yours from this address (and answers 403, not 401: the
/// login itself is fine); too many of them answer 429 like the login does.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "changed; log in again"),
        (status = 401, description = "`missing_token` or `invalid_token`", body = crate::error::Problem),
        (status = 403, description = "`wrong_password`: the current password is wrong", body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
        (status = 429, description = "`too_many_attempts`, with Retry-After", body = crate::error::Problem),
    )
)]
#[post("/me/password", wrap = "no_store()")]
pub async fn change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    body: JsonBody<ChangePasswordRequest>,
) -> ApiResult<HttpResponse> {
    let ChangePasswordRequest { current_password, new_password } = body.0;
    let mut checks = Checks::default();
    checks.take("new_password", password::check_rules(&new_password));
    checks.finish()?;
    let user_id = caller.user_id.clone();
    let address = client_address(&state, &req);
    let (limits, stored) = db::run(&state.pool, move |conn| {
        let row = db::users::find(conn, &user_id)?.ok_or_else(|| ApiError::not_found("user"))?.row;
        let limits = throttle::limits(&row.username, address);
        session::refuse_if_throttled(conn, &limits)?;
        Ok((limits, row.password_hash))
    })
    .await?;
    let plausible = current_password.chars().count() <= password::MAX_LEN;
    if !(plausible && state.hasher.verify(current_password, Some(stored)).await?) {
        db::run(&state.pool, move |conn| Ok(session::record_failures(conn, &limits)?)).await?;
        return Err(ApiError::new(ErrorCode::WrongPassword, "the current password is wrong"));
    }
    let hash = state.hasher.hash(new_password).await?;
    db::transaction(&state.pool, move |conn| {
        let changes = db::users::UserChanges {
            password_hash: Some(hash.clone()),
            updated_at: Some(db::now()),
            ..Default::default()
        };
        db::users::update(conn, &caller.user_id, &changes)?;
        db::tokens::revoke_all_for_user(conn, &caller.user_id)?;
        session::clear_failures(conn, &limits)?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
