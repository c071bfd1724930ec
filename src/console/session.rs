//! The console's login: the same accounts, throttle and sessions as the API's login
//! (`commands::session`), held in a cookie (`HttpOnly`, `SameSite=Strict`, `Secure` when the
//! request came over TLS) that names the session; ending the session ends the cookie. Every form
//! carries a CSRF token made from the session (`JwtKeys::mac`), checked on every POST; the login
//! form, before there is a session, a random one also set as a cookie (double submit).

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{time::Duration as CookieAge, Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use maud::html;
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::i18n::{self, Lang};
use super::{is_htmx, layout, Page, Refusal};
use crate::auth::{throttle, Caller};
use crate::commands::session;
use crate::db;
use crate::domain::user::Role;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "rd_console";
const LOGIN_CSRF_COOKIE: &str = "rd_login_csrf";
/// A console login lasts a shift and a half; the session can be ended sooner (logout, password
/// change, deactivation).
pub const SESSION_TTL_SECS: i64 = 12 * 3600;

/// A logged-in member of a desk (dispatcher, supervisor or admin), with this session's CSRF token.
pub struct Desk {
    pub caller: Caller,
    pub csrf: String,
    pub lang: Lang,
}

fn secure(req: &HttpRequest) -> bool {
    req.connection_info().scheme() == "https"
}

fn cookie<'a>(req: &HttpRequest, name: &'a str, value: String) -> Cookie<'a> {
    Cookie::build(name, value).path("/").http_only(true).same_site(SameSite::Strict).secure(secure(req)).finish()
}

fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The desk member of the session the cookie names, read once per request.
async fn desk_of(req: HttpRequest) -> Result<Desk, Refusal> {
    let lang = Lang::of(&req);
    let login = || Refusal::LoginNeeded { htmx: is_htmx(&req), lang };
    let state = req.app_data::<web::Data<AppState>>().cloned().ok_or_else(login)?;
    let token = req.cookie(SESSION_COOKIE).ok_or_else(login)?;
    let claims = state.keys.verify_console(token.value()).ok_or_else(login)?;
    let caller = db::run(&state.pool, move |conn| Ok(session::live_caller(conn, &claims.sid, &claims.sub)?))
        .await
        .map_err(|e| Refusal::from_api(lang, e))?
        .ok_or_else(login)?;
    if caller.role == Role::Technician {
        return Err(Refusal::Forbidden { lang, message: technicians_refused(lang).into() });
    }
    let csrf = state.keys.mac("console csrf", &caller.session_id);
    Ok(Desk { caller, csrf, lang })
}

fn technicians_refused(lang: Lang) -> &'static str {
    lang.t(
        "控制台仅供客服、调度和主管使用；维修师傅请使用手机 App。",
        "The console is the desk's (dispatchers, supervisors, admins); technicians use the phone app.",
    )
}

impl FromRequest for Desk {
    type Error = Refusal;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Refusal>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            // a POST proves its form through DeskForm, which reads the body
            if req.method() == Method::POST {
                return Err(Refusal::StaleForm { lang: Lang::of(&req) });
            }
            desk_of(req).await
        })
    }
}

/// A form field as typed, `None` when left empty (or only blanks).
pub fn filled(v: &Option<String>) -> Option<String> {
    v.clone().filter(|s| !s.trim().is_empty())
}

/// A form field that holds a whole number, `None` when left empty.
pub fn number(field: &str, raw: &Option<String>) -> Result<Option<i64>, ApiError> {
    filled(raw)
        .map(|s| s.trim().parse::<i64>().map_err(|_| ApiError::field(field, "must be a whole number")))
        .transpose()
}

/// A POSTed form of a desk member: the session, the CSRF token checked, and the fields.
pub struct DeskForm<T> {
    pub desk: Desk,
    pub form: T,
}

impl<T: DeserializeOwned + 'static> FromRequest for DeskForm<T> {
    type Error = Refusal;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Refusal>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let bytes = web::Bytes::from_request(&req, payload);
        Box::pin(async move {
            let lang = Lang::of(&req);
            let desk = desk_of(req).await?;
            let bytes = bytes.await.map_err(|_| Refusal::StaleForm { lang })?;
            let sent = form_urlencoded::parse(&bytes).find(|(k, _)| k == "csrf").map(|(_, v)| v.into_owned());
            if !sent.is_some_and(|s| equal(&s, &desk.csrf)) {
                return Err(Refusal::StaleForm { lang });
            }
            if bytes.contains(&0) || percent_encoding::percent_decode(&bytes).any(|b| b == 0) {
                let error = ApiError::field("form", "holds a NUL character");
                return Err(Refusal::Failed { lang, error });
            }
            let form = serde_urlencoded::from_bytes(&bytes).map_err(|e| Refusal::Failed {
                lang,
                error: ApiError::new(ErrorCode::MalformedJson, format!("the form could not be read: {e}")),
            })?;
            Ok(DeskForm { desk, form })
        })
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

