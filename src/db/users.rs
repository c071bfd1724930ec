use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{user_departments, user_sites, user_trades, users};
use super::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub display_name: String,
    pub role: String,
    pub phone: Option<String>,
    pub active: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Whether new tickets in their pool are pushed to their phones.
    pub on_duty: bool,
}

/// A user with the sites they belong to and the trades they handle.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub row: UserRow,
    pub site_ids: Vec<String>,
    pub trades: Vec<String>,
    /// The departments whose matters (报事) they answer.
    pub departments: Vec<String>,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges {
    pub display_name: Option<String>,
    pub role: Option<String>,
    pub phone: Option<Option<String>>,
    pub active: Option<bool>,
    pub password_hash: Option<String>,
    pub on_duty: Option<bool>,
    pub updated_at: Option<NaiveDateTime>,
}

pub fn insert(
    conn: &mut DbConn,
    row: &UserRow,
    site_ids: &[String],
    trades: &[String],
    departments: &[String],
) -> QueryResult<()> {
    diesel::insert_into(users::table).values(row).execute(conn)?;
    set_sites(conn, &row.id, site_ids)?;
    set_trades(conn, &row.id, trades)?;
    set_departments(conn, &row.id, departments)
}

pub fn username_taken(conn: &mut DbConn, username: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(users::table.filter(users::username.eq(username)))).get_result(conn)
}

pub fn admin_exists(conn: &mut DbConn) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(users::table.filter(users::role.eq("admin")))).get_result(conn)
}

pub fn find_by_username(conn: &mut DbConn, username: &str) -> QueryResult<Option<UserRow>> {
    users::table.filter(users::username.eq(username)).select(UserRow::as_select()).first(conn).optional()
}

pub fn find(conn: &mut DbConn, id: &str) -> QueryResult<Option<UserRecord>> {
    let Some(row) = users::table.find(id).select(UserRow::as_select()).first(conn).optional()? else {
        return Ok(None);
    };
    Ok(with_memberships(conn, vec![row])?.pop())
}

pub fn site_ids(conn: &mut DbConn, user_id: &str) -> QueryResult<Vec<String>> {
    user_sites::table
        .filter(user_sites::user_id.eq(user_id))
        .select(user_sites::site_id)
        .order(user_sites::site_id.asc())
        .load(conn)
}

/// Users, optionally only those belonging to one of `sites`, ordered by username.
pub fn list(conn: &mut DbConn, sites: Option<&[String]>) -> QueryResult<Vec<UserRecord>> {
    let mut query = users::table.select(UserRow::as_select()).order(users::username.asc()).into_boxed();
    if let Some(sites) = sites {
        let members = user_sites::table.filter(user_sites::site_id.eq_any(sites.to_vec())).select(user_sites::user_id);
        query = query.filter(users::id.eq_any(members));
    }
    let rows = query.load(conn)?;
    with_memberships(conn, rows)
}

fn with_memberships(conn: &mut DbConn, rows: Vec<UserRow>) -> QueryResult<Vec<UserRecord>> {
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let sites: Vec<(String, String)> = user_sites::table
        .filter(user_sites::user_id.eq_any(ids.clone()))
        .select((user_sites::user_id, user_sites::site_id))
        .order(user_sites::site_id.asc())
        .load(conn)?;
    let trades: Vec<(String, String)> = user_trades::table
        .filter(user_trades::user_id.eq_any(ids.clone()))
        .select((user_trades::user_id, user_trades::trade))
        .order(user_trades::trade.asc())
        .load(conn)?;
    let departments: Vec<(String, String)> = user_departments::table
        .filter(user_departments::user_id.eq_any(ids))
        .select((user_departments::user_id, user_departments::department))
        .order(user_departments::department.asc())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let of = |pairs: &[(String, String)]| {
                pairs.iter().filter(|(u, _)| *u == row.id).map(|(_, v)| v.clone()).collect()
            };
            UserRecord { site_ids: of(&sites), trades: of(&trades), departments: of(&departments), row }
        })
        .collect())
}

pub fn update(conn: &mut DbConn, id: &str, changes: &UserChanges) -> QueryResult<usize> {
    diesel::update(users::table.find(id)).set(changes).execute(conn)
}

pub fn set_sites(conn: &mut DbConn, user_id: &str, site_ids: &[String]) -> QueryResult<()> {
    diesel::delete(user_sites::table.filter(user_sites::user_id.eq(user_id))).execute(conn)?;
    // one statement per row: diesel's multi-engine backend has no batch insert
    for site_id in site_ids {
        diesel::insert_into(user_sites::table)
            .values((user_sites::user_id.eq(user_id), user_sites::site_id.eq(site_id)))
            .execute(conn)?;
    }
    Ok(())
}

pub fn set_trades(conn: &mut DbConn, user_id: &str, trades: &[String]) -> QueryResult<()> {
    diesel::delete(user_trades::table.filter(user_trades::user_id.eq(user_id))).execute(conn)?;
    for trade in trades {
        diesel::insert_into(user_trades::table)
            .values((user_trades::user_id.eq(user_id), user_trades::trade.eq(trade)))
            .execute(conn)?;
    }
    Ok(())
}

pub fn set_departments(conn: &mut DbConn, user_id: &str, departments: &[String]) -> QueryResult<()> {
    diesel::delete(user_departments::table.filter(user_departments::user_id.eq(user_id))).execute(conn)?;
    for department in departments {
        diesel::insert_into(user_departments::table)
            .values((user_departments::user_id.eq(user_id), user_departments::department.eq(department)))
            .execute(conn)?;
    }
    Ok(())
}
