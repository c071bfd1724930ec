//! The monthly report (issue 16) as JSON, as a ZIP of CSV files, or as a workbook.

use std::io::Write;

use actix_web::http::header;
use actix_web::{get, web, HttpRequest, HttpResponse};
use rust_xlsxwriter::{Format, Workbook};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::NUL_MESSAGE;
use crate::auth::Caller;
use crate::commands::{self, ReportQuery};
use crate::db;
use crate::domain::report::{tables, Cell, Lang, Month, Report, Table};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::state::AppState;
use crate::views::Viewer;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(monthly_report);
}

pub const ZIP: &str = "application/zip";
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

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
    let (body, name) = db::run(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        let query = ReportQuery { site_ids, month };
        let report = db::snapshot(conn, |conn| -> Result<Report, ApiError> {
            Ok(commands::monthly_report(conn, &viewer, &clock, &query)?)
        })?;
        let name = format!("repairdesk-report-{}", report.month);
        let body = match format {
            ReportFormat::Json => return Ok((Body::Json(Box::new(report)), name)),
            ReportFormat::Csv => csv_zip(&tables(&report, lang)).map_err(ApiError::internal)?,
            ReportFormat::Xlsx => workbook(&tables(&report, lang)).map_err(ApiError::internal)?,
        };
        Ok((Body::File(body), name))
    })
    .await?;
    Ok(match body {
        Body::Json(report) => HttpResponse::Ok().json(report),
        Body::File(bytes) => {
            let (content_type, extension) = match format {
                ReportFormat::Csv => (ZIP, "zip"),
                _ => (XLSX, "xlsx"),
            };
            HttpResponse::Ok()
                .content_type(content_type)
                .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}.{extension}\"")))
                .body(bytes)
        }
    })
}

enum Body {
    Json(Box<Report>),
    File(Vec<u8>),
}

/// A cell as CSV text: money in yuan with two decimals, rates as percentages with one, and a
/// text that a spreadsheet would run as a formula (`=`, `+`, `-`, `@` first) behind a `'`.
fn csv_cell(cell: &Cell) -> String {
    let raw = match cell {
        Cell::Text(t) if t.starts_with(['=', '+', '-', '@']) => format!("'{t}"),
        Cell::Text(t) => t.clone(),
        Cell::Count(n) => n.to_string(),
        Cell::Cents(c) => format!("{}{}.{:02}", if *c < 0 { "-" } else { "" }, c.abs() / 100, c.abs() % 100),
        Cell::Rate(Some(r)) => format!("{:.1}%", r * 100.0),
        Cell::Number(Some(x)) => x.to_string(),
        Cell::Rate(None) | Cell::Number(None) => String::new(),
    };
    if raw.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", raw.replace('"', "\"\""))
    } else {
        raw
    }
}

/// One CSV per table, `01_volume.csv`..., each UTF-8 with a byte order mark and CRLF lines.
fn csv_zip(tables: &[Table]) -> Result<Vec<u8>, zip::result::ZipError> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (i, table) in tables.iter().enumerate() {
        zip.start_file(format!("{:02}_{}.csv", i + 1, table.name), options)?;
        let mut text = String::from("\u{feff}");
        let header: Vec<String> = table.headers.iter().map(|h| csv_cell(&Cell::Text((*h).to_owned()))).collect();
        text.push_str(&header.join(","));
        text.push_str("\r\n");
        for row in &table.rows {
            text.push_str(&row.iter().map(csv_cell).collect::<Vec<_>>().join(","));
            text.push_str("\r\n");
        }
        zip.write_all(text.as_bytes())?;
    }
    Ok(zip.finish()?.into_inner())
}

/// A workbook with a sheet per table: counts and minutes as numbers, money in yuan (`0.00`),
/// rates as percentages (`0.0%`), an empty cell where a figure is `null`.
fn workbook(tables: &[Table]) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let money = Format::new().set_num_format("0.00");
    let percent = Format::new().set_num_format("0.0%");
    for table in tables {
        let sheet = book.add_worksheet();
        sheet.set_name(table.name)?;
        for (col, header) in table.headers.iter().enumerate() {
            sheet.write_string_with_format(0, col as u16, *header, &bold)?;
            sheet.set_column_width(col as u16, 14)?;
        }
        for (r, row) in table.rows.iter().enumerate() {
            let r = r as u32 + 1;
            for (col, cell) in row.iter().enumerate() {
                let col = col as u16;
                match cell {
                    Cell::Text(t) => sheet.write_string(r, col, t)?,
                    Cell::Count(n) => sheet.write_number(r, col, *n as f64)?,
                    Cell::Cents(c) => sheet.write_number_with_format(r, col, *c as f64 / 100.0, &money)?,
                    Cell::Rate(Some(x)) => sheet.write_number_with_format(r, col, *x, &percent)?,
                    Cell::Number(Some(x)) => sheet.write_number(r, col, *x)?,
                    Cell::Rate(None) | Cell::Number(None) => sheet,
                };
            }
        }
    }
    book.save_to_buffer()
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

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell(&Cell::Text("a,b".into())), "\"a,b\"");
        assert_eq!(csv_cell(&Cell::Text("=1+1".into())), "'=1+1");
        assert_eq!(csv_cell(&Cell::Cents(12345)), "123.45");
        assert_eq!(csv_cell(&Cell::Cents(5)), "0.05");
        assert_eq!(csv_cell(&Cell::Rate(Some(2.0 / 3.0))), "66.7%");
        assert_eq!(csv_cell(&Cell::Rate(None)), "");
        assert_eq!(csv_cell(&Cell::Number(Some(12.5))), "12.5");
    }
}
