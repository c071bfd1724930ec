use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{material_catalogue, material_lines};
use super::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = material_catalogue)]
pub struct CatalogueItem {
    pub id: String,
    pub site_id: String,
    pub name: String,
    pub spec: Option<String>,
    pub model: Option<String>,
    pub unit: String,
    pub default_price_cents: i64,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
// None is NULL (no column has a default), so SQLite writes many rows in one statement
#[diesel(table_name = material_lines, treat_none_as_default_value = false)]
pub struct LineRow {
    pub id: String,
    pub ticket_id: String,
    pub catalogue_item_id: Option<String>,
    pub name: String,
    pub spec: Option<String>,
    pub model: Option<String>,
    pub quantity: String,
    pub quantity_milli: i64,
    pub unit: String,
    pub unit_price_cents: i64,
    pub supplied_by: String,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub deleted_at: Option<NaiveDateTime>,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = material_lines)]
pub struct LineChanges {
    pub name: Option<String>,
    pub spec: Option<Option<String>>,
    pub model: Option<Option<String>>,
    pub quantity: Option<String>,
    pub quantity_milli: Option<i64>,
    pub unit: Option<String>,
    pub unit_price_cents: Option<i64>,
    pub supplied_by: Option<String>,
    pub updated_at: Option<NaiveDateTime>,
    pub deleted_at: Option<Option<NaiveDateTime>>,
}

pub fn insert_item(conn: &mut DbConn, item: &CatalogueItem) -> QueryResult<()> {
    diesel::insert_into(material_catalogue::table).values(item).execute(conn).map(|_| ())
}

pub fn catalogue(conn: &mut DbConn, site_id: &str) -> QueryResult<Vec<CatalogueItem>> {
    material_catalogue::table
        .filter(material_catalogue::site_id.eq(site_id))
        .order((material_catalogue::name.asc(), material_catalogue::id.asc()))
        .select(CatalogueItem::as_select())
        .load(conn)
}

pub fn find_item(conn: &mut DbConn, id: &str) -> QueryResult<Option<CatalogueItem>> {
    material_catalogue::table.find(id).select(CatalogueItem::as_select()).first(conn).optional()
}

pub fn insert_line(conn: &mut DbConn, line: &LineRow) -> QueryResult<()> {
    diesel::insert_into(material_lines::table).values(line).execute(conn).map(|_| ())
}

/// Writes lines at once (one statement on PostgreSQL).
pub fn insert_lines(conn: &mut DbConn, lines: &[LineRow]) -> QueryResult<()> {
    for chunk in lines.chunks(200) {
        on_engine!(&mut *conn, |c| diesel::insert_into(material_lines::table).values(chunk).execute(c))?;
    }
    Ok(())
}

/// Whether any of `ids` names a line already.
pub fn any_line(conn: &mut DbConn, ids: &[String]) -> QueryResult<bool> {
    if ids.is_empty() {
        return Ok(false);
    }
    // no LIMIT: with one, PostgreSQL expects an early match and may scan the whole table for none
    let found: Vec<String> =
        material_lines::table.filter(material_lines::id.eq_any(ids)).select(material_lines::id).load(conn)?;
    Ok(!found.is_empty())
}

pub fn find_line(conn: &mut DbConn, id: &str) -> QueryResult<Option<LineRow>> {
    material_lines::table.find(id).select(LineRow::as_select()).first(conn).optional()
}

pub fn update_line(conn: &mut DbConn, id: &str, changes: &LineChanges) -> QueryResult<usize> {
    diesel::update(material_lines::table.find(id)).set(changes).execute(conn)
}

/// The ticket's lines that were not deleted, in the order they were added.
pub fn lines(conn: &mut DbConn, ticket_id: &str) -> QueryResult<Vec<LineRow>> {
    material_lines::table
        .filter(material_lines::ticket_id.eq(ticket_id))
        .filter(material_lines::deleted_at.is_null())
        .order((material_lines::created_at.asc(), material_lines::id.asc()))
        .select(LineRow::as_select())
        .load(conn)
}

pub fn lines_of(conn: &mut DbConn, ticket_ids: &[String]) -> QueryResult<Vec<LineRow>> {
    let mut query = material_lines::table
        .filter(material_lines::ticket_id.eq_any(ticket_ids.to_vec()))
        .filter(material_lines::deleted_at.is_null())
        .order((material_lines::ticket_id.asc(), material_lines::created_at.asc(), material_lines::id.asc()))
        .select(LineRow::as_select())
        .into_boxed();
    if let Some((lo, hi)) = crate::db::id_range(ticket_ids) {
        query = query.filter(material_lines::ticket_id.between(lo, hi));
    }
    query.load(conn)
}
