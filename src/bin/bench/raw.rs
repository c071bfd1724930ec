//! Claims straight on the database, no HTTP: the database's ceiling for a claim
//! (`db_minimal_claim`), and the statements the service's own claim runs
//! (`db_our_claim_statements`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use repairdesk::auth::{Caller, Membership};
use repairdesk::commands::{self, Ctx};
use repairdesk::db::schema::{ticket_events, tickets};
use repairdesk::db::tickets::TicketRow;
use repairdesk::db::{self, DbConn, Pool};
use repairdesk::domain::ticket::Status;
use repairdesk::error::ApiError;
use repairdesk::views::Viewer;
use serde_json::json;

use crate::measure::{summarise, Recorder, Summary};
use crate::setup::bench_ctx;

/// Which claim a database pass makes.
#[derive(Clone, Copy, Debug)]
pub enum DbClaim {
    /// The least a claim can be: one write transaction holding the conditional update of the
    /// ticket (returning it) and the insert of its `claimed` event.
    Minimal,
    /// Everything `POST /tickets/{id}/claim` runs, minus HTTP.
    OurStatements,
}

impl DbClaim {
    pub fn scenario(self) -> &'static str {
        match self {
            Self::Minimal => "db_minimal_claim",
            Self::OurStatements => "db_our_claim_statements",
        }
    }
}

/// The minimal claim transaction: `BEGIN` (SQLite: `BEGIN IMMEDIATE`, after the process's writer
/// queue, as every write of the service), the conditional update that decides the claim with the
/// ticket's columns returned, the event (its `seq` and `tx` filled by the database), `COMMIT`.
/// What `commands::claim` runs besides: the ticket read and locked first, the technician's row
/// locked (PostgreSQL) and active tickets counted, the escalations resolved; and the claim route
/// before and after it the session check, the caller's sites and trades, a read that refuses
/// losers, and the ticket's view.
fn minimal_claim(conn: &mut DbConn, technician_id: &str, ticket: &str) -> Result<(), ApiError> {
    let now = db::now();
    db::write_transaction(conn, |conn| -> Result<(), ApiError> {
        let target = tickets::table.filter(tickets::id.eq(ticket)).filter(tickets::status.eq(Status::Open));
        let set = (
            tickets::status.eq(Status::Assigned),
            tickets::assignee_id.eq(technician_id),
            tickets::claimed_at.eq(now),
            tickets::pooled_at.eq(None::<chrono::NaiveDateTime>),
            tickets::last_activity_at.eq(now),
            tickets::version.eq(tickets::version + 1),
        );
        let claimed: Option<TicketRow> = match conn {
            DbConn::Postgres(c) => {
                diesel::update(target).set(set).returning(TicketRow::as_returning()).get_result(c).optional()
            }
            DbConn::Sqlite(c) => {
                diesel::update(target).set(set).returning(TicketRow::as_returning()).get_result(c).optional()
            }
        }?;
        let t = claimed.ok_or_else(|| ApiError::internal(format!("ticket {ticket} was not open")))?;
        diesel::insert_into(ticket_events::table)
            .values((
                ticket_events::id.eq(db::new_id()),
                ticket_events::ticket_id.eq(&t.id),
                ticket_events::site_id.eq(&t.site_id),
                ticket_events::event_type.eq("claimed"),
                ticket_events::actor_id.eq(technician_id),
                ticket_events::at.eq(now),
                ticket_events::from_status.eq(Status::Open.as_str()),
                ticket_events::to_status.eq(Status::Assigned.as_str()),
                ticket_events::data
                    .eq(json!({ "technician_id": technician_id, "v": db::events::DATA_VERSION }).to_string()),
            ))
            .execute(conn)?;
        Ok(())
    })
}

/// One claim as `POST /tickets/{id}/claim` makes it, minus HTTP: the `Caller` extractor's one
/// read of who the caller is (`tokens::live_session`: session, role, sites, trades), then what
/// the route calls, `Viewer::load` (from what that read) and `commands::claim_and_view` (the
/// refusal from a read, the claim's transaction, the ticket's view), on one connection.
fn our_claim(conn: &mut DbConn, ctx: &Ctx, caller: &Caller, ticket: &str) -> Result<(), ApiError> {
    let who = db::tokens::live_session(conn, &caller.session_id, &caller.user_id)?
        .ok_or_else(|| ApiError::internal("the bench's session ended"))?;
    let membership = Some(Arc::new(Membership { sites: who.sites, trades: who.trades }));
    let viewer = Viewer::load(conn, Caller { membership, ..caller.clone() })?;
    commands::claim_and_view(conn, ctx, &viewer, ticket, db::now()).map(|_| ()).map_err(ApiError::from)
}

/// A database pass: `threads` blocking threads claim distinct tickets on their own pool, closed
/// loop, technicians in turn, one pool checkout per claim as a request takes one.
pub fn db_pass(
    kind: DbClaim,
    pool: &Pool,
    tickets: Arc<Vec<String>>,
    techs: Arc<Vec<Caller>>,
    threads: usize,
    duration: Duration,
) -> Summary {
    let ctx = Arc::new(bench_ctx());
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (pool, tickets, techs, next, ctx) =
                (pool.clone(), tickets.clone(), techs.clone(), next.clone(), ctx.clone());
            std::thread::spawn(move || {
                let mut rec = Recorder::default();
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= tickets.len() {
                        break;
                    }
                    let (tech, ticket) = (&techs[i % techs.len()], tickets[i].as_str());
                    let t0 = Instant::now();
                    let r = match pool.get() {
                        Ok(mut conn) => match kind {
                            DbClaim::Minimal => minimal_claim(&mut conn, &tech.user_id, ticket),
                            DbClaim::OurStatements => our_claim(&mut conn, &ctx, tech, ticket),
                        }
                        .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    rec.add(t0.elapsed(), r);
                }
                rec
            })
        })
        .collect();
    let mut all = Recorder::default();
    for h in handles {
        let r = h.join().expect("database pass thread");
        all.latencies.extend(r.latencies);
        all.errors += r.errors;
        all.first_error = all.first_error.or(r.first_error);
    }
    let elapsed = start.elapsed();
    let mut s = summarise(kind.scenario(), "max (closed loop, no HTTP)", None, all, elapsed);
    if next.load(Ordering::Relaxed) >= tickets.len() && elapsed < duration {
        s.note = Some(format!("work items ran out after {:.1} s", elapsed.as_secs_f64()));
    }
    s
}
