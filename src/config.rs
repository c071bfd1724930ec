//! Typed settings from the environment, read and checked once at start: plain values (numbers,
//! durations, strings, secrets). This module depends on nothing else in the crate; the modules
//! that use a setting build their own types from it (`notify::SmsPolicy::from`,
//! `jobs::outbox::Delivery::from`, `sms::build_provider`, the dispatch `Clock` in `state`).

pub mod push;
pub mod sms;

use std::net::IpAddr;
use std::path::PathBuf;

use chrono::Duration;

pub use push::PushSettings;
pub use sms::{ProviderSettings, SmsSettings};

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub addr: String,
    pub jwt_secret: Option<Secret>,
    pub admin_password: Option<Secret>,
    /// Peers whose `X-Forwarded-For` is believed (the load balancers in front of us).
    pub trusted_proxies: Vec<IpAddr>,
    pub access_token_ttl_secs: i64,
    pub refresh_token_ttl_secs: i64,
    pub db_pool_size: u32,
    /// The dispatch clock's service levels; `scan_interval_secs` is how often they are checked.
    pub clock: ClockSettings,
    pub scan_interval_secs: u64,
    /// Tickets a technician may hold at once (assigned, on site, on hold).
    pub max_active_tickets: i64,
    pub sse_heartbeat_secs: u64,
    /// Caps against SMS pumping, and the message texts.
    pub sms_policy: SmsPolicySettings,
    /// How the outbox retries and when it gives up.
    pub sms_delivery: DeliverySettings,
    /// Which gateway sends SMS, and its credentials.
    pub sms: SmsSettings,
    /// Which services push to phones, the push outbox's retries, and the texts.
    pub push: PushSettings,
    /// HTTP worker threads; defaults to the number of cores.
    pub workers: usize,
    pub log_json: bool,
    /// Testing only: fail pushes at this operation number, this many times (off when `None`).
    pub fault_push_op: Option<(i64, u32)>,
}

/// Where the data lives, parsed from `DATABASE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("DATABASE_URL sqlite:// needs a file path, e.g. sqlite://./data/repairdesk.db".into());
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        Err(format!(
            "DATABASE_URL must start with sqlite:// or postgres://, got {:?}",
            url.split("://").next().unwrap_or_default()
        ))
    }

    pub fn engine(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// How long the dispatch clock lets each step take before it escalates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSettings {
    pub claim_timeout: Duration,
    pub arrival: Duration,
    pub emergency_arrival: Duration,
    pub stalled_after: Duration,
    /// A matter (报事) left without its department's reply this long escalates.
    pub matter_reply: Duration,
}

/// Caps against SMS pumping, and the texts sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsPolicySettings {
    pub per_phone_daily: i64,
    pub daily_budget: i64,
    pub codes_per_hour: i64,
    pub code_interval_secs: i64,
    /// The door code text; `None` keeps the built-in one.
    pub arrival_code_template: Option<String>,
    /// The quote text; `None` keeps the built-in one.
    pub quote_code_template: Option<String>,
    /// The text telling the resident a new appointment time; `None` keeps the built-in one.
    pub appointment_template: Option<String>,
}

/// How the SMS outbox retries and when it gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliverySettings {
    pub every: std::time::Duration,
    pub retry_base: std::time::Duration,
    pub give_up_after: Duration,
}

/// A value that prints as `[redacted]`, so secrets never reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/repairdesk.db";
pub const MAX_ACCESS_TOKEN_TTL_SECS: i64 = 15 * 60;

