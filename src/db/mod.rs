//! The storage layer: every SQL statement of the service lives below this module.
//!
//! One code path serves SQLite and PostgreSQL through diesel's `MultiConnection`; the engine is
//! picked from the URL scheme, and engine-specific SQL is matched on the connection variant here.
//!
//! # The lock order
//!
//! On PostgreSQL several transactions write at once (and several instances share one database),
//! so two that take the same rows in opposite orders deadlock. Every writing transaction takes
//! its row locks in this one order, and never goes back to an earlier step:
//!
//! 1. **A push's sync client** (`sync_clients`, [`sync::lock_last_op_id`]): only a push of that
//!    client takes it, first, so two pushes of one phone apply one after the other.
//! 2. **Tickets, by id** ([`tickets::find_for_update`], or [`tickets::lock`] for several, which
//!    sorts them): before anything else of the ticket is read to be changed, written or
//!    referenced. A ticket is locked `FOR UPDATE` at once, never first shared and later upgraded.
//!    A sync push locks its batch's ticket before the first operation, outside the operations'
//!    savepoints (a savepoint rolled back gives back the row locks taken inside it). The outbox
//!    and the clock lock the message's or the escalation's ticket before their own rows.
//! 3. **Per-technician rows** (`users`, locked by [`tickets::claim`]): a claim counts the
//!    technician's active tickets under it, after the ticket.
//! 4. **Rows that belong to the tickets locked above**: their codes, material lines, notes, quotes,
//!    escalations and outbox messages (SMS and push), and a new ticket's per-site, per-day number counter
//!    ([`tickets::next_number`]; its creating transaction holds no other ticket).
//! 5. **New rows that reference the tickets locked above**: their events ([`events::append`]).
//!    No row is shared by all writers: an event records its own transaction, and readers order
//!    changes by what their snapshots held (`docs/sync.md`).
//!
//! A push message is only ever inserted under its ticket's lock and then changed only by the
//! worker holding its lease, which takes no other lock; devices are written by their owner's
//! registration and by that worker (forgetting one the service refused), and only read by ticket
//! writers: neither takes a place in the order.
//! A ticket's escalation acknowledged appends an event to the ticket: it locks the ticket first,
//! then its escalation (step 4), then appends (step 5). A matter's escalation acknowledged and a
//! handover write only their own rows and lock no ticket (a handover reads its site's tickets
//! without locking them), so they take no place in the order.
//! Nor do matters (报事, [`matters`]): a matter's transaction holds no ticket; it takes its own
//! number counter row (under a key of its own, never a ticket's) or makes one conditional update
//! of its own row, then writes its callbacks and escalations.
//!
//! SQLite has one writer at a time ([`write_transaction`]), so the order costs it nothing. A
//! deadlock or serialization failure that still happens is retried by [`write_transaction`] a
//! few times with backoff, and answers `503 database_busy` if it keeps failing, never a 500.

/// Runs the same diesel expression on whichever engine's connection `conn` holds: for the few
/// statements (upserts, `RETURNING`) that diesel's multi-engine backend does not build.
macro_rules! on_engine {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Postgres($c) => $body,
            $crate::db::DbConn::Sqlite($c) => $body,
        }
    };
}

pub mod codes;
pub mod devices;
pub mod escalations;
pub mod events;
pub mod faults;
pub mod handovers;
pub mod idempotency;
pub mod materials;
pub mod matters;
pub mod outbox;
pub mod prepared;
pub mod push;
pub mod quotes;
pub mod reports;
pub mod schema;
pub mod settings;
pub mod sites;
pub mod statements;
pub mod sync;
pub mod tickets;
pub mod tokens;
pub mod types;
pub mod users;

use std::time::Duration;

