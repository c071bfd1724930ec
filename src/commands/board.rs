//! What the desk's console reads: the board of a desk's live tickets with their clocks, a
//! ticket's page, the technicians a ticket may go to, and the lists beside them (search,
//! callbacks due, handovers, matters). Reads only: the console's changes go through the same
//! commands as the API's.

use std::collections::HashMap;

use chrono::NaiveDateTime;

use super::desk::DESK;
use super::error::Error;
use crate::db::{self, escalations::EscalationFilter, tickets::TicketFilter, DbConn};
use crate::domain::matter::MatterStatus;
use crate::domain::place::search_terms;
use crate::domain::site::parse_timezone;
use crate::domain::ticket::{Clock, ClockColour, Running, Status};
use crate::domain::user::Role;
use crate::views::{visible, EscalationItemView, HandoverView, MatterView, TicketEvent, TicketView, Viewer};

/// The board's columns, in the order a ticket moves through them.
pub const BOARD_STATUSES: [Status; 5] =
    [Status::Open, Status::Assigned, Status::OnSite, Status::OnHold, Status::AwaitingInspection];

/// The most tickets a board shows (the oldest past it are left off, and the board says so).
pub const MAX_BOARD: usize = 2000;

/// A site as the console shows it, with its time zone.
#[derive(Debug, Clone)]
pub struct SiteInfo {
    pub id: String,
    pub code: String,
    pub name: String,
    pub tz: chrono_tz::Tz,
}

/// A ticket on the board.
#[derive(Debug, Clone)]
pub struct Card {
    pub id: String,
    pub number: String,
    pub site_id: String,
    pub location: String,
    pub category: String,
    pub urgency: String,
    pub status: Status,
    pub assignee_name: Option<String>,
    pub created_at: NaiveDateTime,
    /// The service level that runs out first, and how close it is.
    pub clock: Option<(Running, ClockColour)>,
}

pub struct Board {
    pub sites: Vec<SiteInfo>,
    /// Each column's tickets, most pressing first (the soonest deadline, then the oldest).
    pub columns: Vec<(Status, Vec<Card>)>,
    /// Open escalations, not yet acknowledged first, newest first within each.
    pub escalations: Vec<EscalationItemView>,
    /// More live tickets than [`MAX_BOARD`]: the oldest were left off.
    pub truncated: bool,
}

fn sites(conn: &mut DbConn, only: Option<&[String]>) -> Result<Vec<SiteInfo>, Error> {
    db::sites::list(conn, only)?
        .into_iter()
        .map(|s| {
            let tz = parse_timezone(&s.timezone).map_err(Error::internal)?;
            Ok(SiteInfo { id: s.id, code: s.code, name: s.name, tz })
        })
        .collect()
}

/// Display names by user id, of the users of these sites (all, for `None`).
fn names(conn: &mut DbConn, only: Option<&[String]>) -> Result<HashMap<String, String>, Error> {
    Ok(db::users::list(conn, only)?.into_iter().map(|u| (u.row.id, u.row.display_name)).collect())
}