impl Settings {
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads every setting through `get`, so tests can feed a map instead of the process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let database_url = DatabaseUrl::parse(&get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into()))?;
        let jwt_secret = get("REPAIRDESK_JWT_SECRET").map(Secret::new);
        if let Some(secret) = &jwt_secret {
            if secret.expose().len() < 32 {
                return Err("REPAIRDESK_JWT_SECRET must be at least 32 bytes".into());
            }
        }
        let trusted_proxies = match get("REPAIRDESK_TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|s| s.trim().parse::<IpAddr>())
                .collect::<Result<_, _>>()
                .map_err(|e| format!("REPAIRDESK_TRUSTED_PROXIES: {e}"))?,
        };
        let access_token_ttl_secs = number(&get, "REPAIRDESK_ACCESS_TOKEN_TTL_SECS", 900)?;
        if !(1..=MAX_ACCESS_TOKEN_TTL_SECS).contains(&access_token_ttl_secs) {
            return Err("REPAIRDESK_ACCESS_TOKEN_TTL_SECS must be between 1 and 900".into());
        }
        let refresh_token_ttl_secs = number(&get, "REPAIRDESK_REFRESH_TOKEN_TTL_SECS", 30 * 24 * 3600)?;
        let db_pool_size = number(&get, "REPAIRDESK_DB_POOL_SIZE", 10)?;
        if db_pool_size < 1 {
            return Err("REPAIRDESK_DB_POOL_SIZE must be at least 1".into());
        }
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2) as i64;
        let workers = number(&get, "REPAIRDESK_WORKERS", cores)?;
        if !(1..=256).contains(&workers) {
            return Err("REPAIRDESK_WORKERS must be between 1 and 256".into());
        }
        let positive = |name: &str, default: i64| -> Result<i64, String> {
            let v = number(&get, name, default)?;
            if v < 1 {
                return Err(format!("{name} must be at least 1"));
            }
            Ok(v)
        };
        let clock = ClockSettings {
            claim_timeout: Duration::seconds(positive("REPAIRDESK_CLAIM_TIMEOUT_SECS", 300)?),
            arrival: Duration::minutes(positive("REPAIRDESK_ARRIVAL_MINUTES", 20)?),
            emergency_arrival: Duration::minutes(positive("REPAIRDESK_EMERGENCY_ARRIVAL_MINUTES", 10)?),
            stalled_after: Duration::seconds(positive("REPAIRDESK_STALLED_SECS", 2 * 3600)?),
            matter_reply: Duration::hours(positive("REPAIRDESK_MATTER_REPLY_HOURS", 24)?),
        };
        let sms_policy = SmsPolicySettings {
            per_phone_daily: positive("REPAIRDESK_SMS_DAILY_PER_PHONE", 10)?,
            daily_budget: positive("REPAIRDESK_SMS_DAILY_BUDGET", 5000)?,
            codes_per_hour: positive("REPAIRDESK_SMS_CODES_PER_HOUR", 3)?,
            code_interval_secs: positive("REPAIRDESK_SMS_CODE_INTERVAL_SECS", 60)?,
            arrival_code_template: get("REPAIRDESK_SMS_TEMPLATE_ARRIVAL_CODE"),
            quote_code_template: get("REPAIRDESK_SMS_TEMPLATE_QUOTE_CODE"),
            appointment_template: get("REPAIRDESK_SMS_TEMPLATE_APPOINTMENT"),
        };
        let sms_delivery = DeliverySettings {
            every: std::time::Duration::from_millis(positive("REPAIRDESK_OUTBOX_INTERVAL_MS", 1000)? as u64),
            retry_base: std::time::Duration::from_millis(positive("REPAIRDESK_SMS_RETRY_BASE_MS", 5000)? as u64),
            give_up_after: Duration::seconds(positive("REPAIRDESK_SMS_GIVE_UP_SECS", 24 * 3600)?),
        };
        let sms = SmsSettings::from_lookup(|name| get(name))?;
        let push = PushSettings::from_lookup(|name| get(name))?;
        let fault_push_op = match get("REPAIRDESK_FAULT_PUSH_OP") {
            None => None,
            Some(_) => Some((
                positive("REPAIRDESK_FAULT_PUSH_OP", 1)?,
                u32::try_from(positive("REPAIRDESK_FAULT_PUSH_TIMES", 1)?)
                    .map_err(|_| "REPAIRDESK_FAULT_PUSH_TIMES is too large".to_owned())?,
            )),
        };
        Ok(Self {
            sms,
            push,
            sms_policy,
            sms_delivery,
            clock,
            scan_interval_secs: positive("REPAIRDESK_SCAN_INTERVAL_SECS", 10)? as u64,
            max_active_tickets: positive("REPAIRDESK_MAX_ACTIVE_TICKETS", 5)?,
            sse_heartbeat_secs: positive("REPAIRDESK_SSE_HEARTBEAT_SECS", 15)? as u64,
            database_url,
            addr: get("REPAIRDESK_ADDR").unwrap_or_else(|| "127.0.0.1:8080".into()),
            jwt_secret,
            admin_password: get("REPAIRDESK_ADMIN_PASSWORD").map(Secret::new),
            trusted_proxies,
            access_token_ttl_secs,
            refresh_token_ttl_secs,
            db_pool_size: db_pool_size as u32,
            workers: workers as usize,
            log_json: get("REPAIRDESK_LOG_FORMAT").as_deref() == Some("json"),
            fault_push_op,
        })
    }
}

fn number(get: &impl Fn(&str) -> Option<String>, name: &str, default: i64) -> Result<i64, String> {
    match get(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| format!("{name} must be a whole number, got {v:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_need_nothing() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.addr, "127.0.0.1:8080");
        assert!(matches!(s.database_url, DatabaseUrl::Sqlite(_)));
        assert_eq!(s.access_token_ttl_secs, 900);
    }

    #[test]
    fn bad_values_are_refused_with_their_name() {
        assert!(settings(&[("DATABASE_URL", "mysql://x")]).unwrap_err().contains("DATABASE_URL"));
        assert!(settings(&[("REPAIRDESK_JWT_SECRET", "short")]).unwrap_err().contains("32 bytes"));
        assert!(settings(&[("REPAIRDESK_ACCESS_TOKEN_TTL_SECS", "3600")]).is_err());
        assert!(settings(&[("REPAIRDESK_TRUSTED_PROXIES", "nope")]).is_err());
    }

    #[test]
    fn urls_pick_the_engine_and_refuse_the_rest() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://./data/x.db").unwrap(),
            DatabaseUrl::Sqlite(PathBuf::from("./data/x.db"))
        );
        assert!(matches!(DatabaseUrl::parse("postgres://u@h/db"), Ok(DatabaseUrl::Postgres(_))));
        assert!(matches!(DatabaseUrl::parse("postgresql://u@h/db"), Ok(DatabaseUrl::Postgres(_))));
        assert!(DatabaseUrl::parse("mysql://u@h/db").is_err());
        assert!(DatabaseUrl::parse("./x.db").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
    }

    #[test]
    fn secrets_never_print() {
        let s = settings(&[("REPAIRDESK_JWT_SECRET", "0123456789abcdef0123456789abcdef!")]).unwrap();
        assert!(!format!("{s:?}").contains("0123456789abcdef"));
    }
}
