//! The desk's lists: search (as `GET /tickets?q=` finds), callbacks due (tickets and matters),
//! shift handovers (write one, take one over).

use actix_web::{web, HttpRequest};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, Nav, Problems};
use super::session::{Desk, DeskForm};
use super::{Page, Refusal};
use crate::commands::{self, board::SiteInfo, HandoverBody};
use crate::db;
use crate::state::AppState;
use crate::views::{TicketView, Viewer};

fn tz_of(sites: &[SiteInfo], site_id: &str) -> chrono_tz::Tz {
    sites.iter().find(|s| s.id == site_id).map(|s| s.tz).unwrap_or(chrono_tz::UTC)
}

fn ticket_table(
    desk: &Desk,
    sites: &[SiteInfo],
    tickets: &[TicketView],
    when: fn(&TicketView) -> Option<chrono::DateTime<chrono::Utc>>,
) -> Markup {
    let lang = desk.lang;
    html! {
        table.list {
            thead { tr {
                th { (lang.t("单号", "Number")) } th { (lang.t("状态", "Status")) } th { (lang.t("位置", "Location")) }
                th { (lang.t("类别", "Category")) } th { (lang.t("报修人", "Reporter")) } th { (lang.t("时间", "Time")) }
            } }
            tbody {
                @for t in tickets {
                    tr data-testid="ticket-row" data-number=(t.number) data-status=(t.status.as_str()) {
                        td { a href={"/console/tickets/" (t.id)} { (t.number) } }
                        td { (lang.name(t.status.as_str())) }
                        td { (t.location) }
                        td { (lang.name(&t.category)) }
                        td { (t.reporter_name) }
                        td { (when(t).map(|at| layout::at(at, tz_of(sites, &t.site_id))).unwrap_or_default()) }
                    }
                }
            }
        }
    }
}

pub(super) async fn desk_sites(state: &AppState, desk: &Desk) -> Result<Vec<SiteInfo>, Refusal> {
    let caller = desk.caller.clone();
    db::run(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        Ok(commands::board::desk_sites(conn, &viewer)?)
    })
    .await
    .map_err(|e| Refusal::from_api(desk.lang, e))
}

#[derive(Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
}

pub async fn search(state: web::Data<AppState>, req: HttpRequest, desk: Desk, q: web::Query<SearchQuery>) -> Page {
    let lang = desk.lang;
    let text = q.into_inner().q.unwrap_or_default();
    let sites = desk_sites(&state, &desk).await?;
    let (caller, typed) = (desk.caller.clone(), text.clone());
    let found = db::run(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        Ok(commands::board::search(conn, &viewer, &typed)?)
    })
    .await;
    let (tickets, problems) = match found {
        Ok(t) => (t, Problems::default()),
        Err(e) => (Vec::new(), Problems::of(lang, &e)),
    };
    let body = html! {
        section #search {
            h1 { (lang.t("查询工单", "Find tickets")) }
            form.search method="get" action="/console/search" data-testid="search-form" {
                input name="q" type="search" value=(text) maxlength="200"
                    placeholder=(lang.t("单号、房号、报修人、电话、内容", "Number, unit, reporter, phone, description"));
                (problems.field("q"))
                button type="submit" { (lang.t("查询", "Search")) }
            }
            @if !text.trim().is_empty() {
                p { (lang.t("找到 ", "Found ")) (tickets.len()) (lang.t(" 张工单", " tickets")) }
                (ticket_table(&desk, &sites, &tickets, |t| Some(t.created_at)))
            }
        }
    };
    Ok(layout::respond(&req, &desk, Nav::Search, lang.t("查询", "Search"), body))
}

pub async fn callbacks(state: web::Data<AppState>, req: HttpRequest, desk: Desk) -> Page {
    let lang = desk.lang;
    let sites = desk_sites(&state, &desk).await?;
    let caller = desk.caller.clone();
    let (tickets, matters) = db::run(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        Ok(commands::board::callbacks_due(conn, &viewer)?)
    })
    .await
    .map_err(|e| Refusal::from_api(lang, e))?;
    let body = html! {
        section #callbacks {
            h1 { (lang.t("待回访", "Callbacks due")) }
            h2 { (lang.t("已完成的工单", "Completed tickets")) " " span.count { (tickets.len()) } }
            (ticket_table(&desk, &sites, &tickets, |t| t.completed_at))
            h2 { (lang.t("已答复的报事", "Replied matters")) " " span.count { (matters.len()) } }
            table.list {
                thead { tr { th { (lang.t("编号", "Number")) } th { (lang.t("类型", "Kind")) } th { (lang.t("报事人", "Reporter")) }
                    th { (lang.t("答复", "Reply")) } th { (lang.t("答复时间", "Replied at")) } } }
                tbody { @for m in &matters { tr data-testid="matter-row" {
                    td { (m.number) } td { (lang.name(&m.kind)) } td { (m.reporter_name) }
                    td { (m.reply.as_deref().unwrap_or("")) }
                    td { (m.replied_at.map(|at| layout::at(at, tz_of(&sites, &m.site_id))).unwrap_or_default()) }
                } } }
            }
        }
    };
    Ok(layout::respond(&req, &desk, Nav::Callbacks, lang.t("待回访", "Callbacks due"), body))
}

