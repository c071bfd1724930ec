//! Delivers the push outbox like the SMS outbox ([`super::outbox`]): leases due messages (one
//! worker per message, across instances), sends each to its device's service, and retries with
//! backoff (never sooner than a `Retry-After` asked) until it is taken or the attempts run out.
//! A message about a new ticket in the pool that was taken meanwhile is not sent; a device the
//! service no longer knows is forgotten.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::NaiveDateTime;

use super::{Error, RoundClock};
use crate::config::Settings;
use crate::db::{self, devices::DeviceRow, push::Outcome, push::PushRow, Pool};
use crate::domain::push::{Kind, Provider, Templates};
use crate::domain::ticket::Status;
use crate::push::{OutgoingPush, Providers, SendError};

#[derive(Debug, Clone)]
pub struct PushDelivery {
    /// How often each instance looks for due messages.
    pub every: Duration,
    /// The first retry waits this long; each next one twice as long, up to `max_backoff`.
    pub retry_base: Duration,
    pub max_backoff: Duration,
    /// Attempts before a message is given up (`failed`).
    pub max_attempts: i64,
    /// How long a worker owns a message it is sending; past it another worker may take it over.
    pub lease: chrono::Duration,
    pub templates: Templates,
}

impl Default for PushDelivery {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(1),
            retry_base: Duration::from_secs(5),
            max_backoff: Duration::from_secs(10 * 60),
            max_attempts: 8,
            lease: chrono::Duration::seconds(60),
            templates: Templates::default(),
        }
    }
}

impl From<&Settings> for PushDelivery {
    fn from(s: &Settings) -> Self {
        let defaults = Templates::default();
        let templates = Kind::ALL
            .into_iter()
            .map(|kind| {
                let (title, body) = defaults.0.get(&kind).cloned().unwrap_or_default();
                let set = s.push.templates.get(kind.as_str()).cloned().unwrap_or_default();
                (kind, (set.0.unwrap_or(title), set.1.unwrap_or(body)))
            })
            .collect();
        Self {
            every: s.sms_delivery.every,
            retry_base: s.push.retry_base,
            max_attempts: s.push.max_attempts,
            lease: chrono::Duration::seconds(s.push.lease_secs as i64),
            templates: Templates(templates),
            ..Self::default()
        }
    }
}

pub fn spawn(pool: Pool, providers: Providers, delivery: PushDelivery, stopping: super::Stopping) {
    tokio::spawn(async move {
        let mut ticker = super::Ticker::new(delivery.every, stopping);
        while ticker.next().await {
            if let Err(e) = deliver_due(&pool, &providers, &delivery, db::now()).await {
                tracing::warn!(error = %e, "push delivery round failed");
            }
        }
    });
}

/// One round at `now`: every message due then that this instance can lease is sent once, up to
/// [`super::IN_FLIGHT`] at a time. Returns how many were handed to a service.
pub async fn deliver_due(
    pool: &Pool,
    providers: &Providers,
    delivery: &PushDelivery,
    now: NaiveDateTime,
) -> Result<usize, Error> {
    let clock = RoundClock::starting(now);
    let ids = db::run_with(pool, move |conn| -> Result<_, Error> { Ok(db::push::due(conn, now, 50)?) }).await?;
    super::deliver_each(ids, |id| deliver_one(pool, providers, delivery, clock, id)).await
}

/// Why a leased message is not sent at all, if it is not.
fn not_to_send(row: &PushRow, ticket: Option<&db::tickets::TicketRow>, device: Option<&DeviceRow>) -> Option<Outcome> {
    let stale_pool = row.kind == Kind::PoolAdded.as_str()
        && ticket.is_none_or(|t| t.status != Status::Open || t.pooled_at.is_some_and(|p| p > row.created_at));
    if stale_pool {
        let why = "the ticket left the pool (or came back into it) before this went out";
        return Some(Outcome::finished(db::push::SUPERSEDED, Some(why.into())));
    }
    if device.is_none() {
        return Some(Outcome::finished(db::push::UNREGISTERED, Some("the device was removed".into())));
    }
    if ticket.is_none() {
        return Some(Outcome::finished(db::push::FAILED, Some("the ticket is gone".into())));
    }
    None
}

