//! The new ticket form: the intake fields, checked by the same command as `POST /tickets`, every
//! refused field named next to it; the form is kept as typed until it passes.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, Nav, Problems};
use super::lists::desk_sites;
use super::session::{filled, Desk, DeskForm};
use super::ticket::local_time;
use super::{Page, Refusal};
use crate::commands::{self, board::SiteInfo};
use crate::db;
use crate::domain::category::Category;
use crate::domain::ticket::{Area, Channel, TicketForm, Urgency};
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::Viewer;

/// What the form sends, as typed.
#[derive(Deserialize, Default, Clone)]
pub struct IntakeForm {
    site_id: Option<String>,
    area: Option<String>,
    location: Option<String>,
    category: Option<String>,
    urgency: Option<String>,
    paid: Option<String>,
    description: Option<String>,
    reporter_name: Option<String>,
    reporter_phone: Option<String>,
    appointment_at: Option<String>,
    resident_supplies_parts: Option<String>,
    channel: Option<String>,
    requested_technician_id: Option<String>,
}

/// The desk's sites and their technicians (site, id, name), for the form's choices.
async fn choices(state: &AppState, desk: &Desk) -> Result<(Vec<SiteInfo>, Vec<(String, String, String)>), Refusal> {
    let sites = desk_sites(state, desk).await?;
    let caller = desk.caller.clone();
    let technicians = db::run(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        Ok(commands::board::site_technicians(conn, &viewer)?)
    })
    .await
    .map_err(|e| Refusal::from_api(desk.lang, e))?;
    Ok((sites, technicians))
}

pub async fn page(state: web::Data<AppState>, req: HttpRequest, desk: Desk) -> Page {
    let (sites, technicians) = choices(&state, &desk).await?;
    let body = render(&desk, &sites, &technicians, &IntakeForm::default(), &Problems::default());
    Ok(layout::respond(&req, &desk, Nav::NewTicket, desk.lang.t("新建工单", "New ticket"), body))
}

fn render(
    desk: &Desk,
    sites: &[SiteInfo],
    technicians: &[(String, String, String)],
    f: &IntakeForm,
    problems: &Problems,
) -> Markup {
    let lang = desk.lang;
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    let is = |o: &Option<String>, value: &str, default: bool| o.as_deref().map_or(default, |x| x == value);
    html! {
        section #intake {
            h1 { (lang.t("新建工单", "New ticket")) }
            form.intake data-testid="new-ticket-form" hx-post="/console/tickets" hx-target="#intake" hx-swap="outerHTML"
                method="post" action="/console/tickets" novalidate {
                (layout::csrf(desk))
                (layout::form_error(problems.form.as_deref()))
                label { (lang.t("项目", "Site"))
                    select name="site_id" {
                        @for (i, s) in sites.iter().enumerate() {
                            option value=(s.id) selected[is(&f.site_id, &s.id, i == 0)] { (s.name) " (" (s.code) ")" }
                        }
                    }
                    (problems.field("site_id"))
                }
                label { (lang.t("区域", "Area"))
                    select name="area" { @for a in Area::ALL { option value=(a.as_str()) selected[is(&f.area, a.as_str(), *a == Area::InHome)] { (lang.name(a.as_str())) } } }
                    (problems.field("area"))
                }
                label { (lang.t("房号 / 位置", "Unit / place"))
                    input name="location" value=(v(&f.location)) maxlength="200" required placeholder=(lang.t("如 3栋2单元1201", "e.g. 3-2-1201"));
                    (problems.field("location"))
                }
                label { (lang.t("类别", "Category"))
                    select name="category" { @for c in Category::ALL { option value=(c.as_str()) selected[is(&f.category, c.as_str(), c == Category::Water)] { (lang.name(c.as_str())) } } }
                    (problems.field("category"))
                }
                label { (lang.t("紧急程度", "Urgency"))
                    select name="urgency" { @for u in Urgency::ALL { option value=(u.as_str()) selected[is(&f.urgency, u.as_str(), *u == Urgency::Normal)] { (lang.name(u.as_str())) } } }
                    (problems.field("urgency"))
                }
                label { (lang.t("报修人", "Reporter"))
                    input name="reporter_name" value=(v(&f.reporter_name)) maxlength="100" required;
                    (problems.field("reporter_name"))
                }
                label { (lang.t("手机号（户内必填，业主同意后登记）", "Mobile (in home: required, with the resident's consent)"))
                    input name="reporter_phone" type="tel" value=(v(&f.reporter_phone)) inputmode="tel";
                    (problems.field("reporter_phone"))
                }
                label { (lang.t("报修内容", "Description"))
                    textarea name="description" maxlength="2000" required { (v(&f.description)) }
                    (problems.field("description"))
                }
                label { (lang.t("预约时间（项目所在时区）", "Appointment (the site's time zone)"))
                    input name="appointment_at" type="datetime-local" value=(v(&f.appointment_at));
                    (problems.field("appointment_at"))
                }
                label { (lang.t("来源", "Channel"))
                    select name="channel" { @for c in Channel::ALL { option value=(c.as_str()) selected[is(&f.channel, c.as_str(), *c == Channel::Phone)] { (lang.name(c.as_str())) } } }
                    (problems.field("channel"))
                }
                label { (lang.t("指定维修师傅（可选，直接派单）", "Requested technician (optional: assigned at once)"))
                    select name="requested_technician_id" {
                        option value="" { (lang.t("不指定，进入单池", "None: to the pool")) }
                        @for s in sites {
                            @let here: Vec<_> = technicians.iter().filter(|(site, _, _)| *site == s.id).collect();
                            @if !here.is_empty() {
                                optgroup label=(s.name) {
                                    @for (site, id, name) in here {
                                        option value=(id) data-site=(site)
                                            selected[f.requested_technician_id.as_deref() == Some(id.as_str()) && f.site_id.as_deref().is_none_or(|x| x == site)] { (name) }
                                    }
                                }
                            }
                        }
                    }
                    (problems.field("requested_technician_id"))
                }
                label.check { input type="checkbox" name="paid" value="true" checked[f.paid.is_some()]; (lang.t("有偿服务（已与业主二次确认）", "Paid service (confirmed twice with the resident)")) }
                label.check { input type="checkbox" name="resident_supplies_parts" value="true" checked[f.resident_supplies_parts.is_some()]; (lang.t("业主自备配件", "Resident supplies parts")) }
                button type="submit" { (lang.t("登记工单", "Register the ticket")) }
            }
        }
    }
}

