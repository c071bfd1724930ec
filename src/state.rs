//! What handlers and jobs share, and the typed values built once from the plain settings.

use crate::auth::password::Hasher;
use crate::auth::tokens::JwtKeys;
use crate::config::{ClockSettings, Settings};
use crate::db::Pool;
use crate::domain::ticket::Clock;
use crate::jobs::feed::Feed;
use crate::notify::SmsPolicy;

/// What every handler shares.
pub struct AppState {
    pub pool: Pool,
    pub keys: JwtKeys,
    pub hasher: Hasher,
    pub feed: Feed,
    /// Keys the hashes of residents' codes.
    pub code_key: Vec<u8>,
    /// The service levels, from `settings.clock`.
    pub clock: Clock,
    /// The SMS caps and texts, from `settings.sms_policy`.
    pub sms_policy: SmsPolicy,
    /// The push services this instance delivers through (which a device may be registered with).
    pub push_providers: crate::push::Providers,
    pub settings: Settings,
    /// Failures to inject, for tests (none unless configured).
    pub faults: crate::db::faults::Faults,
}

impl AppState {
    /// What the commands need from the settings.
    pub fn commands(&self) -> crate::commands::Ctx {
        crate::commands::Ctx {
            code_key: self.code_key.clone(),
            clock: self.clock,
            max_active_tickets: self.settings.max_active_tickets,
            sms_policy: self.sms_policy.clone(),
        }
    }
}

impl From<ClockSettings> for Clock {
    fn from(s: ClockSettings) -> Self {
        Self {
            claim_timeout: s.claim_timeout,
            arrival: s.arrival,
            emergency_arrival: s.emergency_arrival,
            stalled_after: s.stalled_after,
            matter_reply: s.matter_reply,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::outbox::Delivery;

    #[test]
    fn the_settings_defaults_are_the_types_defaults() {
        let s = Settings::from_lookup(|_| None).unwrap();
        let (clock, default) = (Clock::from(s.clock), Clock::default());
        assert_eq!(
            (clock.claim_timeout, clock.arrival, clock.emergency_arrival, clock.stalled_after, clock.matter_reply),
            (
                default.claim_timeout,
                default.arrival,
                default.emergency_arrival,
                default.stalled_after,
                default.matter_reply
            )
        );
        let (policy, default) = (SmsPolicy::from(&s.sms_policy), SmsPolicy::default());
        assert_eq!(
            (policy.per_phone_daily, policy.daily_budget, policy.codes_per_hour, policy.code_interval_secs),
            (default.per_phone_daily, default.daily_budget, default.codes_per_hour, default.code_interval_secs)
        );
        assert_eq!(
            (policy.templates.arrival_code, policy.templates.quote_code),
            (default.templates.arrival_code, default.templates.quote_code)
        );
        let (delivery, default) = (Delivery::from(&s.sms_delivery), Delivery::default());
        assert_eq!(
            (delivery.every, delivery.retry_base, delivery.max_backoff, delivery.give_up_after, delivery.lease),
            (default.every, default.retry_base, default.max_backoff, default.give_up_after, default.lease)
        );
    }

    #[test]
    fn a_template_set_in_the_environment_replaces_the_built_in_one() {
        let s =
            Settings::from_lookup(|k| (k == "REPAIRDESK_SMS_TEMPLATE_QUOTE_CODE").then(|| "{code}".into())).unwrap();
        let policy = SmsPolicy::from(&s.sms_policy);
        assert_eq!(policy.templates.quote_code, "{code}");
        assert_eq!(policy.templates.arrival_code, SmsPolicy::default().templates.arrival_code);
    }
}
