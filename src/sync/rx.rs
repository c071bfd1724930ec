//! The same sync in the shape standard offline-first replication expects (RxDB's
//! `replicateRxCollection`, and any client of its protocol; docs/sync.md, "Standard clients").
//!
//! - A phone's actions are documents of an operations collection it pushes: each is replayed by
//!   [`super::push`] like any push, and answered with its verdict as the server's state of the
//!   document, which the library's own conflict handling writes onto the phone. Pulling the
//!   operations recovers a verdict whose answer was lost.
//! - Tickets are a pull-only collection: the caller's view, with a tombstone for a ticket that
//!   left it, from checkpoints that never expire; a page shorter than asked is the last.
//!
//! The operation log and its replay stay the truth; this module changes the shape only.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use utoipa::ToSchema;

use super::pull::{page, Cursor, Page};
use super::PushOp;
use crate::auth::Caller;
use crate::commands::Ctx;
use crate::db::events::Horizon;
use crate::db::faults::Faults;
use crate::db::sync::OpRow;
use crate::db::{self, DbConn, Pool};
use crate::domain::user::Role;
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::views::{TicketView, Viewer};

/// A pull's `batchSize`: 1 to 500 (refused beyond, never cut: a shorter page would read as the last).
pub const BATCH_SIZE: std::ops::RangeInclusive<i64> = super::PULL_LIMIT;
/// How far back a phone's first pull of operations reaches.
pub const OPS_HISTORY: Duration = Duration::days(30);
/// App installs a checkpoint of operations may name (a user has a handful).
pub const MAX_CLIENTS: usize = 1000;

/// An action of the phone, as a document it creates and never edits; the server fills `result`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OpDocument {
    /// `<client_id>:<op_id>`.
    pub id: String,
    /// The app install's UUID, in lowercase (as `crypto.randomUUID()` makes it).
    #[schema(format = Uuid)]
    pub client_id: String,
    /// 1, 2, 3... per client, in the order the phone did them.
    pub op_id: i64,
    /// As in `POST /sync/push`.
    pub name: String,
    pub ticket_id: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub args: Value,
    pub device_time: Option<DateTime<Utc>>,
    /// `null` until the server received it; then its verdict.
    pub result: Option<Verdict>,
    /// Always `false`: an operation, once made, is kept (a deleted one pushed is received like
    /// any other, and answered undeleted).
    #[serde(rename = "_deleted", default)]
    pub deleted: bool,
}

/// What became of an operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Verdict {
    /// `applied` or `rejected`.
    pub status: String,
    /// On rejection, the rule's code (as in `POST /sync/push`).
    pub code: Option<String>,
    pub detail: Option<String>,
}

impl From<OpRow> for OpDocument {
    fn from(r: OpRow) -> Self {
        Self {
            id: format!("{}:{}", r.client_id, r.op_id),
            args: serde_json::from_str(&r.args).unwrap_or(Value::Null),
            device_time: r.device_time.map(|t| t.and_utc()),
            ticket_id: r.ticket_id.unwrap_or_default(),
            result: Some(Verdict { status: r.status, code: r.code, detail: r.detail }),
            client_id: r.client_id,
            op_id: r.op_id,
            name: r.name,
            deleted: false,
        }
    }
}

/// A row of an RxDB push.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushRow {
    /// What the phone last had from the server (`null` for a new document).
    #[schema(value_type = Option<Object>)]
    pub assumed_master_state: Option<Value>,
    /// The operation document.
    #[schema(value_type = OpDocument)]
    pub new_document_state: Value,
}

/// An RxDB pull: `{checkpoint, batchSize}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RxPull<C> {
    /// The last answer's checkpoint; `null` on the first pull.
    pub checkpoint: Option<C>,
    /// Documents per page, 1 to 500.
    #[schema(minimum = 1, maximum = 500)]
    pub batch_size: i64,
}

/// Where a pull of operations stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OpsCheckpoint {
    /// Operations received from this time on (30 days before the first pull).
    pub from: DateTime<Utc>,
    /// Per app install of the caller, the last op id sent.
    pub clients: BTreeMap<String, i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpsPage {
    pub documents: Vec<OpDocument>,
    pub checkpoint: OpsCheckpoint,
}

