//! Push notifications to technicians' phones: the messages a change of a ticket sets off
//! ([`announce`], called where every change is written: [`super::apply`] and ticket creation),
//! the phones registered for them, and whether a technician is on duty.

use chrono::NaiveDateTime;
use serde::Deserialize;
use utoipa::ToSchema;

use super::error::Error;
use crate::db::{self, devices::DeviceRow, push::PushRow, tickets::TicketRow, users::UserRecord, DbConn};
use crate::domain::push::{self as rules, Audience, Kind, Platform, Provider, Seen};
use crate::domain::ticket::Urgency;
use crate::error::{ApiError, FieldError};

/// Queues the messages that `event` (by `actor`, from `before` to `after`; no `before`: the
/// ticket was just registered) sets off, one per device of each technician told, in the
/// transaction of the change. The ticket is locked (or new) in it; the messages are its rows.
pub fn announce(
    conn: &mut DbConn,
    before: Option<&TicketRow>,
    after: &TicketRow,
    actor: &str,
    event: &str,
    now: NaiveDateTime,
) -> Result<(), Error> {
    fn seen(t: &TicketRow) -> Seen<'_> {
        Seen { status: t.status, assignee_id: t.assignee_id.as_deref(), category: &t.category }
    }
    let notices = rules::notices(event, actor, before.map(seen), seen(after));
    if notices.is_empty() {
        return Ok(());
    }
    let emergency = after.urgency == Urgency::Emergency.as_str();
    let params = rules::params(&after.number, &after.location, emergency, event);
    let params = serde_json::to_string(&params).map_err(Error::internal)?;
    let mut rows = Vec::new();
    for notice in notices {
        let devices = match &notice.to {
            Audience::Pool { except } => {
                let pool = db::devices::Audience::Pool { site_id: &after.site_id, trade: &after.category };
                let mut devices = db::devices::reaching(conn, pool)?;
                devices.retain(|d| Some(&d.user_id) != except.as_ref());
                devices
            }
            Audience::User(user) => {
                db::devices::reaching(conn, db::devices::Audience::Users(std::slice::from_ref(user)))?
            }
        };
        rows.extend(devices.into_iter().map(|d| message(notice.kind, d, after, emergency, &params, now)));
    }
    Ok(db::push::insert(conn, &rows)?)
}

fn message(kind: Kind, device: DeviceRow, t: &TicketRow, emergency: bool, params: &str, now: NaiveDateTime) -> PushRow {
    PushRow {
        id: db::new_id(),
        ticket_id: t.id.clone(),
        collapse_key: rules::collapse_key(kind, &device.user_id),
        user_id: device.user_id,
        device_id: device.id,
        kind: kind.as_str().to_owned(),
        priority: if emergency { "high" } else { "normal" }.to_owned(),
        params: params.to_owned(),
        status: db::push::PENDING.to_owned(),
        attempts: 0,
        next_attempt_at: now,
        lease_token: None,
        lease_until: None,
        provider: device.provider,
        last_error: None,
        created_at: now,
        sent_at: None,
        failed_at: None,
    }
}

#[derive(Clone, Deserialize, ToSchema)]
pub struct DeviceBody {
    /// The push service the token is from; only those this server is configured for are taken.
    #[schema(value_type = Provider)]
    pub provider: String,
    /// The token (registration id) the push service gave the app.
    #[schema(min_length = 1, max_length = 4096, pattern = r"^[!-~]+$")]
    pub token: String,
    #[schema(value_type = Platform)]
    pub platform: String,
    /// The app's version, for support.
    #[schema(min_length = 1, max_length = 50, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub app_version: Option<String>,
}

