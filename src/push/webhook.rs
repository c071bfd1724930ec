//! Hands each message to an HTTP endpoint of the customer's own (their push gateway, a test
//! phone's relay) as JSON signed like the SMS webhook's. The receiver answers 2xx when it took
//! the message, `410 Gone` when the token is not (or no longer) one of its devices, 429 or 5xx
//! (with `Retry-After` if it likes) to be asked again later.

use reqwest::header::CONTENT_TYPE;
use reqwest::{Client, StatusCode, Url};
use serde::Serialize;

use super::{retry_after, OutgoingPush, PushProvider, SendError, SendFuture};
use crate::config::sms::WebhookSettings;
use crate::config::Secret;
use crate::sms::webhook::{sign, SIGNATURE_HEADER};
use crate::sms::{excerpt, is_retryable_status, transport_error};

pub struct WebhookProvider {
    url: Url,
    secret: Secret,
    client: Client,
}

/// The JSON posted: the message, and which provider sent it.
#[derive(Serialize)]
struct Posted<'a> {
    provider: &'static str,
    #[serde(flatten)]
    message: &'a OutgoingPush,
}

impl WebhookProvider {
    pub fn new(settings: WebhookSettings, client: Client) -> Self {
        Self { url: settings.url, secret: settings.secret, client }
    }

    async fn deliver(&self, message: &OutgoingPush) -> Result<(), SendError> {
        let body = serde_json::to_vec(&Posted { provider: "webhook", message })
            .map_err(|e| SendError::Permanent(format!("webhook: cannot encode the message: {e}")))?;
        let signature = sign(self.secret.expose().as_bytes(), &body)?;
        let response = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error("push webhook", e))?;
        let status = response.status();
        let wait = retry_after(response.headers(), crate::db::now());
        let answer = response.bytes().await.map_err(|e| transport_error("push webhook", e))?;
        if status.is_success() {
            return Ok(());
        }
        let failure = format!("push webhook answered {status}: {}", excerpt(&answer));
        Err(if status == StatusCode::GONE {
            SendError::Unregistered(failure)
        } else if is_retryable_status(status) {
            SendError::Retryable { error: failure, retry_after: wait }
        } else {
            SendError::Permanent(failure)
        })
    }
}

impl PushProvider for WebhookProvider {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn send<'a>(&'a self, message: &'a OutgoingPush) -> SendFuture<'a> {
        Box::pin(self.deliver(message))
    }
}
