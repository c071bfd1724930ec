use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::resident_codes;
use super::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = resident_codes)]
pub struct CodeRow {
    pub ticket_id: String,
    pub purpose: String,
    pub code_hash: String,
    pub failed_attempts: i64,
    pub expires_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
}

/// Puts `row` in place of any earlier code for the same ticket and purpose. With
/// `keep_failures` the earlier code's wrong tries stay counted (updated in place, so a wrong try
/// counted meanwhile is not lost).
pub fn replace(conn: &mut DbConn, row: &CodeRow, keep_failures: bool) -> QueryResult<()> {
    let this = resident_codes::table.find((&row.ticket_id, &row.purpose));
    if keep_failures {
        let changed = diesel::update(this)
            .set((
                resident_codes::code_hash.eq(&row.code_hash),
                resident_codes::expires_at.eq(row.expires_at),
                resident_codes::used_at.eq(row.used_at),
                resident_codes::created_at.eq(row.created_at),
            ))
            .execute(conn)?;
        if changed == 1 {
            return Ok(());
        }
    }
    diesel::delete(this).execute(conn)?;
    insert(conn, row)
}

/// The first code of its ticket and purpose.
pub fn insert(conn: &mut DbConn, row: &CodeRow) -> QueryResult<()> {
    diesel::insert_into(resident_codes::table).values(row).execute(conn).map(|_| ())
}

pub fn find(conn: &mut DbConn, ticket_id: &str, purpose: &str) -> QueryResult<Option<CodeRow>> {
    resident_codes::table.find((ticket_id, purpose)).select(CodeRow::as_select()).first(conn).optional()
}

/// Counts a wrong try; returns the failures now recorded.
pub fn record_failure(conn: &mut DbConn, ticket_id: &str, purpose: &str) -> QueryResult<i64> {
    diesel::update(resident_codes::table.find((ticket_id, purpose)))
        .set(resident_codes::failed_attempts.eq(resident_codes::failed_attempts + 1))
        .execute(conn)?;
    resident_codes::table.find((ticket_id, purpose)).select(resident_codes::failed_attempts).first(conn)
}

/// Uses the code up: true for the one caller that does.
pub fn mark_used(conn: &mut DbConn, ticket_id: &str, purpose: &str, at: NaiveDateTime) -> QueryResult<bool> {
    let changed =
        diesel::update(resident_codes::table.find((ticket_id, purpose)).filter(resident_codes::used_at.is_null()))
            .set(resident_codes::used_at.eq(at))
            .execute(conn)?;
    Ok(changed == 1)
}