/// Where a pull of tickets stands. It never expires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TicketsCheckpoint {
    /// Opaque. Between pages it is the horizon of the changes the phone has, which is also the
    /// `id` of each `/sync/stream` event.
    pub position: String,
    /// Opaque and signed: whose view the phone holds (role, sites, trades), so that a change of
    /// them sends tombstones for what left it.
    pub scope: String,
}

/// A ticket as a document: the ticket view, or a tombstone when it left the caller's view.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum TicketDocument {
    Live(Box<LiveTicket>),
    Gone(Tombstone),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LiveTicket {
    #[serde(flatten)]
    pub ticket: TicketView,
    #[serde(rename = "_deleted")]
    #[schema(inline)]
    pub deleted: Flag<false>,
}

/// A ticket the caller no longer sees (claimed by another, reassigned, closed out of their
/// view, of a site they left): to drop.
#[derive(Debug, Serialize, ToSchema)]
pub struct Tombstone {
    pub id: String,
    #[serde(rename = "_deleted")]
    #[schema(inline)]
    pub deleted: Flag<true>,
}

/// A boolean that is always `VALUE`, and says so in the schema (so a tombstone and a ticket
/// are told apart by it).
#[derive(Debug, Clone, Copy)]
pub struct Flag<const VALUE: bool>;

impl<const VALUE: bool> Serialize for Flag<VALUE> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bool(VALUE)
    }
}

impl<const VALUE: bool> utoipa::PartialSchema for Flag<VALUE> {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new().schema_type(Type::Boolean).enum_values(Some([VALUE])).into()
    }
}

impl<const VALUE: bool> ToSchema for Flag<VALUE> {}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketsPage {
    pub documents: Vec<TicketDocument>,
    pub checkpoint: TicketsCheckpoint,
}

/// A document as sent, checked: its fields read, its `id` the one its client and op id compose.
fn read_document(i: usize, row: &PushRow) -> Result<OpDocument, FieldError> {
    let field = |name: &str| format!("[{i}].newDocumentState{name}");
    let doc: OpDocument = serde_json::from_value(row.new_document_state.clone())
        .map_err(|e| FieldError::new(field(""), format!("not an operation document: {e}")))?;
    let canonical = uuid::Uuid::parse_str(&doc.client_id).is_ok_and(|u| u.to_string() == doc.client_id);
    if !canonical {
        return Err(FieldError::new(field(".client_id"), "must be a UUID in lowercase"));
    }
    if doc.op_id < 1 {
        return Err(FieldError::new(
            field(".op_id"),
            "must be 1 or more: an install numbers its operations 1, 2, 3...",
        ));
    }
    if doc.id != format!("{}:{}", doc.client_id, doc.op_id) {
        return Err(FieldError::new(field(".id"), "must be \"<client_id>:<op_id>\""));
    }
    Ok(doc)
}

/// The document's fields as the server compares them: what the library adds of its own left out.
fn comparable(doc: &Value) -> Value {
    let mut doc = doc.clone();
    if let Value::Object(map) = &mut doc {
        for key in ["_meta", "_rev", "_attachments"] {
            map.remove(key);
        }
    }
    doc
}

