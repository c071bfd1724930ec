//! A ticket's page: every field, its clock, the history, materials, quote and bill, SMS, callbacks,
//! notes and the resident's signature; and the desk's actions (edit, assign or reassign, cancel,
//! verify by phone, resend the code, inspect, call back), each the same command as the API's, a
//! refusal shown next to the field it names.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{NaiveDateTime, TimeZone};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, Nav, Problems};
use super::session::{filled, number, Desk, DeskForm};
use super::{i18n::Lang, Page, Refusal};
use crate::commands::board::TicketPage;
use crate::commands::{self, AssignBody, CallbackBody, InspectBody, PhoneVerification, ReasonBody};
use crate::db;
use crate::domain::category::Category;
use crate::domain::edit::TicketEdit;
use crate::domain::ticket::{Area, Move, Status, Urgency};
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::Viewer;

async fn load(state: &AppState, desk: &Desk, id: String) -> Result<TicketPage, Refusal> {
    let (caller, clock) = (desk.caller.clone(), state.clock);
    db::run(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        Ok(commands::board::ticket_page(conn, &viewer, &clock, &id, db::now())?)
    })
    .await
    .map_err(|e| Refusal::from_api(desk.lang, e))
}

pub async fn page(state: web::Data<AppState>, req: HttpRequest, desk: Desk, id: web::Path<String>) -> Page {
    let p = load(&state, &desk, id.into_inner()).await?;
    let title = p.ticket.number.clone();
    Ok(layout::respond(&req, &desk, Nav::None, &title, render(&desk, &p, None)))
}

pub async fn signature(state: web::Data<AppState>, desk: Desk, id: web::Path<String>) -> Page {
    let (caller, id, lang) = (desk.caller.clone(), id.into_inner(), desk.lang);
    let png = db::run(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        Ok(commands::board::signature(conn, &viewer, &id)?)
    })
    .await
    .map_err(|e| Refusal::from_api(lang, e))?;
    Ok(HttpResponse::Ok().content_type("image/png").body(png))
}

/// Which form a refusal belongs to, and what it said.
struct Refused<'a> {
    form: &'a str,
    problems: Problems,
}

fn dt(t: Option<chrono::DateTime<chrono::Utc>>, tz: chrono_tz::Tz) -> String {
    t.map(|t| layout::at(t, tz)).unwrap_or_default()
}

fn allowed(status: Status, what: Move) -> bool {
    what.allowed_from(status)
}

