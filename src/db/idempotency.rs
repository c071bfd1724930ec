//! Stored answers to requests sent with an `Idempotency-Key`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::idempotency_keys;
use super::DbConn;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = idempotency_keys)]
pub struct KeyRow {
    pub request_hash: String,
    pub status_code: Option<i64>,
    pub content_type: Option<String>,
    pub body: Option<String>,
    pub created_at: NaiveDateTime,
}

/// Claims `key` for a request in flight; false when the key is already there.
pub fn begin(conn: &mut DbConn, user_id: &str, key: &str, hash: &str, at: NaiveDateTime) -> QueryResult<bool> {
    let inserted = on_engine!(conn, |c| diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::user_id.eq(user_id),
            idempotency_keys::idem_key.eq(key),
            idempotency_keys::request_hash.eq(hash),
            idempotency_keys::created_at.eq(at),
        ))
        .on_conflict((idempotency_keys::user_id, idempotency_keys::idem_key))
        .do_nothing()
        .execute(c))?;
    Ok(inserted == 1)
}

pub fn find(conn: &mut DbConn, user_id: &str, key: &str) -> QueryResult<Option<KeyRow>> {
    idempotency_keys::table.find((user_id, key)).select(KeyRow::as_select()).first(conn).optional()
}

/// Takes over a key whose first request never finished (the process died); true if taken.
pub fn take_over(
    conn: &mut DbConn,
    user_id: &str,
    key: &str,
    stale_before: NaiveDateTime,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let changed = diesel::update(
        idempotency_keys::table
            .find((user_id, key))
            .filter(idempotency_keys::status_code.is_null())
            .filter(idempotency_keys::created_at.lt(stale_before)),
    )
    .set(idempotency_keys::created_at.eq(at))
    .execute(conn)?;
    Ok(changed == 1)
}

pub fn finish(
    conn: &mut DbConn,
    user_id: &str,
    key: &str,
    status: u16,
    content_type: Option<String>,
    body: String,
) -> QueryResult<usize> {
    diesel::update(idempotency_keys::table.find((user_id, key)))
        .set((
            idempotency_keys::status_code.eq(Some(status as i64)),
            idempotency_keys::content_type.eq(content_type),
            idempotency_keys::body.eq(Some(body)),
        ))
        .execute(conn)
}

/// Forgets a key whose request failed on our side, so a retry runs again.
pub fn abandon(conn: &mut DbConn, user_id: &str, key: &str) -> QueryResult<usize> {
    diesel::delete(idempotency_keys::table.find((user_id, key))).execute(conn)
}

pub fn prune(conn: &mut DbConn, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(idempotency_keys::table.filter(idempotency_keys::created_at.lt(before))).execute(conn)
}
