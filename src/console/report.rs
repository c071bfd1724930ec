//! The monthly report (`GET /console/reports`): a site and a month (the site's current month
//! unless asked), the figures of `commands::monthly_report` as tables, charts drawn on the server
//! (`charts`), and the same report's files (`GET /console/reports/download`, through
//! `commands::report_file`, as `GET /api/v1/reports/monthly` hands them out).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;

use super::charts;
use super::i18n::Lang;
use super::layout::{self, Nav, Problems};
use super::lists::desk_sites;
use super::session::Desk;
use super::{Page, Refusal};
use crate::commands::{self, board::SiteInfo, FileFormat, ReportQuery};
use crate::db;
use crate::domain::report::{self, Month, Report, TARGETS};
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::Viewer;

#[derive(Deserialize)]
pub struct ReportParams {
    site: Option<String>,
    month: Option<String>,
    format: Option<String>,
}

/// The site asked for (else the desk's first) and the month (else the site's current one).
fn chosen(sites: &[SiteInfo], q: &ReportParams) -> (Option<String>, Result<Month, ApiError>) {
    let site = q.site.clone().filter(|s| !s.trim().is_empty()).or_else(|| sites.first().map(|s| s.id.clone()));
    let tz = sites.iter().find(|s| Some(&s.id) == site.as_ref()).map_or(chrono_tz::UTC, |s| s.tz);
    let month = match q.month.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
        Some(raw) => Month::parse(raw).map_err(|m| ApiError::field("month", &m)),
        None => Ok(Month::of(db::now().and_utc(), &tz)),
    };
    (site, month)
}

fn report_lang(lang: Lang) -> report::Lang {
    match lang {
        Lang::Zh => report::Lang::Zh,
        Lang::En => report::Lang::En,
    }
}

async fn load(state: &AppState, desk: &Desk, site: Option<String>, month: Month) -> Result<Report, ApiError> {
    let (caller, clock) = (desk.caller.clone(), state.clock);
    db::run(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        let query = ReportQuery { site_ids: site.into_iter().collect(), month };
        db::snapshot(conn, |conn| -> Result<Report, ApiError> {
            Ok(commands::monthly_report(conn, &viewer, &clock, &query)?)
        })
    })
    .await
}

fn link(path: &str, site: &str, month: Month, extra: &str) -> String {
    let site = percent_encoding::utf8_percent_encode(site, percent_encoding::NON_ALPHANUMERIC);
    format!("{path}?site={site}&month={month}{extra}")
}

pub async fn page(state: web::Data<AppState>, req: HttpRequest, desk: Desk, q: web::Query<ReportParams>) -> Page {
    let lang = desk.lang;
    let sites = desk_sites(&state, &desk).await?;
    let (site, month) = chosen(&sites, &q);
    let (report, problems) = match month {
        Ok(month) => match load(&state, &desk, site.clone(), month).await {
            Ok(r) => (Some(r), Problems::default()),
            Err(e) => (None, Problems::of(lang, &e)),
        },
        Err(e) => (None, Problems::of(lang, &e)),
    };
    let status = if problems.fields.is_empty() && problems.form.is_none() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let typed = q.month.clone().unwrap_or_else(|| report.as_ref().map(|r| r.month.clone()).unwrap_or_default());
    let body = render(&desk, &sites, site.as_deref(), &typed, report.as_ref(), &problems);
    Ok(layout::respond_with(&req, &desk, Nav::Reports, lang.t("月度报表", "Monthly report"), body, status))
}

