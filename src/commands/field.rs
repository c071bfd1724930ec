//! What a technician does with a ticket, from the pool to the finished job.

use base64::Engine;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::error::Error;
use super::{
    actable, apply, back_to_pool, check_code, claim_refusal, client_id, code_refusal, nullable, reason,
    require_accepted_quote, require_move, require_version, text, Ctx, ReasonBody,
};
use crate::db::tickets::{Present, Reachable};
use crate::db::{
    self, materials::LineChanges, materials::LineRow, sync::NoteRow, tickets::TicketChanges, tickets::TicketRow, DbConn,
};
use crate::domain::code::Purpose;
use crate::domain::material::{line_total_cents, parse_quantity, SuppliedBy, MAX_CENTS, MAX_NAME, MAX_SPEC, MAX_UNIT};
use crate::domain::ticket::{Area, HoldReason, Move, Status, Urgency};
use crate::domain::user::Role;
use crate::error::{Checks, ErrorCode};
use crate::views::{line_view, TicketView, Viewer};

#[derive(Clone, Deserialize, ToSchema)]
pub struct ArriveBody {
    /// The resident's SMS code: required (not blank) for an in-home ticket, unless the desk
    /// verified the arrival by phone.
    pub code: Option<String>,
    #[schema(minimum = -90, maximum = 90)]
    pub lat: Option<f64>,
    #[schema(minimum = -180, maximum = 180)]
    pub lng: Option<f64>,
    /// When the phone says it arrived (kept beside the server time; used for the on-time check
    /// when plausible).
    #[serde(default, deserialize_with = "crate::domain::time::optional")]
    pub device_time: Option<DateTime<Utc>>,
}

#[derive(Clone, Deserialize, ToSchema)]
pub struct NewMaterial {
    /// Made by the phone (UUID), so a line added offline keeps its id; sending it again is harmless.
    #[schema(format = Uuid)]
    pub id: Option<String>,
    /// An item of the ticket's site's catalogue: fills name, spec, model, unit and price when
    /// those are absent.
    pub catalogue_item_id: Option<String>,
    /// Required (not blank) without a `catalogue_item_id`.
    #[schema(max_length = 100)]
    pub name: Option<String>,
    #[schema(max_length = 100)]
    pub spec: Option<String>,
    #[schema(max_length = 100)]
    pub model: Option<String>,
    /// A decimal string such as `"1.5"`: more than 0, at most 100000, at most 3 decimals.
    #[schema(
        pattern = r"^(?:[1-9][0-9]{0,4}(?:\.[0-9]{1,3})?|0\.(?:[1-9][0-9]{0,2}|0[1-9][0-9]?|00[1-9])|100000(?:\.0{1,3})?)$"
    )]
    pub quantity: String,
    /// Required (not blank) without a `catalogue_item_id`.
    #[schema(max_length = 20)]
    pub unit: Option<String>,
    /// Required without a `catalogue_item_id`.
    #[schema(minimum = 0, maximum = 100_000_000)]
    pub unit_price_cents: Option<i64>,
    #[schema(value_type = SuppliedBy)]
    pub supplied_by: String,
    /// The ticket version the phone last saw; a different one answers 409 `version_conflict`.
    pub version: Option<i64>,
}

#[derive(Clone, Deserialize, ToSchema)]
pub struct MaterialPatch {
    /// Blank leaves the name as it is.
    #[schema(max_length = 100)]
    pub name: Option<String>,
    /// `null` (or blank) clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 100)]
    pub spec: Option<Option<String>>,
    /// `null` (or blank) clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 100)]
    pub model: Option<Option<String>>,
    /// A decimal string such as `"1.5"`: more than 0, at most 100000, at most 3 decimals.
    #[schema(
        pattern = r"^(?:[1-9][0-9]{0,4}(?:\.[0-9]{1,3})?|0\.(?:[1-9][0-9]{0,2}|0[1-9][0-9]?|00[1-9])|100000(?:\.0{1,3})?)$"
    )]
    pub quantity: Option<String>,
    /// Blank leaves the unit as it is.
    #[schema(max_length = 20)]
    pub unit: Option<String>,
    #[schema(minimum = 0, maximum = 100_000_000)]
    pub unit_price_cents: Option<i64>,
    #[schema(value_type = Option<SuppliedBy>)]
    pub supplied_by: Option<String>,
    /// The ticket version the phone last saw; a different one answers 409 with the current line.
    pub version: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    pub version: Option<i64>,
}