/// The ticket section (`#ticket`), which the page refreshes and each action answers.
fn render(desk: &Desk, p: &TicketPage, refused: Option<Refused<'_>>) -> Markup {
    let lang = desk.lang;
    let t = &p.ticket;
    let tz = p.site.tz;
    let name = |id: &str| p.names.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let empty = Problems::default();
    let problems = |form: &str| match &refused {
        Some(r) if r.form == form => &r.problems,
        _ => &empty,
    };
    let now = chrono::Utc::now().naive_utc();
    // a field with nothing in it yet (no claim, no hold...) is left out
    let row = |label: &'static str, value: String| {
        html! { @if !value.is_empty() { dt { (label) } dd { (value) } } }
    };
    html! {
        section #ticket data-testid="ticket-detail" data-live={"/console/tickets/" (t.id)} data-ticket-id=(t.id)
            data-number=(t.number) data-status=(t.status.as_str()) {
            header.ticket-head {
                h1 { (t.number) }
                span.status data-testid="ticket-status" { (lang.name(t.status.as_str())) }
                @if t.urgency == "emergency" { span.urgent { (lang.name("emergency")) } }
                @if let Some((running, colour)) = p.clock {
                    @let left = (running.deadline - now).num_minutes();
                    span class={"clock clock-" (colour.as_str())} {
                        (lang.name(running.kind.as_str())) " "
                        @if running.deadline > now { (lang.t("剩 ", "in ")) } @else { (lang.t("超时 ", "over by ")) }
                        (layout::span(lang, left))
                    }
                }
                span.site { (p.site.name) " · " (p.site.tz.name()) }
            }
            div.ticket-grid {
                section.fields {
                    h2 { (lang.t("工单信息", "Ticket")) }
                    dl {
                        (row(lang.t("位置", "Location"), t.location.clone()))
                        (row(lang.t("区域", "Area"), lang.name(&t.area).to_owned()))
                        (row(lang.t("类别", "Category"), lang.name(&t.category).to_owned()))
                        (row(lang.t("紧急程度", "Urgency"), lang.name(&t.urgency).to_owned()))
                        (row(lang.t("有偿服务", "Paid service"), yes_no(lang, t.paid)))
                        (row(lang.t("业主自备配件", "Resident supplies parts"), yes_no(lang, t.resident_supplies_parts)))
                        (row(lang.t("报修人", "Reporter"), t.reporter_name.clone()))
                        (row(lang.t("电话", "Phone"), t.reporter_phone.clone().unwrap_or_default()))
                        (row(lang.t("来源", "Channel"), lang.name(&t.channel).to_owned()))
                        (row(lang.t("预约时间", "Appointment"), dt(t.appointment_at, tz)))
                        (row(lang.t("维修师傅", "Technician"), t.assignee_id.as_deref().map(name).unwrap_or_default()))
                        (row(lang.t("登记人", "Registered by"), name(&t.created_by)))
                        (row(lang.t("登记时间", "Registered at"), layout::at(t.created_at, tz)))
                        (row(lang.t("接单时间", "Claimed at"), dt(t.claimed_at, tz)))
                        (row(lang.t("到场时间", "Arrived at"), dt(t.arrived_at, tz)))
                        (row(lang.t("到场核验", "Verified via"), t.arrival_verified_via.as_deref().map(|v| lang.name(v).to_owned()).unwrap_or_default()))
                        (row(lang.t("按时到场", "On time"), t.arrival_on_time.map(|b| yes_no(lang, b)).unwrap_or_default()))
                        (row(lang.t("电话核实", "Phone verified"), dt(t.phone_verified_at, tz)))
                        (row(lang.t("暂停原因", "Hold reason"), t.hold_reason.as_deref().map(|h| lang.name(h).to_owned()).unwrap_or_default()))
                        (row(lang.t("暂停说明", "Hold note"), t.hold_note.clone().unwrap_or_default()))
                        (row(lang.t("恢复时间", "Resume at"), dt(t.resume_at, tz)))
                        (row(lang.t("完成时间", "Completed at"), dt(t.completed_at, tz)))
                        (row(lang.t("维修结果", "Result"), t.result.clone().unwrap_or_default()))
                        (row(lang.t("业主评分", "Rating"), t.resident_rating.map(|r| r.to_string()).unwrap_or_default()))
                        (row(lang.t("现场收费", "Fee collected"), t.fee_collected_cents.map(layout::yuan).unwrap_or_default()))
                        (row(lang.t("关闭时间", "Closed at"), dt(t.closed_at, tz)))
                        (row(lang.t("作废时间", "Cancelled at"), dt(t.cancelled_at, tz)))
                        (row(lang.t("作废原因", "Cancel reason"), t.cancel_reason.clone().unwrap_or_default()))
                        (row(lang.t("返修自", "Rework of"), t.rework_of.clone().unwrap_or_default()))
                        (row(lang.t("版本", "Version"), t.version.to_string()))
                    }
                    h3 { (lang.t("报修内容", "Description")) }
                    p.description { (t.description) }
                }
                section.actions {
                    h2 { (lang.t("操作", "Actions")) }
                    @if allowed(t.status, Move::Assign) {
                        (assign_form(desk, p, problems("assign")))
                    }
                    @if allowed(t.status, Move::VerifyByPhone) {
                        (simple_form(desk, t, "verify-by-phone", lang.t("电话核实到场", "Verify arrival by phone"),
                            "note", lang.t("核实说明（必填）", "How it was verified (required)"), true, problems("verify-by-phone")))
                    }
                    @if t.area == Area::InHome.as_str() && allowed(t.status, Move::ResendCode) {
                        form.action hx-post={"/console/tickets/" (t.id) "/resend-code"} hx-target="#ticket" hx-swap="outerHTML"
                            method="post" action={"/console/tickets/" (t.id) "/resend-code"} data-testid="resend-form" {
                            (layout::csrf(desk))
                            (layout::form_error(problems("resend-code").form.as_deref()))
                            button type="submit" { (lang.t("重发上门验证码", "Resend the door code")) }
                        }
                    }
                    @if allowed(t.status, Move::Inspect) {
                        (inspect_form(desk, t, problems("inspect")))
                    }
                    @if allowed(t.status, Move::Callback) {
                        (callback_form(desk, t, problems("callback")))
                    }
                    @if allowed(t.status, Move::Cancel) {
                        (simple_form(desk, t, "cancel", lang.t("作废工单", "Cancel the ticket"),
                            "reason", lang.t("作废原因（必填）", "Reason (required)"), true, problems("cancel")))
                    }
                    @if allowed(t.status, Move::Edit) {
                        (edit_form(desk, p, problems("edit")))
                    }
                }
            }
            section.materials {
                h2 { (lang.t("材料", "Materials")) }
                @if t.materials.is_empty() { p.none { (lang.t("无", "None")) } } @else {
                    table {
                        thead { tr {
                            th { (lang.t("名称", "Name")) } th { (lang.t("规格", "Spec")) } th { (lang.t("型号", "Model")) }
                            th { (lang.t("数量", "Qty")) } th { (lang.t("单位", "Unit")) } th { (lang.t("单价", "Unit price")) }
                            th { (lang.t("提供方", "Supplied by")) } th { (lang.t("金额", "Total")) } th { (lang.t("计费", "Billed")) }
                        } }
                        tbody {
                            @for m in &t.materials {
                                tr {
                                    td { (m.name) } td { (m.spec.as_deref().unwrap_or("")) } td { (m.model.as_deref().unwrap_or("")) }
                                    td { (m.quantity) } td { (m.unit) } td { (layout::yuan(m.unit_price_cents)) }
                                    td { (lang.name(&m.supplied_by)) } td { (layout::yuan(m.total_cents)) } td { (yes_no(lang, m.billable)) }
                                }
                            }
                        }
                    }
                }
            }
            section.quote {
                h2 { (lang.t("报价与账单", "Quote and bill")) }
                @if let Some(q) = &t.quote {
                    dl {
                        (row(lang.t("报价", "Amount"), layout::yuan(q.amount_cents)))
                        (row(lang.t("范围", "Covers"), lang.name(q.covers.as_str()).to_owned()))
                        (row(lang.t("状态", "Status"), lang.name(q.status.as_str()).to_owned()))
                        (row(lang.t("说明", "Note"), q.note.clone().unwrap_or_default()))
                        (row(lang.t("报价人", "Proposed by"), name(&q.proposed_by)))
                        (row(lang.t("报价时间", "Proposed at"), layout::at(q.proposed_at, tz)))
                        (row(lang.t("确认时间", "Decided at"), dt(q.decided_at, tz)))
                        (row(lang.t("确认方式", "Decided via"), q.decided_via.clone().unwrap_or_default()))
                    }
                } @else { p.none { (lang.t("无报价", "No quote")) } }
                dl.bill {
                    (row(lang.t("报价金额", "Quote"), layout::yuan(t.bill.quote_cents)))
                    (row(lang.t("另计材料", "Materials on top"), layout::yuan(t.bill.materials_cents)))
                    (row(lang.t("应收合计", "Total billed"), layout::yuan(t.bill.total_cents)))
                    (row(lang.t("业主自备（不计费）", "Resident supplied (not billed)"), layout::yuan(t.totals.resident_supplied_cents)))
                }
            }
            section.sms {
                h2 { (lang.t("短信", "SMS")) }
                @if t.sms.is_empty() { p.none { (lang.t("无", "None")) } } @else {
                    table {
                        thead { tr { th { (lang.t("类型", "Kind")) } th { (lang.t("状态", "Status")) } th { (lang.t("尝试", "Attempts")) }
                            th { (lang.t("创建", "Queued")) } th { (lang.t("发出", "Sent")) } th { (lang.t("错误", "Error")) } } }
                        tbody { @for s in &t.sms { tr data-testid="sms" data-status=(s.status) {
                            td { (lang.name(&s.template)) } td { (lang.name(&s.status)) } td { (s.attempts) }
                            td { (layout::at(s.created_at, tz)) } td { (dt(s.sent_at, tz)) } td { (s.last_error.as_deref().unwrap_or("")) }
                        } } }
                    }
                }
            }
            @if !t.callbacks.is_empty() || !t.notes.is_empty() {
                section.callbacks {
                    h2 { (lang.t("回访与备注", "Callbacks and notes")) }
                    ul {
                        @for c in &t.callbacks {
                            li { (layout::at(c.made_at, tz)) " " (name(&c.made_by)) " · "
                                (if c.reached { lang.t("已联系上", "reached") } else { lang.t("未联系上", "not reached") })
                                @if let Some(s) = c.satisfaction { " · " (lang.t("满意度 ", "satisfaction ")) (s) }
                                @if let Some(comment) = &c.comment { " · " (comment) } }
                        }
                        @for n in &t.notes { li { (layout::at(n.created_at, tz)) " " (name(&n.author_id)) " · " (n.note) } }
                    }
                }
            }
            @if p.has_signature {
                section.signature {
                    h2 { (lang.t("业主签名", "Resident's signature")) }
                    img src={"/console/tickets/" (t.id) "/signature.png"} alt=(lang.t("业主签名", "Resident's signature"));
                }
            }
            section.history {
                h2 { (lang.t("处理记录", "History")) }
                ol {
                    @for e in &p.events {
                        li data-type=(e.event_type) {
                            time { (layout::at(e.at, tz)) }
                            " " strong { (lang.name(&e.event_type)) }
                            @if let (Some(from), Some(to)) = (&e.from_status, &e.to_status) {
                                " " (lang.name(from)) " → " (lang.name(to))
                            }
                            @if let Some(actor) = &e.actor_id { " · " (name(actor)) }
                            @let detail = event_detail(e.data.get());
                            @if !detail.is_empty() { " · " span.detail { (detail) } }
                        }
                    }
                }
            }
        }
    }
}

