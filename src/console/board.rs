//! The board (`GET /`): the desk's live tickets in columns by status, each with its clock's colour
//! from the service levels (`domain::ticket::Clock`), and the open escalations above them with an
//! acknowledge button. The page refreshes the board when the event stream says so.

use actix_web::{web, HttpRequest};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, Nav, Problems};
use super::session::{Desk, DeskForm};
use super::{Page, Refusal};
use crate::commands::{self, board::Board, AcknowledgeBody};
use crate::db;
use crate::state::AppState;
use crate::views::Viewer;

#[derive(Deserialize)]
pub struct BoardQuery {
    site: Option<String>,
}

async fn load(state: &AppState, desk: &Desk, site: Option<String>) -> Result<Board, Refusal> {
    let (caller, clock) = (desk.caller.clone(), state.clock);
    db::run(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        Ok(commands::board::board(conn, &viewer, &clock, site, db::now())?)
    })
    .await
    .map_err(|e| Refusal::from_api(desk.lang, e))
}

pub async fn page(state: web::Data<AppState>, req: HttpRequest, desk: Desk, q: web::Query<BoardQuery>) -> Page {
    let site = q.into_inner().site.filter(|s| !s.is_empty());
    let board = load(&state, &desk, site.clone()).await?;
    let body = render(&desk, &board, site.as_deref(), &Problems::default());
    Ok(layout::respond(&req, &desk, Nav::Board, desk.lang.t("看板", "Board"), body))
}

/// The board as the page shows it and as htmx swaps it in (`#board`).
pub fn render(desk: &Desk, board: &Board, site: Option<&str>, problems: &Problems) -> Markup {
    let lang = desk.lang;
    let now = chrono::Utc::now().naive_utc();
    let live = match site {
        Some(s) => format!("/?site={}", percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)),
        None => "/".to_owned(),
    };
    let tz_of = |site_id: &str| board.sites.iter().find(|s| s.id == site_id).map(|s| s.tz).unwrap_or(chrono_tz::UTC);
    let code_of = |site_id: &str| board.sites.iter().find(|s| s.id == site_id).map(|s| s.code.clone());
    html! {
        section #board data-testid="board" data-live=(live) {
            @if board.sites.len() > 1 {
                nav.sites {
                    a href="/" class=@if site.is_none() { "current" } { (lang.t("全部项目", "All sites")) }
                    @for s in &board.sites {
                        a href={"/?site=" (s.id)} class=@if site == Some(s.id.as_str()) { "current" } { (s.name) }
                    }
                }
            }
            (layout::form_error(problems.form.as_deref()))
            @if !board.escalations.is_empty() {
                section.escalations aria-label=(lang.t("升级提醒", "Escalations")) {
                    @for e in &board.escalations {
                        @let taken = e.acknowledged_at.is_some();
                        article.escalation.taken[taken] data-testid="escalation" data-id=(e.id) data-kind=(e.kind)
                            data-number=[e.ticket_number.as_deref().or(e.matter_number.as_deref())] {
                            strong.kind { (lang.name(&e.kind)) }
                            @if let (Some(id), Some(number)) = (&e.ticket_id, &e.ticket_number) {
                                a href={"/console/tickets/" (id)} { (number) }
                            } @else if let Some(number) = &e.matter_number {
                                a href="/console/matters" { (number) }
                            }
                            span { (e.location.as_deref().unwrap_or("")) }
                            @if let Some(c) = &e.category { span { (lang.name(c)) } }
                            @if let Some(name) = &e.assignee_name { span { (name) } }
                            span.age { (layout::span(lang, (now - e.created_at.naive_utc()).num_minutes())) }
                            @if let Some(at) = e.acknowledged_at {
                                span.acked { (lang.t("已确认 ", "Acknowledged ")) (layout::at(at, tz_of(&e.site_id))) }
                            } @else {
                                form.ack hx-post={"/console/escalations/" (e.id) "/ack" @if let Some(s) = site { "?site=" (s) }}
                                    hx-target="#board" hx-swap="outerHTML" method="post"
                                    action={"/console/escalations/" (e.id) "/ack"} {
                                    (layout::csrf(desk))
                                    input name="note" placeholder=(lang.t("备注（可选）", "Note (optional)")) maxlength="500";
                                    button type="submit" name="ack" data-testid="ack" { (lang.t("确认", "Acknowledge")) }
                                }
                            }
                        }
                    }
                }
            }
            @if board.truncated {
                p.notice { (lang.t("工单太多，最早的未显示。", "Too many tickets: the oldest are not shown.")) }
            }
            div.columns {
                @for (status, cards) in &board.columns {
                    section.column data-status=(status.as_str()) {
                        h2 { (lang.name(status.as_str())) " " span.count { (cards.len()) } }
                        @for c in cards {
                            @let colour = c.clock.map(|(_, colour)| colour.as_str()).unwrap_or("none");
                            a class={"card clock-" (colour)} href={"/console/tickets/" (c.id)} data-testid="ticket-card"
                                data-number=(c.number) data-status=(c.status.as_str()) data-clock=(colour) {
                                span.number { (c.number) }
                                @if c.urgency == "emergency" { span.urgent { (lang.name("emergency")) } }
                                span.location { (c.location) }
                                span.category { (lang.name(&c.category)) }
                                span.assignee { (c.assignee_name.as_deref().unwrap_or(lang.t("—", "—"))) }
                                span.age title=(layout::at_naive(c.created_at, tz_of(&c.site_id))) {
                                    (layout::span(lang, (now - c.created_at).num_minutes()))
                                }
                                @if let Some((running, _)) = c.clock {
                                    @let left = (running.deadline - now).num_minutes();
                                    span.clock {
                                        (lang.name(running.kind.as_str())) " "
                                        @if running.deadline > now { (lang.t("剩 ", "in ")) (layout::span(lang, left)) }
                                        @else { (lang.t("超时 ", "over by ")) (layout::span(lang, left)) }
                                    }
                                }
                                @if board.sites.len() > 1 { @if let Some(code) = code_of(&c.site_id) { span.site { (code) } } }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct AckForm {
    note: Option<String>,
}

/// Acknowledges an escalation (the same command as `POST /escalations/{id}/ack`) and answers the
/// board as it now stands, with the refusal above it if there was one.
pub async fn acknowledge(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    q: web::Query<BoardQuery>,
    form: DeskForm<AckForm>,
) -> Page {
    let DeskForm { desk, form } = form;
    let (caller, id) = (desk.caller.clone(), id.into_inner());
    let note = form.note.filter(|n| !n.trim().is_empty());
    let done = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        let body = AcknowledgeBody { note: note.clone() };
        Ok(commands::acknowledge_escalation(conn, &viewer, &id, body, db::now()).map(|_| ())?)
    })
    .await;
    let problems = match done {
        Ok(()) => Problems::default(),
        Err(e) => Problems::of(desk.lang, &e),
    };
    if !super::is_htmx(&req) && problems.form.is_none() {
        return Ok(super::redirect(&req, "/"));
    }
    let site = q.into_inner().site.filter(|s| !s.is_empty());
    let board = load(&state, &desk, site.clone()).await?;
    let body = render(&desk, &board, site.as_deref(), &problems);
    Ok(layout::respond(&req, &desk, Nav::Board, desk.lang.t("看板", "Board"), body))
}
