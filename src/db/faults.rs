//! Failures injected on purpose, to test what the server does when the database fails under a
//! request that did nothing wrong. Off unless `REPAIRDESK_FAULT_PUSH_OP` is set (README, settings).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use diesel::connection::SimpleConnection;
use diesel::result::{DatabaseErrorKind, Error};

use super::DbConn;
use crate::error::ApiError;

/// The faults a server injects; none by default.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    push_op: Option<Arc<PushOpFault>>,
}

#[derive(Debug)]
struct PushOpFault {
    op_id: i64,
    left: AtomicU32,
}

impl Faults {
    /// Fails the transaction of a push that reaches an operation numbered `op_id` (of any client)
    /// with a serialization failure, the next `times` times it gets there.
    pub fn push_op(op_id: i64, times: u32) -> Self {
        Self { push_op: Some(Arc::new(PushOpFault { op_id, left: AtomicU32::new(times) })) }
    }

    /// Called by a push inside its transaction before it applies operation `op_id`. When a fault
    /// is due, fails as PostgreSQL fails a transaction it cannot serialize: on PostgreSQL the
    /// server itself raises SQLSTATE 40001 (and the transaction is aborted); SQLite has no such
    /// failure, so the same error is made here.
    pub fn before_push_op(&self, conn: &mut DbConn, op_id: i64) -> Result<(), ApiError> {
        let Some(fault) = self.push_op.as_ref().filter(|f| f.op_id == op_id) else { return Ok(()) };
        let due = fault.left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if !due {
            return Ok(());
        }
        tracing::warn!(op_id, "injecting a serialization failure (REPAIRDESK_FAULT_PUSH_OP)");
        match conn {
            DbConn::Postgres(c) => c.batch_execute(
                "DO $$ BEGIN RAISE EXCEPTION 'injected fault' USING ERRCODE = 'serialization_failure'; END $$",
            )?,
            DbConn::Sqlite(_) => {
                return Err(Error::DatabaseError(
                    DatabaseErrorKind::SerializationFailure,
                    Box::new("injected fault".to_owned()),
                )
                .into())
            }
        }
        Ok(())
    }
}
