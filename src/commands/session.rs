//! Logins and the sessions they start, shared by the API's login (`routes::auth`) and the desk
//! console's: the throttle's counters around a password check (the check itself, a slow hash,
//! runs between them outside any transaction), starting and ending a session, and the caller a
//! live session belongs to.

use std::sync::Arc;

use super::error::Error;
use crate::auth::throttle::Limit;
use crate::auth::{Caller, Membership};
use crate::db::{self, users::UserRecord, users::UserRow, DbConn};
use crate::domain::user::Role;
use crate::error::ErrorCode;

/// `429 too_many_attempts` when any of the counters is full, with the wait until the oldest
/// failure of the fullest one is forgotten.
pub fn refuse_if_throttled(conn: &mut DbConn, limits: &[Limit]) -> Result<(), Error> {
    let now = db::now();
    let mut wait = None;
    for limit in limits {
        let (failures, oldest) = db::tokens::recent_failures(conn, &limit.key, now - limit.window)?;
        if let (true, Some(oldest)) = (failures >= limit.max, oldest) {
            let secs = (oldest + limit.window - now).num_seconds().max(1) as u64;
            wait = wait.max(Some(secs));
        }
    }
    match wait {
        Some(wait) => {
            Err(Error::new(ErrorCode::TooManyAttempts, format!("too many failed logins; try again in {wait} seconds"))
                .retry_after(wait))
        }
        None => Ok(()),
    }
}

/// Before a password is checked: refused when throttled, else the user of that name (any
/// spelling of its case and spaces), if there is one.
pub fn login_candidate(conn: &mut DbConn, limits: &[Limit], username: &str) -> Result<Option<UserRow>, Error> {
    refuse_if_throttled(conn, limits)?;
    Ok(db::users::find_by_username(conn, &username.trim().to_lowercase())?)
}

/// A wrong password (or an unknown or inactive user) counts under every counter.
pub fn record_failures(conn: &mut DbConn, limits: &[Limit]) -> Result<(), Error> {
    let now = db::now();
    for limit in limits {
        db::tokens::record_failure(conn, &limit.key, now - limit.window)?;
    }
    Ok(())
}

/// A right password starts again the counters a success clears.
pub fn clear_failures(conn: &mut DbConn, limits: &[Limit]) -> Result<(), Error> {
    for limit in limits.iter().filter(|l| l.cleared_by_success) {
        db::tokens::clear_failures(conn, &limit.key)?;
    }
    Ok(())
}

/// After the right password: clears the counters and starts a session; its id, its first refresh
/// token and the user as they stand.
pub fn start_session(
    conn: &mut DbConn,
    limits: &[Limit],
    user_id: &str,
    refresh_ttl_secs: i64,
) -> Result<(String, String, UserRecord), Error> {
    clear_failures(conn, limits)?;
    let (session_id, token) = db::tokens::start_session(conn, user_id, refresh_ttl_secs)?;
    let record = db::users::find(conn, user_id)?.ok_or_else(|| Error::not_found("user"))?;
    Ok((session_id, token, record))
}

/// Ends a session at once: its tokens, and a console cookie naming it, stop working.
pub fn end_session(conn: &mut DbConn, session_id: &str) -> Result<(), Error> {
    db::tokens::revoke_session(conn, session_id)?;
    Ok(())
}

/// The caller of a live session, in one read: who they are, their sites and trades. `None` when
/// the session ended or the user was deactivated.
pub fn live_caller(conn: &mut DbConn, session_id: &str, user_id: &str) -> Result<Option<Caller>, Error> {
    let Some(who) = db::tokens::live_session(conn, session_id, user_id)? else { return Ok(None) };
    let role = Role::parse(&who.role).ok_or_else(|| Error::internal(format!("unknown role {}", who.role)))?;
    let membership = Some(Arc::new(Membership { sites: who.sites, trades: who.trades }));
    Ok(Some(Caller { user_id: user_id.to_owned(), session_id: session_id.to_owned(), role, membership }))
}

/// A user as stored, with their sites (the console's header names them).
pub fn user(conn: &mut DbConn, user_id: &str) -> Result<UserRecord, Error> {
    db::users::find(conn, user_id)?.ok_or_else(|| Error::not_found("user"))
}
