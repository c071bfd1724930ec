//! The monthly report (issue 16): who may read which sites' month, and the figures, read by
//! `db::reports` and folded by `domain::report`; and the report as the files the API and the
//! console both hand out (a ZIP of CSV files, a workbook).

use std::collections::BTreeSet;
use std::io::Write;

use rust_xlsxwriter::{Format, Workbook};

use super::desk::DESK;
use super::error::Error;
use crate::db::reports::{self, Window};
use crate::db::sites::SiteRow;
use crate::db::{self, DbConn};
use crate::domain::report::{figures, tables, Cell, Lang, Month, Report, Rows, SiteReport, Table, MAX_SITES};
use crate::domain::site::parse_timezone;
use crate::domain::ticket::Clock;
use crate::domain::user::Role;
use crate::views::Viewer;

/// Which sites' month: at least one site; several only for an admin or a supervisor.
pub struct ReportQuery {
    pub site_ids: Vec<String>,
    pub month: Month,
}

/// The sites' figures for the month, each counted in its own time zone; with several sites,
/// each one's report and their total. Run it in one transaction ([`db::snapshot`]), so its
/// statements agree with each other.
pub fn monthly_report(conn: &mut DbConn, viewer: &Viewer, clock: &Clock, q: &ReportQuery) -> Result<Report, Error> {
    viewer.caller.require(&DESK)?;
    let mut seen = BTreeSet::new();
    let site_ids: Vec<String> = q.site_ids.iter().filter(|s| seen.insert(s.as_str())).cloned().collect();
    if site_ids.is_empty() {
        return Err(Error::field("site_id", "is required: the site whose month to report"));
    }
    if site_ids.len() > MAX_SITES {
        return Err(Error::field("site_id", format!("at most {MAX_SITES} sites at once")));
    }
    if site_ids.len() > 1 && viewer.caller.role == Role::Dispatcher {
        return Err(Error::field("site_id", "a dispatcher's report covers one site at a time"));
    }
    let mut sites: Vec<(SiteRow, Window)> = Vec::with_capacity(site_ids.len());
    for id in &site_ids {
        let site = db::sites::find(conn, id)?
            .filter(|s| viewer.is_site_desk(&s.id))
            .ok_or_else(|| Error::field("site_id", format!("{id} is not a site of yours")))?;
        let tz = parse_timezone(&site.timezone).map_err(Error::internal)?;
        let (from, until) = q.month.bounds(&tz);
        let window = Window { site_id: site.id.clone(), from, until };
        sites.push((site, window));
    }
    reports::begin(conn)?;
    let reply_minutes = clock.matter_reply.num_seconds() as f64 / 60.0;
    let mut per_site = Vec::with_capacity(sites.len());
    for (_, window) in &sites {
        let windows = std::slice::from_ref(window);
        let mut rows = reports::rows(conn, windows, reply_minutes)?;
        rows.medians = reports::medians(conn, windows)?;
        per_site.push(rows);
    }
    let windows: Vec<Window> = sites.iter().map(|(_, w)| w.clone()).collect();
    let mut whole = match per_site.len() {
        1 => per_site[0].clone(),
        _ => {
            let mut whole = Rows::combine(per_site.clone());
            whole.medians = reports::medians(conn, &windows)?;
            whole
        }
    };
    let mut ids: Vec<String> = whole
        .arrivals
        .iter()
        .filter_map(|r| r.technician_id.clone())
        .chain(whole.completions.iter().filter_map(|r| r.technician_id.clone()))
        .collect();
    ids.sort();
    ids.dedup();
    whole.names = reports::names(conn, &ids)?.into_iter().collect();

    let zones: BTreeSet<&str> = sites.iter().map(|(s, _)| s.timezone.as_str()).collect();
    let shared = (zones.len() == 1).then(|| &sites[0].1);
    let site_reports = match sites.len() {
        1 => Vec::new(),
        _ => sites
            .iter()
            .zip(per_site)
            .map(|((site, window), mut rows)| {
                rows.names = whole.names.clone();
                SiteReport {
                    site_id: site.id.clone(),
                    code: site.code.clone(),
                    name: site.name.clone(),
                    timezone: site.timezone.clone(),
                    from: window.from.and_utc(),
                    until: window.until.and_utc(),
                    figures: figures(rows, clock),
                }
            })
            .collect(),
    };
    Ok(Report {
        site_ids,
        month: q.month.to_string(),
        timezone: zones.into_iter().collect::<Vec<_>>().join(", "),
        from: shared.map(|w| w.from.and_utc()),
        until: shared.map(|w| w.until.and_utc()),
        figures: figures(whole, clock),
        sites: site_reports,
    })
}

// ---- the report as files ----

pub const ZIP: &str = "application/zip";
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// The files a report is handed out as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// A ZIP of one CSV per section, UTF-8 with a byte order mark.
    Csv,
    /// A workbook, a sheet per section.
    Xlsx,
}

impl FileFormat {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "csv" => Some(Self::Csv),
            "xlsx" => Some(Self::Xlsx),
            _ => None,
        }
    }
}

/// A report as a file to download.
pub struct ReportFile {
    /// `repairdesk-report-2026-11.zip`.
    pub name: String,
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

/// The report as a file, its headers and sheet names in `lang`.
pub fn report_file(report: &Report, format: FileFormat, lang: Lang) -> Result<ReportFile, Error> {
    let tables = tables(report, lang);
    let (bytes, content_type, extension) = match format {
        FileFormat::Csv => (csv_zip(&tables).map_err(Error::internal)?, ZIP, "zip"),
        FileFormat::Xlsx => (workbook(&tables).map_err(Error::internal)?, XLSX, "xlsx"),
    };
    Ok(ReportFile { name: format!("repairdesk-report-{}.{extension}", report.month), content_type, bytes })
}

/// A cell as CSV text ([`Cell::display`]), a text that a spreadsheet would run as a formula
/// (`=`, `+`, `-`, `@` first) behind a `'`.
fn csv_cell(cell: &Cell) -> String {
    let raw = match cell {
        Cell::Text(t) if t.starts_with(['=', '+', '-', '@']) => format!("'{t}"),
        other => other.display(),
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
