//! Logins (sessions), their rotating refresh tokens, and failed-login counts.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use super::schema::{login_failures, refresh_tokens, sessions, stream_tickets, users};
use super::{new_id, now, DbConn};
use crate::auth::tokens::{hash_refresh_token, new_refresh_token, seal_successor, unseal_successor};

/// How long after a rotation the old token may be presented again and get the same successor
/// (the phone lost the response), provided the successor has not been used.
pub const RETRY_GRACE: Duration = Duration::seconds(30);

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens)]
struct RefreshRow {
    id: String,
    session_id: String,
    expires_at: NaiveDateTime,
    rotated_at: Option<NaiveDateTime>,
    successor_id: Option<String>,
    successor_sealed: Option<String>,
}

/// Starts a login for `user_id`; returns the session id and its first refresh token.
pub fn start_session(conn: &mut DbConn, user_id: &str, ttl_secs: i64) -> QueryResult<(String, String)> {
    let session_id = new_id();
    let at = now();
    diesel::insert_into(sessions::table)
        .values((sessions::id.eq(&session_id), sessions::user_id.eq(user_id), sessions::created_at.eq(at)))
        .execute(conn)?;
    let token = insert_token(conn, &new_id(), &session_id, ttl_secs)?;
    Ok((session_id, token))
}

fn insert_token(conn: &mut DbConn, id: &str, session_id: &str, ttl_secs: i64) -> QueryResult<String> {
    let token = new_refresh_token();
    let at = now();
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::id.eq(id),
            refresh_tokens::session_id.eq(session_id),
            refresh_tokens::token_hash.eq(hash_refresh_token(&token)),
            refresh_tokens::created_at.eq(at),
            refresh_tokens::expires_at.eq(at + Duration::seconds(ttl_secs)),
        ))
        .execute(conn)?;
    Ok(token)
}

#[derive(Debug, PartialEq, Eq)]
pub enum Refresh {
    /// The new refresh token, for this user and session.
    Issued { user_id: String, session_id: String, token: String },
    /// Unknown, expired, revoked, or a reuse that revoked the whole login.
    Refused,
}

/// Rotates `presented`. Must run inside a transaction; a detected reuse revokes the session
/// and that revocation must commit even though the answer is a refusal.
pub fn rotate(conn: &mut DbConn, presented: &str, ttl_secs: i64) -> QueryResult<Refresh> {
    let at = now();
    let found: Option<(RefreshRow, String)> = refresh_tokens::table
        .inner_join(sessions::table.inner_join(users::table))
        .filter(refresh_tokens::token_hash.eq(hash_refresh_token(presented)))
        .filter(sessions::revoked_at.is_null())
        .filter(users::active.eq(true))
        .select((RefreshRow::as_select(), sessions::user_id))
        .first(conn)
        .optional()?;
    let Some((row, user_id)) = found else { return Ok(Refresh::Refused) };
    if row.expires_at <= at {
        return Ok(Refresh::Refused);
    }
    if row.rotated_at.is_none() {
        let successor_id = new_id();
        // Claim the rotation first: of two concurrent refreshes only one updates the row.
        let token = new_refresh_token();
        let claimed = diesel::update(
            refresh_tokens::table.filter(refresh_tokens::id.eq(&row.id)).filter(refresh_tokens::rotated_at.is_null()),
        )
        .set((
            refresh_tokens::rotated_at.eq(at),
            refresh_tokens::successor_id.eq(&successor_id),
            refresh_tokens::successor_sealed.eq(seal_successor(presented, &token)),
        ))
        .execute(conn)?;
        if claimed == 1 {
            diesel::insert_into(refresh_tokens::table)
                .values((
                    refresh_tokens::id.eq(&successor_id),
                    refresh_tokens::session_id.eq(&row.session_id),
                    refresh_tokens::token_hash.eq(hash_refresh_token(&token)),
                    refresh_tokens::created_at.eq(at),
                    refresh_tokens::expires_at.eq(at + Duration::seconds(ttl_secs)),
                ))
                .execute(conn)?;
            return Ok(Refresh::Issued { user_id, session_id: row.session_id, token });
        }
        return rotate(conn, presented, ttl_secs);
    }
    if let Some(token) = retry_within_grace(conn, &row, presented, at)? {
        return Ok(Refresh::Issued { user_id, session_id: row.session_id, token });
    }
    revoke_session(conn, &row.session_id)?;
    tracing::warn!(session_id = %row.session_id, "refresh token reused; login revoked");
    Ok(Refresh::Refused)
}

fn retry_within_grace(
    conn: &mut DbConn,
    row: &RefreshRow,
    presented: &str,
    at: NaiveDateTime,
) -> QueryResult<Option<String>> {
    let (Some(rotated_at), Some(successor_id), Some(sealed)) =
        (row.rotated_at, row.successor_id.as_ref(), row.successor_sealed.as_ref())
    else {
        return Ok(None);
    };
    if at - rotated_at > RETRY_GRACE {
        return Ok(None);
    }
    let successor_unused: bool = diesel::select(diesel::dsl::exists(
        refresh_tokens::table.filter(refresh_tokens::id.eq(successor_id)).filter(refresh_tokens::rotated_at.is_null()),
    ))
    .get_result(conn)?;
    Ok(successor_unused.then(|| unseal_successor(presented, sealed)).flatten())
}

pub fn revoke_session(conn: &mut DbConn, session_id: &str) -> QueryResult<usize> {
    diesel::update(sessions::table.find(session_id).filter(sessions::revoked_at.is_null()))
        .set(sessions::revoked_at.eq(now()))
        .execute(conn)
}

