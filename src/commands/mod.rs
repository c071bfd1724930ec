//! Every change of a ticket, as one function each, shared by the HTTP routes and offline sync:
//! both check the same rules against the server's current state. Each runs inside the caller's
//! transaction, at the `now` it is given, and returns the ticket (or record) as it now stands.
//!
//! - [`desk`]: what the desk does: register, assign, cancel, verify by phone, resend the code,
//!   inspect, call back, release the tickets of a technician taken off, and acknowledge an
//!   escalation.
//! - [`field`]: what a technician does: claim, release, arrive, materials, notes, hold, resume,
//!   complete.
//! - [`quote`]: paid work's price: propose, accept, decline.
//! - [`handover`]: the desk's shift handovers: write one, take one over.
//! - [`matter`]: matters that are not repairs (报事): register, reply, call back.
//! - [`session`]: logins (the throttle's counters around the password check) and sessions.
//! - [`board`]: what the desk's console reads: the board, a ticket's page, who to assign.
//!
//! This module holds what they share: the guards, and [`apply`], the one write of a change.

pub mod board;
pub mod desk;
pub mod error;
pub mod field;
pub mod handover;
pub mod matter;
pub mod push;
pub mod quote;
pub mod report;
pub mod session;

pub use desk::*;
pub use error::Error;
pub use field::*;
pub use handover::*;
pub use matter::*;
pub use push::{devices, register_device, remove_device, set_duty, DeviceBody, DutyBody};
pub use quote::*;
pub use report::*;

use chrono::NaiveDateTime;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::db::events::NewEvent;
use crate::db::{self, tickets::TicketChanges, tickets::TicketRow, DbConn};
use crate::domain::code::{self, Purpose, MAX_FAILED_ATTEMPTS};
use crate::domain::ticket::{Actor, Clock, Move, QuoteStatus, Status};
use crate::domain::user::Role;
use crate::error::ErrorCode;
use crate::notify::SmsPolicy;
use crate::views::Viewer;

/// What the commands need from the server's settings.
#[derive(Clone)]
pub struct Ctx {
    pub code_key: Vec<u8>,
    pub clock: Clock,
    pub max_active_tickets: i64,
    /// Caps on the residents' codes and the texts they go out in.
    pub sms_policy: SmsPolicy,
}

/// A ticket the caller may act on: the technician holding it, or the desk of its site.
pub fn actable(conn: &mut DbConn, viewer: &Viewer, id: &str) -> Result<TicketRow, Error> {
    let t = db::tickets::find_for_update(conn, id)?
        .filter(|t| viewer.can_see(t))
        .ok_or_else(|| Error::not_found("ticket"))?;
    if viewer.caller.role == Role::Technician && t.assignee_id.as_deref() != Some(viewer.caller.user_id.as_str()) {
        return Err(Error::not_found("ticket"));
    }
    Ok(t)
}

/// Refuses a move that the ticket's status does not allow, or that the caller may not make: the
/// table is [`crate::domain::ticket::MOVES`].
pub fn require_move(t: &TicketRow, viewer: &Viewer, what: Move) -> Result<(), Error> {
    let rule = what.transition();
    let actor = match viewer.caller.role {
        Role::Admin | Role::Dispatcher | Role::Supervisor => Actor::Desk,
        Role::Technician if t.assignee_id.as_deref() == Some(viewer.caller.user_id.as_str()) => Actor::Holder,
        Role::Technician => Actor::Technician,
    };
    if !rule.by.contains(&actor) {
        return Err(Error::forbidden(format!("only {} may {} a ticket", by_names(rule.by), rule.doing)));
    }
    if what.allowed_from(t.status) {
        return Ok(());
    }
    Err(Error::new(ErrorCode::InvalidTransition, format!("cannot {} a ticket that is {}", rule.doing, t.status)))
}

fn by_names(by: &[Actor]) -> String {
    by.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(" or ")
}

pub fn require_version(expected: Option<i64>, t: &TicketRow) -> Result<(), Error> {
    match expected {
        Some(v) if v != t.version => Err(Error::new(
            ErrorCode::VersionConflict,
            format!("the ticket is at version {}, not {v}: reload it", t.version),
        )
        .with("current_version", t.version)),
        _ => Ok(()),
    }
}

/// Work on a paid job waits for an accepted quote (特约维修: the price is agreed first).
pub fn require_accepted_quote(conn: &mut DbConn, t: &TicketRow) -> Result<(), Error> {
    if !t.paid {
        return Ok(());
    }
    match db::quotes::find(conn, &t.id)? {
        Some(q) if q.status == QuoteStatus::Accepted => Ok(()),
        _ => Err(Error::new(ErrorCode::QuoteRequired, "this is paid work: the resident must accept a quote first")),
    }
}

pub fn text(field: &str, raw: Option<&str>, max: usize, required: bool) -> Result<Option<String>, Error> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None if required => Err(Error::field(field, "is required")),
        None => Ok(None),
        Some(s) if s.chars().count() > max => Err(Error::field(field, format!("must be at most {max} characters"))),
        Some(s) => Ok(Some(s.to_owned())),
    }
}

pub enum CodeCheck {
    Good,
    Wrong { attempts_left: i64 },
    Locked,
    Unusable,
}

