//! Matters that are not repairs (报事): the list of the desk's matters, the form registering one,
//! and on each matter the department's reply (supervisors and admins: `commands::reply_matter`
//! decides whose department it is) and the desk's callback. Each form is the same command as the
//! API's; a refusal is shown by the field it names, the form kept as typed.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, Nav, Problems};
use super::lists::desk_sites;
use super::session::{filled, number, Desk, DeskForm};
use super::{Page, Refusal};
use crate::commands::{self, board::SiteInfo, CallbackBody, ReplyBody};
use crate::db;
use crate::db::matters::MatterRow;
use crate::domain::matter::{Department, MatterForm, MatterKind, MatterStatus};
use crate::domain::ticket::Channel;
use crate::domain::user::Role;
use crate::state::AppState;
use crate::views::Viewer;

/// What the register form sends, as typed.
#[derive(Deserialize, Default, Clone)]
pub struct NewMatterForm {
    site_id: Option<String>,
    kind: Option<String>,
    department: Option<String>,
    description: Option<String>,
    reporter_name: Option<String>,
    reporter_phone: Option<String>,
    location: Option<String>,
    channel: Option<String>,
}

/// A reply or a callback, as typed.
#[derive(Deserialize, Default)]
pub struct MatterActionForm {
    reply: Option<String>,
    reached: Option<String>,
    satisfaction: Option<String>,
    comment: Option<String>,
}

/// Which form a refusal belongs to: the register form, or a matter's reply or callback.
enum Refused<'a> {
    Register(&'a NewMatterForm, Problems),
    OnMatter { id: &'a str, action: &'a str, problems: Problems },
}

fn tz_of(sites: &[SiteInfo], site_id: &str) -> chrono_tz::Tz {
    sites.iter().find(|s| s.id == site_id).map(|s| s.tz).unwrap_or(chrono_tz::UTC)
}

async fn body(state: &AppState, desk: &Desk, refused: Option<Refused<'_>>) -> Result<Markup, Refusal> {
    let lang = desk.lang;
    let sites = desk_sites(state, desk).await?;
    let caller = desk.caller.clone();
    let rows = db::run(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        Ok(commands::list_matters(conn, &viewer, None, None)?)
    })
    .await
    .map_err(|e| Refusal::from_api(lang, e))?;
    let empty = (NewMatterForm::default(), Problems::default());
    let (typed, register_problems) = match &refused {
        Some(Refused::Register(f, p)) => (*f, p),
        _ => (&empty.0, &empty.1),
    };
    let none = Problems::default();
    let on = |id: &str, action: &str| match &refused {
        Some(Refused::OnMatter { id: i, action: a, problems }) if *i == id && *a == action => problems,
        _ => &none,
    };
    let replies = matches!(desk.caller.role, Role::Supervisor | Role::Admin);
    Ok(html! {
        section #matters {
            h1 { (lang.t("报事", "Matters")) }
            (register_form(desk, &sites, typed, register_problems))
            table.list {
                thead { tr { th { (lang.t("编号", "Number")) } th { (lang.t("类型", "Kind")) } th { (lang.t("部门", "Department")) }
                    th { (lang.t("状态", "Status")) } th { (lang.t("内容", "Description")) } th { (lang.t("报事人", "Reporter")) }
                    th { (lang.t("登记时间", "Registered")) } th { (lang.t("答复", "Reply")) } th { (lang.t("处理", "Action")) } } }
                tbody { @for m in &rows { tr data-testid="matter-row" data-number=(m.number) data-status=(m.status) data-id=(m.id) {
                    td { (m.number) } td { (lang.name(&m.kind)) } td { (lang.name(&m.department)) }
                    td data-testid="matter-status" { (lang.name(&m.status)) }
                    td { (m.description) @if let Some(l) = &m.location { br; small { (l) } } }
                    td { (m.reporter_name) @if let Some(p) = &m.reporter_phone { br; small { (p) } } }
                    td { (layout::at_naive(m.created_at, tz_of(&sites, &m.site_id))) }
                    td { (m.reply.as_deref().unwrap_or(""))
                        @if let Some(at) = m.replied_at { br; small { (layout::at_naive(at, tz_of(&sites, &m.site_id))) } } }
                    td {
                        @if m.status == MatterStatus::Open.as_str() && replies {
                            (reply_form(desk, m, on(&m.id, "reply")))
                        } @else if m.status == MatterStatus::Replied.as_str() {
                            (callback_form(desk, m, on(&m.id, "callback")))
                        }
                    }
                } } }
            }
        }
    })
}

