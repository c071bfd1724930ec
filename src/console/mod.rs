//! The desk's console: HTML pages served by the same process, beside the API (`src/routes`).
//! Pages are rendered on the server (`maud`, checked at compile time); a vendored htmx and one
//! small script of ours (`assets/`, embedded in the binary) swap fragments in place and refresh
//! them when the console's event stream says something changed. Every change goes through the
//! same commands as the API's; reads through `commands::board` and the views.
//!
//! - `session`: the login, its cookie, CSRF tokens, the caller of a request;
//! - `board`: the live board and the escalations above it; `ticket`: a ticket's page and the
//!   desk's actions; `intake`: the new ticket form; `lists`: search, callbacks due, handovers;
//!   `matters`: matters (报事) with their forms (register, reply, call back); `report`: the monthly report with its charts (`charts`, SVG drawn here) and files;
//!   `events`: the event stream telling a page what to refresh;
//! - `layout`, `i18n`: the page around each, and its two languages.

mod board;
mod charts;
mod events;
mod i18n;
mod intake;
mod layout;
mod lists;
mod matters;
mod report;
mod session;
mod ticket;

use actix_web::http::{header, StatusCode};
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use maud::{html, Markup};

pub use i18n::Lang;

use crate::error::{ApiError, ErrorCode};

/// Every page and fragment, and only them, may load what this server serves: no inline script or
/// style, nothing from elsewhere, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// The console's routes (method, path), all registered by [`configure`]: none is under `/api/v1`
/// nor in the OpenAPI document, which describes the API only (`tests/api/openapi.rs` checks both).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/console/login"),
    ("POST", "/console/login"),
    ("POST", "/console/logout"),
    ("GET", "/console/lang/{lang}"),
    ("GET", "/console/assets/{name}"),
    ("GET", "/console/events"),
    ("POST", "/console/escalations/{id}/ack"),
    ("GET", "/console/tickets/new"),
    ("POST", "/console/tickets"),
    ("GET", "/console/tickets/{id}"),
    ("GET", "/console/tickets/{id}/signature.png"),
    ("POST", "/console/tickets/{id}/{action}"),
    ("GET", "/console/search"),
    ("GET", "/console/callbacks"),
    ("GET", "/console/handovers"),
    ("POST", "/console/handovers"),
    ("POST", "/console/handovers/{id}/ack"),
    ("GET", "/console/matters"),
    ("POST", "/console/matters"),
    ("POST", "/console/matters/{id}/{action}"),
    ("GET", "/console/reports"),
    ("GET", "/console/reports/download"),
];

/// Registers the console beside the API (outside its spec).
pub fn configure(cfg: &mut web::ServiceConfig) {
    let headers = || {
        DefaultHeaders::new()
            .add((header::CONTENT_SECURITY_POLICY, CSP))
            .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .add((header::X_FRAME_OPTIONS, "DENY"))
            .add((header::REFERRER_POLICY, "same-origin"))
            .add((header::CACHE_CONTROL, "no-store"))
    };
    cfg.service(web::resource("/").wrap(headers()).route(web::get().to(board::page)));
    cfg.service(
        web::scope("/console")
            .wrap(headers())
            .route("/login", web::get().to(session::login_page))
            .route("/login", web::post().to(session::login))
            .route("/logout", web::post().to(session::logout))
            .route("/lang/{lang}", web::get().to(session::switch_lang))
            .route("/assets/{name}", web::get().to(asset))
            .route("/events", web::get().to(events::stream))
            .route("/escalations/{id}/ack", web::post().to(board::acknowledge))
            .route("/tickets/new", web::get().to(intake::page))
            .route("/tickets", web::post().to(intake::create))
            .route("/tickets/{id}", web::get().to(ticket::page))
            .route("/tickets/{id}/signature.png", web::get().to(ticket::signature))
            .route("/tickets/{id}/{action}", web::post().to(ticket::act))
            .route("/search", web::get().to(lists::search))
            .route("/callbacks", web::get().to(lists::callbacks))
            .route("/handovers", web::get().to(lists::handovers))
            .route("/handovers", web::post().to(lists::write_handover))
            .route("/handovers/{id}/ack", web::post().to(lists::acknowledge_handover))
            .route("/matters", web::get().to(matters::page))
            .route("/matters", web::post().to(matters::create))
            .route("/matters/{id}/{action}", web::post().to(matters::act))
            .route("/reports", web::get().to(report::page))
            .route("/reports/download", web::get().to(report::download)),
    );
}