pub fn check_price(checks: &mut Checks, cents: i64) {
    if !(0..=MAX_CENTS).contains(&cents) {
        checks.fail("unit_price_cents", format!("must be 0 to {MAX_CENTS}"));
    }
}

pub fn materials_allowed(conn: &mut DbConn, viewer: &Viewer, t: &TicketRow) -> Result<(), Error> {
    require_move(t, viewer, Move::Materials)?;
    require_accepted_quote(conn, t)
}

#[derive(Clone, Deserialize, ToSchema)]
pub struct HoldBody {
    #[schema(value_type = HoldReason)]
    pub reason: String,
    /// Required (not blank) when `reason` is `other`.
    #[schema(max_length = 500)]
    pub note: Option<String>,
    /// When work should go on (not in the past); the stalled clock waits for it.
    #[serde(default, deserialize_with = "crate::domain::time::optional")]
    pub resume_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Deserialize, ToSchema)]
pub struct CompleteBody {
    /// What was done.
    #[schema(min_length = 1, max_length = 2000, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub result: String,
    /// 1 to 5 stars.
    #[schema(minimum = 1, maximum = 5)]
    pub resident_rating: Option<i64>,
    /// A PNG of at most 256 KB, in base64 (a `data:image/png;base64,` prefix is allowed).
    #[schema(content_encoding = "base64", content_media_type = "image/png")]
    pub resident_signature_png_base64: Option<String>,
    #[schema(minimum = 0, maximum = 100_000_000)]
    pub fee_collected_cents: Option<i64>,
}

/// The longest result of a job, in characters (trimmed).
pub const MAX_RESULT: usize = 2000;
/// The longest note on a ticket, in characters (trimmed).
pub const MAX_NOTE: usize = 2000;
/// Where an arrival may be: latitude and longitude in degrees.
pub const LAT: std::ops::RangeInclusive<f64> = -90.0..=90.0;
pub const LNG: std::ops::RangeInclusive<f64> = -180.0..=180.0;

pub const MAX_SIGNATURE_BYTES: usize = 256 * 1024;
const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Decodes the signature and checks it is a PNG: the magic bytes, then an IHDR chunk first.
pub fn parse_signature(raw: &str) -> Result<Vec<u8>, String> {
    let raw = raw.trim();
    let raw = raw.strip_prefix("data:image/png;base64,").unwrap_or(raw);
    let bytes = base64::engine::general_purpose::STANDARD.decode(raw).map_err(|_| "is not base64".to_owned())?;
    if bytes.len() > MAX_SIGNATURE_BYTES {
        return Err("must be at most 256 KB".into());
    }
    if bytes.len() < 33 || !bytes.starts_with(PNG_MAGIC) || &bytes[12..16] != b"IHDR" {
        return Err("must be a PNG image".into());
    }
    Ok(bytes)
}

#[derive(Clone, Deserialize, ToSchema)]
pub struct NoteBody {
    /// Made by the phone (UUID), so a note written offline keeps its id; sending it again is harmless.
    #[schema(format = Uuid)]
    pub id: Option<String>,
    #[schema(min_length = 1, max_length = 2000, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub note: String,
}