fn register_form(desk: &Desk, sites: &[SiteInfo], f: &NewMatterForm, problems: &Problems) -> Markup {
    let lang = desk.lang;
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    let is = |o: &Option<String>, value: &str, default: bool| o.as_deref().map_or(default, |x| x == value);
    let open = !problems.fields.is_empty() || problems.form.is_some();
    html! {
        details.register open[open || f.description.is_some()] {
            summary { (lang.t("登记报事", "Register a matter")) }
            form.matter data-testid="matter-form" hx-post="/console/matters" hx-target="#matters" hx-swap="outerHTML"
                method="post" action="/console/matters" novalidate {
                (layout::csrf(desk))
                (layout::form_error(problems.form.as_deref()))
                div.fields {
                    label { (lang.t("项目", "Site"))
                        select name="site_id" { @for (i, s) in sites.iter().enumerate() {
                            option value=(s.id) selected[is(&f.site_id, &s.id, i == 0)] { (s.name) " (" (s.code) ")" } } }
                        (problems.field("site_id")) }
                    label { (lang.t("类型", "Kind"))
                        select name="kind" { @for k in MatterKind::ALL {
                            option value=(k.as_str()) selected[is(&f.kind, k.as_str(), *k == MatterKind::Complaint)] { (lang.name(k.as_str())) } } }
                        (problems.field("kind")) }
                    label { (lang.t("转交部门", "Department"))
                        select name="department" { @for d in Department::ALL {
                            option value=(d.as_str()) selected[is(&f.department, d.as_str(), *d == Department::CustomerService)] { (lang.name(d.as_str())) } } }
                        (problems.field("department")) }
                    label { (lang.t("来源", "Channel"))
                        select name="channel" { @for c in Channel::ALL {
                            option value=(c.as_str()) selected[is(&f.channel, c.as_str(), *c == Channel::Phone)] { (lang.name(c.as_str())) } } }
                        (problems.field("channel")) }
                    label { (lang.t("报事人", "Reporter"))
                        input name="reporter_name" value=(v(&f.reporter_name)) maxlength="100"; (problems.field("reporter_name")) }
                    label { (lang.t("手机号（可选）", "Mobile (optional)"))
                        input name="reporter_phone" type="tel" value=(v(&f.reporter_phone)); (problems.field("reporter_phone")) }
                    label { (lang.t("地点（可选）", "Place (optional)"))
                        input name="location" value=(v(&f.location)) maxlength="200"; (problems.field("location")) }
                }
                label { (lang.t("内容", "Description"))
                    textarea name="description" maxlength="2000" { (v(&f.description)) } (problems.field("description")) }
                button type="submit" { (lang.t("登记", "Register")) }
            }
        }
    }
}

fn reply_form(desk: &Desk, m: &MatterRow, problems: &Problems) -> Markup {
    let lang = desk.lang;
    let url = format!("/console/matters/{}/reply", m.id);
    html! {
        form.matter-action data-testid="matter-reply-form" hx-post=(url) hx-target="#matters" hx-swap="outerHTML"
            method="post" action=(url) {
            (layout::csrf(desk))
            (layout::form_error(problems.form.as_deref()))
            input name="reply" maxlength="2000" placeholder=(lang.t("部门答复", "The department's reply"));
            (problems.field("reply"))
            button type="submit" { (lang.t("答复", "Reply")) }
        }
    }
}

