//! Sending SMS: one trait, one file per gateway. Messages reach a provider only through the
//! outbox worker (`jobs::outbox`), which retries what a provider calls retryable.

pub mod aliyun;
pub mod log;
pub mod twilio;
pub mod webhook;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde::Serialize;

/// The gateway settings `build_provider` takes, read from the environment by `config`.
pub use crate::config::sms::{ProviderSettings, SmsSettings};
use aliyun::AliyunProvider;
use log::LogProvider;
use twilio::TwilioProvider;
use webhook::WebhookProvider;

/// One message as the outbox hands it to a provider. `id` is stable across retries, so a
/// provider that dedupes on it (the webhook) never delivers twice.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OutgoingSms {
    pub id: String,
    /// E.164, e.g. `+8613812345678`.
    pub to: String,
    /// The rendered text (used by gateways that take free text).
    pub text: String,
    /// Our template name, e.g. `arrival_code`, `quote_code`.
    pub template: String,
    /// The template's parameters, e.g. `{"code": "123456", "number": "GY-20261122-0001", "site": "..."}`.
    pub params: BTreeMap<String, String>,
}

/// The gateway took the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The gateway's id for the message (BizId, Twilio SID...), when it gives one.
    pub provider_message_id: Option<String>,
    /// The gateway's status word, when it gives one (e.g. `queued`).
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Worth trying again later: timeouts, connection errors, 429, 5xx, gateway throttling.
    Retryable(String),
    /// Will never succeed as sent: bad number, bad credentials, unknown template.
    Permanent(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Retryable(m) => write!(f, "retryable: {m}"),
            SendError::Permanent(m) => write!(f, "permanent: {m}"),
        }
    }
}

pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Accepted, SendError>> + Send + 'a>>;

pub trait SmsProvider: Send + Sync {
    /// `log`, `webhook`, `aliyun`, `twilio`.
    fn name(&self) -> &'static str;
    fn send<'a>(&'a self, message: &'a OutgoingSms) -> SendFuture<'a>;
}

/// Connecting gets at most this long: a gateway that cannot be reached in 5 s will not be in 10.
const MAX_CONNECT_TIMEOUT_SECS: u64 = 5;

/// The provider the settings describe, with an HTTP client bound by their timeout.
pub fn build_provider(settings: &SmsSettings) -> Result<Arc<dyn SmsProvider>, String> {
    Ok(match &settings.provider {
        ProviderSettings::Log => Arc::new(LogProvider),
        ProviderSettings::Webhook(webhook) => {
            Arc::new(WebhookProvider::new(webhook.clone(), http_client(settings.timeout_secs)?))
        }
        ProviderSettings::Aliyun(aliyun) => {
            Arc::new(AliyunProvider::new(aliyun.clone(), http_client(settings.timeout_secs)?))
        }
        ProviderSettings::Twilio(twilio) => {
            Arc::new(TwilioProvider::new(twilio.clone(), http_client(settings.timeout_secs)?))
        }
    })
}

pub(crate) fn http_client(timeout_secs: u64) -> Result<reqwest::Client, String> {
    build_http_client(http_client_builder(timeout_secs))
}

/// A gateway client as `http_client` makes it, to be given more options first (APNs: HTTP/2).
pub(crate) fn http_client_builder(timeout_secs: u64) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(timeout_secs.min(MAX_CONNECT_TIMEOUT_SECS)))
        .timeout(Duration::from_secs(timeout_secs))
        // a gateway URL that redirects is a misconfiguration, and a redirected POST loses its body
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("repairdesk/", env!("CARGO_PKG_VERSION")))
}

pub(crate) fn build_http_client(builder: reqwest::ClientBuilder) -> Result<reqwest::Client, String> {
    builder.build().map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Gateways that are busy or briefly down say so with these; anything else will not change.
pub(crate) fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// A request that never got a whole answer. Only a request we could not even build is our fault
/// for good; timeouts, refused connections and cut-off answers may go through next time.
pub(crate) fn transport_error(gateway: &str, error: reqwest::Error) -> SendError {
    let builder = error.is_builder();
    // the URL can carry a signed query; the kind of failure is what matters
    let error = error.without_url();
    if builder {
        SendError::Permanent(format!("{gateway}: cannot build the request: {error}"))
    } else if error.is_timeout() {
        SendError::Retryable(format!("{gateway}: timed out"))
    } else {
        SendError::Retryable(format!("{gateway}: {error}"))
    }
}

/// The start of an answer's body, for error messages.
pub(crate) fn excerpt(body: &[u8]) -> String {
    const MAX_CHARS: usize = 200;
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(MAX_CHARS) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::sms::tests::{ALIYUN, TWILIO};
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<SmsSettings, String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        SmsSettings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn every_provider_builds_from_its_settings() {
        let webhook = [
            ("REPAIRDESK_SMS_PROVIDER", "webhook"),
            ("REPAIRDESK_SMS_WEBHOOK_URL", "https://hooks.example/sms"),
            ("REPAIRDESK_SMS_WEBHOOK_SECRET", "s"),
        ];
        let cases = [(&[][..], "log"), (&webhook[..], "webhook"), (&ALIYUN[..], "aliyun"), (&TWILIO[..], "twilio")];
        for (pairs, name) in cases {
            assert_eq!(build_provider(&settings(pairs).unwrap()).unwrap().name(), name);
        }
    }

    #[test]
    fn only_busy_or_failing_gateways_are_worth_retrying() {
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(is_retryable_status(StatusCode::from_u16(code).unwrap()), "{code}");
        }
        for code in [200, 302, 400, 401, 403, 404, 422] {
            assert!(!is_retryable_status(StatusCode::from_u16(code).unwrap()), "{code}");
        }
    }

    #[test]
    fn excerpts_are_cut_on_a_character_boundary() {
        let long = "短".repeat(300);
        let cut = excerpt(long.as_bytes());
        assert_eq!(cut.chars().count(), 203);
        assert_eq!(excerpt(b"  short  "), "short");
    }
}
