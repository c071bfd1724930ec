//! The dispatch clock: finds tickets past a service level and records an escalation for each,
//! once per occurrence however many instances scan (the escalation's unique key decides).

use std::time::Duration;

use chrono::NaiveDateTime;
use serde_json::json;

use super::Error;
use crate::db::matters::MatterEscalationRow;
use crate::db::{self, tickets::TicketRow, DbConn, Pool};
use crate::domain::matter::{reply_due, MatterStatus, UNREPLIED};
use crate::domain::ticket::{Clock, EscalationKind, Running};

/// Scans every `every` on the blocking pool, so requests never wait for it.
pub fn spawn(pool: Pool, clock: Clock, every: Duration, stopping: super::Stopping) {
    tokio::spawn(async move {
        let mut ticker = super::Ticker::new(every, stopping);
        while ticker.next().await {
            match db::run_with(&pool, move |conn| scan(conn, &clock, db::now())).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(escalations = n, "clock escalated tickets"),
                Err(e) => tracing::warn!(error = %e, "clock scan failed"),
            }
        }
    });
}

/// One pass of the clock at `now`; returns how many escalations this pass recorded.
pub fn scan(conn: &mut DbConn, clock: &Clock, now: NaiveDateTime) -> Result<usize, Error> {
    let mut recorded = 0;
    // each re-read inside its transaction: the ticket may have moved on since the scan's read
    let due = |running: Option<Running>| running.filter(|r| r.deadline <= now).map(|r| r.since);
    for t in db::tickets::unclaimed_since(conn, now - clock.claim_timeout)? {
        recorded += escalate(conn, &t.id, EscalationKind::Unclaimed, now, |t| due(clock.unclaimed(&t.clock_facts())))?;
    }
    let soonest = clock.emergency_arrival.min(clock.arrival);
    for t in db::tickets::not_arrived(conn, now - soonest, now)? {
        recorded +=
            escalate(conn, &t.id, EscalationKind::LateArrival, now, |t| due(clock.late_arrival(&t.clock_facts())))?;
    }
    for t in db::tickets::quiet_since(conn, now - clock.stalled_after)? {
        recorded += escalate(conn, &t.id, EscalationKind::Stalled, now, |t| due(clock.stalled(&t.clock_facts())))?;
    }
    for m in db::matters::unreplied_since(conn, MatterStatus::Open.as_str(), now - clock.matter_reply)? {
        recorded += escalate_matter(conn, &m.id, clock, now)?;
    }
    if let Err(e) = db::idempotency::prune(conn, now - chrono::Duration::hours(24)) {
        tracing::warn!(error = %e, "pruning idempotency keys failed");
    }
    Ok(recorded)
}

/// Re-reads the ticket inside the transaction and records the escalation if `due` still names the
/// moment the condition began (the ticket may have moved on since the scan's read).
fn escalate(
    conn: &mut DbConn,
    ticket_id: &str,
    kind: EscalationKind,
    now: NaiveDateTime,
    due: impl Fn(&TicketRow) -> Option<NaiveDateTime>,
) -> Result<usize, Error> {
    db::write_transaction(conn, |conn| {
        // the ticket first, as every writer takes it (the lock order, `db` module doc)
        let Some(t) = db::tickets::find_for_update(conn, ticket_id)? else { return Ok(0) };
        let Some(since) = due(&t) else { return Ok(0) };
        let occurrence = since.and_utc().timestamp_micros().to_string();
        let data = json!({ "since": since.and_utc() });
        Ok(usize::from(db::escalations::record(conn, &t, kind.as_str(), &occurrence, data, now)?))
    })
}

/// Re-reads the matter inside the transaction and records its `unreplied` escalation if it still
/// waits for its department's reply past the service level: once per matter.
fn escalate_matter(conn: &mut DbConn, matter_id: &str, clock: &Clock, now: NaiveDateTime) -> Result<usize, Error> {
    db::write_transaction(conn, |conn| {
        let Some(m) = db::matters::find(conn, matter_id)? else { return Ok(0) };
        if m.status != MatterStatus::Open.as_str() || reply_due(m.created_at, clock.matter_reply) > now {
            return Ok(0);
        }
        let row = MatterEscalationRow {
            id: db::new_id(),
            matter_id: m.id.clone(),
            site_id: m.site_id,
            kind: UNREPLIED.to_owned(),
            dedupe_key: format!("{}:{UNREPLIED}", m.id),
            created_at: now,
            resolved_at: None,
            acknowledged_at: None,
            acknowledged_by: None,
            ack_note: None,
        };
        Ok(usize::from(db::matters::escalate_if_new(conn, &row)?))
    })
}
