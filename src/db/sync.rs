//! Phones that sync, the operations they pushed, and notes.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{sync_clients, sync_ops, ticket_notes, user_sites};
use super::DbConn;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sync_clients)]
pub struct ClientRow {
    pub client_id: String,
    pub user_id: String,
    pub last_op_id: i64,
}

/// The client, registered to `user_id` on first sight.
pub fn client(conn: &mut DbConn, client_id: &str, user_id: &str, now: NaiveDateTime) -> QueryResult<ClientRow> {
    on_engine!(conn, |c| diesel::insert_into(sync_clients::table)
        .values((
            sync_clients::client_id.eq(client_id),
            sync_clients::user_id.eq(user_id),
            sync_clients::last_op_id.eq(0i64),
            sync_clients::created_at.eq(now),
            sync_clients::updated_at.eq(now),
        ))
        .on_conflict(sync_clients::client_id)
        .do_nothing()
        .execute(c))?;
    sync_clients::table.find(client_id).select(ClientRow::as_select()).first(conn)
}

pub fn last_op_id(conn: &mut DbConn, client_id: &str) -> QueryResult<Option<i64>> {
    sync_clients::table.find(client_id).select(sync_clients::last_op_id).first(conn).optional()
}

/// [`last_op_id`], with the client's row locked until the transaction ends, so two pushes of one
/// client apply one after the other (on SQLite the write transaction is exclusive already).
pub fn lock_last_op_id(conn: &mut DbConn, client_id: &str) -> QueryResult<Option<i64>> {
    let query = sync_clients::table.find(client_id).select(sync_clients::last_op_id);
    match conn {
        DbConn::Postgres(c) => query.for_update().first(c).optional(),
        DbConn::Sqlite(c) => query.first(c).optional(),
    }
}