/// The few members of an event's data worth a line: reasons, notes, comments.
fn event_detail(raw: &str) -> String {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(raw) else {
        return String::new();
    };
    ["reason", "note", "comment", "kind"]
        .iter()
        .filter_map(|k| map.get(*k).and_then(|v| v.as_str()).map(str::to_owned))
        .collect::<Vec<_>>()
        .join(" · ")
}

fn yes_no(lang: Lang, b: bool) -> String {
    (if b { lang.t("是", "yes") } else { lang.t("否", "no") }).to_owned()
}

fn form_attrs(t: &str, action: &str) -> (String, String) {
    let url = format!("/console/tickets/{t}/{action}");
    (url.clone(), url)
}

fn assign_form(desk: &Desk, p: &TicketPage, problems: &Problems) -> Markup {
    let lang = desk.lang;
    let t = &p.ticket;
    let (hx, action) = form_attrs(&t.id, "assign");
    let needs_reason = Move::Assign.needs_reason(t.status);
    html! {
        form.action data-testid="assign-form" hx-post=(hx) hx-target="#ticket" hx-swap="outerHTML" method="post" action=(action) {
            (layout::csrf(desk))
            h3 { (if t.assignee_id.is_some() { lang.t("改派", "Reassign") } else { lang.t("派单", "Assign") }) }
            (layout::form_error(problems.form.as_deref()))
            label { (lang.t("维修师傅", "Technician"))
                select name="technician_id" required {
                    option value="" { (lang.t("请选择", "Choose")) }
                    @for (id, name) in &p.technicians {
                        option value=(id) selected[t.assignee_id.as_deref() == Some(id.as_str())] { (name) }
                    }
                }
                (problems.field("technician_id"))
            }
            label { (if needs_reason { lang.t("原因（必填）", "Reason (required)") } else { lang.t("原因（可选）", "Reason (optional)") })
                input name="reason" maxlength="500";
                (problems.field("reason"))
            }
            button type="submit" { (lang.t("派给该师傅", "Assign")) }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn simple_form(
    desk: &Desk,
    t: &crate::views::TicketView,
    action: &str,
    title: &str,
    field: &str,
    label: &str,
    required: bool,
    problems: &Problems,
) -> Markup {
    let (hx, url) = form_attrs(&t.id, action);
    html! {
        form.action hx-post=(hx) hx-target="#ticket" hx-swap="outerHTML" method="post" action=(url) data-testid={(action) "-form"} {
            (layout::csrf(desk))
            h3 { (title) }
            (layout::form_error(problems.form.as_deref()))
            label { (label)
                input name=(field) maxlength="500" required[required];
                (problems.field(field))
            }
            button type="submit" { (title) }
        }
    }
}

fn inspect_form(desk: &Desk, t: &crate::views::TicketView, problems: &Problems) -> Markup {
    let lang = desk.lang;
    let (hx, url) = form_attrs(&t.id, "inspect");
    html! {
        form.action hx-post=(hx) hx-target="#ticket" hx-swap="outerHTML" method="post" action=(url) data-testid="inspect-form" {
            (layout::csrf(desk))
            h3 { (lang.t("验收", "Inspect")) }
            (layout::form_error(problems.form.as_deref()))
            label { (lang.t("说明（不合格时必填）", "Note (required when it fails)"))
                input name="note" maxlength="500";
                (problems.field("note"))
            }
            button type="submit" name="passed" value="true" { (lang.t("合格", "Passed")) }
            button type="submit" name="passed" value="false" { (lang.t("不合格，返工", "Failed: redo")) }
        }
    }
}

fn callback_form(desk: &Desk, t: &crate::views::TicketView, problems: &Problems) -> Markup {
    let lang = desk.lang;
    let (hx, url) = form_attrs(&t.id, "callback");
    html! {
        form.action hx-post=(hx) hx-target="#ticket" hx-swap="outerHTML" method="post" action=(url) data-testid="callback-form" {
            (layout::csrf(desk))
            h3 { (lang.t("回访", "Callback")) }
            (layout::form_error(problems.form.as_deref()))
            label { (lang.t("满意度", "Satisfaction"))
                select name="satisfaction" {
                    option value="" { "—" }
                    @for s in 1..=5 { option value=(s) { (s) } }
                }
                (problems.field("satisfaction"))
            }
            label { (lang.t("回访记录", "Comment"))
                input name="comment" maxlength="1000";
                (problems.field("comment"))
            }
            button type="submit" name="reached" value="true" { (lang.t("已联系上，关闭", "Reached: close")) }
            button type="submit" name="reached" value="false" { (lang.t("未联系上", "Not reached")) }
        }
    }
}

fn edit_form(desk: &Desk, p: &TicketPage, problems: &Problems) -> Markup {
    let lang = desk.lang;
    let t = &p.ticket;
    let (hx, url) = form_attrs(&t.id, "edit");
    let local = |at: Option<chrono::DateTime<chrono::Utc>>| at.map(|a| local_input(a, p.site.tz)).unwrap_or_default();
    html! {
        details.edit open[!problems.fields.is_empty() || problems.form.is_some()] {
            summary { (lang.t("修改工单", "Edit the ticket")) }
            form.action hx-post=(hx) hx-target="#ticket" hx-swap="outerHTML" method="post" action=(url) data-testid="edit-form" {
                (layout::csrf(desk))
                input type="hidden" name="version" value=(t.version);
                (layout::form_error(problems.form.as_deref()))
                label { (lang.t("位置", "Location")) input name="location" value=(t.location) maxlength="200"; (problems.field("location")) }
                label { (lang.t("报修人", "Reporter")) input name="reporter_name" value=(t.reporter_name) maxlength="100"; (problems.field("reporter_name")) }
                label { (lang.t("电话", "Phone")) input name="reporter_phone" type="tel" value=(t.reporter_phone.as_deref().unwrap_or("")); (problems.field("reporter_phone")) }
                label { (lang.t("类别", "Category"))
                    select name="category" { @for c in Category::ALL { option value=(c.as_str()) selected[c.as_str() == t.category] { (lang.name(c.as_str())) } } }
                    (problems.field("category")) }
                label { (lang.t("紧急程度", "Urgency"))
                    select name="urgency" { @for u in Urgency::ALL { option value=(u.as_str()) selected[u.as_str() == t.urgency] { (lang.name(u.as_str())) } } }
                    (problems.field("urgency")) }
                label { (lang.t("预约时间", "Appointment")) " (" (p.site.tz.name()) ")"
                    input name="appointment_at" type="datetime-local" value=(local(t.appointment_at)); (problems.field("appointment_at")) }
                label.check { input type="checkbox" name="paid" value="true" checked[t.paid]; (lang.t("有偿服务", "Paid service")) (problems.field("paid")) }
                label.check { input type="checkbox" name="resident_supplies_parts" value="true" checked[t.resident_supplies_parts]; (lang.t("业主自备配件", "Resident supplies parts")) }
                label { (lang.t("报修内容", "Description")) textarea name="description" maxlength="2000" { (t.description) } (problems.field("description")) }
                label { (lang.t("修改原因", "Reason")) input name="reason" maxlength="500"; (problems.field("reason")) }
                (problems.field("version"))
                button type="submit" { (lang.t("保存修改", "Save")) }
            }
        }
    }
}

/// Every field any action form sends; each action reads its own.
#[derive(Deserialize, Default)]
pub struct ActionForm {
    technician_id: Option<String>,
    reason: Option<String>,
    note: Option<String>,
    passed: Option<String>,
    reached: Option<String>,
    satisfaction: Option<String>,
    comment: Option<String>,
    version: Option<String>,
    location: Option<String>,
    reporter_name: Option<String>,
    reporter_phone: Option<String>,
    category: Option<String>,
    urgency: Option<String>,
    appointment_at: Option<String>,
    paid: Option<String>,
    resident_supplies_parts: Option<String>,
    description: Option<String>,
}

/// A time as a `datetime-local` input shows it, in the site's zone.
fn local_input(at: chrono::DateTime<chrono::Utc>, tz: chrono_tz::Tz) -> String {
    at.with_timezone(&tz).format("%Y-%m-%dT%H:%M").to_string()
}

/// A `datetime-local` value in the site's zone, as UTC.
pub fn local_time(raw: &str, tz: chrono_tz::Tz) -> Option<chrono::DateTime<chrono::Utc>> {
    let naive = NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    tz.from_local_datetime(&naive).earliest().map(|t| t.with_timezone(&chrono::Utc))
}

/// Runs one of the desk's actions on the ticket, through the command the API's route calls.
pub async fn act(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: DeskForm<ActionForm>,
) -> Page {
    let DeskForm { desk, form } = form;
    let (id, action) = path.into_inner();
    let known = ["assign", "cancel", "verify-by-phone", "resend-code", "inspect", "callback", "edit"];
    let Some(action) = known.iter().find(|a| **a == action).copied() else {
        return Err(Refusal::NotFound { lang: desk.lang });
    };
    let (caller, ctx, ticket_id) = (desk.caller.clone(), state.commands(), id.clone());
    // the edit's appointment is typed in the site's zone: read the site first
    let tz = if action == "edit" { Some(load(&state, &desk, id.clone()).await?.site.tz) } else { None };
    let done = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        let now = db::now();
        let f = &form;
        let id = ticket_id.as_str();
        match action {
            "assign" => {
                let body = AssignBody {
                    technician_id: filled(&f.technician_id).unwrap_or_default(),
                    reason: filled(&f.reason),
                };
                commands::assign(conn, &viewer, id, body, now)?;
            }
            "cancel" => {
                commands::cancel(conn, &viewer, id, ReasonBody { reason: f.reason.clone().unwrap_or_default() }, now)?;
            }
            "verify-by-phone" => {
                let body = PhoneVerification { note: f.note.clone().unwrap_or_default() };
                commands::verify_by_phone(conn, &viewer, id, body, now)?;
            }
            "resend-code" => {
                // a capped SMS is recorded (the desk is told) and refused
                if let Err(e) = commands::resend_code(conn, &ctx, &viewer, id, now)? {
                    return Ok(Err(ApiError::from(e)));
                }
            }
            "inspect" => {
                let body = InspectBody { passed: f.passed.as_deref() == Some("true"), note: filled(&f.note) };
                commands::inspect(conn, &viewer, id, body, now)?;
            }
            "callback" => {
                let body = CallbackBody {
                    reached: f.reached.as_deref() == Some("true"),
                    satisfaction: number("satisfaction", &f.satisfaction)?,
                    comment: filled(&f.comment),
                };
                commands::callback(conn, &viewer, id, body, now)?;
            }
            _ => {
                let tz = tz.unwrap_or(chrono_tz::UTC);
                let version = number("version", &f.version)?.unwrap_or(0);
                let current = commands::board::ticket_page(conn, &viewer, &ctx.clock, id, now)?.ticket;
                // the form shows the appointment to the minute: as shown, it is unchanged
                let shown = current.appointment_at.map(|a| local_input(a, tz));
                let appointment = match filled(&f.appointment_at) {
                    Some(raw) if Some(&raw) == shown.as_ref() => None,
                    Some(raw) => Some(Some(
                        local_time(&raw, tz).ok_or_else(|| ApiError::field("appointment_at", "is not a time"))?,
                    )),
                    None if current.appointment_at.is_none() => None,
                    None => Some(None),
                };
                // only what changed is sent, as a client of the API would
                let changed = |new: &Option<String>, old: &str| filled(new).filter(|n| n != old);
                let edit = TicketEdit {
                    version,
                    reason: filled(&f.reason),
                    location: changed(&f.location, &current.location),
                    reporter_name: changed(&f.reporter_name, &current.reporter_name),
                    reporter_phone: changed(&f.reporter_phone, current.reporter_phone.as_deref().unwrap_or(""))
                        .map(Some),
                    category: changed(&f.category, &current.category),
                    urgency: changed(&f.urgency, &current.urgency),
                    paid: Some(f.paid.is_some()).filter(|p| *p != current.paid),
                    appointment_at: appointment,
                    description: changed(&f.description, &current.description),
                    resident_supplies_parts: Some(f.resident_supplies_parts.is_some())
                        .filter(|p| *p != current.resident_supplies_parts),
                };
                commands::edit(conn, &ctx, &viewer, id, edit, now)?;
            }
        }
        Ok(Ok(()))
    })
    .await
    .and_then(|r| r);
    let refused = done.err().map(|e| Refused { form: action, problems: Problems::of(desk.lang, &e) });
    if !super::is_htmx(&req) && refused.is_none() {
        return Ok(super::redirect(&req, &format!("/console/tickets/{id}")));
    }
    let p = load(&state, &desk, id).await?;
    let title = p.ticket.number.clone();
    Ok(layout::respond(&req, &desk, Nav::None, &title, render(&desk, &p, refused)))
}
