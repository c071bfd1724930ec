//! Counting the statements a pool's connections run: how many round trips a request costs
//! (`tests/api/statements.rs` holds each request to its count, `docs/performance.md` lists them).
//!
//! Each connection the pool opens carries a [`Counter`] (diesel's `Instrumentation` hook) that adds
//! to the tally of its pool, so two servers in one process (the tests) never mix their counts.
//! It stays on in production: a statement costs one relaxed atomic add and one relaxed load, next
//! to a round trip to the database. Keeping the statements' text costs more (it renders the SQL),
//! so it happens only while [`Statements::record`] asks for it.
//!
//! What a connection runs while it is opened (SQLite's pragmas, PostgreSQL's session settings) is
//! not counted: the counter is set once the connection is ready.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use diesel::connection::{Instrumentation, InstrumentationEvent};

/// The statements run on one pool's connections since it opened. Clones share the tally.
#[derive(Clone, Default)]
pub struct Statements(Arc<Tally>);

#[derive(Default)]
struct Tally {
    other: AtomicU64,
    transaction_control: AtomicU64,
    recording: AtomicBool,
    recorded: parking_lot::Mutex<Vec<String>>,
}

/// How many statements, in two kinds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Everything but transaction control: reads, writes, locks.
    pub other: u64,
    /// `BEGIN` (in any form), `COMMIT`, `ROLLBACK`, and the savepoints' `SAVEPOINT`, `RELEASE` and
    /// `ROLLBACK TO`.
    pub transaction_control: u64,
}

impl std::ops::Sub for Counts {
    type Output = Counts;

    fn sub(self, earlier: Counts) -> Counts {
        Counts {
            other: self.other - earlier.other,
            transaction_control: self.transaction_control - earlier.transaction_control,
        }
    }
}

impl std::fmt::Debug for Statements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.counts().fmt(f)
    }
}

impl Statements {
    pub fn counts(&self) -> Counts {
        Counts {
            other: self.0.other.load(Ordering::Relaxed),
            transaction_control: self.0.transaction_control.load(Ordering::Relaxed),
        }
    }

    /// From now on keeps the text of each statement (without its bound values), or stops.
    pub fn record(&self, on: bool) {
        self.0.recording.store(on, Ordering::Relaxed);
    }

    /// The statements' text kept since the last call, in the order they started.
    pub fn take_recorded(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.recorded.lock())
    }

    /// The instrumentation for one new connection of the pool.
    pub(super) fn counter(&self) -> Counter {
        Counter { tally: self.0.clone(), control_next: false }
    }
}

/// One connection's instrumentation, adding to its pool's [`Statements`].
pub(super) struct Counter {
    tally: Arc<Tally>,
    /// diesel announces each transaction step (begin, commit, rollback, at any depth) right before
    /// it runs its statement: the next statement is transaction control.
    control_next: bool,
}

impl Instrumentation for Counter {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::BeginTransaction { .. }
            | InstrumentationEvent::CommitTransaction { .. }
            | InstrumentationEvent::RollbackTransaction { .. } => self.control_next = true,
            InstrumentationEvent::StartQuery { query, .. } => {
                let kind = match std::mem::take(&mut self.control_next) {
                    true => &self.tally.transaction_control,
                    false => &self.tally.other,
                };
                kind.fetch_add(1, Ordering::Relaxed);
                if self.tally.recording.load(Ordering::Relaxed) {
                    let text = query.to_string();
                    let sql = text.split(" -- binds: ").next().unwrap_or_default();
                    self.tally.recorded.lock().push(sql.to_owned());
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, RunQueryDsl, SqliteConnection};

    use super::*;

    #[test]
    fn transaction_control_and_savepoints_are_counted_apart_from_the_rest() {
        let statements = Statements::default();
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        conn.set_instrumentation(statements.counter());
        statements.record(true);
        conn.transaction(|c| {
            c.batch_execute("CREATE TABLE t (x INTEGER)")?;
            c.transaction(|c| diesel::sql_query("INSERT INTO t VALUES (1)").execute(c))
        })
        .unwrap();
        let undone: Result<(), _> = conn.transaction(|c| {
            diesel::sql_query("SELECT x FROM t").execute(c)?;
            Err(diesel::result::Error::RollbackTransaction)
        });
        assert!(undone.is_err());
        assert_eq!(statements.counts(), Counts { other: 3, transaction_control: 6 });
        assert_eq!(
            statements.take_recorded(),
            [
                "BEGIN",
                "CREATE TABLE t (x INTEGER)",
                "SAVEPOINT diesel_savepoint_1",
                "INSERT INTO t VALUES (1)",
                "RELEASE SAVEPOINT diesel_savepoint_1",
                "COMMIT",
                "BEGIN",
                "SELECT x FROM t",
                "ROLLBACK",
            ]
        );
        statements.record(false);
        conn.batch_execute("SELECT 1").unwrap();
        assert!(statements.take_recorded().is_empty(), "kept only while asked");
        assert_eq!(statements.counts().other, 4);
    }
}