pub async fn create(state: web::Data<AppState>, req: HttpRequest, form: DeskForm<IntakeForm>) -> Page {
    let DeskForm { desk, form: f } = form;
    let (sites, technicians) = choices(&state, &desk).await?;
    let tz = sites.iter().find(|s| Some(&s.id) == f.site_id.as_ref()).map(|s| s.tz).unwrap_or(chrono_tz::UTC);
    let appointment = match filled(&f.appointment_at) {
        Some(raw) => match local_time(&raw, tz) {
            Some(at) => Ok(Some(at)),
            None => Err(ApiError::field("appointment_at", "is not a time")),
        },
        None => Ok(None),
    };
    let (caller, ctx, typed) = (desk.caller.clone(), state.commands(), f.clone());
    let created = match appointment {
        Err(e) => Err(e),
        Ok(appointment_at) => {
            let ticket = TicketForm {
                site_id: filled(&typed.site_id),
                area: filled(&typed.area),
                location: filled(&typed.location),
                category: filled(&typed.category),
                urgency: filled(&typed.urgency),
                paid: Some(typed.paid.is_some()),
                description: filled(&typed.description),
                reporter_name: filled(&typed.reporter_name),
                reporter_phone: filled(&typed.reporter_phone),
                appointment_at,
                resident_supplies_parts: Some(typed.resident_supplies_parts.is_some()),
                channel: filled(&typed.channel),
                requested_technician_id: filled(&typed.requested_technician_id),
            };
            db::transaction(&state.pool, move |conn| {
                let viewer = Viewer::load(conn, caller.clone())?;
                Ok(commands::create_ticket(conn, &ctx, &viewer, &ticket, None, db::now())?.id)
            })
            .await
        }
    };
    match created {
        Ok(id) => Ok(super::redirect(&req, &format!("/console/tickets/{id}"))),
        Err(e) => {
            let problems = Problems::of(desk.lang, &e);
            let body = render(&desk, &sites, &technicians, &f, &problems);
            // htmx swaps only successful answers: the form with its errors is one
            let status = if super::is_htmx(&req) { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
            Ok(layout::respond_with(&req, &desk, Nav::NewTicket, desk.lang.t("新建工单", "New ticket"), body, status))
        }
    }
}