fn callback_form(desk: &Desk, m: &MatterRow, problems: &Problems) -> Markup {
    let lang = desk.lang;
    let url = format!("/console/matters/{}/callback", m.id);
    html! {
        form.matter-action data-testid="matter-callback-form" hx-post=(url) hx-target="#matters" hx-swap="outerHTML"
            method="post" action=(url) {
            (layout::csrf(desk))
            (layout::form_error(problems.form.as_deref()))
            select name="satisfaction" aria-label=(lang.t("满意度", "Satisfaction")) {
                option value="" { (lang.t("满意度", "Satisfaction")) }
                @for s in 1..=5 { option value=(s) { (s) } }
            }
            (problems.field("satisfaction"))
            input name="comment" maxlength="1000" placeholder=(lang.t("回访记录", "Comment"));
            (problems.field("comment"))
            button type="submit" name="reached" value="true" { (lang.t("已联系上，关闭", "Reached: close")) }
            button type="submit" name="reached" value="false" { (lang.t("未联系上", "Not reached")) }
        }
    }
}

pub async fn page(state: web::Data<AppState>, req: HttpRequest, desk: Desk) -> Page {
    let body = body(&state, &desk, None).await?;
    Ok(layout::respond(&req, &desk, Nav::Matters, desk.lang.t("报事", "Matters"), body))
}

/// The page after a form: the list as it now stands, the refused form with its errors (422 to a
/// browser without htmx, which swaps only successful answers).
async fn answer(state: &AppState, req: &HttpRequest, desk: &Desk, refused: Option<Refused<'_>>) -> Page {
    let status =
        if refused.is_some() && !super::is_htmx(req) { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    let body = body(state, desk, refused).await?;
    Ok(layout::respond_with(req, desk, Nav::Matters, desk.lang.t("报事", "Matters"), body, status))
}

/// Registers a matter (`commands::create_matter`, as `POST /api/v1/matters`).
pub async fn create(state: web::Data<AppState>, req: HttpRequest, form: DeskForm<NewMatterForm>) -> Page {
    let DeskForm { desk, form: f } = form;
    let matter = MatterForm {
        site_id: filled(&f.site_id),
        kind: filled(&f.kind),
        department: filled(&f.department),
        description: filled(&f.description),
        reporter_name: filled(&f.reporter_name),
        reporter_phone: filled(&f.reporter_phone),
        location: filled(&f.location),
        channel: filled(&f.channel),
    };
    let caller = desk.caller.clone();
    let done = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        Ok(commands::create_matter(conn, &viewer, &matter, db::now()).map(|_| ())?)
    })
    .await;
    match done {
        Ok(()) => {
            if !super::is_htmx(&req) {
                return Ok(super::redirect(&req, "/console/matters"));
            }
            answer(&state, &req, &desk, None).await
        }
        Err(e) => {
            let problems = Problems::of(desk.lang, &e);
            answer(&state, &req, &desk, Some(Refused::Register(&f, problems))).await
        }
    }
}

/// A matter's reply (`commands::reply_matter`) or callback (`commands::callback_matter`).
pub async fn act(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: DeskForm<MatterActionForm>,
) -> Page {
    let DeskForm { desk, form: f } = form;
    let (id, action) = path.into_inner();
    let Some(action) = ["reply", "callback"].into_iter().find(|a| *a == action) else {
        return Err(Refusal::NotFound { lang: desk.lang });
    };
    let (caller, matter_id) = (desk.caller.clone(), id.clone());
    let done = db::transaction(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller.clone())?;
        let now = db::now();
        if action == "reply" {
            commands::reply_matter(conn, &viewer, &matter_id, ReplyBody { reply: filled(&f.reply) }, now)?;
        } else {
            let body = CallbackBody {
                reached: f.reached.as_deref() == Some("true"),
                satisfaction: number("satisfaction", &f.satisfaction)?,
                comment: filled(&f.comment),
            };
            commands::callback_matter(conn, &viewer, &matter_id, body, now)?;
        }
        Ok(())
    })
    .await;
    match done {
        Ok(()) if !super::is_htmx(&req) => Ok(super::redirect(&req, "/console/matters")),
        Ok(()) => answer(&state, &req, &desk, None).await,
        Err(e) => {
            let problems = Problems::of(desk.lang, &e);
            answer(&state, &req, &desk, Some(Refused::OnMatter { id: &id, action, problems })).await
        }
    }
}
