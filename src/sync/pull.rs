//! What changed since a cursor, in commit order, as full ticket snapshots.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime};

use super::{PullResponse, SyncTicket, CURSOR_RETENTION};
use crate::auth::Caller;
use crate::db::events::Horizon;
use crate::db::{self, tickets::TicketRow, DbConn};
use crate::domain::access::Scope;
use crate::error::ApiError;
use crate::views::{ByTicket, TicketEvent, Viewer};

/// Where a pull stands. A [`Horizon`] names the changes a snapshot held; "since `h`" is every
/// change `h` does not hold, whenever it committed.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Cursor {
    /// The phone holds every change `seen` held.
    Changes { seen: Horizon },
    /// Paging, in ticket id order after `after_id`, through the tickets with a change that `seen`
    /// did not hold and `upto` (the first page's snapshot) did; then `Changes { seen: upto }`.
    ChangePages { seen: Horizon, upto: Horizon, after_id: String },
    /// Paging through the whole view as it stood at `upto`, in ticket id order after `after_id`;
    /// when the pages end, the changes `upto` did not hold follow.
    View { upto: Horizon, after_id: Option<String> },
    /// Paging, in ticket id order after `after_id`, through every ticket of `sites` (all when
    /// `None`): the sites the phone had or has, after the caller's sites, trades or role changed.
    /// Each ticket is shown, or dropped when the caller may not see it; then `Changes { seen: upto }`.
    Resync { sites: Option<Vec<String>>, upto: Horizon, after_id: Option<String> },
}

/// The cursor's text: `kind.issued.horizon[.horizon][.after_id]` in URL-safe base64. Cursors of
/// the counter that numbered changes until 2026-12 (`v1`, `v2`) no longer read: they get a reset.
fn encode_cursor(cursor: &Cursor, issued: NaiveDateTime) -> String {
    let issued = issued.and_utc().timestamp();
    URL_SAFE_NO_PAD.encode(match cursor {
        Cursor::Changes { seen } => format!("c3.{issued}.{}", seen.to_text()),
        Cursor::ChangePages { seen, upto, after_id } => {
            format!("p3.{issued}.{}.{}.{after_id}", seen.to_text(), upto.to_text())
        }
        Cursor::View { upto, after_id } => {
            format!("w3.{issued}.{}.{}", upto.to_text(), after_id.as_deref().unwrap_or(""))
        }
        Cursor::Resync { sites, upto, after_id } => {
            let sites = sites.as_ref().map_or_else(|| "*".to_owned(), |s| s.join(","));
            format!("r3.{issued}.{}.{sites}.{}", upto.to_text(), after_id.as_deref().unwrap_or(""))
        }
    })
}

fn decode_cursor(raw: &str) -> Option<(Cursor, NaiveDateTime)> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(raw).ok()?).ok()?;
    let mut parts = text.splitn(3, '.');
    let kind = parts.next()?;
    let issued = DateTime::from_timestamp(parts.next()?.parse().ok()?, 0)?.naive_utc();
    let rest = parts.next()?;
    let cursor = match kind {
        "c3" => Cursor::Changes { seen: Horizon::parse(rest)? },
        "p3" => {
            let mut parts = rest.splitn(3, '.');
            let seen = Horizon::parse(parts.next()?)?;
            let upto = Horizon::parse(parts.next()?)?;
            let after_id = parts.next().filter(|id| !id.is_empty())?.to_owned();
            Cursor::ChangePages { seen, upto, after_id }
        }
        "w3" => {
            let (upto, after_id) = rest.split_once('.')?;
            let after_id = Some(after_id).filter(|id| !id.is_empty()).map(str::to_owned);
            Cursor::View { upto: Horizon::parse(upto)?, after_id }
        }
        "r3" => {
            let mut parts = rest.splitn(3, '.');
            let upto = Horizon::parse(parts.next()?)?;
            let sites = match parts.next()? {
                "*" => None,
                "" => Some(Vec::new()),
                sites => Some(sites.split(',').map(str::to_owned).collect()),
            };
            let after_id = Some(parts.next()?).filter(|id| !id.is_empty()).map(str::to_owned);
            Cursor::Resync { sites, upto, after_id }
        }
        _ => return None,
    };
    Some((cursor, issued))
}

