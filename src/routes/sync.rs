//! Offline sync. A phone pushes the operations it queued while offline, numbered 1, 2, 3... per
//! app install; the server replays each against its current state (the same commands as the HTTP
//! routes) and keeps every one with its result. A pull returns what changed since a cursor that
//! follows commit order, so no change is ever skipped. See docs/sync.md.

use actix_web::{get, post};
use std::collections::HashMap;
use utoipa_actix_web::service_config::ServiceConfig;

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::pool::event_stream;
use super::{parse_json, parse_json_allowing_nul, scrub_nul, Checks, Query, NUL_MESSAGE};
use crate::auth::Caller;
use crate::commands::{
    self, Add, ArriveBody, CompleteBody, HoldBody, MaterialPatch, NewMaterial, NoteBody, ReasonBody,
};
use crate::db::{self, faults::Faults, sync::OpRow, DbConn};
use crate::domain::user::Role;
use crate::error::{ApiError, ApiResult, ErrorCode, FieldError};
use crate::state::AppState;
use crate::views::{ByTicket, TicketEvent, TicketView, Viewer};

pub const SCHEMA_VERSIONS: [i64; 1] = [1];
pub const MAX_OPS: usize = 500;
/// Operations of one ticket applied per transaction: one commit (one `fsync`) for many
/// operations, while the write lock is held for a bounded time.
pub const OPS_PER_TRANSACTION: usize = 100;
pub const MAX_PUSH_BYTES: usize = 1024 * 1024;
/// A cursor older than this answers `reset: true` with the whole current view.
pub const CURSOR_RETENTION: Duration = Duration::days(30);

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(push).service(pull).service(rejections).service(stream);
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PushRequest {
    /// A UUID per app install; bound to the user who first pushes or pulls with it.
    pub client_id: String,
    pub schema_version: i64,
    pub ops: Vec<PushOp>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct PushOp {
    /// 1, 2, 3... per client, in the order the phone did them.
    pub op_id: i64,
    /// `claim, release, arrive, add_material, update_material, remove_material, add_note, hold, resume, complete`
    pub name: String,
    pub ticket_id: String,
    /// The operation's body, as the matching HTTP route takes it (`update_material` and
    /// `remove_material` add `line_id`; `remove_material` may add `version`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub args: Value,
    /// When the phone did it; kept, never used to decide conflicts.
    pub device_time: Option<DateTime<Utc>>,
    /// What of it cannot be stored (see [`screen`]): it is refused with `validation_failed`.
    #[serde(skip)]
    pub unstorable: Vec<FieldError>,
}

/// An operation's name or ticket id holding a NUL character, or a device time out of range, is
/// refused on its own; what is kept of it has U+FFFD for each NUL and no device time. (A NUL in
/// its `args` is refused when they are read.)
fn screen(op: &mut PushOp) {
    if scrub_nul(&mut op.name) {
        op.unstorable.push(FieldError::new("name", NUL_MESSAGE));
    }
    if scrub_nul(&mut op.ticket_id) {
        op.unstorable.push(FieldError::new("ticket_id", NUL_MESSAGE));
    }
    if let Some(Err(message)) = op.device_time.map(crate::domain::time::check) {
        op.device_time = None;
        op.unstorable.push(FieldError::new("device_time", message));
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpResult {
    pub op_id: i64,
    /// `applied`, `rejected` (a business rule said no; it is kept for the desk) or `duplicate`
    /// (already received; not applied again).
    pub status: &'static str,
    /// On rejection, the rule's code; on a duplicate, the code its first receipt was rejected
    /// with (none when it was applied).
    pub code: Option<String>,
    pub detail: Option<String>,
    /// On rejection: the ticket as it stands, when the user may still see it.
    pub ticket: Option<TicketView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PushResponse {
    /// The last operation the server has of this client: resume pushing after it.
    pub last_op_id: i64,
    /// A line per operation the server reached, duplicates included.
    pub results: Vec<OpResult>,
    /// Present when a failure of the server (the database down or busy), not of an operation,
    /// stopped the push here: `last_op_id + 1`. Nothing from it on was received or kept; wait a
    /// moment (`Retry-After`) and push again from it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_from: Option<i64>,
}

fn args<T: DeserializeOwned>(op: &PushOp) -> Result<T, ApiError> {
    let bytes = serde_json::to_vec(&op.args).map_err(ApiError::internal)?;
    parse_json(if op.args.is_null() { b"{}" } else { &bytes })
}

#[derive(Deserialize)]
struct LineArgs {
    line_id: String,
    version: Option<i64>,
}

/// Replays one operation. `Ok(Err)` is a refusal whose side effects stand (a counted wrong code,
/// an arrival recorded for the desk); `Err` is a refusal that changed nothing.
fn apply_op(
    conn: &mut DbConn,
    ctx: &commands::Ctx,
    viewer: &Viewer,
    op: &PushOp,
    now: NaiveDateTime,
) -> Result<Result<(), ApiError>, ApiError> {
    if !op.unstorable.is_empty() {
        return Err(ApiError::validation(op.unstorable.clone()));
    }
    let id = op.ticket_id.as_str();
    let device_time = op.device_time.map(|d| d.naive_utc());
    match op.name.as_str() {
        "claim" => commands::claim(conn, ctx, viewer, id, now).map(|_| Ok(())),
        "release" => commands::release(conn, viewer, id, args::<ReasonBody>(op)?, now).map(|_| Ok(())),
        "arrive" => {
            let mut body = args::<ArriveBody>(op)?;
            body.device_time = body.device_time.or(op.device_time);
            if let Some(refusal) = arrival_elsewhere(conn, viewer, op, &body, now)? {
                return Ok(Err(refusal));
            }
            Ok(commands::arrive(conn, ctx, viewer, id, body, now)?.map(|_| ()))
        }
        "add_material" => commands::add_material(conn, viewer, id, args::<NewMaterial>(op)?, now).map(|_| Ok(())),
        "update_material" => {
            let line = args::<LineArgs>(op)?;
            commands::update_material(conn, viewer, id, &line.line_id, args::<MaterialPatch>(op)?, now).map(|_| Ok(()))
        }
        "remove_material" => {
            let line = args::<LineArgs>(op)?;
            commands::remove_material(conn, viewer, id, &line.line_id, line.version, now).map(|_| Ok(()))
        }
        "add_note" => commands::add_note(conn, viewer, id, args::<NoteBody>(op)?, device_time, now).map(|_| Ok(())),
        "hold" => commands::hold(conn, viewer, id, args::<HoldBody>(op)?, now).map(|_| Ok(())),
        "resume" => commands::resume(conn, viewer, id, now).map(|_| Ok(())),
        "complete" => commands::complete(conn, viewer, id, args::<CompleteBody>(op)?, now).map(|_| Ok(())),
        other => {
            Err(ApiError::new(ErrorCode::UnknownOperation, format!("{other:?} is not an operation this server knows")))
        }
    }
}

/// An arrival made offline at a ticket that was reassigned meanwhile: the technician really was
/// there, so it is recorded on the ticket and flagged for the desk, though it does not check in.
fn arrival_elsewhere(
    conn: &mut DbConn,
    viewer: &Viewer,
    op: &PushOp,
    body: &ArriveBody,
    now: NaiveDateTime,
) -> Result<Option<ApiError>, ApiError> {
    let me = viewer.caller.user_id.as_str();
    let Some(t) = db::tickets::find(conn, &op.ticket_id)?.filter(|t| viewer.sites.contains(&t.site_id)) else {
        return Ok(None);
    };
    if t.assignee_id.as_deref() == Some(me) || viewer.caller.role != Role::Technician {
        return Ok(None);
    }
    let data = json!({ "technician_id": me, "device_time": body.device_time, "lat": body.lat, "lng": body.lng,
        "client_op": op.op_id, "code_given": body.code.is_some() });
    db::events::append(
        conn,
        vec![db::events::NewEvent {
            ticket_id: t.id.clone(),
            site_id: t.site_id.clone(),
            event_type: "arrival_unassigned",
            actor_id: Some(me.to_owned()),
            at: now,
            from_status: Some(t.status.as_str()),
            to_status: Some(t.status.as_str()),
            data,
        }],
    )?;
    Ok(Some(ApiError::new(
        ErrorCode::NotYourTicket,
        "the ticket was given to someone else before this arrival reached us; your visit is recorded for the desk",
    )))
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

/// Binds a new client to the caller, or checks that a known one is theirs.
async fn own_client(state: &AppState, caller: &Caller, client_id: &str) -> Result<(), ApiError> {
    let (client_id, user_id) = (client_id.to_owned(), caller.user_id.clone());
    db::run(&state.pool, move |conn| {
        let client = db::sync::client(conn, &client_id, &user_id, db::now())?;
        if client.user_id != user_id {
            return Err(ApiError::new(ErrorCode::ClientOfAnotherUser, "this client_id is another user's app install"));
        }
        Ok(())
    })
    .await
}

/// Push queued operations. They are applied in order, up to 100 of one ticket to a transaction,
/// and each commits together with the client's `last_op_id`; a rejected one still advances it, so a bad
/// operation never blocks the queue. A failure of the server stops the push without advancing it:
/// the answer's `retry_from` says where to push again from (a `503` problem when nothing was
/// reached).
#[utoipa::path(
    tag = "sync",
    security(("bearer" = [])),
    request_body = PushRequest,
    responses(
        (status = 200, body = PushResponse),
        (status = 403, description = "`client_of_another_user`", body = crate::error::Problem),
        (status = 413, description = "more than 500 operations or 1 MB", body = crate::error::Problem),
        (status = 426, description = "`unsupported_schema_version`, with `supported`", body = crate::error::Problem),
        (status = 503, description = "`database_unavailable` or `database_busy` before any operation was reached: push again later", body = crate::error::Problem),
    )
)]
#[post("/sync/push")]
pub async fn push(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let is_json =
        req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"));
    if !is_json {
        return Err(ApiError::new(ErrorCode::UnsupportedMediaType, "send the body as application/json"));
    }
    if body.len() > MAX_PUSH_BYTES {
        return Err(ApiError::new(ErrorCode::PayloadTooLarge, "a push may be at most 1 MB: send fewer operations"));
    }
    let mut request: PushRequest = parse_json_allowing_nul(&body)?;
    request.ops.iter_mut().for_each(screen);
    if !SCHEMA_VERSIONS.contains(&request.schema_version) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedSchemaVersion,
            format!("schema version {} is not supported; update the app", request.schema_version),
        )
        .with("supported", SCHEMA_VERSIONS.to_vec()));
    }
    if request.ops.len() > MAX_OPS {
        return Err(ApiError::new(ErrorCode::PayloadTooLarge, format!("a push may hold at most {MAX_OPS} operations")));
    }
    let mut checks = Checks::default();
    let client_id = checks.take(
        "client_id",
        uuid::Uuid::parse_str(request.client_id.trim()).map(|u| u.to_string()).map_err(|_| "must be a UUID".into()),
    );
    checks.finish()?;
    let client_id = client_id.unwrap_or_default();
    own_client(&state, &caller, &client_id).await?;
    let ctx = state.commands();
    let mut results = Vec::new();
    let mut stopped = false;
    let mut ops = request.ops.into_iter().peekable();
    while let Some(first) = ops.next() {
        let mut batch = vec![first];
        while batch.len() < OPS_PER_TRANSACTION && ops.peek().is_some_and(|next| same_transaction(&batch[0], next)) {
            batch.extend(ops.next());
        }
        let (client_id, caller, ctx, faults) = (client_id.clone(), caller.clone(), ctx.clone(), state.faults.clone());
        // run again from the start after a deadlock or serialization failure (db::transaction)
        let outcome = db::transaction(&state.pool, move |conn| {
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
            // the server failed, not an operation (the database down, or busy past the retries):
            // the batch was undone whole and nothing of it is kept; stop here, and the phone
            // pushes again from the first operation not received
            Err(e) if results.is_empty() => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "push stopped early");
                stopped = true;
                break;
            }
        }
    }
    let last_op_id = db::run(&state.pool, move |conn| Ok(db::sync::last_op_id(conn, &client_id)?.unwrap_or(0))).await?;
    let retry_from = stopped.then_some(last_op_id + 1);
    let mut answer = HttpResponse::Ok();
    if retry_from.is_some() {
        answer.insert_header((header::RETRY_AFTER, "1"));
    }
    Ok(answer.json(PushResponse { last_op_id, results, retry_from }))
}

