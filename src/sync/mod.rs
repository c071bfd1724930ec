//! Offline sync. A phone pushes the operations it queued while offline, numbered 1, 2, 3... per
//! app install; the server replays each against its current state (the same commands as the HTTP
//! routes) and keeps every one with its result. A pull returns what changed since a cursor that
//! follows commit order, so no change is ever skipped. See docs/sync.md.
//!
//! - [`ops`]: the operations, decoded once, and how each is replayed;
//! - [`push`]: applying a push in order, in batches, with a result line per operation;
//! - [`pull`]: what changed since a cursor.
//!
//! The HTTP edge (`routes/sync.rs`) checks the request's envelope and renders; the stream of
//! changes is the pool's (`routes/pool.rs`) with the rule `domain::access::Reach::hears_of`.

pub mod ops;
pub mod pull;
pub mod push;
pub mod rx;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::db::{self, Pool};
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::input::{scrub_nul, NUL_MESSAGE};
use crate::views::{TicketEvent, TicketView};

pub const SCHEMA_VERSIONS: [i64; 1] = [1];
pub const MAX_OPS: usize = 500;
/// Tickets a pull may ask for at once.
pub const PULL_LIMIT: std::ops::RangeInclusive<i64> = 1..=500;
/// Operations of one ticket applied per transaction: one commit (one `fsync`) for many
/// operations, while the write lock is held for a bounded time.
pub const OPS_PER_TRANSACTION: usize = 100;
pub const MAX_PUSH_BYTES: usize = 1024 * 1024;
/// A cursor older than this answers `reset: true` with the whole current view.
pub const CURSOR_RETENTION: Duration = Duration::days(30);

#[derive(Debug, Deserialize, ToSchema)]
pub struct PushRequest {
    /// A UUID per app install; bound to the user who first pushes or pulls with it.
    #[schema(format = Uuid)]
    pub client_id: String,
    pub schema_version: i64,
    /// At most 500 ([`MAX_OPS`]).
    #[schema(max_items = 500)]
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
pub fn screen(op: &mut PushOp) {
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
    /// On a duplicate: what its first receipt got, `applied` or `rejected` (with `code` and
    /// `detail`), so a phone whose answer was lost learns the verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_status: Option<String>,
    /// On rejection (and on a duplicate of a rejected operation): the ticket as it stands after
    /// the whole push, when the user may still see it.
    pub ticket: Option<TicketView>,
    /// On rejection (and on a duplicate of a rejected operation): `true` when the user may no
    /// longer see the ticket (another technician claimed it, it was reassigned, it is of another
    /// site, it does not exist): drop it from the phone.
    pub removed: bool,
    /// The operation's ticket, for the answer's last read.
    #[serde(skip)]
    pub ticket_id: String,
}

impl OpResult {
    pub fn new(op_id: i64, ticket_id: &str, status: &'static str) -> Self {
        Self {
            op_id,
            status,
            code: None,
            detail: None,
            stored_status: None,
            ticket: None,
            removed: false,
            ticket_id: ticket_id.to_owned(),
        }
    }

    /// Whether the answer shows the ticket: a rejection, or a duplicate of one.
    fn shows_ticket(&self) -> bool {
        self.code.is_some()
    }
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
    /// The failure that stopped it, with `retry_from`.
    #[serde(skip)]
    pub failure: Option<ApiError>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PullRequest {
    /// The app install's UUID, as in its pushes.
    #[schema(format = Uuid)]
    pub client_id: String,
    /// The `cursor` of the last pull; absent on the first.
    pub cursor: Option<String>,
    /// Tickets per page, 1 to 500 ([`PULL_LIMIT`]; default 100).
    #[schema(minimum = 1, maximum = 500)]
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

/// Binds a new client to the caller, or checks that a known one is theirs.
pub async fn own_client(pool: &Pool, caller: &Caller, client_id: &str) -> Result<(), ApiError> {
    let (client_id, user_id) = (client_id.to_owned(), caller.user_id.clone());
    db::run(pool, move |conn| {
        let client = db::sync::client(conn, &client_id, &user_id, db::now())?;
        if client.user_id != user_id {
            return Err(ApiError::new(ErrorCode::ClientOfAnotherUser, "this client_id is another user's app install"));
        }
        Ok(())
    })
    .await
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::input::parse_json;

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
            let decoded = ops::Op::decode(&op);
            if let Err(e) = decoded {
                prop_assert!(matches!(e.code, ErrorCode::MalformedJson | ErrorCode::ValidationFailed));
            }
        }
    }
}