/// Grab a ticket from the pool (抢单). Of any number of technicians racing, exactly one wins: the
/// conditional update decides. What the ticket has besides its row comes with it, for the view.
pub fn claim(
    conn: &mut DbConn,
    ctx: &Ctx,
    viewer: &Viewer,
    id: &str,
    now: NaiveDateTime,
) -> Result<(TicketRow, Present), Error> {
    viewer.caller.require(&[Role::Technician])?;
    let me = viewer.caller.user_id.clone();
    let mine = Reachable { sites: &viewer.sites, trades: &viewer.trades };
    // the lock order: the ticket, then the technician (taken by the same statement on PostgreSQL)
    let Some((claimed, present)) = db::tickets::claim(conn, id, &me, mine, now)? else {
        let t = db::tickets::find(conn, id)?
            .filter(|t| viewer.sites.contains(&t.site_id))
            .ok_or_else(|| Error::not_found("ticket"))?;
        if t.assignee_id.as_deref() == Some(me.as_str()) && t.status == Status::Assigned {
            // a retry of a claim whose answer was lost: it is already yours
            return Ok((t, Present::ALL));
        }
        if !viewer.trades.contains(&t.category) {
            return Err(Error::new(ErrorCode::NotClaimable, "this ticket is not in one of your trades"));
        }
        return Err(claim_refusal(&t));
    };
    // counted under the technician's lock, this claim among them; over the cap, the caller's
    // transaction (or the push's savepoint) undoes the claim
    let cap = ctx.max_active_tickets;
    if db::tickets::active_count(conn, &me)? > cap {
        return Err(Error::new(
            ErrorCode::TooManyActive,
            format!("you hold {cap} active tickets; finish or release one first"),
        ));
    }
    if present.open_escalations {
        db::escalations::resolve_for_ticket(conn, id, now)?;
    }
    db::events::append(
        conn,
        vec![db::events::NewEvent {
            ticket_id: claimed.id.clone(),
            site_id: claimed.site_id.clone(),
            event_type: "claimed",
            actor_id: Some(me.clone()),
            at: now,
            from_status: Some(Status::Open.as_str()),
            to_status: Some(Status::Assigned.as_str()),
            data: json!({ "technician_id": me }),
        }],
    )?;
    Ok((claimed, present))
}

/// A claim from the pool as the claim route makes it, on one connection. On SQLite, whose writers
/// take turns, a ticket someone else already holds is refused from a plain read first, so the
/// losers of a race don't queue for the write lock behind the winner (only within the viewer's
/// sites: elsewhere the answer stays "not found"). Winning is still decided only by the
/// conditional update of [`claim`], in a write transaction that also reads which of the ticket's
/// own rows the view must show.
pub fn claim_and_view(
    conn: &mut DbConn,
    ctx: &Ctx,
    viewer: &Viewer,
    id: &str,
    now: NaiveDateTime,
) -> Result<TicketView, Error> {
    let me = viewer.caller.user_id.as_str();
    if matches!(conn, DbConn::Sqlite(_)) {
        if let Some(t) = db::tickets::find(conn, id)?.filter(|t| viewer.sites.contains(&t.site_id)) {
            let refusal = claim_refusal(&t);
            if refusal.code() == ErrorCode::AlreadyClaimed && t.assignee_id.as_deref() != Some(me) {
                return Err(refusal);
            }
        }
    }
    // the view is read after the commit, so the ticket's and the technician's locks (SQLite: the
    // write lock) are held no longer than the claim needs them
    let (t, present) = db::write_transaction(conn, |conn| claim(conn, ctx, viewer, id, now))?;
    Ok(viewer.view_one_with(conn, t, present)?)
}

/// Put an assigned ticket back into the pool: the technician holding it, or the desk.
pub fn release(
    conn: &mut DbConn,
    viewer: &Viewer,
    id: &str,
    body: ReasonBody,
    now: NaiveDateTime,
) -> Result<TicketRow, Error> {
    let reason = reason(&body.reason)?;
    let t = actable(conn, viewer, id)?;
    require_move(&t, viewer, Move::Release)?;
    let changes = back_to_pool(now);
    let data = json!({ "reason": reason, "previous_assignee_id": t.assignee_id });
    apply(conn, &t, &viewer.caller.user_id, "released", Some(Status::Open), changes, data, now)
}

