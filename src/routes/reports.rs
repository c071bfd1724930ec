//! The monthly report (issue 16) as JSON, as a ZIP of CSV files, or as a workbook.

use actix_web::http::header;
use actix_web::{get, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::NUL_MESSAGE;
use crate::auth::Caller;
use crate::commands::{self, FileFormat, ReportQuery};
use crate::db;
use crate::domain::report::{Lang, Month, Report};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::state::AppState;
use crate::views::Viewer;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(monthly_report);
}

/// How the report is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportFormat {
    Json,
    /// A ZIP of one CSV per section, UTF-8 with a byte order mark.
    Csv,
    /// A workbook, a sheet per section.
    Xlsx,
}

/// The language of the CSV and workbook headers and sheet names (the JSON's names never change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportLang {
    En,
    Zh,
}

/// The query, as documented (it is read by hand: `site_id` repeats).
#[allow(dead_code)]
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MonthlyReportParams {
    /// Required: a site of the caller's desk (an admin: any). Repeated (`site_id=a&site_id=b`)
    /// for several sites at once, with their total: admins and supervisors only, at most 50.
    #[param(style = Form, explode, max_items = 50)]
    site_id: Option<Vec<String>>,
    /// Required: the month, `YYYY-MM`, counted in each site's own time zone.
    #[param(pattern = r"^[0-9]{4}-(?:0[1-9]|1[0-2])$", example = "2026-11")]
    month: Option<String>,
    /// `json` (the default), `csv` or `xlsx`.
    #[param(inline)]
    format: Option<ReportFormat>,
    /// `en` (the default) or `zh`: the CSV and workbook headers and sheet names.
    #[param(inline)]
    lang: Option<ReportLang>,
}

/// A file of the report: the ZIP of CSV files, or the workbook.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct ReportFile(#[allow(dead_code)] Vec<u8>);

struct Parsed {
    site_ids: Vec<String>,
    month: Month,
    format: ReportFormat,
    lang: Lang,
}

fn parse(raw: &str) -> Result<Parsed, ApiError> {
    let (mut site_ids, mut month, mut format, mut lang) = (Vec::new(), None, None, None);
    let mut errors = Vec::new();
    for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
        if name.contains('\0') || value.contains('\0') {
            return Err(ApiError::field(&name.replace('\0', "\u{FFFD}"), NUL_MESSAGE));
        }
        match name.as_ref() {
            "site_id" => site_ids.push(value.trim().to_owned()),
            "month" => month = Some(value.into_owned()),
            "format" => format = Some(value.into_owned()),
            "lang" => lang = Some(value.into_owned()),
            _ => {}
        }
    }
    let month = match month.as_deref().map(|m| Month::parse(m.trim())) {
        None => {
            errors.push(FieldError::new("month", "is required: YYYY-MM"));
            None
        }
        Some(Err(message)) => {
            errors.push(FieldError::new("month", message));
            None
        }
        Some(Ok(m)) => Some(m),
    };
    let format = match format.as_deref() {
        None | Some("json") => ReportFormat::Json,
        Some("csv") => ReportFormat::Csv,
        Some("xlsx") => ReportFormat::Xlsx,
        Some(_) => {
            errors.push(FieldError::new("format", "must be one of json, csv, xlsx"));
            ReportFormat::Json
        }
    };
    let lang = match lang.as_deref() {
        None => Lang::En,
        Some(l) => Lang::parse(l).unwrap_or_else(|| {
            errors.push(FieldError::new("lang", format!("must be one of {}", Lang::NAMES)));
            Lang::En
        }),
    };
    if site_ids.is_empty() {
        errors.push(FieldError::new("site_id", "is required: the site whose month to report"));
    }
    match month {
        Some(month) if errors.is_empty() => Ok(Parsed { site_ids, month, format, lang }),
        _ => Err(ApiError::validation(errors)),
    }
}

/// The month's figures of a site (`docs/reports.md` defines each): volume, on-time arrivals,
/// rework, callbacks, per trade, per technician, fees, materials, voided tickets and matters.
/// The desk of the site (dispatchers, supervisors) or an admin; technicians are refused. Several
/// `site_id` give each site's figures (`sites`) and their total. Every rate is `null` when its
/// denominator is 0. `format=csv` answers a ZIP of one CSV per section (UTF-8 with a byte order
/// mark, so spreadsheet programs read Chinese), `format=xlsx` a workbook with a sheet per section
/// (numbers as numbers, rates as percentages, money in yuan); `lang=zh` writes their headers and
/// names in Chinese.
#[utoipa::path(
    tag = "reports",
    security(("bearer" = [])),
    params(MonthlyReportParams),
    responses(
        (status = 200, description = "the report, in the format asked for", content(
            (Report = "application/json"),
            (ReportFile = "application/zip"),
            (ReportFile = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        )),
        (status = 403, description = "`forbidden`: the desk and admins only", body = crate::error::Problem),
        (status = 422, description = "`validation_failed` naming `site_id` (missing, not a site of the caller's desk, several for a dispatcher), `month`, `format` or `lang`", body = crate::error::Problem),
    )
)]
#[get("/reports/monthly")]
pub async fn monthly_report(state: web::Data<AppState>, caller: Caller, req: HttpRequest) -> ApiResult<HttpResponse> {
    let Parsed { site_ids, month, format, lang } = parse(req.query_string())?;
    let clock = state.clock;
    let body = db::run(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        let query = ReportQuery { site_ids, month };
        let report = db::snapshot(conn, |conn| -> Result<Report, ApiError> {
            Ok(commands::monthly_report(conn, &viewer, &clock, &query)?)
        })?;
        let format = match format {
            ReportFormat::Json => return Ok(Body::Json(Box::new(report))),
            ReportFormat::Csv => FileFormat::Csv,
            ReportFormat::Xlsx => FileFormat::Xlsx,
        };
        Ok(Body::File(commands::report_file(&report, format, lang)?))
    })
    .await?;
    Ok(match body {
        Body::Json(report) => HttpResponse::Ok().json(report),
        Body::File(file) => HttpResponse::Ok()
            .content_type(file.content_type)
            .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}\"", file.name)))
            .body(file.bytes),
    })
}

enum Body {
    Json(Box<Report>),
    File(commands::ReportFile),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_each_bad_parameter() {
        let fields = |raw: &str| match parse(raw) {
            Err(e) => e.problem().errors.unwrap_or_default().into_iter().map(|e| e.field).collect::<Vec<_>>(),
            Ok(_) => Vec::new(),
        };
        assert_eq!(fields("site_id=a&month=2026-13"), ["month"]);
        assert_eq!(fields("site_id=a&month=2026-11&format=pdf&lang=fr"), ["format", "lang"]);
        assert_eq!(fields("month=2026-11"), ["site_id"]);
        let ok = parse("site_id=a&site_id=b&month=2026-11&format=xlsx&lang=zh").ok().unwrap();
        assert_eq!((ok.site_ids.len(), ok.format, ok.lang), (2, ReportFormat::Xlsx, Lang::Zh));
        assert!(regex::Regex::new(crate::domain::report::MONTH_PATTERN).unwrap().is_match("2026-11"));
    }
}
