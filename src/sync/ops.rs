//! The operations a phone queues offline, decoded once from what it sent, and replayed through
//! the same commands as the HTTP routes.

use chrono::NaiveDateTime;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use super::PushOp;
use crate::commands::{
    self, ArriveBody, CompleteBody, Ctx, HoldBody, MaterialPatch, NewMaterial, NoteBody, ReasonBody,
};
use crate::db::{self, DbConn};
use crate::domain::user::Role;
use crate::error::{ApiError, ErrorCode};
use crate::input::parse_json;
use crate::views::Viewer;

/// One operation with its arguments, as the matching HTTP route takes them.
#[derive(Clone)]
pub enum Op {
    Claim,
    Release(ReasonBody),
    Arrive(ArriveBody),
    AddMaterial(NewMaterial),
    UpdateMaterial { line_id: String, patch: MaterialPatch },
    RemoveMaterial { line_id: String, version: Option<i64> },
    AddNote(NoteBody),
    Hold(HoldBody),
    Resume,
    Complete(CompleteBody),
}

/// The names a push may use, as `docs/sync.md` lists them.
pub const NAMES: [&str; 10] = [
    "claim",
    "release",
    "arrive",
    "add_material",
    "update_material",
    "remove_material",
    "add_note",
    "hold",
    "resume",
    "complete",
];

#[derive(Deserialize)]
struct LineArgs {
    line_id: String,
    version: Option<i64>,
}

fn args<T: DeserializeOwned>(op: &PushOp) -> Result<T, ApiError> {
    let bytes = serde_json::to_vec(&op.args).map_err(ApiError::internal)?;
    parse_json(if op.args.is_null() { b"{}" } else { &bytes })
}

impl Op {
    /// Reads an operation: an unknown name is `unknown_operation`, arguments that don't fit (or
    /// parts that can't be stored) are `validation_failed` naming the field. The refusal is kept
    /// for when the operation's turn comes.
    pub fn decode(op: &PushOp) -> Result<Op, ApiError> {
        if !op.unstorable.is_empty() {
            return Err(ApiError::validation(op.unstorable.clone()));
        }
        Ok(match op.name.as_str() {
            "claim" => Op::Claim,
            "release" => Op::Release(args(op)?),
            "arrive" => {
                let mut body: ArriveBody = args(op)?;
                body.device_time = body.device_time.or(op.device_time);
                Op::Arrive(body)
            }
            "add_material" => Op::AddMaterial(args(op)?),
            "update_material" => {
                let line: LineArgs = args(op)?;
                Op::UpdateMaterial { line_id: line.line_id, patch: args(op)? }
            }
            "remove_material" => {
                let line: LineArgs = args(op)?;
                Op::RemoveMaterial { line_id: line.line_id, version: line.version }
            }
            "add_note" => Op::AddNote(args(op)?),
            "hold" => Op::Hold(args(op)?),
            "resume" => Op::Resume,
            "complete" => Op::Complete(args(op)?),
            other => {
                return Err(ApiError::new(
                    ErrorCode::UnknownOperation,
                    format!("{other:?} is not an operation this server knows"),
                ))
            }
        })
    }

    /// An add (a material line, a note): consecutive adds to one ticket are written together.
    pub fn is_add(&self) -> bool {
        matches!(self, Op::AddMaterial(_) | Op::AddNote(_))
    }

    /// Replays the operation on ticket `id`. `Ok(Err)` is a refusal whose side effects stand (a
    /// counted wrong code, an arrival recorded for the desk); `Err` is a refusal that changed
    /// nothing.
    pub fn apply(
        self,
        conn: &mut DbConn,
        ctx: &Ctx,
        viewer: &Viewer,
        op: &PushOp,
        now: NaiveDateTime,
    ) -> Result<Result<(), ApiError>, ApiError> {
        let id = op.ticket_id.as_str();
        match self {
            Op::Claim => {
                commands::claim(conn, ctx, viewer, id, now)?;
            }
            Op::Release(body) => {
                commands::release(conn, viewer, id, body, now)?;
            }
            Op::Arrive(body) => {
                if let Some(refusal) = arrival_elsewhere(conn, viewer, op, &body, now)? {
                    return Ok(Err(refusal));
                }
                // a wrong code is refused inside Ok: its count stands
                return Ok(commands::arrive(conn, ctx, viewer, id, body, now)?.map(|_| ()).map_err(ApiError::from));
            }
            Op::AddMaterial(body) => {
                commands::add_material(conn, viewer, id, body, now)?;
            }
            Op::UpdateMaterial { line_id, patch } => {
                commands::update_material(conn, viewer, id, &line_id, patch, now)?;
            }
            Op::RemoveMaterial { line_id, version } => {
                commands::remove_material(conn, viewer, id, &line_id, version, now)?;
            }
            Op::AddNote(body) => {
                let device_time = op.device_time.map(|d| d.naive_utc());
                drop(commands::add_note(conn, viewer, id, body, device_time, now)?)
            }
            Op::Hold(body) => {
                commands::hold(conn, viewer, id, body, now)?;
            }
            Op::Resume => {
                commands::resume(conn, viewer, id, now)?;
            }
            Op::Complete(body) => {
                commands::complete(conn, viewer, id, body, now)?;
            }
        }
        Ok(Ok(()))
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