impl Cursor {
    /// Whether this cursor can have come from this database as it is at `now`: none of its
    /// horizons is ahead of it (a cursor of another server, or of a database restored from an
    /// older copy, is).
    pub(super) fn fits(&self, now: &Horizon) -> bool {
        match self {
            Cursor::Changes { seen } => seen.xmax <= now.xmax,
            Cursor::ChangePages { seen, upto, .. } => seen.xmax <= upto.xmax && upto.xmax <= now.xmax,
            Cursor::View { upto, .. } | Cursor::Resync { upto, .. } => upto.xmax <= now.xmax,
        }
    }
}

/// A page of what changed since `cursor` (none: the first pull) for `client_id`, read from one
/// snapshot of the database.
pub fn pull(
    conn: &mut DbConn,
    caller: Caller,
    client_id: &str,
    cursor: Option<&str>,
    limit: i64,
) -> Result<PullResponse, ApiError> {
    db::snapshot(conn, |conn| {
        let now = db::now();
        let last_op_id = db::sync::last_op_id(conn, client_id)?.unwrap_or(0);
        let viewer = Viewer::load(conn, caller)?;
        let here = db::events::horizon(conn)?;
        // the first pull, or one after a reset, pages through the view as it stands now
        let start = Cursor::View { upto: here.clone(), after_id: None };
        let (cursor, reset) = match cursor {
            None => (start, false),
            Some(raw) => match decode_cursor(raw) {
                Some((cursor, issued)) if issued >= now - CURSOR_RETENTION && cursor.fits(&here) => (cursor, false),
                _ => (start, true),
            },
        };
        let Page { shown, gone, has_more, next } = page(conn, &viewer, cursor, here, limit)?;
        let shown_ids: Vec<String> = shown.iter().map(|t| t.id.clone()).collect();
        let mut events = ByTicket::new(db::events::for_tickets(conn, &shown_ids)?, |e| Some(&e.ticket_id));
        let mut tickets = Vec::new();
        for view in viewer.views(conn, shown)? {
            let mine = events.take(&view.id);
            tickets.push(SyncTicket { ticket: view, events: mine.into_iter().map(TicketEvent::from).collect() });
        }
        Ok(PullResponse { cursor: encode_cursor(&next, now), has_more, last_op_id, reset, tickets, removed: gone })
    })
}

/// One page of a pull.
pub(super) struct Page {
    /// Tickets to show, as they stand.
    pub shown: Vec<TicketRow>,
    /// Tickets the phone may hold that the viewer may no longer see: to drop.
    pub gone: Vec<String>,
    /// More pages wait (every page but the last holds `limit` tickets, shown and gone together).
    pub has_more: bool,
    /// Where the next page starts.
    pub next: Cursor,
}

