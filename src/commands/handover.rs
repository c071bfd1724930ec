//! Shift handovers (交接班): the outgoing desk writes down the site's unfinished tickets as they
//! stand, and someone else of the desk takes them over.

use chrono::NaiveDateTime;
use serde::Deserialize;
use utoipa::ToSchema;

use super::desk::DESK;
use super::error::Error;
use super::text;
use crate::db::handovers::{Handover, HandoverRow};
use crate::db::{self, DbConn};
use crate::domain::handover::{handed_on_statuses, Shift, MAX_NOTE};
use crate::error::{ErrorCode, FieldError};
use crate::views::Viewer;

#[derive(Clone, Deserialize, ToSchema)]
pub struct HandoverBody {
    /// A site whose desk the caller is.
    #[schema(value_type = String, min_length = 1, max_length = 64)]
    pub site_id: Option<String>,
    /// The outgoing shift.
    #[schema(value_type = Shift)]
    pub shift: Option<String>,
    #[schema(max_length = 1000)]
    pub note: Option<String>,
}

/// Write a handover of the site: its tickets not yet completed, closed, cancelled or declined,
/// with their status, holder and open escalations as they are now, and the notes written on them
/// since the site's previous handover (every note, for its first).
pub fn create_handover(
    conn: &mut DbConn,
    viewer: &Viewer,
    body: HandoverBody,
    now: NaiveDateTime,
) -> Result<Handover, Error> {
    viewer.caller.require(&DESK)?;
    let mut errors = Vec::new();
    let site_id = body.site_id.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if site_id.is_none() {
        errors.push(FieldError::new("site_id", "is required"));
    }
    let shift = match body.shift.as_deref() {
        None => {
            errors.push(FieldError::new("shift", "is required: day or night"));
            None
        }
        Some(s) => {
            let parsed = Shift::parse(s);
            if parsed.is_none() {
                errors.push(FieldError::new("shift", "must be day or night"));
            }
            parsed
        }
    };
    let note = match text("note", body.note.as_deref(), MAX_NOTE, false) {
        Ok(note) => note,
        Err(Error::Invalid(mut e)) => {
            errors.append(&mut e);
            None
        }
        Err(e) => return Err(e),
    };
    let (Some(site_id), Some(shift)) = (site_id, shift) else { return Err(Error::validation(errors)) };
    if !errors.is_empty() {
        return Err(Error::validation(errors));
    }
    let site = db::sites::find(conn, site_id)?
        .filter(|s| viewer.is_site_desk(&s.id))
        .ok_or_else(|| Error::field("site_id", "is not a site of yours"))?;
    let id = db::new_id();
    let statuses: Vec<String> = handed_on_statuses().iter().map(|s| s.as_str().to_owned()).collect();
    let tickets = db::handovers::snapshot(conn, &id, &site.id, &statuses)?;
    let notes_since = db::handovers::latest_at(conn, &site.id)?;
    let row = HandoverRow {
        id: id.clone(),
        site_id: site.id,
        shift: shift.as_str().to_owned(),
        note,
        created_by: viewer.caller.user_id.clone(),
        created_at: now,
        acknowledged_by: None,
        acknowledged_at: None,
        notes_since,
    };
    let mut handover = Handover { row, tickets, notes: Vec::new() };
    db::handovers::insert(conn, &handover)?;
    handover.notes = db::handovers::notes(conn, vec![id.clone()])?.remove(&id).unwrap_or_default();
    Ok(handover)
}

/// Someone of the site's desk other than its writer takes the handover over. Once acknowledged it
/// never changes: a second acknowledgement is refused (`already_acknowledged`), and so is the
/// writer's own (`own_handover`).
pub fn acknowledge_handover(
    conn: &mut DbConn,
    viewer: &Viewer,
    id: &str,
    now: NaiveDateTime,
) -> Result<Handover, Error> {
    viewer.caller.require(&DESK)?;
    let me = viewer.caller.user_id.as_str();
    let h = db::handovers::find(conn, id)?
        .filter(|h| viewer.is_site_desk(&h.site_id))
        .ok_or_else(|| Error::not_found("handover"))?;
    if h.created_by == me {
        return Err(Error::new(ErrorCode::OwnHandover, "the incoming shift acknowledges a handover, not its writer"));
    }
    if h.acknowledged_at.is_some() || !db::handovers::acknowledge(conn, id, me, now)? {
        let taken = db::handovers::find(conn, id)?.unwrap_or(h);
        return Err(Error::new(ErrorCode::AlreadyAcknowledged, "this handover was acknowledged already")
            .with("acknowledged_by", taken.acknowledged_by)
            .with("acknowledged_at", taken.acknowledged_at.map(|t| t.and_utc().to_rfc3339())));
    }
    db::handovers::list(conn, None, Some(id))?.pop().ok_or_else(|| Error::not_found("handover"))
}