use chrono::{NaiveDateTime, Timelike, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

/// Where the data lives: the parsed `DATABASE_URL` setting.
pub use crate::config::DatabaseUrl;
use crate::error::{ApiError, ErrorCode};

#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Postgres(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

pub type Pool = r2d2::Pool<Manager>;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

pub use statements::Statements;

/// r2d2 manager that opens the engine named by the URL, sets SQLite's pragmas on every connection,
/// and has each count its statements into the pool's [`Statements`].
#[derive(Debug, Clone)]
pub struct Manager {
    url: DatabaseUrl,
    statements: Statements,
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConn, Self::Error> {
        let mut conn = self.open()?;
        conn.set_instrumentation(self.statements.counter());
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1").map_err(diesel::r2d2::Error::QueryError)
    }

    /// A connection whose server went away (a database restart) is dropped, not pooled again.
    fn has_broken(&self, conn: &mut DbConn) -> bool {
        diesel::r2d2::R2D2Connection::is_broken(conn)
    }
}

impl Manager {
    fn open(&self) -> Result<DbConn, diesel::r2d2::Error> {
        match &self.url {
            DatabaseUrl::Postgres(url) => {
                diesel::PgConnection::establish(url).map(DbConn::Postgres).map_err(diesel::r2d2::Error::ConnectionError)
            }
            DatabaseUrl::Sqlite(path) => {
                let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy())
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                // WAL lets readers run beside the one writer; busy_timeout makes writers queue
                // instead of failing at once; NORMAL is durable across process crashes in WAL mode.
                conn.batch_execute(
                    "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                     PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                )
                .map_err(diesel::r2d2::Error::QueryError)?;
                Ok(DbConn::Sqlite(conn))
            }
        }
    }
}

/// Opens the pool. The SQLite file's folder is created when missing.
pub fn connect(url: &DatabaseUrl, max_size: u32) -> anyhow::Result<Pool> {
    connect_counting(url, max_size, Statements::default())
}

/// [`connect`], counting the statements of the pool's connections into `statements`.
pub fn connect_counting(url: &DatabaseUrl, max_size: u32, statements: Statements) -> anyhow::Result<Pool> {
    if let DatabaseUrl::Sqlite(path) = url {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
    }
    let pool = r2d2::Pool::builder()
        .max_size(max_size)
        .connection_timeout(Duration::from_secs(5))
        .min_idle(Some(1))
        .test_on_check_out(false)
        .build(Manager { url: url.clone(), statements })?;
    Ok(pool)
}

/// Applies pending migrations. Instances starting together don't race each other: on PostgreSQL
/// an advisory lock, on SQLite one write transaction around them all.
pub fn migrate(pool: &Pool) -> anyhow::Result<()> {
    migrate_connection(&mut *pool.get()?)
}

/// [`migrate`] on one connection.
pub fn migrate_connection(conn: &mut DbConn) -> anyhow::Result<()> {
    let failed = |e| anyhow::anyhow!("migration failed: {e}");
    match conn {
        DbConn::Sqlite(c) => {
            c.immediate_transaction(|c| c.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ()).map_err(failed))
        }
        DbConn::Postgres(c) => {
            c.batch_execute("SELECT pg_advisory_lock(7460201)")?;
            let result = c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|_| ()).map_err(failed);
            c.batch_execute("SELECT pg_advisory_unlock(7460201)")?;
            result
        }
    }
}

/// The smallest and the largest of `ids`, for reads of many tickets' rows to add
/// `ticket_id BETWEEN lo AND hi` beside `ticket_id = ANY(ids)`. PostgreSQL judges a list of ids
/// by how often an id occurs in the table, so for a page of 200 tickets, few of which have any
/// rows, it expects thousands and reads the whole table; a page in id order spans a narrow range,
/// which it judges small, and it uses the index.
///
/// `None` when there are no ids, or when one is not a UUID as this server writes them (lowercase,
/// hyphenated): those sort the same byte by byte (Rust, SQLite) as under PostgreSQL's collations,
/// so the range holds every id; for other strings that is not sure, and no range is added.
pub fn id_range(ids: &[String]) -> Option<(&String, &String)> {
    let canonical = |id: &String| {
        id.len() == 36
            && id.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
            })
    };
    if !ids.iter().all(canonical) {
        return None;
    }
    Some((ids.iter().min()?, ids.iter().max()?))
}

/// Whether PostgreSQL's autovacuum is off (`None` on SQLite). Without it nothing gathers the
/// planner's statistics, and plans made while the tables were small stay cached on the pooled
/// connections: reads by a list of ticket ids end up scanning whole tables.
pub fn autovacuum_off(conn: &mut DbConn) -> QueryResult<Option<bool>> {
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        setting: String,
    }
    match conn {
        DbConn::Sqlite(_) => Ok(None),
        DbConn::Postgres(c) => {
            let row: Setting =
                diesel::sql_query("SELECT setting FROM pg_settings WHERE name = 'autovacuum'").get_result(c)?;
            Ok(Some(row.setting != "on"))
        }
    }
}

/// One connection with no pool, for one-shot commands: a pool's background thread may still be
/// opening a connection when the process exits, and libpq does not survive that.
pub fn connect_once(url: &DatabaseUrl) -> anyhow::Result<DbConn> {
    if let DatabaseUrl::Sqlite(path) = url {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
    }
    Ok(Manager { url: url.clone(), statements: Statements::default() }.open()?)
}