/// Checks a resident's code; a wrong try is counted (the caller must commit even when it answers
/// an error). The code is used up when it matches.
pub fn check_code(
    conn: &mut DbConn,
    key: &[u8],
    t: &TicketRow,
    purpose: Purpose,
    given: &str,
    now: NaiveDateTime,
) -> Result<CodeCheck, Error> {
    let Some(row) = db::codes::find(conn, &t.id, purpose.as_str())? else { return Ok(CodeCheck::Unusable) };
    if row.used_at.is_some() || row.expires_at <= now {
        return Ok(CodeCheck::Unusable);
    }
    if row.failed_attempts >= MAX_FAILED_ATTEMPTS {
        return Ok(CodeCheck::Locked);
    }
    if code::code_matches(key, &t.id, purpose, given, &row.code_hash) {
        return Ok(if db::codes::mark_used(conn, &t.id, purpose.as_str(), now)? {
            CodeCheck::Good
        } else {
            CodeCheck::Unusable
        });
    }
    let failures = db::codes::record_failure(conn, &t.id, purpose.as_str())?;
    Ok(CodeCheck::Wrong { attempts_left: (MAX_FAILED_ATTEMPTS - failures).max(0) })
}

/// Five wrong codes: what unlocks depends on what the code was for.
pub fn code_locked(purpose: Purpose) -> Error {
    let detail = match purpose {
        Purpose::Arrival => "five wrong codes: ask the desk to resend the code or verify by phone",
        Purpose::Quote => "five wrong codes for this ticket's quote: the desk confirms it with the resident by phone",
    };
    Error::new(ErrorCode::CodeLocked, detail)
}

pub fn code_refusal(check: CodeCheck, purpose: Purpose) -> Option<Error> {
    match check {
        CodeCheck::Good => None,
        CodeCheck::Wrong { attempts_left } => Some(
            Error::new(ErrorCode::InvalidCode, format!("wrong code; {attempts_left} tries left"))
                .with("attempts_left", attempts_left),
        ),
        CodeCheck::Locked => Some(code_locked(purpose)),
        CodeCheck::Unusable => Some(
            Error::new(ErrorCode::InvalidCode, "this code is used or expired: ask the desk to resend it")
                .with("attempts_left", 0),
        ),
    }
}

pub use crate::domain::ticket::MAX_REASON;
/// The longest note that goes with a move (a phone verification, an inspection, a hold, a quote
/// and the resident's answer), in characters (trimmed).
pub const MAX_MOVE_NOTE: usize = 500;
/// A resident's satisfaction or rating, in stars.
pub const RATING: std::ops::RangeInclusive<i64> = 1..=5;

#[derive(Clone, Deserialize, ToSchema)]
pub struct ReasonBody {
    #[schema(min_length = 1, max_length = 500, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub reason: String,
}

pub fn reason(raw: &str) -> Result<String, Error> {
    let r = raw.trim();
    if r.is_empty() || r.chars().count() > MAX_REASON {
        return Err(Error::field("reason", format!("must be 1 to {MAX_REASON} characters")));
    }
    Ok(r.to_owned())
}

fn client_id(raw: Option<&str>) -> Result<String, Error> {
    match raw.map(str::trim) {
        Some(raw) => {
            uuid::Uuid::parse_str(raw).map(|u| u.to_string()).map_err(|_| Error::field("id", "must be a UUID"))
        }
        None => Ok(db::new_id()),
    }
}

/// Applies a change if the ticket is still as read and appends its event; a change of status
/// also resolves the ticket's open escalations (it moved on), and the push messages the change
/// sets off are queued ([`push::announce`]). Returns the ticket as it now stands.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    conn: &mut DbConn,
    t: &TicketRow,
    actor: &str,
    event_type: &'static str,
    to: Option<Status>,
    mut changes: TicketChanges,
    data: Value,
    now: NaiveDateTime,
) -> Result<TicketRow, Error> {
    let from = t.status;
    changes.status = to;
    changes.last_activity_at = Some(now);
    let Some(changed) = db::tickets::update_at_version(conn, &t.id, t.version, &changes, 1)? else {
        return Err(Error::new(ErrorCode::TicketChanged, "the ticket changed meanwhile; reload it and try again"));
    };
    if to.is_some_and(|to| to != from) {
        db::escalations::resolve_for_ticket(conn, &t.id, now)?;
    }
    // the technicians' phones hear of it in the same transaction: every change is written here
    push::announce(conn, Some(t), &changed, actor, event_type, now)?;
    // the update above holds the ticket's row
    db::events::append(
        conn,
        vec![NewEvent {
            ticket_id: t.id.clone(),
            site_id: t.site_id.clone(),
            event_type,
            actor_id: Some(actor.to_owned()),
            at: now,
            from_status: Some(from.as_str()),
            to_status: Some(to.unwrap_or(from).as_str()),
            data,
        }],
    )?;
    Ok(changed)
}

/// The changes that put a ticket back into the pool: no one holds it, and its `unclaimed` clock
/// starts again at `now`.
pub fn back_to_pool(now: NaiveDateTime) -> TicketChanges {
    TicketChanges { assignee_id: Some(None), claimed_at: Some(None), pooled_at: Some(Some(now)), ..Default::default() }
}

/// [`apply`] with a change of status.
#[allow(clippy::too_many_arguments)]
pub fn transition(
    conn: &mut DbConn,
    t: &TicketRow,
    actor: &str,
    event_type: &'static str,
    to: Status,
    changes: TicketChanges,
    data: Value,
    now: NaiveDateTime,
) -> Result<TicketRow, Error> {
    apply(conn, t, actor, event_type, Some(to), changes, data, now)
}

pub fn claim_refusal(t: &TicketRow) -> Error {
    if t.assignee_id.is_some() && Status::ACTIVE.contains(&t.status) {
        Error::new(ErrorCode::AlreadyClaimed, "another technician claimed this ticket first")
    } else {
        Error::new(ErrorCode::NotClaimable, format!("the ticket is {}, not open", t.status))
    }
}

/// For PATCH bodies: tells an absent field (`None`) from an explicit `null` (`Some(None)`).
pub fn nullable<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}