pub fn set_last_op_id(conn: &mut DbConn, client_id: &str, op_id: i64, now: NaiveDateTime) -> QueryResult<()> {
    diesel::update(sync_clients::table.find(client_id))
        .set((sync_clients::last_op_id.eq(op_id), sync_clients::updated_at.eq(now)))
        .execute(conn)
        .map(|_| ())
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
// None is NULL (no column has a default), so SQLite writes many rows in one statement
#[diesel(table_name = sync_ops, treat_none_as_default_value = false)]
pub struct OpRow {
    pub client_id: String,
    pub op_id: i64,
    pub user_id: String,
    pub ticket_id: Option<String>,
    pub site_id: Option<String>,
    pub name: String,
    pub args: String,
    pub device_time: Option<NaiveDateTime>,
    pub received_at: NaiveDateTime,
    pub status: String,
    pub code: Option<String>,
    pub detail: Option<String>,
}

pub fn record(conn: &mut DbConn, ops: &[OpRow]) -> QueryResult<()> {
    // a few hundred rows of 12 columns at a time stay far below either engine's bind limit
    for chunk in ops.chunks(200) {
        on_engine!(&mut *conn, |c| diesel::insert_into(sync_ops::table).values(chunk).execute(c))?;
    }
    Ok(())
}

/// The stored operations `op_ids` of `client_id`.
pub fn ops_of(conn: &mut DbConn, client_id: &str, op_ids: &[i64]) -> QueryResult<Vec<OpRow>> {
    sync_ops::table
        .filter(sync_ops::client_id.eq(client_id))
        .filter(sync_ops::op_id.eq_any(op_ids))
        .select(OpRow::as_select())
        .load(conn)
}

/// The app installs of `user_id`.
pub fn clients_of(conn: &mut DbConn, user_id: &str) -> QueryResult<Vec<String>> {
    sync_clients::table.filter(sync_clients::user_id.eq(user_id)).select(sync_clients::client_id).load(conn)
}

/// Operations of `clients` received at `from` or later, each client's after the op id `seen`
/// gives it (all of a client it does not name), in `(client_id, op_id)` order, at most `limit`.
/// One client's operations commit in op id order (its pushes take turns on its row), so none is
/// ever passed over.
pub fn ops_since(
    conn: &mut DbConn,
    clients: &[String],
    from: NaiveDateTime,
    seen: &[(String, i64)],
    limit: i64,
) -> QueryResult<Vec<OpRow>> {
    let mut query = sync_ops::table
        .filter(sync_ops::client_id.eq_any(clients))
        .filter(sync_ops::received_at.ge(from))
        .order((sync_ops::client_id.asc(), sync_ops::op_id.asc()))
        .limit(limit)
        .select(OpRow::as_select())
        .into_boxed();
    for (client_id, op_id) in seen {
        query = query.filter(sync_ops::client_id.ne(client_id.clone()).or(sync_ops::op_id.gt(*op_id)));
    }
    query.load(conn)
}

/// Rejected operations for the desks of `sites` (all when `None`), newest first: those pushed by a
/// member of one of `sites`, about a ticket of one of them or about none of the pusher's sites (a
/// ticket elsewhere, or none). A desk never sees what another site's users sent.
pub fn rejections(conn: &mut DbConn, sites: Option<&[String]>, limit: i64) -> QueryResult<Vec<OpRow>> {
    let mut query = sync_ops::table
        .filter(sync_ops::status.eq("rejected"))
        .order((sync_ops::received_at.desc(), sync_ops::op_id.desc()))
        .limit(limit)
        .select(OpRow::as_select())
        .into_boxed();
    if let Some(sites) = sites {
        let members = user_sites::table.filter(user_sites::site_id.eq_any(sites.to_vec())).select(user_sites::user_id);
        query = query
            .filter(sync_ops::user_id.eq_any(members))
            .filter(sync_ops::site_id.is_null().or(sync_ops::site_id.eq_any(sites.to_vec())));
    }
    query.load(conn)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
// None is NULL (no column has a default), so SQLite writes many rows in one statement
#[diesel(table_name = ticket_notes, treat_none_as_default_value = false)]
pub struct NoteRow {
    pub id: String,
    pub ticket_id: String,
    pub author_id: String,
    pub body: String,
    pub created_at: NaiveDateTime,
    pub device_time: Option<NaiveDateTime>,
}

pub fn insert_note(conn: &mut DbConn, note: &NoteRow) -> QueryResult<()> {
    diesel::insert_into(ticket_notes::table).values(note).execute(conn).map(|_| ())
}

/// Writes notes at once (one statement on PostgreSQL).
pub fn insert_notes(conn: &mut DbConn, notes: &[NoteRow]) -> QueryResult<()> {
    for chunk in notes.chunks(200) {
        on_engine!(&mut *conn, |c| diesel::insert_into(ticket_notes::table).values(chunk).execute(c))?;
    }
    Ok(())
}

/// Whether any of `ids` names a note already.
pub fn any_note(conn: &mut DbConn, ids: &[String]) -> QueryResult<bool> {
    if ids.is_empty() {
        return Ok(false);
    }
    // no LIMIT: with one, PostgreSQL expects an early match and may scan the whole table for none
    let found: Vec<String> =
        ticket_notes::table.filter(ticket_notes::id.eq_any(ids)).select(ticket_notes::id).load(conn)?;
    Ok(!found.is_empty())
}

pub fn find_note(conn: &mut DbConn, id: &str) -> QueryResult<Option<NoteRow>> {
    ticket_notes::table.find(id).select(NoteRow::as_select()).first(conn).optional()
}

pub fn notes_of(conn: &mut DbConn, ticket_ids: &[String]) -> QueryResult<Vec<NoteRow>> {
    let mut query = ticket_notes::table
        .filter(ticket_notes::ticket_id.eq_any(ticket_ids.to_vec()))
        .order((ticket_notes::ticket_id.asc(), ticket_notes::created_at.asc(), ticket_notes::id.asc()))
        .select(NoteRow::as_select())
        .into_boxed();
    if let Some((lo, hi)) = crate::db::id_range(ticket_ids) {
        query = query.filter(ticket_notes::ticket_id.between(lo, hi));
    }
    query.load(conn)
}