/// Check in at the door. In-home tickets need the resident's code. A wrong code is an error whose
/// counting must commit: it comes back inside `Ok`.
pub fn arrive(
    conn: &mut DbConn,
    ctx: &Ctx,
    viewer: &Viewer,
    id: &str,
    body: ArriveBody,
    now: NaiveDateTime,
) -> Result<Result<TicketRow, Error>, Error> {
    viewer.caller.require(&[Role::Technician])?;
    let ArriveBody { code, lat, lng, device_time } = body;
    if lat.is_some_and(|v| !LAT.contains(&v)) || lng.is_some_and(|v| !LNG.contains(&v)) {
        return Err(Error::field("lat", "lat must be within ±90 and lng within ±180"));
    }
    let t = actable(conn, viewer, id)?;
    if t.status == Status::OnSite {
        return Ok(Ok(t));
    }
    require_move(&t, viewer, Move::Arrive)?;
    let verified_via = if t.area == Area::Public.as_str() {
        "not_required"
    } else if t.phone_verified_at.is_some() {
        "phone"
    } else {
        let given = code.as_deref().map(str::trim).filter(|c| !c.is_empty());
        let Some(given) = given else { return Err(Error::field("code", "the resident's code is required")) };
        if let Some(refusal) =
            code_refusal(check_code(conn, &ctx.code_key, &t, Purpose::Arrival, given, now)?, Purpose::Arrival)
        {
            return Ok(Err(refusal));
        }
        "code"
    };
    let claimed_at = t.claimed_at.unwrap_or(t.created_at);
    // the device's clock counts only when plausible: not ahead of ours, not before the claim
    let device = device_time.map(|d| d.naive_utc());
    let counted =
        device.filter(|d| *d <= now + Duration::minutes(2) && *d >= claimed_at - Duration::minutes(1)).unwrap_or(now);
    let urgency = Urgency::parse(&t.urgency).unwrap_or(Urgency::Normal);
    let on_time = counted <= ctx.clock.arrival_deadline(claimed_at, urgency, t.appointment_at);
    let changes = TicketChanges {
        arrived_at: Some(Some(now)),
        arrival_device_time: Some(device),
        arrival_on_time: Some(Some(on_time)),
        arrival_verified_via: Some(Some(verified_via.to_owned())),
        arrival_lat: Some(lat),
        arrival_lng: Some(lng),
        ..Default::default()
    };
    let data =
        json!({ "on_time": on_time, "device_time": device_time, "verified_via": verified_via, "lat": lat, "lng": lng });
    Ok(Ok(apply(conn, &t, &viewer.caller.user_id, "arrived", Some(Status::OnSite), changes, data, now)?))
}

/// Record a material line. The same line id sent again answers the line as it stands.
pub fn add_material(
    conn: &mut DbConn,
    viewer: &Viewer,
    id: &str,
    m: NewMaterial,
    now: NaiveDateTime,
) -> Result<LineRow, Error> {
    let checked = check_material(&m)?;
    let t = actable(conn, viewer, id)?;
    if let Some(existing) = db::materials::find_line(conn, &checked.id)? {
        // the same add sent again (a retry, a replayed offline queue): answer what stands
        if existing.ticket_id != t.id {
            return Err(Error::field("id", "belongs to another ticket's line"));
        }
        return Ok(existing);
    }
    materials_allowed(conn, viewer, &t)?;
    require_version(m.version, &t)?;
    let item = match &m.catalogue_item_id {
        Some(item_id) => Some(
            db::materials::find_item(conn, item_id)?
                .filter(|i| i.site_id == t.site_id)
                .ok_or_else(|| Error::field("catalogue_item_id", "is not in this site's catalogue"))?,
        ),
        None => None,
    };
    let line = material_line(checked, &m, item.as_ref(), &t.id, &viewer.caller.user_id, now)?;
    db::materials::insert_line(conn, &line)?;
    apply(conn, &t, &viewer.caller.user_id, "material_added", None, TicketChanges::default(), added(&line), now)?;
    Ok(line)
}

/// The parts of a new material line checked before anything is read.
struct CheckedMaterial {
    id: String,
    quantity: String,
    quantity_milli: i64,
    supplied_by: SuppliedBy,
}