/// Applies pushed operation documents (the push logic of `POST /sync/push`, each client's in op id
/// order) and answers the server's state of every one whose pushed state differs: a new one with
/// its verdict, a duplicate with its stored one. A document the answer leaves out is as pushed.
/// Nothing is answered for part of a push: when a failure of the server stopped it, or an earlier
/// operation of a client is missing, the push is refused whole (what it applied is kept, and
/// answers as duplicates when it comes again).
pub async fn push_ops(
    pool: &Pool,
    ctx: &Ctx,
    faults: &Faults,
    caller: Caller,
    rows: Vec<PushRow>,
) -> Result<Vec<OpDocument>, ApiError> {
    let mut docs = Vec::with_capacity(rows.len());
    let mut errors = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        match read_document(i, row) {
            Ok(doc) => docs.push((doc, comparable(&row.new_document_state))),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let mut by_client: BTreeMap<String, Vec<(OpDocument, Value)>> = BTreeMap::new();
    for (doc, sent) in docs {
        by_client.entry(doc.client_id.clone()).or_default().push((doc, sent));
    }
    let mut answer = Vec::new();
    for (client_id, mut docs) in by_client {
        super::own_client(pool, &caller, &client_id).await?;
        docs.sort_by_key(|(doc, _)| doc.op_id);
        let ops = docs
            .iter()
            .map(|(doc, _)| {
                let mut op = PushOp {
                    op_id: doc.op_id,
                    name: doc.name.clone(),
                    ticket_id: doc.ticket_id.clone(),
                    args: doc.args.clone(),
                    device_time: doc.device_time,
                    unstorable: Vec::new(),
                };
                super::screen(&mut op);
                op
            })
            .collect();
        let pushed = super::push::push(pool, ctx, faults, caller.clone(), client_id.clone(), ops).await?;
        if let Some(failure) = pushed.failure {
            return Err(failure);
        }
        let reached: std::collections::HashSet<i64> = pushed.results.iter().map(|r| r.op_id).collect();
        if let Some((missing, _)) = docs.iter().find(|(doc, _)| !reached.contains(&doc.op_id)) {
            let expected = pushed.last_op_id + 1;
            return Err(ApiError::new(
                ErrorCode::OpsMissing,
                format!(
                    "operation {} of client {client_id} came before operation {expected}: push that one first \
                     (nothing from {} on was received)",
                    missing.op_id, missing.op_id
                ),
            )
            .with("expected", expected));
        }
        let ids: Vec<i64> = docs.iter().map(|(doc, _)| doc.op_id).collect();
        let stored = db::run(pool, move |conn| Ok(db::sync::ops_of(conn, &client_id, &ids)?)).await?;
        let stored: BTreeMap<i64, OpDocument> = stored.into_iter().map(|r| (r.op_id, OpDocument::from(r))).collect();
        for (doc, sent) in docs {
            let Some(master) = stored.get(&doc.op_id) else { continue };
            if serde_json::to_value(master).ok().as_ref() != Some(&sent) {
                answer.push(master.clone());
            }
        }
    }
    Ok(answer)
}

/// The caller's operations from `checkpoint` on (all of the last [`OPS_HISTORY`] on the first
/// pull), with their verdicts, `limit` at most.
pub fn pull_ops(
    conn: &mut DbConn,
    caller: &Caller,
    checkpoint: Option<OpsCheckpoint>,
    limit: i64,
    now: NaiveDateTime,
) -> Result<OpsPage, ApiError> {
    let mut checkpoint =
        checkpoint.unwrap_or_else(|| OpsCheckpoint { from: (now - OPS_HISTORY).and_utc(), clients: BTreeMap::new() });
    if let Err(message) = crate::domain::time::check(checkpoint.from) {
        return Err(ApiError::field("checkpoint.from", message));
    }
    if checkpoint.clients.len() > MAX_CLIENTS {
        return Err(ApiError::field("checkpoint.clients", format!("names at most {MAX_CLIENTS} app installs")));
    }
    let clients = db::sync::clients_of(conn, &caller.user_id)?;
    // what the checkpoint says of installs that are not the caller's counts for nothing
    let seen: Vec<(String, i64)> =
        clients.iter().filter_map(|c| checkpoint.clients.get(c).map(|&op_id| (c.clone(), op_id))).collect();
    let rows = db::sync::ops_since(conn, &clients, checkpoint.from.naive_utc(), &seen, limit)?;
    for r in &rows {
        checkpoint.clients.insert(r.client_id.clone(), r.op_id);
    }
    Ok(OpsPage { documents: rows.into_iter().map(OpDocument::from).collect(), checkpoint })
}

/// Whose view a phone holds, sealed so that it cannot be forged: it bounds the tombstones a
/// change of the caller's sites, trades or role sends (the sites they left among them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Held {
    role: String,
    /// `None`: every site (an admin).
    sites: Option<Vec<String>>,
    trades: Vec<String>,
}

