//! Delivers the SMS outbox: leases due messages (one worker per message, across instances), sends
//! them, and retries with exponential backoff until the gateway takes them or a day has passed.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use serde_json::json;

use super::{Error, RoundClock};
use crate::config::DeliverySettings;
use crate::db::{self, outbox::Outcome, Pool};
use crate::sms::{OutgoingSms, SendError, SmsProvider};

#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    /// How often each instance looks for due messages.
    pub every: Duration,
    /// The first retry waits this long; each next one twice as long, up to `max_backoff`.
    pub retry_base: Duration,
    pub max_backoff: Duration,
    /// After this long undelivered, a message fails and the desk gets an `sms_failed` escalation.
    pub give_up_after: chrono::Duration,
    /// How long a worker owns a message it is sending; past it another worker may take it over.
    pub lease: chrono::Duration,
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(1),
            retry_base: Duration::from_secs(5),
            max_backoff: Duration::from_secs(30 * 60),
            give_up_after: chrono::Duration::hours(24),
            lease: chrono::Duration::seconds(60),
        }
    }
}

impl From<&DeliverySettings> for Delivery {
    fn from(s: &DeliverySettings) -> Self {
        Self { every: s.every, retry_base: s.retry_base, give_up_after: s.give_up_after, ..Self::default() }
    }
}

pub fn spawn(pool: Pool, provider: Arc<dyn SmsProvider>, delivery: Delivery, stopping: super::Stopping) {
    tokio::spawn(async move {
        let mut ticker = super::Ticker::new(delivery.every, stopping);
        while ticker.next().await {
            if let Err(e) = deliver_due(&pool, provider.as_ref(), &delivery, db::now()).await {
                tracing::warn!(error = %e, "SMS delivery round failed");
            }
        }
    });
}

/// One round at `now`: every message due then that this instance can lease is sent once, up to
/// [`super::IN_FLIGHT`] at a time. Returns how many were tried.
pub async fn deliver_due(
    pool: &Pool,
    provider: &dyn SmsProvider,
    delivery: &Delivery,
    now: NaiveDateTime,
) -> Result<usize, Error> {
    let clock = RoundClock::starting(now);
    let ids = db::run_with(pool, move |conn| -> Result<_, Error> { Ok(db::outbox::due(conn, now, 50)?) }).await?;
    super::deliver_each(ids, |id| deliver_one(pool, provider, delivery, clock, id)).await
}

/// Leases one message and sends it, unless another worker has it or a newer code replaced it.
/// Whether it was tried.
async fn deliver_one(
    pool: &Pool,
    provider: &dyn SmsProvider,
    delivery: &Delivery,
    clock: RoundClock,
    id: String,
) -> Result<bool, Error> {
    let token = db::new_id();
    let lease = delivery.lease;
    let leased = db::run_with(pool, {
        let token = token.clone();
        move |conn| -> Result<_, Error> {
            let now = clock.now();
            let Some(row) = db::outbox::lease(conn, &id, &token, now, now + lease)? else { return Ok(None) };
            if db::outbox::has_newer(conn, &row)? {
                // a retry or a lost lease of a code that was replaced meanwhile
                db::outbox::settle(conn, &row.id, &token, &db::outbox::superseded(&row.template))?;
                return Ok(None);
            }
            Ok(Some(row))
        }
    })
    .await?;
    let Some(row) = leased else { return Ok(false) };
    let message = OutgoingSms {
        id: row.id.clone(),
        to: row.to_phone.clone(),
        text: row.body.clone(),
        template: row.template.clone(),
        params: serde_json::from_str(&row.params).unwrap_or_default(),
    };
    let result = provider.send(&message).await;
    let now = clock.now();
    let provider_name = provider.name().to_owned();
    let delivery = *delivery;
    db::run_with(pool, move |conn| {
        db::write_transaction(conn, |conn| settle(conn, &row, &token, &provider_name, &result, &delivery, now))
    })
    .await?;
    Ok(true)
}

fn settle(
    conn: &mut db::DbConn,
    row: &db::outbox::OutboxRow,
    token: &str,
    provider: &str,
    result: &Result<crate::sms::Accepted, SendError>,
    delivery: &Delivery,
    now: NaiveDateTime,
) -> Result<(), Error> {
    let scrubbed = || (Some("{}".to_owned()), Some(format!("[{} delivered or abandoned]", row.template)));
    let (outcome, event) = match result {
        Ok(accepted) => {
            let (params, body) = scrubbed();
            let outcome = Outcome {
                status: Some(db::outbox::SENT.into()),
                lease_token: Some(None),
                lease_until: Some(None),
                provider: Some(Some(provider.into())),
                provider_message_id: Some(accepted.provider_message_id.clone()),
                provider_status: Some(accepted.status.clone()),
                last_error: Some(None),
                sent_at: Some(Some(now)),
                params,
                body,
                ..Default::default()
            };
            let data = json!({ "outbox_id": row.id, "template": row.template, "provider": provider,
                "provider_message_id": accepted.provider_message_id, "provider_status": accepted.status });
            (outcome, Some(("sms_sent", data)))
        }
        Err(SendError::Retryable(error)) if now - row.created_at < delivery.give_up_after => {
            tracing::info!(outbox_id = %row.id, attempts = row.attempts, %error, "SMS will be retried");
            let outcome = Outcome {
                status: Some(db::outbox::PENDING.into()),
                next_attempt_at: Some(now + super::backoff(delivery.retry_base, delivery.max_backoff, row.attempts)),
                lease_token: Some(None),
                lease_until: Some(None),
                provider: Some(Some(provider.into())),
                last_error: Some(Some(error.clone())),
                ..Default::default()
            };
            (outcome, None)
        }
        Err(e) => {
            tracing::warn!(outbox_id = %row.id, error = %e, "SMS given up");
            let (params, body) = scrubbed();
            let outcome = Outcome {
                status: Some(db::outbox::FAILED.into()),
                lease_token: Some(None),
                lease_until: Some(None),
                provider: Some(Some(provider.into())),
                last_error: Some(Some(e.to_string())),
                failed_at: Some(Some(now)),
                params,
                body,
                ..Default::default()
            };
            let data = json!({ "outbox_id": row.id, "template": row.template, "error": e.to_string() });
            (outcome, Some(("sms_failed", data)))
        }
    };
    // the ticket before the message's row, as every writer takes them (the lock order, `db`
    // module doc): a resent code holds the ticket while it supersedes the ticket's messages
    if let Some(ticket_id) = row.ticket_id.as_deref() {
        db::tickets::lock(conn, &[ticket_id])?;
    }
    if !db::outbox::settle(conn, &row.id, token, &outcome)? {
        // our lease ran out and another worker took the message over: its outcome stands
        return Ok(());
    }
    let (Some((event_type, data)), Some(ticket_id)) = (event, row.ticket_id.as_deref()) else { return Ok(()) };
    let Some(ticket) = db::tickets::find(conn, ticket_id)? else { return Ok(()) };
    if event_type == "sms_failed" {
        db::escalations::record(conn, &ticket, "sms_failed", &row.id, data.clone(), now)?;
    }
    db::events::append(
        conn,
        vec![db::events::NewEvent {
            ticket_id: ticket.id.clone(),
            site_id: ticket.site_id.clone(),
            event_type,
            actor_id: None,
            at: now,
            from_status: None,
            to_status: None,
            data,
        }],
    )?;
    Ok(())
}
