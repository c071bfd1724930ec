//! Pushing to technicians' phones: one trait, one file per service. Messages reach a provider
//! only through the push outbox worker (`jobs::push`), which retries what a provider calls
//! retryable, after at least the wait the service asked for.

pub mod apns;
pub mod fcm;
pub mod jpush;
pub mod log;
pub mod webhook;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::Serialize;

impl OutgoingPush {
    /// The data the app gets: ours (`kind`, `ticket_id`, `number`), and the message's id as
    /// `push_id`, the same on every attempt, so the app (and a test's stub) can drop a copy it
    /// already has: a message sent again after an instance died mid-delivery.
    pub fn data_with_id(&self) -> BTreeMap<String, String> {
        let mut data = self.data.clone();
        data.insert("push_id".to_owned(), self.id.clone());
        data
    }
}

/// The settings `build_providers` takes, read from the environment by `config`.
pub use crate::config::push::PushSettings;
use crate::domain::push::Provider;

/// One message as the outbox hands it to a provider. `id` is stable across retries.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OutgoingPush {
    pub id: String,
    /// The device's token, as the push service gave it to the app.
    pub token: String,
    /// `android` or `ios`.
    pub platform: String,
    pub title: String,
    pub body: String,
    /// `high` (an emergency: sound, wake the phone) or `normal`.
    pub priority: String,
    /// Messages with the same key replace each other on the phone.
    pub collapse_key: String,
    /// What the app opens: `{kind, ticket_id, number}`.
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Worth trying again: timeouts, connection errors, 429, 5xx; `retry_after` is the wait the
    /// service asked for, if it did.
    Retryable { error: String, retry_after: Option<Duration> },
    /// Will never succeed as sent: bad credentials, a malformed message.
    Permanent(String),
    /// The service says the token is not (or no longer) valid: the app was removed, or the token
    /// replaced. The device is forgotten.
    Unregistered(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Retryable { error, .. } => write!(f, "retryable: {error}"),
            SendError::Permanent(m) => write!(f, "permanent: {m}"),
            SendError::Unregistered(m) => write!(f, "unregistered: {m}"),
        }
    }
}

impl From<crate::sms::SendError> for SendError {
    fn from(e: crate::sms::SendError) -> Self {
        match e {
            crate::sms::SendError::Retryable(error) => SendError::Retryable { error, retry_after: None },
            crate::sms::SendError::Permanent(m) => SendError::Permanent(m),
        }
    }
}

pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>>;

pub trait PushProvider: Send + Sync {
    /// `log`, `webhook`, `jpush`, `fcm`, `apns`.
    fn name(&self) -> &'static str;
    fn send<'a>(&'a self, message: &'a OutgoingPush) -> SendFuture<'a>;
}

/// The providers this server delivers through, by the service a device is registered with.
#[derive(Clone, Default)]
pub struct Providers {
    webhook: Option<Arc<dyn PushProvider>>,
    jpush: Option<Arc<dyn PushProvider>>,
    fcm: Option<Arc<dyn PushProvider>>,
    apns: Option<Arc<dyn PushProvider>>,
    /// Development: what no configured provider takes goes to the log.
    log: Option<Arc<dyn PushProvider>>,
}

impl Providers {
    /// The provider for devices registered with `service`; `None`: this server cannot reach them.
    pub fn for_service(&self, service: Provider) -> Option<&dyn PushProvider> {
        let configured = match service {
            Provider::Webhook => self.webhook.as_deref(),
            Provider::Jpush => self.jpush.as_deref(),
            Provider::Fcm => self.fcm.as_deref(),
            Provider::Apns => self.apns.as_deref(),
        };
        configured.or(self.log.as_deref())
    }

    /// The services a device may be registered with here.
    pub fn accepted(&self) -> Vec<Provider> {
        Provider::ALL.into_iter().filter(|p| self.for_service(*p).is_some()).collect()
    }
}

/// The providers the settings describe, with HTTP clients bound by their timeout. FCM's and
/// APNs' key files are read and their keys tried here, so a bad one stops the start.
pub fn build_providers(settings: &PushSettings) -> Result<Providers, String> {
    let client = || crate::sms::http_client(settings.timeout_secs);
    Ok(Providers {
        webhook: match &settings.webhook {
            Some(w) => Some(Arc::new(webhook::WebhookProvider::new(w.clone(), client()?))),
            None => None,
        },
        jpush: match &settings.jpush {
            Some(j) => Some(Arc::new(jpush::JpushProvider::new(j.clone(), client()?))),
            None => None,
        },
        fcm: match &settings.fcm {
            Some(f) => Some(Arc::new(fcm::FcmProvider::new(f, client()?)?)),
            None => None,
        },
        apns: match &settings.apns {
            Some(a) => {
                // Apple speaks only HTTP/2; over TLS ALPN agrees on it, a plain-http stub needs prior knowledge
                let http2 = crate::sms::http_client_builder(settings.timeout_secs).http2_prior_knowledge();
                Some(Arc::new(apns::ApnsProvider::new(a, crate::sms::build_http_client(http2)?)?))
            }
            None => None,
        },
        log: settings.log.then(|| Arc::new(log::LogProvider) as Arc<dyn PushProvider>),
    })
}

