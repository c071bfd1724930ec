use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::users::UserView;
use super::{Checks, JsonBody};
use crate::auth::{password, throttle, Caller};
use crate::db::{self, tokens::Refresh};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/auth/login").route(web::post().to(login)))
        .service(web::resource("/auth/refresh").route(web::post().to(refresh)))
        .service(web::resource("/auth/logout").route(web::post().to(logout)))
        .service(web::resource("/me").route(web::get().to(me)))
        .service(web::resource("/me/password").route(web::post().to(change_password)));
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    pub current_password: String,
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
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "`invalid_credentials`", body = crate::error::Problem),
        (status = 429, description = "`too_many_attempts`, with Retry-After", body = crate::error::Problem),
    )
)]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<LoginRequest>,
) -> ApiResult<HttpResponse> {
    let LoginRequest { username, password } = body.0;
    let forwarded = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let peer = req.peer_addr().map(|a| a.ip());
    let address = throttle::client_address(peer, forwarded, &state.settings.trusted_proxies);
    let account_key = throttle::account_key(&username);
    let address_key = address.map(throttle::address_key);

    let since = db::now() - throttle::WINDOW;
    let (keys, lookup_name) = (
        [Some(account_key.clone()), address_key.clone()].into_iter().flatten().collect::<Vec<_>>(),
        username.trim().to_lowercase(),
    );
    let (counts, user) = db::run(&state.pool, {
        let (account_key, address_key) = (account_key.clone(), address_key.clone());
        move |conn| {
            let account = db::tokens::recent_failures(conn, &account_key, since)?;
            let address = match &address_key {
                Some(key) => db::tokens::recent_failures(conn, key, since)?,
                None => (0, None),
            };
            Ok(((account, address), db::users::find_by_username(conn, &lookup_name)?))
        }
    })
    .await?;
    let ((account_failures, account_oldest), (address_failures, address_oldest)) = counts;
    let blocked_until = if account_failures >= throttle::MAX_ACCOUNT_FAILURES {
        account_oldest
    } else if address_failures >= throttle::MAX_ADDRESS_FAILURES {
        address_oldest
    } else {
        None
    };
    if let Some(oldest) = blocked_until {
        let wait = (oldest + throttle::WINDOW - db::now()).num_seconds().max(1) as u64;
        return Err(ApiError::new(
            ErrorCode::TooManyAttempts,
            format!("too many failed logins; try again in {wait} seconds"),
        )
        .retry_after(wait));
    }

    // Too long to be anyone's password: refuse without spending a hash on it.
    let plausible = password.chars().count() <= password::MAX_LEN;
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let verified = plausible && state.hasher.verify(password, stored).await?;
    let user = user.filter(|u| verified && u.active);
    let Some(user) = user else {
        let forget_before = since;
        db::run(&state.pool, move |conn| Ok(db::tokens::record_failure(conn, &keys, forget_before)?)).await?;
        return Err(ApiError::new(ErrorCode::InvalidCredentials, "wrong username or password"));
    };

    let ttl = state.settings.refresh_token_ttl_secs;
    let user_id = user.id.clone();
    let (session_id, refresh_token, record) = db::transaction(&state.pool, move |conn| {
        db::tokens::clear_failures(conn, &account_key)?;
        let (session_id, token) = db::tokens::start_session(conn, &user_id, ttl)?;
        let record = db::users::find(conn, &user_id)?.ok_or_else(|| ApiError::not_found("user"))?;
        Ok((session_id, token, record))
    })
    .await?;
    tracing::info!(user_id = %record.row.id, "logged in");
    Ok(HttpResponse::Ok().json(token_response(&state, &session_id, refresh_token, record.into())))
}

fn token_response(state: &AppState, session_id: &str, refresh_token: String, user: UserView) -> TokenResponse {
    let (access_token, expires_in) = state.keys.issue(&user.id, session_id, state.settings.access_token_ttl_secs);
    TokenResponse { access_token, refresh_token, token_type: "Bearer", expires_in, user }
}

/// Trade a refresh token for new tokens. The presented token is used up; presenting it again
/// ends the whole login, except a retry within 30 s whose new token has not been used yet.
#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "`invalid_refresh_token`", body = crate::error::Problem),
    )
)]
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
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    request_body = RefreshRequest,
    responses((status = 204, description = "logged out"))
)]
pub async fn logout(state: web::Data<AppState>, body: JsonBody<RefreshRequest>) -> ApiResult<HttpResponse> {
    let presented = body.0.refresh_token;
    db::run(&state.pool, move |conn| Ok(db::tokens::revoke_by_token(conn, &presented)?)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The calling user.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, body = crate::error::Problem))
)]
pub async fn me(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    let record = db::run(&state.pool, move |conn| Ok(db::users::find(conn, &caller.user_id)?))
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(HttpResponse::Ok().json(UserView::from(record)))
}

/// Change your own password. Every login of yours ends, this one included.
#[utoipa::path(
    post,
    path = "/api/v1/me/password",
    tag = "auth",
    security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "changed; log in again"),
        (status = 401, description = "`invalid_credentials`: the current password is wrong", body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
    )
)]
pub async fn change_password(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<ChangePasswordRequest>,
) -> ApiResult<HttpResponse> {
    let ChangePasswordRequest { current_password, new_password } = body.0;
    let mut checks = Checks::default();
    checks.take("new_password", password::check_rules(&new_password));
    checks.finish()?;
    let user_id = caller.user_id.clone();
    let stored =
        db::run(&state.pool, move |conn| Ok(db::users::find(conn, &user_id)?)).await?.map(|r| r.row.password_hash);
    if !state.hasher.verify(current_password, stored).await? {
        return Err(ApiError::new(ErrorCode::InvalidCredentials, "the current password is wrong"));
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
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
