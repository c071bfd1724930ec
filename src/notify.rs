//! What the resident is sent: codes to give back (at the door, for a quote), queued in the SMS
//! outbox inside the transaction of the change that causes them.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDateTime};
use serde_json::json;

use crate::config::SmsPolicySettings;
use crate::db::{self, outbox::OutboxRow, tickets::TicketRow, DbConn};
use crate::domain::code::{self, Purpose};
use crate::domain::messages::{render, Templates};
use crate::error::{ApiError, ErrorCode};

/// Limits that stop SMS pumping, and the texts.
#[derive(Debug, Clone)]
pub struct SmsPolicy {
    /// Messages to one number in 24 hours.
    pub per_phone_daily: i64,
    /// Messages to anyone in 24 hours.
    pub daily_budget: i64,
    /// Codes for one ticket: at most this many an hour...
    pub codes_per_hour: i64,
    /// ...and this far apart.
    pub code_interval_secs: i64,
    pub templates: Templates,
}

impl SmsPolicy {
    /// A ticket's own messages in 24 hours stay below both daily caps, so whatever is done on one
    /// ticket, its resident's number and the budget keep room for the next ticket's code.
    pub fn per_ticket_daily(&self) -> i64 {
        self.per_phone_daily.min(self.daily_budget) - 1
    }
}

impl Default for SmsPolicy {
    fn default() -> Self {
        Self {
            per_phone_daily: 10,
            daily_budget: 5000,
            codes_per_hour: 3,
            code_interval_secs: 60,
            templates: Templates::default(),
        }
    }
}