/// The live tickets of the viewer's desk sites (one, when `site_id` names one of them), in
/// columns by status, each with its clock at `now`, and the open escalations above them.
pub fn board(
    conn: &mut DbConn,
    viewer: &Viewer,
    clock: &Clock,
    site_id: Option<String>,
    now: NaiveDateTime,
) -> Result<Board, Error> {
    viewer.caller.require(&DESK)?;
    let only = viewer.desk_sites(site_id);
    let filter = TicketFilter {
        statuses: BOARD_STATUSES.to_vec(),
        sites: only.clone(),
        limit: MAX_BOARD as i64 + 1,
        ..Default::default()
    };
    let mut rows = db::tickets::list(conn, &filter)?;
    let truncated = rows.len() > MAX_BOARD;
    rows.truncate(MAX_BOARD);
    let names = names(conn, only.as_deref())?;
    let mut columns: Vec<(Status, Vec<Card>)> = BOARD_STATUSES.iter().map(|s| (*s, Vec::new())).collect();
    for t in rows {
        let running = clock.next_due(&t.clock_facts());
        let card = Card {
            assignee_name: t.assignee_id.as_ref().map(|id| names.get(id).cloned().unwrap_or_else(|| id.clone())),
            clock: running.map(|r| (r, r.colour(now))),
            id: t.id,
            number: t.number,
            site_id: t.site_id,
            location: t.location,
            category: t.category,
            urgency: t.urgency,
            status: t.status,
            created_at: t.created_at,
        };
        if let Some((_, cards)) = columns.iter_mut().find(|(s, _)| *s == card.status) {
            cards.push(card);
        }
    }
    for (_, cards) in &mut columns {
        cards.sort_by_key(|c| (c.clock.map(|(r, _)| r.deadline), c.created_at));
    }
    let escalation_filter = EscalationFilter { sites: only.clone(), open_only: true, ..Default::default() };
    let mut escalations: Vec<EscalationItemView> =
        db::escalations::list_desk(conn, &escalation_filter)?.into_iter().map(Into::into).collect();
    // stable: newest first within each part, as listed
    escalations.sort_by_key(|e| e.acknowledged_at.is_some());
    Ok(Board { sites: sites(conn, only.as_deref())?, columns, escalations, truncated })
}

/// A ticket with everything the desk's page shows of it.
pub struct TicketPage {
    pub ticket: TicketView,
    pub site: SiteInfo,
    /// Oldest first.
    pub events: Vec<TicketEvent>,
    /// The active technicians of the ticket's site, by name: whom it may be assigned to.
    pub technicians: Vec<(String, String)>,
    /// Display names of the site's users (and the viewer), for the history's actors.
    pub names: HashMap<String, String>,
    pub has_signature: bool,
    /// The service level that runs out first, and how close it is.
    pub clock: Option<(Running, ClockColour)>,
}

pub fn ticket_page(
    conn: &mut DbConn,
    viewer: &Viewer,
    clock: &Clock,
    id: &str,
    now: NaiveDateTime,
) -> Result<TicketPage, Error> {
    viewer.caller.require(&DESK)?;
    let t = visible(conn, viewer, id)?;
    let running = clock.next_due(&t.clock_facts());
    let site_ids = [t.site_id.clone()];
    let site = sites(conn, Some(&site_ids))?.pop().ok_or_else(|| Error::not_found("site"))?;
    let users = db::users::list(conn, Some(&site_ids))?;
    let technicians = active_technicians(&users)
        .into_iter()
        .filter(|(site, _, _)| *site == t.site_id)
        .map(|(_, id, name)| (id, name))
        .collect();
    let mut names: HashMap<String, String> = users.into_iter().map(|u| (u.row.id, u.row.display_name)).collect();
    let events: Vec<TicketEvent> = db::events::for_ticket(conn, &t.id)?.into_iter().map(TicketEvent::from).collect();
    // who else acted on it (an admin, someone since moved off the site)
    let mut others: Vec<String> = events.iter().filter_map(|e| e.actor_id.clone()).collect();
    others.extend([t.created_by.clone(), viewer.caller.user_id.clone()]);
    others.sort();
    others.dedup();
    others.retain(|id| !names.contains_key(id));
    for id in others {
        if let Some(u) = db::users::find(conn, &id)? {
            names.insert(u.row.id, u.row.display_name);
        }
    }
    let has_signature = db::tickets::signature(conn, &t.id)?.is_some();
    let ticket = viewer.view_one(conn, t)?;
    Ok(TicketPage {
        ticket,
        site,
        events,
        technicians,
        names,
        has_signature,
        clock: running.map(|r| (r, r.colour(now))),
    })
}

/// The active technicians among `users`, by name: (one of their sites, id, name) for each site
/// they work at.
fn active_technicians(users: &[db::users::UserRecord]) -> Vec<(String, String, String)> {
    let mut technicians: Vec<(String, String, String)> = users
        .iter()
        .filter(|u| u.row.active && u.row.role == Role::Technician.as_str())
        .flat_map(|u| u.site_ids.iter().map(|s| (s.clone(), u.row.id.clone(), u.row.display_name.clone())))
        .collect();
    technicians.sort_by(|a, b| (&a.2, &a.0).cmp(&(&b.2, &b.0)));
    technicians
}