fn new_login_token() -> String {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn login_form(lang: Lang, csrf: &str, username: &str, error: Option<&str>) -> maud::Markup {
    html! {
        section.login {
            h1 { "报修调度台" span.sub { (lang.t(" · 客服与调度", " · the desk's console")) } }
            form data-testid="login-form" method="post" action={"/console/login?lang=" (lang.code())} {
                input type="hidden" name="csrf" value=(csrf);
                label { (lang.t("用户名", "Username"))
                    input name="username" autocomplete="username" required value=(username); }
                label { (lang.t("密码", "Password"))
                    input name="password" type="password" autocomplete="current-password" required; }
                @if let Some(error) = error {
                    p.form-error data-testid="login-error" role="alert" { (error) }
                }
                button type="submit" { (lang.t("登录", "Log in")) }
            }
        }
    }
}

fn login_response(req: &HttpRequest, lang: Lang, username: &str, error: Option<&str>, status: u16) -> HttpResponse {
    let csrf = new_login_token();
    let body = login_form(lang, &csrf, username, error);
    let status = actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::OK);
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .cookie(cookie(req, LOGIN_CSRF_COOKIE, csrf))
        .body(layout::bare(lang, lang.t("登录", "Log in"), body).into_string())
}

pub async fn login_page(req: HttpRequest) -> HttpResponse {
    let lang = Lang::of(&req);
    if desk_of(req.clone()).await.is_ok() {
        return super::redirect(&req, "/");
    }
    login_response(&req, lang, "", None, 200)
}

pub async fn login(state: web::Data<AppState>, req: HttpRequest, form: web::Form<LoginForm>) -> Page {
    let lang = Lang::of(&req);
    let LoginForm { username, password, csrf } = form.into_inner();
    let expected = req.cookie(LOGIN_CSRF_COOKIE).map(|c| c.value().to_owned()).unwrap_or_default();
    if expected.is_empty() || !equal(&csrf, &expected) {
        return Err(Refusal::StaleForm { lang });
    }
    let failed = |e: ApiError| Refusal::from_api(lang, e);
    let forwarded = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let address = throttle::client_address(req.peer_addr().map(|a| a.ip()), forwarded, &state.settings.trusted_proxies);
    let limits = throttle::limits(&username, address);
    let candidate = db::run(&state.pool, {
        let (limits, username) = (limits.clone(), username.clone());
        move |conn| Ok(session::login_candidate(conn, &limits, &username)?)
    })
    .await;
    let user = match candidate {
        Ok(user) => user,
        Err(e) if e.code == ErrorCode::TooManyAttempts => {
            let message = match lang {
                Lang::Zh => format!("登录失败次数过多，请 {} 秒后再试。", e.retry_after_secs.unwrap_or(60)),
                Lang::En => e.detail.clone(),
            };
            return Ok(login_response(&req, lang, &username, Some(&message), 429));
        }
        Err(e) => return Err(failed(e)),
    };
    let plausible = password.chars().count() <= crate::auth::password::MAX_LEN;
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let verified = plausible && state.hasher.verify(password, stored).await.map_err(failed)?;
    let Some(user) = user.filter(|u| verified && u.active) else {
        db::run(&state.pool, move |conn| Ok(session::record_failures(conn, &limits)?)).await.map_err(failed)?;
        let message = lang.t("用户名或密码错误。", "Wrong username or password.");
        return Ok(login_response(&req, lang, &username, Some(message), 401));
    };
    if user.role == Role::Technician.as_str() {
        return Ok(login_response(&req, lang, &username, Some(technicians_refused(lang)), 403));
    }
    let ttl = state.settings.refresh_token_ttl_secs;
    let user_id = user.id.clone();
    let (session_id, _refresh, _) =
        db::transaction(&state.pool, move |conn| Ok(session::start_session(conn, &limits, &user_id, ttl)?))
            .await
            .map_err(failed)?;
    let token = state.keys.issue_console(&user.id, &session_id, SESSION_TTL_SECS);
    let mut gone = cookie(&req, LOGIN_CSRF_COOKIE, String::new());
    gone.set_max_age(CookieAge::ZERO);
    Ok(HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, "/"))
        .cookie(cookie(&req, SESSION_COOKIE, token))
        .cookie(gone)
        .finish())
}

#[derive(Deserialize)]
pub struct Nothing {}

pub async fn logout(state: web::Data<AppState>, req: HttpRequest, form: DeskForm<Nothing>) -> Page {
    let lang = form.desk.lang;
    let session_id = form.desk.caller.session_id.clone();
    db::run(&state.pool, move |conn| Ok(session::end_session(conn, &session_id)?))
        .await
        .map_err(|e| Refusal::from_api(lang, e))?;
    let mut gone = cookie(&req, SESSION_COOKIE, String::new());
    gone.set_max_age(CookieAge::ZERO);
    let mut res = super::redirect(&req, "/console/login");
    res.add_cookie(&gone).map_err(|e| Refusal::Failed { lang, error: ApiError::internal(e) })?;
    Ok(res)
}

#[derive(Deserialize)]
pub struct Back {
    back: Option<String>,
}

/// Sets the language cookie and goes back where the switch was clicked (a path of this site only).
pub async fn switch_lang(lang: web::Path<String>, back: web::Query<Back>) -> HttpResponse {
    let Some(lang) = Lang::parse(&lang) else {
        return HttpResponse::NotFound().finish();
    };
    let back = back.into_inner().back.filter(|b| b.starts_with('/') && !b.starts_with("//") && !b.contains('\\'));
    let mut c = Cookie::build(i18n::COOKIE, lang.code()).path("/").same_site(SameSite::Lax).finish();
    c.set_max_age(CookieAge::days(365));
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, back.unwrap_or_else(|| "/".into())))
        .cookie(c)
        .finish()
}