/// The page at `cursor` for `viewer`, `here` being the horizon of the snapshot it is read in.
pub(super) fn page(
    conn: &mut DbConn,
    viewer: &Viewer,
    cursor: Cursor,
    here: Horizon,
    limit: i64,
) -> Result<Page, ApiError> {
    let sites = (!viewer.caller.is_admin()).then(|| viewer.sites.clone());
    // one more than the page holds says whether another page follows
    let full = |rows: &mut Vec<TicketRow>| {
        let has_more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        (has_more, rows.last().map(|t| t.id.clone()).filter(|_| has_more))
    };
    let (rows, has_more, next) = match cursor {
        Cursor::Changes { seen } => {
            let ids = db::events::changed_tickets(conn, &seen, None, sites.as_deref(), None, limit + 1)?;
            let mut rows = in_order(db::tickets::find_many(conn, &ids)?);
            let (has_more, last) = full(&mut rows);
            let next = match last {
                Some(after_id) => Cursor::ChangePages { seen, upto: here, after_id },
                None => Cursor::Changes { seen: here },
            };
            (rows, has_more, next)
        }
        Cursor::ChangePages { seen, upto, after_id } => {
            let ids =
                db::events::changed_tickets(conn, &seen, Some(&upto), sites.as_deref(), Some(&after_id), limit + 1)?;
            let mut rows = in_order(db::tickets::find_many(conn, &ids)?);
            let (has_more, last) = full(&mut rows);
            let next = match last {
                Some(after_id) => Cursor::ChangePages { seen, upto, after_id },
                None => Cursor::Changes { seen: upto },
            };
            (rows, has_more, next)
        }
        Cursor::View { upto, after_id } => {
            // only what the viewer may see counts toward the page: a short page is the last
            let mut rows = db::tickets::page(conn, viewer.reach().scope(), after_id.as_deref(), limit + 1)?;
            let (has_more, last) = full(&mut rows);
            // past the last page, the changes since the view was first read follow
            let next = match last {
                Some(after_id) => Cursor::View { upto, after_id: Some(after_id) },
                None => Cursor::Changes { seen: upto },
            };
            (rows, has_more, next)
        }
        Cursor::Resync { sites: once, upto, after_id } => {
            // every ticket of the sites the phone had or has: each is shown or dropped
            let scope = match &once {
                Some(once) => Scope::Sites(once),
                None => Scope::All,
            };
            let mut rows = db::tickets::page(conn, scope, after_id.as_deref(), limit + 1)?;
            let (has_more, last) = full(&mut rows);
            let next = match last {
                Some(after_id) => Cursor::Resync { sites: once, upto, after_id: Some(after_id) },
                None => Cursor::Changes { seen: upto },
            };
            (rows, has_more, next)
        }
    };
    let (shown, gone): (Vec<_>, Vec<_>) = rows.into_iter().partition(|t| viewer.can_see(t));
    Ok(Page { shown, gone: gone.into_iter().map(|t| t.id).collect(), has_more, next })
}

/// Rows in ticket id order, as the page's cursor follows it.
fn in_order(mut rows: Vec<TicketRow>) -> Vec<TicketRow> {
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    rows
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn horizon() -> impl Strategy<Value = Horizon> {
        (0i64..1 << 40, 0i64..1000, proptest::collection::btree_set(0i64..1000, 0..5)).prop_map(
            |(xmin, span, running)| {
                let running = running.into_iter().filter(|r| *r < span).map(|r| xmin + r).collect();
                Horizon { xmin, xmax: xmin + span, running }
            },
        )
    }

    proptest! {
        /// A cursor reads back as written, and any string is read without a panic.
        #[test]
        fn cursors_read_back_as_written(
            seen in horizon(),
            upto in horizon(),
            secs in 0i64..4_000_000_000,
            after in proptest::option::of("[0-9a-f-]{36}"),
            kind in 0..4,
            sites in proptest::option::of(proptest::collection::vec("[0-9a-f-]{36}", 0..3)),
            junk in "\\PC{0,40}",
        ) {
            let issued = DateTime::from_timestamp(secs, 0).unwrap().naive_utc();
            let cursor = match (kind, after) {
                (0, _) => Cursor::Changes { seen },
                (1, Some(after_id)) => Cursor::ChangePages { seen, upto, after_id },
                (3, after_id) => Cursor::Resync { sites, upto, after_id },
                (_, after_id) => Cursor::View { upto, after_id },
            };
            prop_assert_eq!(decode_cursor(&encode_cursor(&cursor, issued)), Some((cursor, issued)));
            decode_cursor(&junk); // anything else: read without a panic
        }

        /// A horizon reads back from its text; a text out of shape (a list member outside
        /// `xmin..xmax`, `xmax` below `xmin`) reads as nothing.
        #[test]
        fn horizons_read_back_and_refuse_what_no_snapshot_is(h in horizon(), out in 0i64..1000) {
            prop_assert_eq!(Horizon::parse(&h.to_text()), Some(h.clone()));
            let outside = Horizon { running: vec![h.xmax + out], ..h.clone() };
            prop_assert_eq!(Horizon::parse(&outside.to_text()), None);
            prop_assert_eq!(Horizon::parse(&format!("{}:{}:", h.xmax + 1 + out, h.xmax)), None);
            let crowded = Horizon { xmin: 0, xmax: 20_000, running: (0..10_001).collect() };
            prop_assert_eq!(Horizon::parse(&crowded.to_text()), None);
        }
    }
}
