//! Phones registered for push notifications, and who among the technicians hears of what.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{devices, user_sites, user_trades, users};
use super::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = devices)]
pub struct DeviceRow {
    pub id: String,
    pub user_id: String,
    pub provider: String,
    pub token: String,
    pub platform: String,
    pub app_version: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Inserts a device unless its token was registered meanwhile (by a transaction that committed
/// after this one read it); whether it was.
pub fn insert(conn: &mut DbConn, row: &DeviceRow) -> QueryResult<bool> {
    let inserted = on_engine!(&mut *conn, |c| diesel::insert_into(devices::table)
        .values(row)
        .on_conflict((devices::provider, devices::token))
        .do_nothing()
        .execute(c))?;
    Ok(inserted == 1)
}

pub fn find(conn: &mut DbConn, id: &str) -> QueryResult<Option<DeviceRow>> {
    devices::table.find(id).select(DeviceRow::as_select()).first(conn).optional()
}

pub fn find_by_token(conn: &mut DbConn, provider: &str, token: &str) -> QueryResult<Option<DeviceRow>> {
    devices::table
        .filter(devices::provider.eq(provider))
        .filter(devices::token.eq(token))
        .select(DeviceRow::as_select())
        .first(conn)
        .optional()
}

/// The same phone registered again by its user: what may have changed with an app update.
pub fn refresh(
    conn: &mut DbConn,
    id: &str,
    platform: &str,
    app_version: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(devices::table.find(id))
        .set((devices::platform.eq(platform), devices::app_version.eq(app_version), devices::updated_at.eq(now)))
        .execute(conn)
        .map(|_| ())
}

/// A user's devices, most recently registered first.
pub fn of_user(conn: &mut DbConn, user_id: &str) -> QueryResult<Vec<DeviceRow>> {
    devices::table
        .filter(devices::user_id.eq(user_id))
        .order((devices::updated_at.desc(), devices::id.asc()))
        .select(DeviceRow::as_select())
        .load(conn)
}

/// Removes a device; whether it was there (and, with `user_id`, that user's).
pub fn delete(conn: &mut DbConn, id: &str, user_id: Option<&str>) -> QueryResult<bool> {
    let mut query = diesel::delete(devices::table).filter(devices::id.eq(id)).into_boxed();
    if let Some(user_id) = user_id {
        query = query.filter(devices::user_id.eq(user_id));
    }
    Ok(query.execute(conn)? == 1)
}

/// The devices of active technicians that a change of a ticket may be pushed to: `user_ids`
/// (any of them), or, for a new ticket in a pool, every technician on duty of `site_id` who
/// handles `trade`.
pub enum Audience<'a> {
    Users(&'a [String]),
    Pool { site_id: &'a str, trade: &'a str },
}

pub fn reaching(conn: &mut DbConn, audience: Audience<'_>) -> QueryResult<Vec<DeviceRow>> {
    let mut query = devices::table
        .inner_join(users::table)
        .filter(users::role.eq("technician"))
        .filter(users::active.eq(true))
        .order((devices::user_id.asc(), devices::id.asc()))
        .select(DeviceRow::as_select())
        .into_boxed();
    match audience {
        Audience::Users(ids) => query = query.filter(users::id.eq_any(ids.to_vec())),
        Audience::Pool { site_id, trade } => {
            let members = user_sites::table.filter(user_sites::site_id.eq(site_id)).select(user_sites::user_id);
            let handlers = user_trades::table.filter(user_trades::trade.eq(trade)).select(user_trades::user_id);
            query = query
                .filter(users::on_duty.eq(true))
                .filter(users::id.eq_any(members))
                .filter(users::id.eq_any(handlers));
        }
    }
    query.load(conn)
}