fn check_material(m: &NewMaterial) -> Result<CheckedMaterial, Error> {
    let mut checks = Checks::default();
    let line_id = checks.take("id", client_id(m.id.as_deref()).map_err(|e| e.detail()));
    let quantity = checks.take("quantity", parse_quantity(&m.quantity));
    let supplied_by = checks
        .take("supplied_by", SuppliedBy::parse(&m.supplied_by).ok_or_else(|| "must be company or resident".to_owned()));
    if let Some(price) = m.unit_price_cents {
        check_price(&mut checks, price);
    }
    checks.finish()?;
    let (Some(id), Some((quantity, quantity_milli)), Some(supplied_by)) = (line_id, quantity, supplied_by) else {
        unreachable!("checked above")
    };
    Ok(CheckedMaterial { id, quantity, quantity_milli, supplied_by })
}

/// The line to write: the body's fields, or the catalogue item's where the body has none.
fn material_line(
    checked: CheckedMaterial,
    m: &NewMaterial,
    item: Option<&db::materials::CatalogueItem>,
    ticket_id: &str,
    author: &str,
    now: NaiveDateTime,
) -> Result<LineRow, Error> {
    let name = text("name", m.name.as_deref().or(item.map(|i| i.name.as_str())), MAX_NAME, true)?.unwrap_or_default();
    let unit = text("unit", m.unit.as_deref().or(item.map(|i| i.unit.as_str())), MAX_UNIT, true)?.unwrap_or_default();
    let unit_price_cents = m
        .unit_price_cents
        .or(item.map(|i| i.default_price_cents))
        .ok_or_else(|| Error::field("unit_price_cents", "is required"))?;
    Ok(LineRow {
        id: checked.id,
        ticket_id: ticket_id.to_owned(),
        catalogue_item_id: item.map(|i| i.id.clone()),
        name,
        spec: text("spec", m.spec.as_deref(), MAX_SPEC, false)?.or(item.and_then(|i| i.spec.clone())),
        model: text("model", m.model.as_deref(), MAX_SPEC, false)?.or(item.and_then(|i| i.model.clone())),
        quantity: checked.quantity,
        quantity_milli: checked.quantity_milli,
        unit,
        unit_price_cents,
        supplied_by: checked.supplied_by.as_str().to_owned(),
        created_by: author.to_owned(),
        created_at: now,
        updated_at: now,
        deleted_at: None,
    })
}

/// A material line as the history keeps it. The history's own shape, written here and nowhere
/// else, so that changing the API's `MaterialLineView` never changes past events; a change of
/// this shape raises `db::events::DATA_VERSION`.
fn line_record(l: &LineRow) -> Value {
    json!({
        "id": l.id,
        "catalogue_item_id": l.catalogue_item_id,
        "name": l.name,
        "spec": l.spec,
        "model": l.model,
        "quantity": l.quantity,
        "unit": l.unit,
        "unit_price_cents": l.unit_price_cents,
        "supplied_by": l.supplied_by,
        "total_cents": line_total_cents(l.quantity_milli, l.unit_price_cents),
        "billable": l.supplied_by == SuppliedBy::Company.as_str(),
        "created_at": l.created_at.and_utc(),
        "updated_at": l.updated_at.and_utc(),
    })
}

/// The `material_added` event's data.
fn added(line: &LineRow) -> Value {
    json!({ "line": line_record(line) })
}