/// What a failed statement means for the work that met it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    /// The connection dropped, or (SQLite) a writer waited out `busy_timeout`: try again shortly.
    Unavailable,
    /// PostgreSQL broke a deadlock by failing this transaction (40P01), or could not serialize it
    /// (40001): nothing of it stands, and it may run again.
    Busy,
    /// Anything else: the statement itself failed.
    Other,
}

impl Trouble {
    pub fn of(e: &diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind as Kind, Error};
        let Error::DatabaseError(kind, info) = e else { return Self::Other };
        match kind {
            Kind::ClosedConnection | Kind::UnableToSendCommand => Self::Unavailable,
            Kind::SerializationFailure => Self::Busy,
            _ if info.message().contains("deadlock detected") => Self::Busy,
            // SQLite answers a writer that waited out busy_timeout with "database is locked".
            _ if info.message().contains("database is locked") => Self::Unavailable,
            _ => Self::Other,
        }
    }
}

// Here rather than in `error`, which would then import `db` back: [`Trouble`] decides for both.
impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::Error;
        let message = || match &e {
            Error::DatabaseError(_, info) => info.message().to_owned(),
            other => other.to_string(),
        };
        if matches!(e, Error::NotFound) {
            return Self::not_found("record");
        }
        match Trouble::of(&e) {
            Trouble::Unavailable => Self::database_unavailable(message()),
            Trouble::Busy => Self::database_busy(message()),
            Trouble::Other => Self::internal(e),
        }
    }
}

/// What database work run here ([`run_with`], [`write_transaction`]) fails with: the HTTP edge's
/// [`ApiError`], or a background job's own error. A failed statement converts into it.
pub trait WorkError: From<diesel::result::Error> + std::fmt::Display + Send + 'static {
    /// No connection could be had from the pool.
    fn unavailable(cause: &dyn std::fmt::Display) -> Self;
    /// The thread that ran the work failed.
    fn crashed(cause: &dyn std::fmt::Display) -> Self;
    /// A deadlock or serialization failure ([`Trouble::Busy`]): the transaction was undone and may
    /// run again.
    fn is_busy(&self) -> bool;
}

impl WorkError for ApiError {
    fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        Self::database_unavailable(cause)
    }

    fn crashed(cause: &dyn std::fmt::Display) -> Self {
        Self::internal(cause)
    }

    fn is_busy(&self) -> bool {
        self.code == ErrorCode::DatabaseBusy
    }
}

/// Runs blocking database work on actix's blocking thread pool, never on the async workers.
pub async fn run<F, T>(pool: &Pool, work: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut DbConn) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    run_with(pool, work).await
}

/// [`run`] for work with an error of its own (a background job's).
pub async fn run_with<F, T, E>(pool: &Pool, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: WorkError,
{
    let pool = pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool.get().map_err(|e| E::unavailable(&e))?;
        work(&mut conn)
    })
    .await
    .map_err(|e| E::crashed(&e))?
}

/// Like [`run`], inside one write transaction (see [`write_transaction`]), which may run `work`
/// again after a deadlock or serialization failure.
pub async fn transaction<F, T>(pool: &Pool, mut work: F) -> Result<T, ApiError>
where
    F: FnMut(&mut DbConn) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    run(pool, move |conn| write_transaction(conn, &mut work)).await
}

/// How many times [`write_transaction`] runs a transaction that keeps failing with a deadlock or
/// a serialization failure before it gives up (`503 database_busy` at the HTTP edge).
pub const TRANSACTION_ATTEMPTS: u32 = 4;

/// Runs `work` in a transaction that will write. On SQLite it starts with `BEGIN IMMEDIATE`, taking
/// the write lock up front: a deferred transaction that read first could not upgrade once another
/// writer committed (SQLITE_BUSY_SNAPSHOT, which busy_timeout does not wait out).
///
/// A deadlock or serialization failure ([`WorkError::is_busy`]) undoes the whole transaction;
/// `work` then runs again from the start in a new one, after a jittered backoff (about 20, 40,
/// 80 ms), up to [`TRANSACTION_ATTEMPTS`] times in all. So `work` must hold nothing that its first
/// run used up.
///
/// This process's SQLite writers first queue on [`SQLITE_WRITER`], so each is woken the moment the
/// one before it has finished.
pub fn write_transaction<T, E: WorkError>(
    conn: &mut DbConn,
    mut work: impl FnMut(&mut DbConn) -> Result<T, E>,
) -> Result<T, E> {
    let mut attempt = 1;
    loop {
        let outcome = {
            let _turn = matches!(conn, DbConn::Sqlite(_)).then(|| SQLITE_WRITER.lock());
            transaction_begun_with(conn, "BEGIN IMMEDIATE", "BEGIN", &mut work)
        };
        match outcome {
            Err(e) if e.is_busy() && attempt < TRANSACTION_ATTEMPTS => {
                std::thread::sleep(retry_backoff(attempt));
                attempt += 1;
            }
            Err(e) if e.is_busy() => {
                tracing::warn!(attempts = attempt, error = %e, "transaction gave up after conflicts");
                return Err(e);
            }
            other => return other,
        }
    }
}