impl From<&SmsPolicySettings> for SmsPolicy {
    fn from(s: &SmsPolicySettings) -> Self {
        let defaults = Templates::default();
        Self {
            per_phone_daily: s.per_phone_daily,
            daily_budget: s.daily_budget,
            codes_per_hour: s.codes_per_hour,
            code_interval_secs: s.code_interval_secs,
            templates: Templates {
                arrival_code: s.arrival_code_template.clone().unwrap_or(defaults.arrival_code),
                quote_code: s.quote_code_template.clone().unwrap_or(defaults.quote_code),
                appointment: s.appointment_template.clone().unwrap_or(defaults.appointment),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Queued {
    /// The outbox id of the message.
    Queued(String),
    /// Not sent: a cap was hit, and the desk was told by an escalation.
    Capped(&'static str),
    /// The ticket has no phone to send to.
    NoPhone,
}

/// A code to send: what it is for, the template that carries it, and the template's other values.
pub struct CodeSms<'a> {
    pub purpose: Purpose,
    pub template: &'a str,
    pub extra: &'a [(&'a str, String)],
    /// The ticket was created in this transaction: it has no earlier code or message to limit,
    /// replace or supersede.
    pub first: bool,
    /// The ticket's number was just corrected: the limits on codes sent to the old number do not
    /// hold back the first one to the new number (the daily caps still do).
    pub new_number: bool,
}

/// Whether a new code of `template` may go out for `ticket` now: at most
/// [`SmsPolicy::codes_per_hour`] an hour, [`SmsPolicy::code_interval_secs`] apart, and in all
/// fewer a day than [`SmsPolicy::per_ticket_daily`] allows. Refused: `429 sms_rate_limited` with
/// the seconds to wait.
pub fn code_rate_limit(
    conn: &mut DbConn,
    policy: &SmsPolicy,
    ticket_id: &str,
    template: &str,
    now: NaiveDateTime,
) -> Result<(), ApiError> {
    let limited = |detail: String, wait: i64| {
        Err(ApiError::new(ErrorCode::SmsRateLimited, detail).retry_after(wait.max(1) as u64))
    };
    let sends = db::outbox::ticket_sends_since(conn, ticket_id, template, now - Duration::hours(1))?;
    if let Some(last) = sends.first() {
        let wait = policy.code_interval_secs - (now - *last).num_seconds();
        if wait > 0 {
            return limited(format!("codes go out at most every {} seconds", policy.code_interval_secs), wait);
        }
    }
    if sends.len() as i64 >= policy.codes_per_hour {
        let oldest = sends.last().copied().unwrap_or(now);
        let detail = format!("at most {} codes an hour per ticket", policy.codes_per_hour);
        return limited(detail, (oldest + Duration::hours(1) - now).num_seconds());
    }
    let day = db::outbox::ticket_counted_since(conn, ticket_id, template, now - Duration::hours(24))?;
    let allowed = policy.per_ticket_daily();
    // a ticket's first message is never held back here; the caps in [`enqueue`] still apply
    if !day.is_empty() && day.len() as i64 >= allowed {
        // the wait until enough of them leave the 24-hour window
        let frees = day.get(day.len() - allowed.max(0) as usize).copied().unwrap_or(now);
        let detail = format!("at most {allowed} messages a day per ticket, below the number's daily cap");
        return limited(detail, (frees + Duration::hours(24) - now).num_seconds());
    }
    Ok(())
}

/// Makes a new code (replacing any earlier one for the same purpose: only the newest works) and
/// queues the SMS carrying it to the number stored on the ticket. `key` keys the code's hash.
/// Refused by [`code_rate_limit`] when codes for the ticket went out too often. Wrong tries at
/// a quote code carry over to the new one: re-quoting never buys more guesses.
pub fn issue_code(
    conn: &mut DbConn,
    key: &[u8],
    policy: &SmsPolicy,
    ticket: &TicketRow,
    site_name: &str,
    sms: CodeSms<'_>,
    now: NaiveDateTime,
) -> Result<Queued, ApiError> {
    if ticket.reporter_phone.is_none() {
        return Ok(Queued::NoPhone);
    }
    if !sms.first && !sms.new_number {
        code_rate_limit(conn, policy, &ticket.id, sms.template, now)?;
    }
    let code = code::new_code();
    let row = db::codes::CodeRow {
        ticket_id: ticket.id.clone(),
        purpose: sms.purpose.as_str().to_owned(),
        code_hash: code::hash_code(key, &ticket.id, sms.purpose, &code),
        failed_attempts: 0,
        expires_at: now + code::MAX_LIFETIME,
        used_at: None,
        created_at: now,
    };
    if sms.first {
        db::codes::insert(conn, &row)?;
    } else {
        db::codes::replace(conn, &row, sms.purpose == Purpose::Quote)?;
    }
    let mut params: BTreeMap<String, String> =
        [("site", site_name.to_owned()), ("number", ticket.number.clone()), ("code", code)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
    for (k, v) in sms.extra {
        params.insert((*k).to_owned(), v.clone());
    }
    if !sms.first {
        // an earlier code still waiting in the outbox no longer works: it must not arrive after this one
        db::outbox::supersede(conn, &ticket.id, sms.template, now)?;
    }
    enqueue(conn, policy, ticket, sms.template, params, now)
}

/// Queues one message to the ticket's own number, unless a cap says no.
pub fn enqueue(
    conn: &mut DbConn,
    policy: &SmsPolicy,
    ticket: &TicketRow,
    template: &str,
    params: BTreeMap<String, String>,
    now: NaiveDateTime,
) -> Result<Queued, ApiError> {
    // only ever the number stored on the ticket, never one from a request
    let Some(phone) = ticket.reporter_phone.clone() else { return Ok(Queued::NoPhone) };
    let since = now - Duration::hours(24);
    let capped = if db::outbox::count_since(conn, Some(&phone), since)? >= policy.per_phone_daily {
        Some("per_phone_daily_cap")
    } else if db::outbox::count_since(conn, None, since)? >= policy.daily_budget {
        Some("daily_budget")
    } else {
        None
    };
    if let Some(cap) = capped {
        tracing::warn!(ticket_id = %ticket.id, cap, "SMS not sent: cap reached");
        let occurrence = format!("{cap}:{}", now.format("%Y%m%d"));
        let data = json!({ "reason": cap, "template": template });
        db::escalations::record(conn, ticket, "sms_failed", &occurrence, data, now)?;
        return Ok(Queued::Capped(cap));
    }
    let id = db::new_id();
    db::outbox::insert(
        conn,
        &OutboxRow {
            id: id.clone(),
            ticket_id: Some(ticket.id.clone()),
            to_phone: phone,
            template: template.to_owned(),
            body: render(policy.templates.text(template), &params),
            params: serde_json::to_string(&params).map_err(ApiError::internal)?,
            status: db::outbox::PENDING.to_owned(),
            attempts: 0,
            next_attempt_at: now,
            lease_token: None,
            lease_until: None,
            provider: None,
            provider_message_id: None,
            provider_status: None,
            last_error: None,
            created_at: now,
            sent_at: None,
            failed_at: None,
        },
    )?;
    Ok(Queued::Queued(id))
}