/// Leases one message and sends it, unless another worker has it or it should not go out any
/// more. Whether it was handed to a service.
async fn deliver_one(
    pool: &Pool,
    providers: &Providers,
    delivery: &PushDelivery,
    clock: RoundClock,
    id: String,
) -> Result<bool, Error> {
    let token = db::new_id();
    let lease = delivery.lease;
    let leased = db::run_with(pool, {
        let token = token.clone();
        move |conn| -> Result<_, Error> {
            let now = clock.now();
            let Some(row) = db::push::lease(conn, &id, &token, now, now + lease)? else { return Ok(None) };
            let ticket = db::tickets::find(conn, &row.ticket_id)?;
            // a token that moved to another user got a new device row: this one is gone
            let device = db::devices::find(conn, &row.device_id)?.filter(|d| d.user_id == row.user_id);
            if let Some(outcome) = not_to_send(&row, ticket.as_ref(), device.as_ref()) {
                db::push::settle(conn, &row.id, &token, &outcome)?;
                return Ok(None);
            }
            Ok(ticket.zip(device).map(|(t, d)| (row, t.number, d)))
        }
    })
    .await?;
    let Some((row, number, device)) = leased else { return Ok(false) };
    let provider = Provider::parse(&row.provider).and_then(|p| providers.for_service(p));
    let result = match provider {
        Some(provider) => provider.send(&outgoing(&row, &number, &device, &delivery.templates)).await,
        None => Err(SendError::Permanent(format!("no {} push service is configured on this server", row.provider))),
    };
    let now = clock.now();
    let delivery = delivery.clone();
    db::run_with(pool, move |conn| {
        db::write_transaction(conn, |conn| settle(conn, &row, &device, &token, &result, &delivery, now))
    })
    .await?;
    Ok(provider.is_some())
}

fn outgoing(row: &PushRow, number: &str, device: &DeviceRow, templates: &Templates) -> OutgoingPush {
    let params: BTreeMap<String, String> = serde_json::from_str(&row.params).unwrap_or_default();
    let kind = Kind::parse(&row.kind).unwrap_or(Kind::PoolAdded);
    let (title, body) = templates.render(kind, &params);
    OutgoingPush {
        id: row.id.clone(),
        token: device.token.clone(),
        platform: device.platform.clone(),
        title,
        body,
        priority: row.priority.clone(),
        collapse_key: row.collapse_key.clone(),
        data: BTreeMap::from([
            ("kind".to_owned(), row.kind.clone()),
            ("ticket_id".to_owned(), row.ticket_id.clone()),
            ("number".to_owned(), number.to_owned()),
        ]),
    }
}

fn settle(
    conn: &mut db::DbConn,
    row: &PushRow,
    device: &DeviceRow,
    token: &str,
    result: &Result<(), SendError>,
    delivery: &PushDelivery,
    now: NaiveDateTime,
) -> Result<(), Error> {
    let outcome = match result {
        Ok(()) => Outcome { sent_at: Some(Some(now)), ..Outcome::finished(db::push::SENT, None) },
        Err(SendError::Retryable { error, retry_after }) if row.attempts < delivery.max_attempts => {
            let backoff = super::backoff(delivery.retry_base, delivery.max_backoff, row.attempts);
            let asked = retry_after.and_then(|w| chrono::Duration::from_std(w).ok()).unwrap_or_default();
            tracing::info!(push_id = %row.id, attempts = row.attempts, %error, "push will be retried");
            Outcome {
                next_attempt_at: Some(now + backoff.max(asked)),
                ..Outcome::finished(db::push::PENDING, Some(error.clone()))
            }
        }
        Err(SendError::Unregistered(error)) => {
            tracing::info!(device_id = %device.id, user_id = %device.user_id, provider = %device.provider, %error,
                "push token unregistered: device removed");
            db::devices::delete(conn, &device.id, None)?;
            Outcome::finished(db::push::UNREGISTERED, Some(error.clone()))
        }
        Err(e) => {
            tracing::warn!(push_id = %row.id, attempts = row.attempts, error = %e, "push given up");
            Outcome { failed_at: Some(Some(now)), ..Outcome::finished(db::push::FAILED, Some(e.to_string())) }
        }
    };
    // our lease ran out and another worker took the message over: its outcome stands
    db::push::settle(conn, &row.id, token, &outcome)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_settings_name_every_kind_and_replace_only_what_they_set() {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names, crate::config::push::PUSH_KINDS);
        let s =
            Settings::from_lookup(|k| (k == "REPAIRDESK_PUSH_BODY_CANCELLED").then(|| "{number} 取消".into())).unwrap();
        let delivery = PushDelivery::from(&s);
        let params = BTreeMap::from([("number".to_owned(), "GY-1".to_owned())]);
        assert_eq!(delivery.templates.render(Kind::Cancelled, &params), ("工单已取消 GY-1".into(), "GY-1 取消".into()));
        assert_eq!(delivery.templates.0.get(&Kind::PoolAdded), Templates::default().0.get(&Kind::PoolAdded));
        let defaults = PushDelivery::default();
        assert_eq!(
            (delivery.every, delivery.retry_base, delivery.max_attempts, delivery.lease),
            (defaults.every, defaults.retry_base, defaults.max_attempts, defaults.lease)
        );
    }
}