/// Ends the login that `presented` belongs to, if any.
pub fn revoke_by_token(conn: &mut DbConn, presented: &str) -> QueryResult<()> {
    let session: Option<String> = refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(hash_refresh_token(presented)))
        .select(refresh_tokens::session_id)
        .first(conn)
        .optional()?;
    if let Some(session_id) = session {
        revoke_session(conn, &session_id)?;
    }
    Ok(())
}

/// Ends every login of a user (password changed, deactivated).
pub fn revoke_all_for_user(conn: &mut DbConn, user_id: &str) -> QueryResult<usize> {
    diesel::update(sessions::table.filter(sessions::user_id.eq(user_id)).filter(sessions::revoked_at.is_null()))
        .set(sessions::revoked_at.eq(now()))
        .execute(conn)
}

/// Who a live session's user is, in one read: the role, the sites and the trades. `None` when the
/// session ended or its user was deactivated.
pub fn live_session(conn: &mut DbConn, session_id: &str, user_id: &str) -> QueryResult<Option<Identity>> {
    use super::prepared::{Param, Statement};
    use diesel::sql_types::{Nullable, Text};
    #[derive(QueryableByName)]
    struct Fact {
        #[diesel(sql_type = Text)]
        role: String,
        #[diesel(sql_type = Text)]
        kind: String,
        #[diesel(sql_type = Nullable<Text>)]
        value: Option<String>,
    }
    struct LiveSession;
    // the session's user once with each site (or once with none), then once with each trade
    const TEXT: &str = "SELECT u.role AS role, 'site' AS kind, NULL AS value \
        FROM sessions s JOIN users u ON u.id = s.user_id \
        WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND u.active = TRUE \
        UNION ALL SELECT u.role, 'site', us.site_id \
        FROM sessions s JOIN users u ON u.id = s.user_id JOIN user_sites us ON us.user_id = u.id \
        WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND u.active = TRUE \
        UNION ALL SELECT u.role, 'trade', ut.trade \
        FROM sessions s JOIN users u ON u.id = s.user_id JOIN user_trades ut ON ut.user_id = u.id \
        WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND u.active = TRUE";
    let statement = || Statement::<LiveSession>::new(TEXT, vec![Param::Text(session_id), Param::Text(user_id)]);
    let facts: Vec<Fact> = on_engine!(conn, |c| statement().load(c))?;
    let Some(role) = facts.first().map(|f| f.role.clone()) else { return Ok(None) };
    let (mut sites, mut trades) = (Vec::new(), Vec::new());
    for fact in facts {
        match (fact.kind.as_str(), fact.value) {
            ("site", Some(site)) => sites.push(site),
            ("trade", Some(trade)) => trades.push(trade),
            _ => {}
        }
    }
    sites.sort();
    trades.sort();
    Ok(Some(Identity { role, sites, trades }))
}

/// Keeps a stream ticket (its hash) of `session_id` until `expires_at`, and forgets tickets that
/// expired an hour before `now`.
pub fn issue_stream_ticket(
    conn: &mut DbConn,
    token_hash: &str,
    session_id: &str,
    user_id: &str,
    expires_at: NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::delete(stream_tickets::table.filter(stream_tickets::expires_at.lt(now - Duration::hours(1))))
        .execute(conn)?;
    diesel::insert_into(stream_tickets::table)
        .values((
            stream_tickets::token_hash.eq(token_hash),
            stream_tickets::session_id.eq(session_id),
            stream_tickets::user_id.eq(user_id),
            stream_tickets::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Uses up a stream ticket: its session and user when it was unused and unexpired at `now`, once.
pub fn take_stream_ticket(
    conn: &mut DbConn,
    token_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<(String, String)>> {
    on_engine!(conn, |c| diesel::update(
        stream_tickets::table
            .filter(stream_tickets::token_hash.eq(token_hash))
            .filter(stream_tickets::used_at.is_null())
            .filter(stream_tickets::expires_at.gt(now)),
    )
    .set(stream_tickets::used_at.eq(now))
    .returning((stream_tickets::session_id, stream_tickets::user_id))
    .get_result(c)
    .optional())
}

/// A session's user as [`live_session`] reads it.
#[derive(Debug, Clone)]
pub struct Identity {
    pub role: String,
    pub sites: Vec<String>,
    pub trades: Vec<String>,
}

/// Failed logins under `key` since `since`, and the oldest of them.
pub fn recent_failures(
    conn: &mut DbConn,
    key: &str,
    since: NaiveDateTime,
) -> QueryResult<(i64, Option<NaiveDateTime>)> {
    let recent =
        login_failures::table.filter(login_failures::throttle_key.eq(key)).filter(login_failures::at.gt(since));
    let count = recent.count().get_result(conn)?;
    let oldest = recent.select(diesel::dsl::min(login_failures::at)).get_result(conn)?;
    Ok((count, oldest))
}

/// Counts one failure under `key`, forgetting its failures from before `forget_before`.
pub fn record_failure(conn: &mut DbConn, key: &str, forget_before: NaiveDateTime) -> QueryResult<()> {
    diesel::delete(
        login_failures::table.filter(login_failures::throttle_key.eq(key)).filter(login_failures::at.le(forget_before)),
    )
    .execute(conn)?;
    diesel::insert_into(login_failures::table)
        .values((login_failures::id.eq(new_id()), login_failures::throttle_key.eq(key), login_failures::at.eq(now())))
        .execute(conn)?;
    Ok(())
}

pub fn clear_failures(conn: &mut DbConn, key: &str) -> QueryResult<usize> {
    diesel::delete(login_failures::table.filter(login_failures::throttle_key.eq(key))).execute(conn)
}
