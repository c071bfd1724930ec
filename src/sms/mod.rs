//! Sending SMS: one trait, one file per gateway. Messages reach a provider only through the
//! outbox worker (`jobs::outbox`), which retries what a provider calls retryable.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

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