/// The script and styles, embedded in the binary.
const ASSETS: &[(&str, &str, &str)] = &[
    ("htmx.min.js", "text/javascript; charset=utf-8", include_str!("assets/htmx.min.js")),
    ("console.js", "text/javascript; charset=utf-8", include_str!("assets/console.js")),
    ("console.css", "text/css; charset=utf-8", include_str!("assets/console.css")),
    ("htmx-LICENSE", "text/plain; charset=utf-8", include_str!("assets/htmx-LICENSE")),
];

async fn asset(name: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|(n, _, _)| *n == name.as_str()) {
        Some((_, mime, body)) => HttpResponse::Ok()
            .content_type(*mime)
            .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
            .body(*body),
        None => HttpResponse::NotFound().content_type("text/plain; charset=utf-8").body("not found"),
    }
}

/// Whether htmx sent the request (it swaps the fragment answered into the page).
pub fn is_htmx(req: &HttpRequest) -> bool {
    req.headers().contains_key("hx-request")
}

fn html_response(status: StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status).content_type("text/html; charset=utf-8").body(markup.into_string())
}

/// Sends the browser to `to`: by htmx's header for its requests, by a 303 otherwise.
pub fn redirect(req: &HttpRequest, to: &str) -> HttpResponse {
    if is_htmx(req) {
        HttpResponse::Ok().insert_header(("HX-Redirect", to)).finish()
    } else {
        HttpResponse::SeeOther().insert_header((header::LOCATION, to)).finish()
    }
}

/// Why a console request was not served, rendered as a page (or a fragment) in the caller's
/// language rather than as problem+json.
#[derive(Debug)]
pub enum Refusal {
    /// No live console session: to the login page.
    LoginNeeded {
        htmx: bool,
        lang: Lang,
    },
    /// A technician, or an action of another role.
    Forbidden {
        lang: Lang,
        message: String,
    },
    NotFound {
        lang: Lang,
    },
    /// A form without this session's CSRF token.
    StaleForm {
        lang: Lang,
    },
    /// The server's own failure (or the database's): logged by the command layer.
    Failed {
        lang: Lang,
        error: ApiError,
    },
}

impl Refusal {
    pub fn from_api(lang: Lang, error: ApiError) -> Self {
        match error.code {
            ErrorCode::NotFound => Self::NotFound { lang },
            ErrorCode::Forbidden => Self::Forbidden { lang, message: error.detail },
            ErrorCode::InvalidToken | ErrorCode::MissingToken => Self::LoginNeeded { htmx: false, lang },
            _ => Self::Failed { lang, error },
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl ResponseError for Refusal {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::LoginNeeded { .. } => StatusCode::SEE_OTHER,
            Self::Forbidden { .. } | Self::StaleForm { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Failed { error, .. } => error.code.status(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (lang, title, detail) = match self {
            Self::LoginNeeded { htmx: true, .. } => {
                return HttpResponse::Ok().insert_header(("HX-Redirect", "/console/login")).finish();
            }
            Self::LoginNeeded { htmx: false, .. } => {
                return HttpResponse::SeeOther().insert_header((header::LOCATION, "/console/login")).finish();
            }
            Self::Forbidden { lang, message } => (*lang, lang.t("无权操作", "Not allowed"), message.clone()),
            Self::NotFound { lang } => {
                (*lang, lang.t("未找到", "Not found"), lang.t("没有这个页面或工单。", "No such page or ticket.").into())
            }
            Self::StaleForm { lang } => (
                *lang,
                lang.t("表单已过期", "This form has expired"),
                lang.t("请刷新页面后再提交。", "Reload the page and send it again.").into(),
            ),
            Self::Failed { lang, error } => (*lang, lang.t("出错了", "Something went wrong"), error.detail.clone()),
        };
        let body = html! {
            section.refusal data-testid="refusal" {
                h1 { (title) }
                p { (detail) }
                p { a href="/" { (lang.t("返回看板", "Back to the board")) } }
            }
        };
        html_response(self.status_code(), layout::bare(lang, title, body))
    }
}

pub type Page = Result<HttpResponse, Refusal>;