/// Whether `next` joins the transaction that `first` opened. A transaction holds one ticket's
/// operations, a claim only at its start: its locks then come in the order every writer takes
/// them (the technician, the ticket, the event counter), so two transactions never deadlock.
fn same_transaction(first: &PushOp, next: &PushOp) -> bool {
    next.ticket_id == first.ticket_id && next.name != "claim"
}

/// Applies up to [`OPS_PER_TRANSACTION`] operations in one transaction, holding the client's row
/// so that no other push of it interleaves, and keeps each with its result. The results say what
/// happened to each, duplicates included; `true` means a gap stopped the batch. A failure of the
/// server (a transient [`ApiError`]) fails the whole batch: nothing of it may be kept as an
/// operation's fault.
fn push_batch(
    conn: &mut DbConn,
    ctx: &commands::Ctx,
    faults: &Faults,
    caller: Caller,
    client_id: &str,
    ops: Vec<PushOp>,
) -> Result<(Vec<OpResult>, bool), ApiError> {
    let viewer = Viewer::load(conn, caller)?;
    let first = db::sync::lock_last_op_id(conn, client_id)?.unwrap_or(0);
    // the batch's one ticket before anything an operation takes (the lock order, `db` module
    // doc): a refused operation's savepoint gives back the locks taken in it, never this one
    if let Some(op) = ops.first() {
        db::tickets::lock(conn, &[op.ticket_id.as_str()])?;
    }
    let mut last_op_id = first;
    let mut results: Vec<OpResult> = Vec::with_capacity(ops.len());
    let mut records: Vec<OpRow> = Vec::with_capacity(ops.len());
    let mut duplicates = Vec::new();
    let mut places = HashMap::new();
    let mut gap = false;
    let mut ops = ops.into_iter().peekable();
    while let Some(op) = ops.next() {
        if op.op_id <= last_op_id {
            // a duplicate: already received, not applied again; answered with what it got
            duplicates.push(results.len());
            results.push(OpResult { op_id: op.op_id, status: "duplicate", code: None, detail: None, ticket: None });
            continue;
        }
        // numbering is the phone's promise of order: a gap means something is missing
        if op.op_id != last_op_id + 1 {
            gap = true;
            break;
        }
        // consecutive adds to one ticket are written together when they can be
        let mut run = vec![op];
        while is_add(&run[0])
            && ops.peek().is_some_and(|next| {
                is_add(next) && next.ticket_id == run[0].ticket_id && next.op_id == last_op_id + 1 + run.len() as i64
            })
        {
            run.extend(ops.next());
        }
        for op in &run {
            faults.before_push_op(conn, op.op_id)?;
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
            last_op_id = op.op_id;
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

fn is_add(op: &PushOp) -> bool {
    matches!(op.name.as_str(), "add_material" | "add_note")
}

/// A run of adds to one ticket through [`commands::add_many`]: `None`, with nothing written, when
/// they must go one by one.
fn push_adds(
    conn: &mut DbConn,
    viewer: &Viewer,
    places: &mut HashMap<String, String>,
    client_id: &str,
    run: &[PushOp],
    now: NaiveDateTime,
) -> Result<Option<Vec<(OpResult, OpRow)>>, ApiError> {
    let mut adds = Vec::with_capacity(run.len());
    for op in run {
        if !op.unstorable.is_empty() {
            return Ok(None);
        }
        let add = match op.name.as_str() {
            "add_material" => args::<NewMaterial>(op).map(Add::Material),
            _ => args::<NoteBody>(op).map(|body| Add::Note(body, op.device_time.map(|d| d.naive_utc()))),
        };
        let Ok(add) = add else { return Ok(None) };
        adds.push(add);
    }
    let t = match db::savepoint(conn, |c| commands::add_many(c, viewer, &run[0].ticket_id, adds, now)) {
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
        .map(|(i, op)| {
            let result = OpResult { op_id: op.op_id, status: "applied", code: None, detail: None, ticket: None };
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
    let (ticket_id, site_id) = place.unzip();
    // a refused operation on a ticket outside the pusher's sites is kept for the pusher's desks, not the ticket's
    let site_id = site_id.filter(|s| refusal.is_none() || viewer.sites.contains(s));
    OpRow {
        client_id: client_id.to_owned(),
        op_id: op.op_id,
        user_id: viewer.caller.user_id.clone(),
        ticket_id,
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
    ctx: &commands::Ctx,
    viewer: &Viewer,
    places: &mut HashMap<String, String>,
    client_id: &str,
    op: PushOp,
    now: NaiveDateTime,
) -> Result<(OpResult, OpRow), ApiError> {
    // a savepoint: a refusal undoes the operation's own writes, never the record of it
    let outcome = db::savepoint(conn, |c| apply_op(c, ctx, viewer, &op, now));
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
    // a refusal answers with the ticket as it stands; an applied op needs only where it is
    let (ticket, place) = match places.get(&op.ticket_id) {
        Some(site) if refusal.is_none() => (None, Some((op.ticket_id.clone(), site.clone()))),
        _ => {
            let ticket = db::tickets::find(conn, &op.ticket_id)?;
            let place = ticket.as_ref().map(|t| (t.id.clone(), t.site_id.clone()));
            if let Some((id, site)) = &place {
                places.insert(id.clone(), site.clone());
            }
            (ticket, place)
        }
    };
    let record = op_record(client_id, viewer, &op, place, now, refusal.as_ref());
    let Some(refusal) = refusal else {
        return Ok((OpResult { op_id: op.op_id, status: "applied", code: None, detail: None, ticket: None }, record));
    };
    let ticket = match ticket.filter(|t| viewer.can_see(t)) {
        Some(t) => Some(viewer.view_one(conn, t)?),
        None => None,
    };
    let result = OpResult {
        op_id: op.op_id,
        status: "rejected",
        code: Some(refusal.code.as_str().to_owned()),
        detail: Some(refusal.detail),
        ticket,
    };
    Ok((result, record))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PullRequest {
    pub client_id: String,
    /// The `cursor` of the last pull; absent on the first.
    pub cursor: Option<String>,
    /// Tickets per page, 1 to 500 (default 100).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncTicket {
    #[serde(flatten)]
    pub ticket: TicketView,
    pub events: Vec<TicketEvent>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PullResponse {
    /// Pass it to the next pull.
    pub cursor: String,
    /// More changes wait: pull again at once with the new cursor.
    pub has_more: bool,
    /// The last operation of this client the server has applied, read with the tickets.
    pub last_op_id: i64,
    /// The cursor was too old or not this server's: drop every ticket you hold and take this
    /// (and the following pages) as the whole view.
    pub reset: bool,
    pub tickets: Vec<SyncTicket>,
    /// Tickets that left your view: drop them.
    pub removed: Vec<String>,
}

/// Where a pull stands.
#[derive(Debug, Clone, PartialEq)]
enum Cursor {
    /// Every change up to this sequence number is with the phone.
    Changes(i64),
    /// Paging through the whole view as it stood at change `head`, in ticket id order, after
    /// `after_id`; when the pages end, changes after `head` follow.
    View { head: i64, after_id: Option<String> },
}

fn encode_cursor(cursor: &Cursor, issued: NaiveDateTime) -> String {
    let issued = issued.and_utc().timestamp();
    URL_SAFE_NO_PAD.encode(match cursor {
        Cursor::Changes(seq) => format!("v1.{seq}.{issued}"),
        Cursor::View { head, after_id } => format!("v2.{head}.{issued}.{}", after_id.as_deref().unwrap_or("")),
    })
}

fn decode_cursor(raw: &str) -> Option<(Cursor, NaiveDateTime)> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(raw).ok()?).ok()?;
    let (version, rest) = text.split_once('.')?;
    let mut parts = rest.splitn(3, '.');
    let seq = parts.next()?.parse().ok()?;
    let issued = DateTime::from_timestamp(parts.next()?.parse().ok()?, 0)?.naive_utc();
    let cursor = match (version, parts.next()) {
        ("v1", None) => Cursor::Changes(seq),
        ("v2", Some(after_id)) => {
            Cursor::View { head: seq, after_id: Some(after_id).filter(|id| !id.is_empty()).map(str::to_owned) }
        }
        _ => return None,
    };
    Some((cursor, issued))
}

/// What changed since the cursor, in commit order, as full ticket snapshots.
#[utoipa::path(
    tag = "sync",
    security(("bearer" = [])),
    request_body = PullRequest,
    responses((status = 200, body = PullResponse), (status = 403, body = crate::error::Problem), (status = 422, body = crate::error::Problem))
)]
#[post("/sync/pull")]
pub async fn pull(
    state: web::Data<AppState>,
    caller: Caller,
    body: super::JsonBody<PullRequest>,
) -> ApiResult<HttpResponse> {
    let request = body.0;
    let mut checks = Checks::default();
    let client_id = checks.take(
        "client_id",
        uuid::Uuid::parse_str(request.client_id.trim()).map(|u| u.to_string()).map_err(|_| "must be a UUID".into()),
    );
    let limit = request.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        checks.fail("limit", "must be 1 to 500");
    }
    checks.finish()?;
    let client_id = client_id.unwrap_or_default();
    own_client(&state, &caller, &client_id).await?;
    let response = db::run(&state.pool, move |conn| {
        db::snapshot(conn, |conn| {
            let now = db::now();
            let last_op_id = db::sync::last_op_id(conn, &client_id)?.unwrap_or(0);
            let viewer = Viewer::load(conn, caller)?;
            let head = db::events::last_seq(conn)?;
            // the first pull, or one after a reset, pages through the view as it stands now
            let start = Cursor::View { head, after_id: None };
            let (cursor, reset) = match request.cursor.as_deref() {
                None => (start, false),
                Some(raw) => match decode_cursor(raw) {
                    Some((Cursor::Changes(seq), issued)) if seq <= head && issued >= now - CURSOR_RETENTION => {
                        (Cursor::Changes(seq), false)
                    }
                    Some((Cursor::View { head: at, after_id }, issued))
                        if at <= head && issued >= now - CURSOR_RETENTION =>
                    {
                        (Cursor::View { head: at, after_id }, false)
                    }
                    _ => (start, true),
                },
            };
            let sites = (!viewer.caller.is_admin()).then(|| viewer.sites.clone());
            let (rows, has_more, next, removable) = match cursor {
                Cursor::Changes(after) => {
                    let mut changed = db::events::changed_tickets(conn, after, sites.as_deref(), limit + 1)?;
                    let has_more = changed.len() as i64 > limit;
                    changed.truncate(limit as usize);
                    let reached = if has_more { changed.last().and_then(|c| c.1).unwrap_or(after) } else { head };
                    let ids: Vec<String> = changed.into_iter().map(|c| c.0).collect();
                    // a first pull at an empty history (0) has nothing to remove either
                    (db::tickets::find_many(conn, &ids)?, has_more, Cursor::Changes(reached), after > 0)
                }
                Cursor::View { head: at, after_id } => {
                    let mut rows = db::tickets::page(conn, sites.as_deref(), after_id.as_deref(), limit + 1)?;
                    let has_more = rows.len() as i64 > limit;
                    rows.truncate(limit as usize);
                    // past the last page, the changes since the view was first read follow
                    let next = match rows.last() {
                        Some(last) if has_more => Cursor::View { head: at, after_id: Some(last.id.clone()) },
                        _ => Cursor::Changes(at),
                    };
                    // the phone holds nothing from before this view: nothing to remove
                    (rows, has_more, next, false)
                }
            };
            let (seen, unseen): (Vec<_>, Vec<_>) = rows.into_iter().partition(|t| viewer.can_see(t));
            let seen_ids: Vec<String> = seen.iter().map(|t| t.id.clone()).collect();
            let mut events = ByTicket::new(db::events::for_tickets(conn, &seen_ids)?, |e| Some(&e.ticket_id));
            let mut tickets = Vec::new();
            for view in viewer.views(conn, seen)? {
                let mine = events.take(&view.id);
                tickets.push(SyncTicket { ticket: view, events: mine.into_iter().map(TicketEvent::from).collect() });
            }
            let removed = if removable { unseen.into_iter().map(|t| t.id).collect() } else { Vec::new() };
            Ok(PullResponse { cursor: encode_cursor(&next, now), has_more, last_op_id, reset, tickets, removed })
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(response))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Rejection {
    pub client_id: String,
    pub op_id: i64,
    pub user_id: String,
    pub ticket_id: Option<String>,
    pub name: String,
    /// Everything the phone sent with it (a completion's result and signature included).
    #[schema(value_type = Object)]
    pub args: Value,
    pub device_time: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    pub code: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RejectionList {
    pub items: Vec<Rejection>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RejectionQuery {
    pub site_id: Option<String>,
}

/// Operations phones pushed that the server refused, newest first: work done offline that the
/// desk must look at.
#[utoipa::path(
    tag = "sync",
    security(("bearer" = [])),
    params(RejectionQuery),
    responses((status = 200, body = RejectionList), (status = 403, body = crate::error::Problem))
)]
#[get("/sync/rejections")]
pub async fn rejections(
    state: web::Data<AppState>,
    caller: Caller,
    query: Query<RejectionQuery>,
) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Admin, Role::Dispatcher, Role::Supervisor])?;
    let site = query.into_inner().site_id;
    let rows = db::run(&state.pool, move |conn| {
        let sites = if caller.is_admin() {
            site.map(|s| vec![s])
        } else {
            let own = db::users::site_ids(conn, &caller.user_id)?;
            Some(own.into_iter().filter(|s| site.as_ref().is_none_or(|f| f == s)).collect())
        };
        Ok(db::sync::rejections(conn, sites.as_deref(), 500)?)
    })
    .await?;
    let items = rows
        .into_iter()
        .map(|r| Rejection {
            client_id: r.client_id,
            op_id: r.op_id,
            user_id: r.user_id,
            ticket_id: r.ticket_id,
            name: r.name,
            args: serde_json::from_str(&r.args).unwrap_or(Value::Null),
            device_time: r.device_time.map(|t| t.and_utc()),
            received_at: r.received_at.and_utc(),
            code: r.code,
            detail: r.detail,
        })
        .collect();
    Ok(HttpResponse::Ok().json(RejectionList { items }))
}

/// Server-sent `changed` events whenever something the caller can see changes: the phone pulls.
/// Event ids are sequence numbers; `Last-Event-ID` replays what a reconnecting phone missed.
#[utoipa::path(
    tag = "sync",
    security(("bearer" = [])),
    responses((status = 200, description = "text/event-stream", content_type = "text/event-stream", body = String))
)]
#[get("/sync/stream")]
pub async fn stream(state: web::Data<AppState>, caller: Caller, req: HttpRequest) -> ApiResult<HttpResponse> {
    event_stream(state, caller, req, |viewer| {
        Box::new(move |c| viewer.reach().hears_of(c.facts()).then_some("changed"))
    })
    .await
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::error::ErrorCode;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("client_id".to_owned()),
                        Just("schema_version".to_owned()),
                        Just("ops".to_owned()),
                        Just("op_id".to_owned()),
                        Just("name".to_owned()),
                        Just("ticket_id".to_owned()),
                        Just("args".to_owned()),
                        Just("device_time".to_owned()),
                        "[a-z_]{1,8}",
                    ],
                    inner,
                    0..6,
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// A cursor reads back as written, and any string is read without a panic.
        #[test]
        fn cursors_read_back_as_written(
            seq in 0i64..i64::MAX,
            secs in 0i64..4_000_000_000,
            after in proptest::option::of("[0-9a-f-]{36}"),
            view in any::<bool>(),
            junk in "\\PC{0,40}",
        ) {
            let issued = DateTime::from_timestamp(secs, 0).unwrap().naive_utc();
            let cursor = if view { Cursor::View { head: seq, after_id: after } } else { Cursor::Changes(seq) };
            prop_assert_eq!(decode_cursor(&encode_cursor(&cursor, issued)), Some((cursor, issued)));
            decode_cursor(&junk); // anything else: read without a panic
        }

        /// Any bytes: the push decoder answers a value or a 400/422 problem, never panics.
        #[test]
        fn the_push_decoder_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Err(e) = parse_json::<PushRequest>(&bytes) {
                prop_assert!(matches!(e.code, ErrorCode::MalformedJson | ErrorCode::ValidationFailed));
            }
        }

        /// Any JSON shaped roughly like a push: decoded, or refused naming a field.
        #[test]
        fn the_push_decoder_names_the_field_it_refuses(value in json_value()) {
            let bytes = serde_json::to_vec(&value).unwrap();
            match parse_json::<PushRequest>(&bytes) {
                Ok(request) => {
                    // it decodes only when the required fields were there, with their types
                    prop_assert_eq!(value["client_id"].as_str(), Some(request.client_id.as_str()));
                    prop_assert_eq!(value["schema_version"].as_i64(), Some(request.schema_version));
                    prop_assert_eq!(value["ops"].as_array().map(Vec::len), Some(request.ops.len()));
                }
                Err(e) => {
                    prop_assert_eq!(e.code, ErrorCode::ValidationFailed);
                    prop_assert!(!e.errors.is_empty());
                }
            }
        }

        /// Every operation's arguments decode or are refused as a problem, whatever the phone sent.
        #[test]
        fn operation_arguments_never_panic(args in json_value(), name in prop_oneof![
            Just("release"), Just("arrive"), Just("add_material"), Just("update_material"),
            Just("remove_material"), Just("add_note"), Just("hold"), Just("complete"),
        ]) {
            let op = PushOp { op_id: 1, name: name.to_owned(), ticket_id: "t".into(), args, device_time: None, unstorable: vec![] };
            let decoded = match name {
                "release" => args_of::<ReasonBody>(&op),
                "arrive" => args_of::<ArriveBody>(&op),
                "add_material" => args_of::<NewMaterial>(&op),
                "update_material" => args_of::<MaterialPatch>(&op),
                "remove_material" => args_of::<LineArgs>(&op),
                "add_note" => args_of::<NoteBody>(&op),
                "hold" => args_of::<HoldBody>(&op),
                _ => args_of::<CompleteBody>(&op),
            };
            if let Err(e) = decoded {
                prop_assert!(matches!(e.code, ErrorCode::MalformedJson | ErrorCode::ValidationFailed));
            }
        }
    }

    fn args_of<T: DeserializeOwned>(op: &PushOp) -> Result<(), ApiError> {
        args::<T>(op).map(|_| ())
    }
}
