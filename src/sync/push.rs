//! Applying a push: in order, up to [`OPS_PER_TRANSACTION`] operations of one ticket to a
//! transaction, each kept with its result; a failure of the server stops the push where it is.

use std::collections::HashMap;

use chrono::NaiveDateTime;

use super::ops::Op;
use super::{OpResult, PushOp, PushResponse, OPS_PER_TRANSACTION};
use crate::auth::Caller;
use crate::commands::{self, Add, Ctx};
use crate::db::{self, faults::Faults, sync::OpRow, DbConn, Pool};
use crate::domain::user::Role;
use crate::error::{ApiError, ErrorCode};
use crate::views::Viewer;

/// An operation as received, with what decoding it gave.
#[derive(Clone)]
pub struct Received {
    pub raw: PushOp,
    pub op: Result<Op, ApiError>,
}

impl Received {
    pub fn new(raw: PushOp) -> Self {
        let op = Op::decode(&raw);
        Self { raw, op }
    }

    fn is_add(&self) -> bool {
        self.op.as_ref().is_ok_and(Op::is_add)
    }
}

/// Applies the operations of a push for `client_id` (already bound to the caller), in order.
/// Each batch commits with the client's `last_op_id`; a rejected operation still advances it, so
/// a bad one never blocks the queue. A failure of the server (the database down, or busy past
/// the retries) stops the push: nothing of the failed batch is kept, and `retry_from` says where
/// to push again from; when nothing was reached at all, it is the error.
pub async fn push(
    pool: &Pool,
    ctx: &Ctx,
    faults: &Faults,
    caller: Caller,
    client_id: String,
    ops: Vec<PushOp>,
) -> Result<PushResponse, ApiError> {
    let mut results = Vec::new();
    let mut stopped = None;
    let mut ops = ops.into_iter().map(Received::new).peekable();
    while let Some(first) = ops.next() {
        let mut batch = vec![first];
        while batch.len() < OPS_PER_TRANSACTION && ops.peek().is_some_and(|next| same_transaction(&batch[0], next)) {
            batch.extend(ops.next());
        }
        let (client_id, caller, ctx, faults) = (client_id.clone(), caller.clone(), ctx.clone(), faults.clone());
        // run again from the start after a deadlock or serialization failure (db::transaction)
        let outcome = db::transaction(pool, move |conn| {
            push_batch(conn, &ctx, &faults, caller.clone(), &client_id, batch.clone())
        })
        .await;
        match outcome {
            Ok((applied, gap)) => {
                results.extend(applied);
                if gap {
                    break;
                }
            }
            // the server failed, not an operation: the batch was undone whole and nothing of it
            // is kept; stop here, and the phone pushes again from the first operation not received
            Err(e) if results.is_empty() => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "push stopped early");
                stopped = Some(e);
                break;
            }
        }
    }
    let (last_op_id, results) = db::run(pool, move |conn| {
        let last_op_id = db::sync::last_op_id(conn, &client_id)?.unwrap_or(0);
        Ok((last_op_id, show_tickets(conn, caller, results)?))
    })
    .await?;
    let retry_from = stopped.is_some().then_some(last_op_id + 1);
    Ok(PushResponse { last_op_id, results, retry_from, failure: stopped })
}

/// Fills in each rejection's ticket as it stands after the whole push (a later operation of the
/// same push may have changed it), or `removed` when the user may no longer see it.
fn show_tickets(conn: &mut DbConn, caller: Caller, mut results: Vec<OpResult>) -> Result<Vec<OpResult>, ApiError> {
    let mut ids: Vec<String> = results.iter().filter(|r| r.shows_ticket()).map(|r| r.ticket_id.clone()).collect();
    if ids.is_empty() {
        return Ok(results);
    }
    ids.sort();
    ids.dedup();
    let viewer = Viewer::load(conn, caller)?;
    let visible: Vec<_> = db::tickets::find_many(conn, &ids)?.into_iter().filter(|t| viewer.can_see(t)).collect();
    let views: HashMap<String, crate::views::TicketView> =
        viewer.views(conn, visible)?.into_iter().map(|v| (v.id.clone(), v)).collect();
    for r in results.iter_mut().filter(|r| r.shows_ticket()) {
        match views.get(&r.ticket_id) {
            Some(view) => r.ticket = Some(view.clone()),
            None => r.removed = true,
        }
    }
    Ok(results)
}

/// Whether `next` joins the transaction that `first` opened. A transaction holds one ticket's
/// operations, a claim only at its start: its locks then come in the order every writer takes
/// them (the ticket, then the technician), so two transactions never deadlock.
fn same_transaction(first: &Received, next: &Received) -> bool {
    next.raw.ticket_id == first.raw.ticket_id && !matches!(next.op, Ok(Op::Claim))
}