impl Held {
    fn of(viewer: &Viewer) -> Self {
        let mut sites = viewer.sites.clone();
        let mut trades = viewer.trades.clone();
        sites.sort();
        trades.sort();
        let sites = (viewer.caller.role != Role::Admin).then_some(sites);
        Self { role: viewer.caller.role.as_str().to_owned(), sites, trades }
    }

    fn seal(&self, key: &[u8]) -> String {
        let text = URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default());
        format!("{text}.{}", hex::encode(mac(key, &text)))
    }

    fn open(key: &[u8], sealed: &str) -> Option<Self> {
        let (text, tag) = sealed.rsplit_once('.')?;
        let mut check = Hmac::<Sha256>::new_from_slice(key).ok()?;
        check.update(text.as_bytes());
        check.verify_slice(&hex::decode(tag).ok()?).ok()?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(text).ok()?).ok()
    }

    /// The sites of both (every site when either is an admin's).
    fn union(&self, other: &Held) -> Option<Vec<String>> {
        let (mine, theirs) = (self.sites.as_ref()?, other.sites.as_ref()?);
        let mut sites: Vec<String> = mine.iter().chain(theirs).cloned().collect();
        sites.sort();
        sites.dedup();
        Some(sites)
    }
}

fn mac(key: &[u8], text: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(text.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The key that seals checkpoints' scopes, derived from the server's secret `key`.
pub fn scope_key(key: &[u8]) -> Vec<u8> {
    mac(key, "repairdesk sync checkpoint scope")
}

/// A position's text: the horizon alone between pages (what stream event ids are), else the
/// page's kind and where it stands. The sites of a resync are in the sealed scope, never here.
fn encode_position(cursor: &Cursor) -> String {
    match cursor {
        Cursor::Changes { seen } => seen.to_text(),
        Cursor::ChangePages { seen, upto, after_id } => format!("p/{}/{}/{after_id}", seen.to_text(), upto.to_text()),
        Cursor::View { upto, after_id } => format!("v/{}/{}", upto.to_text(), after_id.as_deref().unwrap_or("")),
        Cursor::Resync { upto, after_id, .. } => {
            format!("r/{}/{}", upto.to_text(), after_id.as_deref().unwrap_or(""))
        }
    }
}

fn decode_position(text: &str, sites: Option<Vec<String>>) -> Option<Cursor> {
    let Some((kind, rest)) = text.split_once('/') else {
        return Some(Cursor::Changes { seen: Horizon::parse(text)? });
    };
    let after = |id: &str| Some(id.to_owned()).filter(|id| !id.is_empty());
    Some(match kind {
        "p" => {
            let mut parts = rest.splitn(3, '/');
            let seen = Horizon::parse(parts.next()?)?;
            let upto = Horizon::parse(parts.next()?)?;
            Cursor::ChangePages { seen, upto, after_id: after(parts.next()?)? }
        }
        "v" => {
            let (upto, after_id) = rest.split_once('/')?;
            Cursor::View { upto: Horizon::parse(upto)?, after_id: after(after_id) }
        }
        "r" => {
            let (upto, after_id) = rest.split_once('/')?;
            Cursor::Resync { sites, upto: Horizon::parse(upto)?, after_id: after(after_id) }
        }
        _ => return None,
    })
}

/// A page of the caller's tickets from `checkpoint` on (the whole view on the first pull), read
/// from one snapshot. When the caller's sites, trades or role changed since the checkpoint, or
/// it cannot be read, every ticket of the sites they had and have is sent again, each as it
/// stands or as a tombstone: no checkpoint expires, none resets the phone.
pub fn pull_tickets(
    conn: &mut DbConn,
    caller: Caller,
    key: &[u8],
    checkpoint: Option<TicketsCheckpoint>,
    limit: i64,
) -> Result<TicketsPage, ApiError> {
    db::snapshot(conn, |conn| {
        let viewer = Viewer::load(conn, caller)?;
        let here = db::events::horizon(conn)?;
        let now = Held::of(&viewer);
        let cursor = match checkpoint {
            None => Cursor::View { upto: here.clone(), after_id: None },
            Some(checkpoint) => {
                let opened = Held::open(key, &checkpoint.scope);
                // a scope that does not open (sealed with another key) bounds nothing: their own sites
                let held = opened.clone().unwrap_or_else(|| now.clone());
                let resync = || Cursor::Resync { sites: held.union(&now), upto: here.clone(), after_id: None };
                match decode_position(&checkpoint.position, held.union(&now)) {
                    Some(cursor) if !cursor.fits(&here) => resync(),
                    Some(resyncing @ Cursor::Resync { .. }) if opened.is_some() => resyncing,
                    Some(cursor) if opened.as_ref() == Some(&now) => cursor,
                    _ => resync(),
                }
            }
        };
        let Page { shown, gone, next, .. } = page(conn, &viewer, cursor, here, limit)?;
        // a resync's sites stay in the sealed scope until it ends
        let scope = match &next {
            Cursor::Resync { sites, .. } => Held { sites: sites.clone(), ..now }.seal(key),
            _ => now.seal(key),
        };
        let mut documents: Vec<TicketDocument> = viewer
            .views(conn, shown)?
            .into_iter()
            .map(|ticket| TicketDocument::Live(Box::new(LiveTicket { ticket, deleted: Flag })))
            .collect();
        documents.extend(gone.into_iter().map(|id| TicketDocument::Gone(Tombstone { id, deleted: Flag })));
        Ok(TicketsPage { documents, checkpoint: TicketsCheckpoint { position: encode_position(&next), scope } })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(sites: Option<&[&str]>) -> Held {
        Held {
            role: "technician".into(),
            sites: sites.map(|s| s.iter().map(|s| s.to_string()).collect()),
            trades: vec!["plumbing".into()],
        }
    }

    #[test]
    fn a_scope_opens_only_with_its_key_and_unchanged() {
        let h = held(Some(&["a", "b"]));
        let sealed = h.seal(b"key");
        assert_eq!(Held::open(b"key", &sealed), Some(h.clone()));
        assert_eq!(Held::open(b"other key", &sealed), None);
        // another scope under the first one's tag
        let (_, tag) = sealed.rsplit_once('.').unwrap();
        let (forged, _) = held(Some(&["a", "b", "c"]))
            .seal(b"key")
            .rsplit_once('.')
            .map(|(t, g)| (t.to_owned(), g.to_owned()))
            .unwrap();
        assert_eq!(Held::open(b"key", &format!("{forged}.{tag}")), None);
        assert_eq!(Held::open(b"key", "junk"), None);
    }

    #[test]
    fn the_sites_of_two_scopes_are_both_or_every_site() {
        assert_eq!(
            held(Some(&["b", "a"])).union(&held(Some(&["c", "a"]))),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(held(None).union(&held(Some(&["a"]))), None);
    }

    #[test]
    fn positions_read_back_as_written() {
        let h = Horizon { xmin: 5, xmax: 9, running: vec![6, 8] };
        let sites = Some(vec!["s".to_owned()]);
        for cursor in [
            Cursor::Changes { seen: h.clone() },
            Cursor::ChangePages { seen: h.clone(), upto: h.clone(), after_id: "t/1".into() },
            Cursor::View { upto: h.clone(), after_id: None },
            Cursor::View { upto: h.clone(), after_id: Some("t".into()) },
            Cursor::Resync { sites: sites.clone(), upto: h.clone(), after_id: Some("t".into()) },
        ] {
            assert_eq!(decode_position(&encode_position(&cursor), sites.clone()), Some(cursor));
        }
        // a stream event's id is a position
        assert_eq!(decode_position(&h.to_text(), None), Some(Cursor::Changes { seen: h }));
        for junk in ["", "x/1", "p/1:2:/", "v/", "r", "5:4:"] {
            assert_eq!(decode_position(junk, None), None, "{junk}");
        }
    }
}