/// Change a material line; the last edit to commit wins and the overwritten values stay in the
/// history. A stale `version` is refused with the line as it stands.
pub fn update_material(
    conn: &mut DbConn,
    viewer: &Viewer,
    id: &str,
    line_id: &str,
    p: MaterialPatch,
    now: NaiveDateTime,
) -> Result<LineRow, Error> {
    let mut checks = Checks::default();
    let quantity = p.quantity.as_deref().and_then(|q| checks.take("quantity", parse_quantity(q)));
    let supplied_by = p.supplied_by.as_deref().and_then(|s| {
        checks.take("supplied_by", SuppliedBy::parse(s).ok_or_else(|| "must be company or resident".to_owned()))
    });
    if let Some(price) = p.unit_price_cents {
        check_price(&mut checks, price);
    }
    checks.finish()?;
    let name = text("name", p.name.as_deref(), MAX_NAME, false)?;
    let unit = text("unit", p.unit.as_deref(), MAX_UNIT, false)?;
    let spec = p.spec.map(|s| text("spec", s.as_deref(), MAX_SPEC, false)).transpose()?;
    let model = p.model.map(|s| text("model", s.as_deref(), MAX_SPEC, false)).transpose()?;
    let t = actable(conn, viewer, id)?;
    let before = db::materials::find_line(conn, line_id)?
        .filter(|l| l.ticket_id == t.id)
        .ok_or_else(|| Error::not_found("material line"))?;
    if before.deleted_at.is_some() {
        // a delete wins over a concurrent edit
        return Err(Error::new(ErrorCode::InvalidTransition, "this material line was removed"));
    }
    materials_allowed(conn, viewer, &t)?;
    if let Err(e) = require_version(p.version, &t) {
        return Err(e.with("current", serde_json::to_value(line_view(before)).unwrap_or(Value::Null)));
    }
    let changes = LineChanges {
        name,
        spec,
        model,
        quantity: quantity.as_ref().map(|q| q.0.clone()),
        quantity_milli: quantity.as_ref().map(|q| q.1),
        unit,
        unit_price_cents: p.unit_price_cents,
        supplied_by: supplied_by.map(|s| s.as_str().to_owned()),
        updated_at: Some(now),
        deleted_at: None,
    };
    db::materials::update_line(conn, line_id, &changes)?;
    let after = db::materials::find_line(conn, line_id)?.ok_or_else(|| Error::not_found("material line"))?;
    let data = json!({ "line_id": line_id, "before": line_record(&before), "after": line_record(&after) });
    apply(conn, &t, &viewer.caller.user_id, "material_updated", None, TicketChanges::default(), data, now)?;
    Ok(after)
}

/// Remove a material line (it stays in the ticket's history). Removing it again is harmless.
pub fn remove_material(
    conn: &mut DbConn,
    viewer: &Viewer,
    id: &str,
    line_id: &str,
    version: Option<i64>,
    now: NaiveDateTime,
) -> Result<(), Error> {
    let t = actable(conn, viewer, id)?;
    let line = db::materials::find_line(conn, line_id)?
        .filter(|l| l.ticket_id == t.id)
        .ok_or_else(|| Error::not_found("material line"))?;
    if line.deleted_at.is_some() {
        return Ok(());
    }
    materials_allowed(conn, viewer, &t)?;
    require_version(version, &t)?;
    let changes = LineChanges { deleted_at: Some(Some(now)), updated_at: Some(now), ..Default::default() };
    db::materials::update_line(conn, line_id, &changes)?;
    let data = json!({ "line_id": line_id, "line": line_record(&line) });
    apply(conn, &t, &viewer.caller.user_id, "material_removed", None, TicketChanges::default(), data, now)?;
    Ok(())
}