/// Register the caller's phone for push notifications. A token already registered by the caller
/// is refreshed; one registered by someone else moves to the caller (a phone shared between
/// shifts): the other user's phone hears nothing more. A user keeps at most
/// [`rules::MAX_DEVICES_PER_USER`] devices; another forgets the least recently registered.
/// `accepted`: the services this server delivers through.
pub fn register_device(
    conn: &mut DbConn,
    user_id: &str,
    accepted: &[Provider],
    body: DeviceBody,
    now: NaiveDateTime,
) -> Result<DeviceRow, Error> {
    let mut errors = Vec::new();
    let names = |all: &[&str]| all.join(", ");
    let provider = match Provider::parse(body.provider.trim()) {
        Some(p) if accepted.contains(&p) => Some(p),
        Some(p) => {
            let taken = names(&accepted.iter().map(|a| a.as_str()).collect::<Vec<_>>());
            let taken = if taken.is_empty() { "none".to_owned() } else { taken };
            errors.push(FieldError::new(
                "provider",
                format!("{} is not configured on this server (it takes: {taken})", p.as_str()),
            ));
            None
        }
        None => {
            let all: Vec<&str> = Provider::ALL.iter().map(|p| p.as_str()).collect();
            errors.push(FieldError::new("provider", format!("must be one of {}", names(&all))));
            None
        }
    };
    let platform = Platform::parse(body.platform.trim());
    if platform.is_none() {
        errors.push(FieldError::new("platform", "must be android or ios"));
    }
    let token = rules::parse_token(&body.token).map_err(|m| errors.push(FieldError::new("token", m))).ok();
    let app_version = match super::text("app_version", body.app_version.as_deref(), rules::MAX_APP_VERSION, false) {
        Ok(v) => v,
        Err(e) => {
            errors.extend(e.fields().iter().cloned());
            None
        }
    };
    if body.app_version.is_some() && app_version.is_none() && errors.iter().all(|e| e.field != "app_version") {
        errors.push(FieldError::new("app_version", "must not be blank"));
    }
    let (Some(provider), Some(platform), Some(token), true) = (provider, platform, token, errors.is_empty()) else {
        return Err(Error::validation(errors));
    };
    if let Some(existing) = db::devices::find_by_token(conn, provider.as_str(), &token)? {
        if existing.user_id == user_id {
            db::devices::refresh(conn, &existing.id, platform.as_str(), app_version.as_deref(), now)?;
            return db::devices::find(conn, &existing.id)?.ok_or_else(|| Error::not_found("device"));
        }
        tracing::info!(device_id = %existing.id, from = %existing.user_id, to = %user_id, "push token moved to another user");
        db::devices::delete(conn, &existing.id, None)?;
    }
    let mine = db::devices::of_user(conn, user_id)?;
    for old in mine.iter().skip(rules::MAX_DEVICES_PER_USER - 1) {
        db::devices::delete(conn, &old.id, Some(user_id))?;
    }
    let row = DeviceRow {
        id: db::new_id(),
        user_id: user_id.to_owned(),
        provider: provider.as_str().to_owned(),
        token,
        platform: platform.as_str().to_owned(),
        app_version,
        created_at: now,
        updated_at: now,
    };
    if !db::devices::insert(conn, &row)? {
        // another registration of the same token committed since we looked: send it again
        return Err(Error::Server(ApiError::database_busy("a push token was registered twice at once")));
    }
    Ok(row)
}

/// The caller's registered devices, most recently registered first.
pub fn devices(conn: &mut DbConn, user_id: &str) -> Result<Vec<DeviceRow>, Error> {
    Ok(db::devices::of_user(conn, user_id)?)
}

/// Forget one of the caller's devices (the app logs out, or is removed): nothing more is pushed
/// to it, including messages still waiting.
pub fn remove_device(conn: &mut DbConn, user_id: &str, id: &str) -> Result<(), Error> {
    if !db::devices::delete(conn, id, Some(user_id))? {
        return Err(Error::not_found("device"));
    }
    Ok(())
}

#[derive(Clone, Deserialize, ToSchema)]
pub struct DutyBody {
    /// `false`: no new tickets in the caller's pool are pushed to their phones until it is `true`
    /// again; what concerns their own tickets still is.
    pub on_duty: bool,
}

/// Go on or off duty; answers the caller as they now stand.
pub fn set_duty(conn: &mut DbConn, user_id: &str, body: DutyBody, now: NaiveDateTime) -> Result<UserRecord, Error> {
    let changes = db::users::UserChanges { on_duty: Some(body.on_duty), updated_at: Some(now), ..Default::default() };
    db::users::update(conn, user_id, &changes)?;
    db::users::find(conn, user_id)?.ok_or_else(|| Error::not_found("user"))
}