async fn handovers_body(state: &AppState, desk: &Desk, problems: &Problems) -> Result<Markup, Refusal> {
    let lang = desk.lang;
    let sites = desk_sites(state, desk).await?;
    let caller = desk.caller.clone();
    let (list, names) = db::run(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        Ok((commands::board::handovers(conn, &viewer)?, commands::board::user_names(conn, &viewer)?))
    })
    .await
    .map_err(|e| Refusal::from_api(lang, e))?;
    let name = |id: &str| names.get(id).cloned().unwrap_or_else(|| id.to_owned());
    Ok(html! {
        section #handovers {
            h1 { (lang.t("交接班", "Shift handover")) }
            form.handover hx-post="/console/handovers" hx-target="#handovers" hx-swap="outerHTML" method="post"
                action="/console/handovers" data-testid="handover-form" {
                (layout::csrf(desk))
                (layout::form_error(problems.form.as_deref()))
                label { (lang.t("项目", "Site"))
                    select name="site_id" { @for s in &sites { option value=(s.id) { (s.name) } } }
                    (problems.field("site_id")) }
                label { (lang.t("交班班次", "Outgoing shift"))
                    select name="shift" { option value="day" { (lang.name("day")) } option value="night" { (lang.name("night")) } }
                    (problems.field("shift")) }
                label { (lang.t("交班说明", "Note")) textarea name="note" maxlength="1000" {} (problems.field("note")) }
                button type="submit" { (lang.t("交班", "Hand over")) }
            }
            @for h in &list {
                article.handover data-testid="handover" {
                    h2 { (lang.name(&h.shift)) " · " (layout::at(h.created_at, tz_of(&sites, &h.site_id))) " · " (name(&h.created_by)) }
                    @if let Some(note) = &h.note { p { (note) } }
                    p { (lang.t("未完工单 ", "Open tickets ")) (h.tickets.len()) }
                    ul.numbers { @for t in &h.tickets {
                        li { a href={"/console/tickets/" (t.id)} { (t.number) } " " (lang.name(&t.status))
                            @if t.open_escalations > 0 { " ⚠" (t.open_escalations) }
                            @for n in &t.notes {
                                br; small.note { (n.author_name) " " (layout::at(n.created_at, tz_of(&sites, &h.site_id))) ": " (n.note) }
                            } }
                    } }
                    @if let Some(at) = h.acknowledged_at {
                        p.acked { (lang.t("已接班：", "Taken over by ")) (h.acknowledged_by.as_deref().map(name).unwrap_or_default())
                            " " (layout::at(at, tz_of(&sites, &h.site_id))) }
                    } @else {
                        form hx-post={"/console/handovers/" (h.id) "/ack"} hx-target="#handovers" hx-swap="outerHTML"
                            method="post" action={"/console/handovers/" (h.id) "/ack"} {
                            (layout::csrf(desk))
                            button type="submit" { (lang.t("接班确认", "Take over")) }
                        }
                    }
                }
            }
        }
    })
}

pub async fn handovers(state: web::Data<AppState>, req: HttpRequest, desk: Desk) -> Page {
    let body = handovers_body(&state, &desk, &Problems::default()).await?;
    Ok(layout::respond(&req, &desk, Nav::Handovers, desk.lang.t("交接班", "Handover"), body))
}

#[derive(Deserialize)]
pub struct HandoverForm {
    site_id: Option<String>,
    shift: Option<String>,
    note: Option<String>,
}

pub async fn write_handover(state: web::Data<AppState>, req: HttpRequest, form: DeskForm<HandoverForm>) -> Page {
    let DeskForm { desk, form } = form;
    let caller = desk.caller.clone();
    let body =
        HandoverBody { site_id: form.site_id, shift: form.shift, note: form.note.filter(|n| !n.trim().is_empty()) };
    let done = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        Ok(commands::create_handover(conn, &viewer, body.clone(), db::now()).map(|_| ())?)
    })
    .await;
    let problems = done.err().map(|e| Problems::of(desk.lang, &e)).unwrap_or_default();
    let body = handovers_body(&state, &desk, &problems).await?;
    Ok(layout::respond(&req, &desk, Nav::Handovers, desk.lang.t("交接班", "Handover"), body))
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn acknowledge_handover(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    form: DeskForm<Empty>,
) -> Page {
    let DeskForm { desk, .. } = form;
    let (caller, id) = (desk.caller.clone(), id.into_inner());
    let done = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        Ok(commands::acknowledge_handover(conn, &viewer, &id, db::now()).map(|_| ())?)
    })
    .await;
    let problems = done.err().map(|e| Problems::of(desk.lang, &e)).unwrap_or_default();
    let body = handovers_body(&state, &desk, &problems).await?;
    Ok(layout::respond(&req, &desk, Nav::Handovers, desk.lang.t("交接班", "Handover"), body))
}