/// Applies up to [`OPS_PER_TRANSACTION`] operations in one transaction, holding the client's row
/// so that no other push of it interleaves, and keeps each with its result. The results say what
/// happened to each, duplicates included; `true` means a gap stopped the batch. A failure of the
/// server (a transient [`ApiError`]) fails the whole batch: nothing of it may be kept as an
/// operation's fault.
fn push_batch(
    conn: &mut DbConn,
    ctx: &Ctx,
    faults: &Faults,
    caller: Caller,
    client_id: &str,
    ops: Vec<Received>,
) -> Result<(Vec<OpResult>, bool), ApiError> {
    let viewer = Viewer::load(conn, caller)?;
    let first = db::sync::lock_last_op_id(conn, client_id)?.unwrap_or(0);
    // the batch's one ticket before anything an operation takes (the lock order, `db` module
    // doc): a refused operation's savepoint gives back the locks taken in it, never this one
    if let Some(op) = ops.first() {
        db::tickets::lock(conn, &[op.raw.ticket_id.as_str()])?;
    }
    let mut last_op_id = first;
    let mut results: Vec<OpResult> = Vec::with_capacity(ops.len());
    let mut records: Vec<OpRow> = Vec::with_capacity(ops.len());
    let mut duplicates = Vec::new();
    let mut places = HashMap::new();
    let mut gap = false;
    let mut ops = ops.into_iter().peekable();
    while let Some(op) = ops.next() {
        let op_id = op.raw.op_id;
        if op_id <= last_op_id {
            // a duplicate: already received, not applied again; answered with what it got
            duplicates.push(results.len());
            results.push(OpResult::new(op_id, &op.raw.ticket_id, "duplicate"));
            continue;
        }
        // numbering is the phone's promise of order: a gap means something is missing
        if op_id != last_op_id + 1 {
            gap = true;
            break;
        }
        // consecutive adds to one ticket are written together when they can be
        let mut run = vec![op];
        while run[0].is_add()
            && ops.peek().is_some_and(|next| {
                next.is_add()
                    && next.raw.ticket_id == run[0].raw.ticket_id
                    && next.raw.op_id == last_op_id + 1 + run.len() as i64
            })
        {
            run.extend(ops.next());
        }
        for op in &run {
            faults.before_push_op(conn, op.raw.op_id)?;
        }
        let mut done = Vec::with_capacity(run.len());
        if run.len() > 1 {
            if let Some(together) = push_adds(conn, &viewer, &mut places, client_id, &run, db::now())? {
                last_op_id += run.len() as i64;
                done = together;
                run.clear();
            }
        }
        for op in run {
            last_op_id = op.raw.op_id;
            done.push(push_one(conn, ctx, &viewer, &mut places, client_id, op, db::now())?);
        }
        for (result, record) in done {
            results.push(result);
            records.push(record);
        }
    }
    if !duplicates.is_empty() {
        let ids: Vec<i64> = duplicates.iter().map(|&i| results[i].op_id).collect();
        let mut stored: HashMap<i64, OpRow> =
            db::sync::ops_of(conn, client_id, &ids)?.into_iter().map(|r| (r.op_id, r)).collect();
        // an op sent twice in this push was received (not yet stored) the first time
        for r in &records {
            stored.entry(r.op_id).or_insert_with(|| r.clone());
        }
        for i in duplicates {
            if let Some(first) = stored.get(&results[i].op_id) {
                results[i].stored_status = Some(first.status.clone());
                results[i].code = first.code.clone();
                results[i].detail = first.detail.clone();
            }
        }
    }
    if last_op_id != first {
        db::sync::record(conn, &records)?;
        db::sync::set_last_op_id(conn, client_id, last_op_id, db::now())?;
    }
    Ok((results, gap))
}

/// A run of adds to one ticket through [`commands::add_many`]: `None`, with nothing written, when
/// they must go one by one.
fn push_adds(
    conn: &mut DbConn,
    viewer: &Viewer,
    places: &mut HashMap<String, String>,
    client_id: &str,
    run: &[Received],
    now: NaiveDateTime,
) -> Result<Option<Vec<(OpResult, OpRow)>>, ApiError> {
    let mut adds = Vec::with_capacity(run.len());
    for received in run {
        let add = match &received.op {
            Ok(Op::AddMaterial(body)) => Add::Material(body.clone()),
            Ok(Op::AddNote(body)) => Add::Note(body.clone(), received.raw.device_time.map(|d| d.naive_utc())),
            _ => return Ok(None),
        };
        adds.push(add);
    }
    let t = match db::savepoint(conn, |c| Ok(commands::add_many(c, viewer, &run[0].raw.ticket_id, adds, now)?)) {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(None),
        Err(e) if e.is_transient() => return Err(e),
        // anything else (an id added meanwhile by another request): one by one, which explains it
        Err(_) => return Ok(None),
    };
    places.insert(t.id.clone(), t.site_id.clone());
    let done = run
        .iter()
        .enumerate()
        .map(|(i, received)| {
            let op = &received.raw;
            let result = OpResult::new(op.op_id, &op.ticket_id, "applied");
            let place = Some((t.id.clone(), t.site_id.clone()));
            (result, op_record(client_id, viewer, op, place, commands::nth_moment(now, i), None))
        })
        .collect();
    Ok(Some(done))
}