/// The longest wait a service's `Retry-After` is taken for: past it, the usual backoff decides.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The wait a `Retry-After` header asks for, in seconds or as an HTTP date (after `now`).
pub fn retry_after(headers: &HeaderMap, now: NaiveDateTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?.naive_utc();
            (at - now).to_std().unwrap_or_default()
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = chrono::NaiveDate::from_ymd_opt(2026, 12, 3).unwrap().and_hms_opt(8, 0, 0).unwrap();
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, now), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(120)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("Thu, 03 Dec 2026 08:01:30 GMT"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(90)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("999999"));
        assert_eq!(retry_after(&headers, now), Some(MAX_RETRY_AFTER));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn only_configured_services_are_accepted_unless_the_log_stands_in() {
        assert!(build_providers(&PushSettings::from_lookup(|_| None).unwrap()).unwrap().accepted().is_empty());
        let log = PushSettings::from_lookup(|k| (k == "REPAIRDESK_PUSH_LOG").then(|| "true".into())).unwrap();
        assert_eq!(build_providers(&log).unwrap().accepted(), Provider::ALL.to_vec());
        let hook = |k: &str| match k {
            "REPAIRDESK_PUSH_WEBHOOK_URL" => Some("https://hooks.example/push".into()),
            "REPAIRDESK_PUSH_WEBHOOK_SECRET" => Some("s".into()),
            _ => None,
        };
        let providers = build_providers(&PushSettings::from_lookup(hook).unwrap()).unwrap();
        assert_eq!(providers.accepted(), vec![Provider::Webhook]);
        assert_eq!(providers.for_service(Provider::Webhook).map(|p| p.name()), Some("webhook"));
    }

    /// The test-only keys of `tests/fixtures/push`.
    pub(crate) fn fixture(name: &str) -> String {
        format!("{}/tests/fixtures/push/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    fn service_account(private_key: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let account = serde_json::json!({
            "type": "service_account",
            "project_id": "repairdesk-test",
            "client_email": "push@repairdesk-test.iam.gserviceaccount.com",
            "private_key": private_key,
            "token_uri": "https://oauth2.googleapis.com/token",
        });
        std::fs::write(file.path(), account.to_string()).unwrap();
        file
    }

    fn with(pairs: &[(&str, &str)]) -> Result<Providers, String> {
        build_providers(&PushSettings::from_lookup(|k| {
            pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        })?)
    }

    #[test]
    fn fcm_and_apns_are_taken_with_good_keys_and_bad_ones_stop_the_start_naming_the_setting() {
        let rsa = std::fs::read_to_string(fixture("test-only-fcm-rsa.pem")).unwrap();
        let account = service_account(&rsa);
        let p8 = fixture("test-only-apns-p256.p8");
        let apns = |key: &str| {
            vec![
                ("REPAIRDESK_APNS_KEY_FILE", key.to_owned()),
                ("REPAIRDESK_APNS_KEY_ID", "ABC123DEFG".to_owned()),
                ("REPAIRDESK_APNS_TEAM_ID", "DEF123GHIJ".to_owned()),
                ("REPAIRDESK_APNS_TOPIC", "cn.example.repair".to_owned()),
            ]
        };
        let mut pairs = apns(&p8);
        pairs.push(("REPAIRDESK_FCM_SERVICE_ACCOUNT_FILE", account.path().display().to_string()));
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let providers = with(&pairs).unwrap();
        assert_eq!(providers.accepted(), vec![Provider::Fcm, Provider::Apns]);
        assert_eq!(providers.for_service(Provider::Apns).map(|p| p.name()), Some("apns"));

        let missing = with(&[("REPAIRDESK_FCM_SERVICE_ACCOUNT_FILE", "/nonexistent/firebase.json")]).err().unwrap();
        assert!(missing.starts_with("REPAIRDESK_FCM_SERVICE_ACCOUNT_FILE: cannot read"), "{missing}");
        let not_rsa = service_account(&std::fs::read_to_string(&p8).unwrap());
        let path = not_rsa.path().display().to_string();
        let err = with(&[("REPAIRDESK_FCM_SERVICE_ACCOUNT_FILE", &path)]).err().unwrap();
        assert!(err.contains("private_key") && !err.contains("BEGIN"), "{err}");
        std::fs::write(not_rsa.path(), "{\"project_id\": \"p\"}").unwrap();
        let err = with(&[("REPAIRDESK_FCM_SERVICE_ACCOUNT_FILE", &path)]).err().unwrap();
        assert!(err.contains("not a Google service-account key file"), "{err}");

        let rsa_file = fixture("test-only-fcm-rsa.pem");
        for key in ["/nonexistent/AuthKey.p8", rsa_file.as_str()] {
            let pairs = apns(key);
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let err = with(&pairs).err().unwrap();
            assert!(err.starts_with("REPAIRDESK_APNS_KEY_FILE:"), "{err}");
        }
    }
}