/// The wait before the `attempt`+1-th run of a transaction: 20 ms doubling per attempt, each
/// between half and one and a half of that, so transactions that collided don't collide again.
fn retry_backoff(attempt: u32) -> Duration {
    use rand::Rng;
    let base = 20u64 << (attempt.saturating_sub(1)).min(6);
    Duration::from_millis(rand::thread_rng().gen_range(base / 2..=base + base / 2))
}

/// SQLite has one writer at a time, and a writer that finds the lock taken waits in SQLite's busy
/// handler, which sleeps 1, 2, 5, 10 ... up to 100 ms between tries: a queue of writers there
/// sleeps on after the lock is free, and the last in line waits longest. Queued here instead, first
/// come first served, they follow each other at once; `busy_timeout` is left for writers of other
/// processes. One lock for every SQLite database of the process: a server has one, and the tests'
/// many databases only have their writes taken in turn.
static SQLITE_WRITER: parking_lot::FairMutex<()> = parking_lot::const_fair_mutex(());

/// Runs `work` inside a savepoint of the current transaction: an error undoes `work`'s writes
/// but not what the transaction did before it.
pub fn savepoint<T>(conn: &mut DbConn, work: impl FnOnce(&mut DbConn) -> Result<T, ApiError>) -> Result<T, ApiError> {
    conn.transaction(work)
}

/// Runs `work` on one consistent snapshot of the database: PostgreSQL's REPEATABLE READ, SQLite's
/// read transaction. For reads that must agree with each other (a sync pull and its `last_op_id`).
pub fn snapshot<T, E: From<diesel::result::Error>>(
    conn: &mut DbConn,
    work: impl FnOnce(&mut DbConn) -> Result<T, E>,
) -> Result<T, E> {
    transaction_begun_with(conn, "BEGIN", "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", work)
}

fn transaction_begun_with<T, E: From<diesel::result::Error>>(
    conn: &mut DbConn,
    sqlite_begin: &str,
    postgres_begin: &str,
    work: impl FnOnce(&mut DbConn) -> Result<T, E>,
) -> Result<T, E> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    match conn {
        DbConn::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, sqlite_begin)?,
        DbConn::Postgres(c) => AnsiTransactionManager::begin_transaction_sql(c, postgres_begin)?,
    }
    match work(conn) {
        Ok(value) => {
            <DbConn as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(e) => {
            if let Err(rollback) = <DbConn as Connection>::TransactionManager::rollback_transaction(conn) {
                tracing::warn!(error = %rollback, "rollback failed");
            }
            Err(e)
        }
    }
}

/// The current UTC time at the precision both engines store (microseconds), so a value
/// written and read back compares equal.
pub fn now() -> NaiveDateTime {
    let now = Utc::now().naive_utc();
    now.with_nanosecond(now.nanosecond() / 1_000 * 1_000).unwrap_or(now)
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_range_only_for_uuids_as_written_here() {
        let ids: Vec<String> =
            ["7f0c1a52-0000-4000-8000-000000000002", "07a3b9e1-0000-4000-8000-000000000001"].map(String::from).to_vec();
        assert_eq!(id_range(&ids), Some((&ids[1], &ids[0])));
        assert_eq!(id_range(&ids[..1]), Some((&ids[0], &ids[0])));
        assert_eq!(id_range(&[]), None);
        // another form of the same kind of id, or something else: no range
        for odd in ["7F0C1A52-0000-4000-8000-000000000002", "7f0c1a5200004000800000000000000002", "x"] {
            assert_eq!(id_range(&[ids[0].clone(), odd.to_owned()]), None, "{odd}");
        }
    }

    #[test]
    fn both_migration_folders_hold_the_same_names() {
        let names = |dir: &str| {
            let mut v: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        let sqlite = names(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"));
        let postgres = names(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"));
        assert!(!sqlite.is_empty());
        assert_eq!(sqlite, postgres);
    }
}
