//! What changed since a cursor, in commit order, as full ticket snapshots.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime};

use super::{PullResponse, SyncTicket, CURSOR_RETENTION};
use crate::auth::Caller;
use crate::db::events::Horizon;
use crate::db::{self, DbConn};
use crate::error::ApiError;
use crate::views::{ByTicket, TicketEvent, Viewer};

/// Where a pull stands. A [`Horizon`] names the changes a snapshot held; "since `h`" is every
/// change `h` does not hold, whenever it committed.
#[derive(Debug, Clone, PartialEq)]
enum Cursor {
    /// The phone holds every change `seen` held.
    Changes { seen: Horizon },
    /// Paging, in ticket id order after `after_id`, through the tickets with a change that `seen`
    /// did not hold and `upto` (the first page's snapshot) did; then `Changes { seen: upto }`.
    ChangePages { seen: Horizon, upto: Horizon, after_id: String },
    /// Paging through the whole view as it stood at `upto`, in ticket id order after `after_id`;
    /// when the pages end, the changes `upto` did not hold follow.
    View { upto: Horizon, after_id: Option<String> },
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
        _ => return None,
    };
    Some((cursor, issued))
}

impl Cursor {
    /// Whether this cursor can have come from this database as it is at `now`: none of its
    /// horizons is ahead of it (a cursor of another server, or of a database restored from an
    /// older copy, is).
    fn fits(&self, now: &Horizon) -> bool {
        match self {
            Cursor::Changes { seen } => seen.xmax <= now.xmax,
            Cursor::ChangePages { seen, upto, .. } => seen.xmax <= upto.xmax && upto.xmax <= now.xmax,
            Cursor::View { upto, .. } => upto.xmax <= now.xmax,
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
        let sites = (!viewer.caller.is_admin()).then(|| viewer.sites.clone());
        let (rows, has_more, next, removable) = match cursor {
            Cursor::Changes { seen } => {
                let mut ids = db::events::changed_tickets(conn, &seen, None, sites.as_deref(), None, limit + 1)?;
                let has_more = ids.len() as i64 > limit;
                ids.truncate(limit as usize);
                let next = match ids.last() {
                    Some(last) if has_more => Cursor::ChangePages { seen, upto: here, after_id: last.clone() },
                    _ => Cursor::Changes { seen: here },
                };
                (db::tickets::find_many(conn, &ids)?, has_more, next, true)
            }
            Cursor::ChangePages { seen, upto, after_id } => {
                let mut ids = db::events::changed_tickets(
                    conn,
                    &seen,
                    Some(&upto),
                    sites.as_deref(),
                    Some(&after_id),
                    limit + 1,
                )?;
                let has_more = ids.len() as i64 > limit;
                ids.truncate(limit as usize);
                let next = match ids.last() {
                    Some(last) if has_more => Cursor::ChangePages { seen, upto, after_id: last.clone() },
                    _ => Cursor::Changes { seen: upto },
                };
                (db::tickets::find_many(conn, &ids)?, has_more, next, true)
            }
            Cursor::View { upto, after_id } => {
                // only what the viewer may see counts toward the page: a short page is the last
                let scope = viewer.reach().scope();
                let mut rows = db::tickets::page(conn, scope, after_id.as_deref(), limit + 1)?;
                let has_more = rows.len() as i64 > limit;
                rows.truncate(limit as usize);
                // past the last page, the changes since the view was first read follow
                let next = match rows.last() {
                    Some(last) if has_more => Cursor::View { upto, after_id: Some(last.id.clone()) },
                    _ => Cursor::Changes { seen: upto },
                };
                // the phone holds nothing from before this view: nothing to remove
                (rows, has_more, next, false)
            }
        };
        let (seen, unseen): (Vec<_>, Vec<_>) = rows.into_iter().partition(|t| viewer.can_see(t));
        let seen_ids: Vec<String> = seen.iter().map(|t| t.id.clone()).collect();
        let mut events = ByTicket::new(db::events::for_tickets(conn, &seen_ids)?, |e| Some(&e.ticket_id));
        let mut tickets = Vec::new();
        for view in viewer.views(conn, seen)? {
            let mine = events.take(&view.id);
            tickets.push(SyncTicket { ticket: view, events: mine.into_iter().map(TicketEvent::from).collect() });
        }
        let removed = if removable { unseen.into_iter().map(|t| t.id).collect() } else { Vec::new() };
        Ok(PullResponse { cursor: encode_cursor(&next, now), has_more, last_op_id, reset, tickets, removed })
    })
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
            kind in 0..3,
            junk in "\\PC{0,40}",
        ) {
            let issued = DateTime::from_timestamp(secs, 0).unwrap().naive_utc();
            let cursor = match (kind, after) {
                (0, _) => Cursor::Changes { seen },
                (1, Some(after_id)) => Cursor::ChangePages { seen, upto, after_id },
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