fn render(
    desk: &Desk,
    sites: &[SiteInfo],
    site: Option<&str>,
    typed: &str,
    report: Option<&Report>,
    problems: &Problems,
) -> Markup {
    let lang = desk.lang;
    let info = sites.iter().find(|s| Some(s.id.as_str()) == site);
    html! {
        section #report data-testid="report" data-site=[site] data-month=[report.map(|r| r.month.as_str())] {
            h1 { (lang.t("月度报表", "Monthly report"))
                @if let (Some(s), Some(r)) = (info, report) { span.sub { " · " (s.name) " · " (r.month) } } }
            form.report-picker method="get" action="/console/reports" data-testid="report-form" {
                label { (lang.t("项目", "Site"))
                    select name="site" {
                        @for s in sites { option value=(s.id) selected[Some(s.id.as_str()) == site] { (s.name) " (" (s.code) ")" } }
                    }
                    (problems.field("site_id"))
                }
                label { (lang.t("月份（项目所在时区）", "Month (the site's time zone)"))
                    input type="month" name="month" value=(typed) pattern="[0-9]{4}-[0-9]{2}" placeholder="2026-11";
                    (problems.field("month"))
                }
                button type="submit" { (lang.t("查看", "Show")) }
            }
            (layout::form_error(problems.form.as_deref()))
            @if let (Some(r), Some(site)) = (report, site) {
                @let month = Month::parse(&r.month).ok();
                @if let Some(month) = month {
                    p.months {
                        a href=(link("/console/reports", site, month.previous(), "")) { "← " (lang.t("上月", "Previous month")) }
                    }
                }
                @if let (Some(from), Some(until), Some(s)) = (r.from, r.until, info) {
                    p.period { (lang.t("统计区间：", "Counted from ")) (layout::at(from, s.tz))
                        (lang.t(" 至 ", " to ")) (layout::at(until, s.tz)) (lang.t("（不含）", " (not included)")) }
                }
                @if let Some(month) = month {
                    p.downloads {
                        a.download data-testid="report-download" data-format="xlsx" download
                            href=(link("/console/reports/download", site, month, "&format=xlsx")) { (lang.t("下载 Excel (XLSX)", "Download Excel (XLSX)")) }
                        a.download data-testid="report-download" data-format="csv" download
                            href=(link("/console/reports/download", site, month, "&format=csv")) { (lang.t("下载 CSV (ZIP)", "Download CSV (ZIP)")) }
                    }
                }
                (charts_of(lang, r))
                @for t in report::tables(r, report_lang(lang)) {
                    section.report-section {
                        h2 { (t.name) }
                        @if t.rows.is_empty() { p.none { (lang.t("无", "None")) } } @else {
                            table.list.report-table data-section=(t.key) {
                                thead { tr { @for h in &t.headers { th { (h) } } } }
                                tbody { @for row in &t.rows { tr {
                                    @for cell in row {
                                        td class=@if !matches!(cell, report::Cell::Text(_)) { "num" } { (cell.display()) }
                                    }
                                } } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn charts_of(lang: Lang, r: &Report) -> Markup {
    let f = &r.figures;
    let targets: Vec<(String, Option<f64>, _)> = TARGETS
        .iter()
        .map(|t| {
            let label = match t.key {
                "on_time" => lang.t("按时到场率（目标 100%）", "On time (target 100%)"),
                "rework" => lang.t("返修率（目标 ≤1%）", "Rework (target ≤ 1%)"),
                _ => lang.t("回访率（目标 100%）", "Callbacks (target 100%)"),
            };
            (label.to_owned(), t.actual(f), *t)
        })
        .collect();
    let by_trade: Vec<(String, i64)> =
        f.by_trade.iter().map(|t| (lang.name(&t.category).to_owned(), t.created)).collect();
    let by_channel: Vec<(String, i64)> =
        f.volume.by_channel.iter().map(|(c, n)| (lang.name(c).to_owned(), *n)).collect();
    let (t1, t2, t3) = (
        lang.t("达标情况", "Against the targets"),
        lang.t("各工种报修量", "Tickets by trade"),
        lang.t("报修来源", "Tickets by channel"),
    );
    html! {
        div.charts {
            figure { figcaption { (t1) } (charts::rates(lang, t1, &targets)) }
            figure { figcaption { (t2) } (charts::bars("by_trade", t2, &by_trade)) }
            figure { figcaption { (t3) } (charts::bars("by_channel", t3, &by_channel)) }
        }
    }
}

/// The report's file for the site and month: the workbook (`format=xlsx`) or the ZIP of CSV files
/// (`format=csv`), its headers in the console's language.
pub async fn download(state: web::Data<AppState>, desk: Desk, q: web::Query<ReportParams>) -> Page {
    let lang = desk.lang;
    let failed = |error: ApiError| Refusal::from_api(lang, error);
    let format = q
        .format
        .as_deref()
        .and_then(FileFormat::parse)
        .ok_or_else(|| failed(ApiError::field("format", "must be one of csv, xlsx")))?;
    let site = q.site.clone().filter(|s| !s.trim().is_empty());
    if site.is_none() {
        return Err(failed(ApiError::field("site_id", "is required: the site whose month to report")));
    }
    let month = match q.month.as_deref() {
        Some(raw) => Month::parse(raw.trim()).map_err(|m| failed(ApiError::field("month", &m)))?,
        None => return Err(failed(ApiError::field("month", "is required: YYYY-MM"))),
    };
    let report = load(&state, &desk, site, month).await.map_err(failed)?;
    let file = commands::report_file(&report, format, report_lang(lang)).map_err(|e| failed(e.into()))?;
    Ok(HttpResponse::Ok()
        .content_type(file.content_type)
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}\"", file.name)))
        .body(file.bytes))
}
