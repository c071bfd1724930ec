use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::sites;
use super::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sites)]
pub struct SiteRow {
    pub id: String,
    pub code: String,
    pub name: String,
    pub timezone: String,
    pub created_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConn, site: &SiteRow) -> QueryResult<()> {
    diesel::insert_into(sites::table).values(site).execute(conn).map(|_| ())
}

pub fn code_taken(conn: &mut DbConn, code: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(sites::table.filter(sites::code.eq(code)))).get_result(conn)
}

pub fn list(conn: &mut DbConn, only: Option<&[String]>) -> QueryResult<Vec<SiteRow>> {
    let mut query = sites::table.select(SiteRow::as_select()).order(sites::code.asc()).into_boxed();
    if let Some(ids) = only {
        query = query.filter(sites::id.eq_any(ids.to_vec()));
    }
    query.load(conn)
}

/// How many of `ids` exist.
pub fn count_existing(conn: &mut DbConn, ids: &[String]) -> QueryResult<i64> {
    sites::table.filter(sites::id.eq_any(ids.to_vec())).count().get_result(conn)
}

pub fn find(conn: &mut DbConn, id: &str) -> QueryResult<Option<SiteRow>> {
    sites::table.find(id).select(SiteRow::as_select()).first(conn).optional()
}