/// What is kept of an operation: where it applied (ticket and site) and its result.
fn op_record(
    client_id: &str,
    viewer: &Viewer,
    op: &PushOp,
    place: Option<(String, String)>,
    now: NaiveDateTime,
    refusal: Option<&ApiError>,
) -> OpRow {
    // the ticket as named, found or not; its site only when found
    let site_id = place.map(|(_, site)| site);
    // a refused operation on a ticket outside the pusher's sites is kept for the pusher's desks, not the ticket's
    let site_id = site_id.filter(|s| refusal.is_none() || viewer.sites.contains(s));
    OpRow {
        client_id: client_id.to_owned(),
        op_id: op.op_id,
        user_id: viewer.caller.user_id.clone(),
        ticket_id: Some(op.ticket_id.clone()),
        site_id,
        name: op.name.clone(),
        args: op.args.to_string(),
        device_time: op.device_time.map(|d| d.naive_utc()),
        received_at: now,
        status: if refusal.is_some() { "rejected" } else { "applied" }.to_owned(),
        code: refusal.map(|e| e.code.as_str().to_owned()),
        detail: refusal.map(|e| e.detail.clone()),
    }
}

/// Applies one operation in order, and says what to keep of it. `places` remembers each ticket's
/// site within a batch (neither ever changes).
fn push_one(
    conn: &mut DbConn,
    ctx: &Ctx,
    viewer: &Viewer,
    places: &mut HashMap<String, String>,
    client_id: &str,
    received: Received,
    now: NaiveDateTime,
) -> Result<(OpResult, OpRow), ApiError> {
    let Received { raw: op, op: decoded } = received;
    // a savepoint: a refusal undoes the operation's own writes, never the record of it
    let outcome = match decoded {
        Ok(decoded) => db::savepoint(conn, |c| decoded.apply(c, ctx, viewer, &op, now)),
        Err(refusal) => Err(refusal),
    };
    let refusal = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        // the server failed, not the operation (the database down, a deadlock, a serialization
        // failure): the whole batch fails, to be run again, and nothing is kept as a refusal
        Err(e) if e.is_transient() => return Err(e),
        Err(e) => Some(e),
    };
    let refusal = match refusal {
        Some(e) => Some(explain(conn, viewer, &op.ticket_id, e)?),
        None => None,
    };
    // where the ticket is, for the record (a refusal's ticket is shown at the end: `show_tickets`)
    let place = match places.get(&op.ticket_id) {
        Some(site) if refusal.is_none() => Some((op.ticket_id.clone(), site.clone())),
        _ => {
            let place = db::tickets::find(conn, &op.ticket_id)?.map(|t| (t.id, t.site_id));
            if let Some((id, site)) = &place {
                places.insert(id.clone(), site.clone());
            }
            place
        }
    };
    let record = op_record(client_id, viewer, &op, place, now, refusal.as_ref());
    let Some(refusal) = refusal else {
        return Ok((OpResult::new(op.op_id, &op.ticket_id, "applied"), record));
    };
    let mut result = OpResult::new(op.op_id, &op.ticket_id, "rejected");
    result.code = Some(refusal.code.as_str().to_owned());
    result.detail = Some(refusal.detail);
    Ok((result, record))
}

/// A refusal names the ticket's real situation: a technician who lost it, or never held it,
/// hears so rather than "not found".
fn explain(conn: &mut DbConn, viewer: &Viewer, ticket_id: &str, e: ApiError) -> Result<ApiError, ApiError> {
    if e.code != ErrorCode::NotFound || viewer.caller.role != Role::Technician {
        return Ok(e);
    }
    let Some(t) = db::tickets::find(conn, ticket_id)?.filter(|t| viewer.sites.contains(&t.site_id)) else {
        return Ok(e);
    };
    Ok(match t.assignee_id.as_deref() {
        Some(holder) if holder != viewer.caller.user_id => {
            ApiError::new(ErrorCode::NotYourTicket, "this ticket is no longer yours")
        }
        _ => ApiError::new(ErrorCode::InvalidTransition, format!("the ticket is {}: claim it first", t.status)),
    })
}
