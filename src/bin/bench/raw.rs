//! The database's ceiling for claims: what an HTTP claim runs, without HTTP.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use repairdesk::auth::Caller;
use repairdesk::commands::{self, Ctx};
use repairdesk::db::{self, DbConn, Pool};
use repairdesk::error::ApiError;
use repairdesk::views::Viewer;

use crate::measure::{summarise, Recorder, Summary};
use crate::setup::bench_ctx;

/// One claim as `POST /tickets/{id}/claim` makes it, minus HTTP: the session check of the
/// `Caller` extractor, the caller's sites and trades, then `commands::claim_and_view` (the
/// refusal from a read, the claim's transaction, the ticket's view), on one connection.
fn raw_claim(conn: &mut DbConn, ctx: &Ctx, caller: &Caller, ticket: &str) -> Result<(), ApiError> {
    db::tokens::live_session_role(conn, &caller.session_id, &caller.user_id)?
        .ok_or_else(|| ApiError::internal("the bench's session ended"))?;
    let viewer = Viewer::load(conn, caller.clone())?;
    commands::claim_and_view(conn, ctx, &viewer, ticket, db::now()).map(|_| ()).map_err(ApiError::from)
}

/// The raw pass: `threads` blocking threads claim distinct tickets on their own pool, closed loop.
pub fn raw_pass(
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
                    let t0 = Instant::now();
                    // a connection per claim, as a request takes one from the pool
                    let r = match pool.get() {
                        Ok(mut conn) => {
                            raw_claim(&mut conn, &ctx, &techs[i % techs.len()], &tickets[i]).map_err(|e| e.to_string())
                        }
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
        let r = h.join().expect("raw thread");
        all.latencies.extend(r.latencies);
        all.errors += r.errors;
        all.first_error = all.first_error.or(r.first_error);
    }
    let elapsed = start.elapsed();
    let mut s = summarise("raw_db_claim", "max (closed loop, no HTTP)", None, all, elapsed);
    if next.load(Ordering::Relaxed) >= tickets.len() && elapsed < duration {
        s.note = Some(format!("work items ran out after {:.1} s", elapsed.as_secs_f64()));
    }
    s
}
