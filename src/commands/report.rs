//! The monthly report (issue 16): who may read which sites' month, and the figures, read by
//! `db::reports` and folded by `domain::report`.

use std::collections::BTreeSet;

use super::desk::DESK;
use super::error::Error;
use crate::db::reports::{self, Window};
use crate::db::sites::SiteRow;
use crate::db::{self, DbConn};
use crate::domain::report::{figures, Month, Report, Rows, SiteReport, MAX_SITES};
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
