//! What changed since a cursor, in commit order, as full ticket snapshots.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime};

use super::{PullResponse, SyncTicket, CURSOR_RETENTION};
use crate::auth::Caller;
use crate::db::{self, DbConn};
use crate::error::ApiError;
use crate::views::{ByTicket, TicketEvent, Viewer};

/// Where a pull stands.
#[derive(Debug, Clone, PartialEq)]
enum Cursor {
    /// Every change up to this sequence number is with the phone.
    Changes(i64),
    /// Paging through the whole view as it stood at change `head`, in ticket id order, after
    /// `after_id`; when the pages end, changes after `head` follow.
    View { head: i64, after_id: Option<String> },
}

fn encode_cursor(cursor: &Cursor, issued: NaiveDateTime) -> String {
    let issued = issued.and_utc().timestamp();
    URL_SAFE_NO_PAD.encode(match cursor {
        Cursor::Changes(seq) => format!("v1.{seq}.{issued}"),
        Cursor::View { head, after_id } => format!("v2.{head}.{issued}.{}", after_id.as_deref().unwrap_or("")),
    })
}

fn decode_cursor(raw: &str) -> Option<(Cursor, NaiveDateTime)> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(raw).ok()?).ok()?;
    let (version, rest) = text.split_once('.')?;
    let mut parts = rest.splitn(3, '.');
    let seq = parts.next()?.parse().ok()?;
    let issued = DateTime::from_timestamp(parts.next()?.parse().ok()?, 0)?.naive_utc();
    let cursor = match (version, parts.next()) {
        ("v1", None) => Cursor::Changes(seq),
        ("v2", Some(after_id)) => {
            Cursor::View { head: seq, after_id: Some(after_id).filter(|id| !id.is_empty()).map(str::to_owned) }
        }
        _ => return None,
    };
    Some((cursor, issued))
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
        let head = db::events::last_seq(conn)?;
        // the first pull, or one after a reset, pages through the view as it stands now
        let start = Cursor::View { head, after_id: None };
        let (cursor, reset) = match cursor {
            None => (start, false),
            Some(raw) => match decode_cursor(raw) {
                Some((Cursor::Changes(seq), issued)) if seq <= head && issued >= now - CURSOR_RETENTION => {
                    (Cursor::Changes(seq), false)
                }
                Some((Cursor::View { head: at, after_id }, issued))
                    if at <= head && issued >= now - CURSOR_RETENTION =>
                {
                    (Cursor::View { head: at, after_id }, false)
                }
                _ => (start, true),
            },
        };
        let sites = (!viewer.caller.is_admin()).then(|| viewer.sites.clone());
        let (rows, has_more, next, removable) = match cursor {
            Cursor::Changes(after) => {
                let mut changed = db::events::changed_tickets(conn, after, sites.as_deref(), limit + 1)?;
                let has_more = changed.len() as i64 > limit;
                changed.truncate(limit as usize);
                let reached = if has_more { changed.last().and_then(|c| c.1).unwrap_or(after) } else { head };
                let ids: Vec<String> = changed.into_iter().map(|c| c.0).collect();
                // a first pull at an empty history (0) has nothing to remove either
                (db::tickets::find_many(conn, &ids)?, has_more, Cursor::Changes(reached), after > 0)
            }
            Cursor::View { head: at, after_id } => {
                let mut rows = db::tickets::page(conn, sites.as_deref(), after_id.as_deref(), limit + 1)?;
                let has_more = rows.len() as i64 > limit;
                rows.truncate(limit as usize);
                // past the last page, the changes since the view was first read follow
                let next = match rows.last() {
                    Some(last) if has_more => Cursor::View { head: at, after_id: Some(last.id.clone()) },
                    _ => Cursor::Changes(at),
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

    proptest! {
        /// A cursor reads back as written, and any string is read without a panic.
        #[test]
        fn cursors_read_back_as_written(
            seq in 0i64..i64::MAX,
            secs in 0i64..4_000_000_000,
            after in proptest::option::of("[0-9a-f-]{36}"),
            view in any::<bool>(),
            junk in "\\PC{0,40}",
        ) {
            let issued = DateTime::from_timestamp(secs, 0).unwrap().naive_utc();
            let cursor = if view { Cursor::View { head: seq, after_id: after } } else { Cursor::Changes(seq) };
            prop_assert_eq!(decode_cursor(&encode_cursor(&cursor, issued)), Some((cursor, issued)));
            decode_cursor(&junk); // anything else: read without a panic
        }

    }
}
