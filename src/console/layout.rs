//! The page around every console page: the head (our own script and styles only), the navigation,
//! the language switch and the logout form; and the small formatters pages share.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use super::i18n::Lang;
use super::session::Desk;
use crate::error::{ApiError, ErrorCode};

fn head(lang: Lang, title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            // htmx's own inline indicator styles and eval stay off: the CSP allows neither
            meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}"#;
            title { (title) " · " (lang.t("报修调度台", "Repair desk")) }
            link rel="stylesheet" href="/console/assets/console.css";
            script src="/console/assets/htmx.min.js" defer {}
            script src="/console/assets/console.js" defer {}
        }
    }
}

/// A page without navigation (login, refusals).
pub fn bare(lang: Lang, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.html_lang()) {
            (head(lang, title))
            body.bare { main { (body) } }
        }
    }
}

/// Which page of the navigation is showing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Board,
    NewTicket,
    Search,
    Callbacks,
    Handovers,
    Matters,
    Reports,
    None,
}

/// A whole page, or for htmx's requests only `body` (the fragment it swaps in).
pub fn respond(req: &HttpRequest, desk: &Desk, nav: Nav, title: &str, body: Markup) -> HttpResponse {
    respond_with(req, desk, nav, title, body, StatusCode::OK)
}

pub fn respond_with(
    req: &HttpRequest,
    desk: &Desk,
    nav: Nav,
    title: &str,
    body: Markup,
    status: StatusCode,
) -> HttpResponse {
    let markup = if super::is_htmx(req) { body } else { page(req, desk, nav, title, body) };
    HttpResponse::build(status).content_type("text/html; charset=utf-8").body(markup.into_string())
}

fn page(req: &HttpRequest, desk: &Desk, nav: Nav, title: &str, body: Markup) -> Markup {
    let lang = desk.lang;
    let here = match req.query_string() {
        "" => req.path().to_owned(),
        q => format!("{}?{}", req.path(), q),
    };
    let switch = format!(
        "/console/lang/{}?back={}",
        lang.other().code(),
        percent_encoding::utf8_percent_encode(&here, percent_encoding::NON_ALPHANUMERIC)
    );
    let links = [
        (Nav::Board, "/", lang.t("看板", "Board")),
        (Nav::NewTicket, "/console/tickets/new", lang.t("新建工单", "New ticket")),
        (Nav::Search, "/console/search", lang.t("查询", "Search")),
        (Nav::Callbacks, "/console/callbacks", lang.t("待回访", "Callbacks due")),
        (Nav::Handovers, "/console/handovers", lang.t("交接班", "Handover")),
        (Nav::Matters, "/console/matters", lang.t("报事", "Matters")),
        (Nav::Reports, "/console/reports", lang.t("月报", "Monthly report")),
    ];
    html! {
        (DOCTYPE)
        html lang=(lang.html_lang()) {
            (head(lang, title))
            body {
                header.top {
                    a.brand href="/" { (lang.t("报修调度台", "Repair desk")) }
                    nav {
                        @for (which, href, label) in links {
                            a href=(href) class=@if which == nav { "current" } { (label) }
                        }
                    }
                    span.who { (lang.name(desk.caller.role.as_str())) }
                    a.lang data-testid="lang-switch" href=(switch) { (lang.t("English", "中文")) }
                    form.logout method="post" action="/console/logout" {
                        input type="hidden" name="csrf" value=(desk.csrf);
                        button type="submit" { (lang.t("退出", "Log out")) }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The hidden CSRF field every form carries.
pub fn csrf(desk: &Desk) -> Markup {
    html! { input type="hidden" name="csrf" value=(desk.csrf); }
}

/// A time in a site's zone, to the minute.
pub fn at(t: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()
}

/// A time in a site's zone, from the database's UTC.
pub fn at_naive(t: NaiveDateTime, tz: chrono_tz::Tz) -> String {
    at(t.and_utc(), tz)
}

/// How long ago, or how long until (negative), in minutes, hours and days.
pub fn span(lang: Lang, minutes: i64) -> String {
    let m = minutes.abs();
    let (d, h, min) = (m / 1440, (m % 1440) / 60, m % 60);
    match lang {
        Lang::Zh if d > 0 => format!("{d}天{h}小时"),
        Lang::Zh if h > 0 => format!("{h}小时{min}分"),
        Lang::Zh => format!("{min}分钟"),
        Lang::En if d > 0 => format!("{d}d {h}h"),
        Lang::En if h > 0 => format!("{h}h {min}m"),
        Lang::En => format!("{min} min"),
    }
}

/// Yuan from cents.
pub fn yuan(cents: i64) -> String {
    format!("¥{}.{:02}", cents / 100, (cents % 100).abs())
}

/// Field errors next to the field they name (`data-field`), for tests and screen readers alike.
pub fn field_error(errors: &[(String, String)], field: &str) -> Markup {
    html! {
        @for (_, message) in errors.iter().filter(|(f, _)| f == field) {
            span.field-error data-testid="field-error" data-field=(field) role="alert" { (message) }
        }
    }
}

/// An error of the whole form (a conflict, a refusal naming no field).
pub fn form_error(message: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = message {
            p.form-error data-testid="form-error" role="alert" { (m) }
        }
    }
}

/// What a refused command says, for the form that sent it: each named field's message (shown
/// next to it) and the rest (shown above the form).
#[derive(Default)]
pub struct Problems {
    pub fields: Vec<(String, String)>,
    pub form: Option<String>,
}

impl Problems {
    pub fn of(lang: Lang, e: &ApiError) -> Self {
        let fields: Vec<(String, String)> =
            e.errors.iter().map(|f| (f.field.clone(), super::i18n::message(lang, &f.field, &f.message))).collect();
        let form = match (e.code, fields.is_empty()) {
            (ErrorCode::ValidationFailed, false) => None,
            (code, _) => Some(super::i18n::problem(lang, code, &e.detail)),
        };
        Self { fields, form }
    }

    pub fn field(&self, name: &str) -> Markup {
        field_error(&self.fields, name)
    }
}