/// The active technicians of the viewer's desk sites, by name, with the site: whom a new ticket
/// may be requested for (`requested_technician_id`).
pub fn site_technicians(conn: &mut DbConn, viewer: &Viewer) -> Result<Vec<(String, String, String)>, Error> {
    viewer.caller.require(&DESK)?;
    let sites = viewer.desk_sites(None);
    let mut technicians = active_technicians(&db::users::list(conn, sites.as_deref())?);
    if let Some(sites) = sites {
        technicians.retain(|(site, _, _)| sites.contains(site));
    }
    Ok(technicians)
}

/// The resident's signature of a ticket the desk may see.
pub fn signature(conn: &mut DbConn, viewer: &Viewer, id: &str) -> Result<Vec<u8>, Error> {
    viewer.caller.require(&DESK)?;
    let t = visible(conn, viewer, id)?;
    db::tickets::signature(conn, &t.id)?.ok_or_else(|| Error::not_found("signature"))
}

/// The sites whose desk the viewer is (every site, for an admin).
pub fn desk_sites(conn: &mut DbConn, viewer: &Viewer) -> Result<Vec<SiteInfo>, Error> {
    viewer.caller.require(&DESK)?;
    sites(conn, viewer.desk_sites(None).as_deref())
}

/// At most this many tickets a search shows.
pub const SEARCH_LIMIT: i64 = 50;

/// Tickets of the viewer's desk sites whose number, place, reporter, description or phone holds
/// `text` (as `GET /tickets?q=` finds them), the one whose number it is first, then newest first.
pub fn search(conn: &mut DbConn, viewer: &Viewer, text: &str) -> Result<Vec<TicketView>, Error> {
    viewer.caller.require(&DESK)?;
    if text.chars().count() > 200 {
        return Err(Error::field("q", "must be at most 200 characters"));
    }
    let Some(search) = search_terms(text) else { return Ok(Vec::new()) };
    let mut filter = TicketFilter {
        sites: viewer.desk_sites(None),
        limit: SEARCH_LIMIT,
        search: Some(search),
        ..Default::default()
    };
    let exact = db::tickets::find_by_number(conn, &text.trim().to_uppercase())?.filter(|t| viewer.can_see(t));
    filter.except_id = exact.as_ref().map(|t| t.id.clone());
    let mut rows = db::tickets::list(conn, &filter)?;
    if let Some(t) = exact {
        rows.insert(0, t);
    }
    Ok(viewer.views(conn, rows)?)
}

/// Completed tickets and replied matters waiting for their callback, oldest first.
pub fn callbacks_due(conn: &mut DbConn, viewer: &Viewer) -> Result<(Vec<TicketView>, Vec<MatterView>), Error> {
    viewer.caller.require(&DESK)?;
    let sites = viewer.desk_sites(None);
    let rows = db::tickets::callbacks_due(conn, sites.as_deref(), 200)?;
    let tickets = viewer.views(conn, rows)?;
    let matters = db::matters::callbacks_due(conn, sites.as_deref(), MatterStatus::Replied.as_str(), 200)?;
    Ok((tickets, matters.into_iter().map(MatterView::from).collect()))
}

/// The viewer's sites' shift handovers, newest first.
pub fn handovers(conn: &mut DbConn, viewer: &Viewer) -> Result<Vec<HandoverView>, Error> {
    viewer.caller.require(&DESK)?;
    Ok(db::handovers::list(conn, viewer.desk_sites(None).as_deref(), None)?.into_iter().map(Into::into).collect())
}

/// Display names by user id, of the users of the viewer's desk sites.
pub fn user_names(conn: &mut DbConn, viewer: &Viewer) -> Result<HashMap<String, String>, Error> {
    viewer.caller.require(&DESK)?;
    let mut all = names(conn, viewer.desk_sites(None).as_deref())?;
    if let Some(me) = db::users::find(conn, &viewer.caller.user_id)? {
        all.insert(me.row.id, me.row.display_name);
    }
    Ok(all)
}