/// A note on the ticket (what was found, what the resident said). The same id again is one note.
pub fn add_note(
    conn: &mut DbConn,
    viewer: &Viewer,
    id: &str,
    body: NoteBody,
    device_time: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> Result<NoteRow, Error> {
    let note = note_row(body, id, &viewer.caller.user_id, device_time, now)?;
    let t = actable(conn, viewer, id)?;
    if let Some(existing) = db::sync::find_note(conn, &note.id)? {
        if existing.ticket_id != t.id {
            return Err(Error::field("id", "belongs to another ticket's note"));
        }
        return Ok(existing);
    }
    db::sync::insert_note(conn, &note)?;
    apply(conn, &t, &viewer.caller.user_id, "note_added", None, TicketChanges::default(), noted(&note), now)?;
    Ok(note)
}

fn note_row(
    body: NoteBody,
    ticket_id: &str,
    author: &str,
    device_time: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> Result<NoteRow, Error> {
    Ok(NoteRow {
        id: client_id(body.id.as_deref())?,
        ticket_id: ticket_id.to_owned(),
        author_id: author.to_owned(),
        body: text("note", Some(&body.note), MAX_NOTE, true)?.unwrap_or_default(),
        created_at: now,
        device_time,
    })
}

/// The `note_added` event's data.
fn noted(note: &NoteRow) -> Value {
    json!({ "note_id": note.id, "note": note.body })
}

/// One add of a run given to [`add_many`].
pub enum Add {
    Material(NewMaterial),
    Note(NoteBody, Option<NaiveDateTime>),
}

/// The moment of the `i`-th add of a run starting at `now`: a microsecond apart, so the run keeps
/// its order wherever lines, notes and events are listed by time.
pub fn nth_moment(now: NaiveDateTime, i: usize) -> NaiveDateTime {
    now + Duration::microseconds(i as i64)
}

/// A run of adds to one ticket (a day's material lines and notes, replayed from a phone's queue),
/// written together: the same rows, ticket version and events as [`add_material`] and
/// [`add_note`] one by one, in a few statements; the `i`-th add happens at [`nth_moment`].
/// `None`, having written nothing, when the run can't take that way: a body fails its checks,
/// names a catalogue item or a version, reuses an id, or the ticket refuses the adds. Apply them
/// one by one then: that answers each as usual.
pub fn add_many(
    conn: &mut DbConn,
    viewer: &Viewer,
    id: &str,
    adds: Vec<Add>,
    now: NaiveDateTime,
) -> Result<Option<TicketRow>, Error> {
    let me = viewer.caller.user_id.as_str();
    let (mut lines, mut notes) = (Vec::new(), Vec::new());
    // each add's event, in the order of the run: (type, data, when)
    let mut happened = Vec::with_capacity(adds.len());
    for (i, add) in adds.into_iter().enumerate() {
        let at = nth_moment(now, i);
        match add {
            Add::Material(m) if m.catalogue_item_id.is_none() && m.version.is_none() => {
                let Ok(line) = check_material(&m).and_then(|c| material_line(c, &m, None, id, me, at)) else {
                    return Ok(None);
                };
                happened.push(("material_added", added(&line), at));
                lines.push(line);
            }
            Add::Note(body, device_time) => {
                let Ok(note) = note_row(body, id, me, device_time, at) else { return Ok(None) };
                happened.push(("note_added", noted(&note), at));
                notes.push(note);
            }
            Add::Material(_) => return Ok(None),
        }
    }
    let line_ids: Vec<String> = lines.iter().map(|l| l.id.clone()).collect();
    let note_ids: Vec<String> = notes.iter().map(|n| n.id.clone()).collect();
    let distinct = |ids: &[String]| ids.iter().collect::<std::collections::HashSet<_>>().len() == ids.len();
    if !distinct(&line_ids) || !distinct(&note_ids) {
        return Ok(None);
    }
    let Ok(t) = actable(conn, viewer, id) else { return Ok(None) };
    if !lines.is_empty() && materials_allowed(conn, viewer, &t).is_err() {
        return Ok(None);
    }
    if db::materials::any_line(conn, &line_ids)? || db::sync::any_note(conn, &note_ids)? {
        return Ok(None);
    }
    db::materials::insert_lines(conn, &lines)?;
    db::sync::insert_notes(conn, &notes)?;
    let status = Some(t.status.as_str());
    let events: Vec<_> = happened
        .into_iter()
        .map(|(event_type, data, at)| db::events::NewEvent {
            ticket_id: t.id.clone(),
            site_id: t.site_id.clone(),
            event_type,
            actor_id: Some(me.to_owned()),
            at,
            from_status: status,
            to_status: status,
            data,
        })
        .collect();
    // one version per add, as one by one
    let last = events.last().map_or(now, |e| e.at);
    let changes = TicketChanges { last_activity_at: Some(last), ..Default::default() };
    let changed = db::tickets::update_at_version(conn, &t.id, t.version, &changes, events.len() as i64)?
        .ok_or_else(|| Error::new(ErrorCode::TicketChanged, "the ticket changed meanwhile"))?;
    db::events::append(conn, events)?;
    Ok(Some(changed))
}

/// Work can't go on now (parts missing, longer job): the ticket stays open, on hold.
pub fn hold(
    conn: &mut DbConn,
    viewer: &Viewer,
    id: &str,
    body: HoldBody,
    now: NaiveDateTime,
) -> Result<TicketRow, Error> {
    let HoldBody { reason, note, resume_at } = body;
    let reason = HoldReason::parse(&reason)
        .ok_or_else(|| Error::field("reason", format!("must be one of {}", HoldReason::names())))?;
    let note = text("note", note.as_deref(), super::MAX_MOVE_NOTE, reason == HoldReason::Other)?;
    if resume_at.is_some_and(|r| r.naive_utc() < now) {
        return Err(Error::field("resume_at", "must be in the future"));
    }
    let t = actable(conn, viewer, id)?;
    require_move(&t, viewer, Move::Hold)?;
    let changes = TicketChanges {
        hold_reason: Some(Some(reason.as_str().to_owned())),
        hold_note: Some(note.clone()),
        resume_at: Some(resume_at.map(|r| r.naive_utc())),
        ..Default::default()
    };
    let data = json!({ "reason": reason.as_str(), "note": note, "resume_at": resume_at });
    apply(conn, &t, &viewer.caller.user_id, "held", Some(Status::OnHold), changes, data, now)
}

/// Work goes on.
pub fn resume(conn: &mut DbConn, viewer: &Viewer, id: &str, now: NaiveDateTime) -> Result<TicketRow, Error> {
    let t = actable(conn, viewer, id)?;
    require_move(&t, viewer, Move::Resume)?;
    let changes =
        TicketChanges { hold_reason: Some(None), hold_note: Some(None), resume_at: Some(None), ..Default::default() };
    apply(conn, &t, &viewer.caller.user_id, "resumed", Some(Status::OnSite), changes, json!({}), now)
}

/// The job is done: in-home tickets go to `completed` (and the callback queue); public-area ones
/// to `awaiting_inspection`. A repeat of a job at the same place and trade within 30 days is
/// linked as rework (返修).
pub fn complete(
    conn: &mut DbConn,
    viewer: &Viewer,
    id: &str,
    b: CompleteBody,
    now: NaiveDateTime,
) -> Result<TicketRow, Error> {
    viewer.caller.require(&[Role::Technician])?;
    let mut checks = Checks::default();
    let result = checks.take("result", text("result", Some(&b.result), MAX_RESULT, true).map_err(|e| e.detail()));
    if b.resident_rating.is_some_and(|r| !super::RATING.contains(&r)) {
        checks.fail("resident_rating", "must be 1 to 5");
    }
    if b.fee_collected_cents.is_some_and(|f| !(0..=MAX_CENTS).contains(&f)) {
        checks.fail("fee_collected_cents", format!("must be 0 to {MAX_CENTS}"));
    }
    let signature = match &b.resident_signature_png_base64 {
        Some(raw) => checks.take("resident_signature_png_base64", parse_signature(raw)),
        None => None,
    };
    checks.finish()?;
    let result = result.flatten();
    let t = actable(conn, viewer, id)?;
    require_move(&t, viewer, Move::Complete)?;
    require_accepted_quote(conn, &t)?;
    super::require_bill_within_quote(conn, &t)?;
    let in_home = t.area == Area::InHome.as_str();
    let rework_of = if in_home { db::tickets::rework_candidate(conn, &t, now - Duration::days(30))? } else { None };
    let changes = TicketChanges {
        result: Some(result.clone()),
        resident_rating: Some(b.resident_rating),
        fee_collected_cents: Some(b.fee_collected_cents),
        signature_png: signature.map(Some),
        completed_at: Some(Some(now)),
        rework_of: rework_of.clone().map(Some),
        hold_reason: Some(None),
        hold_note: Some(None),
        resume_at: Some(None),
        ..Default::default()
    };
    let to = if in_home { Status::Completed } else { Status::AwaitingInspection };
    let data = json!({ "result": result, "resident_rating": b.resident_rating,
        "fee_collected_cents": b.fee_collected_cents, "rework_of": rework_of });
    apply(conn, &t, &viewer.caller.user_id, "completed", Some(to), changes, data, now)
}
