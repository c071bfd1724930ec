//! Hands each message to an HTTP endpoint of the customer's own (their SMS gateway, a chat bot...)
//! as signed JSON.

use hmac::{Hmac, Mac};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Client, Url};
use serde::Deserialize;
use sha2::Sha256;

use super::{excerpt, is_retryable_status, transport_error, Accepted, OutgoingSms, SendError, SendFuture, SmsProvider};
use crate::config::sms::WebhookSettings;
use crate::config::Secret;

/// `sha256=` and the lowercase hex HMAC-SHA256 of the raw body, keyed with the shared secret.
pub const SIGNATURE_HEADER: &str = "X-Repairdesk-Signature";

pub struct WebhookProvider {
    url: Url,
    secret: Secret,
    client: Client,
}

/// What a receiver may answer; both names are common for the receiver's own id.
#[derive(Deserialize)]
struct Receipt {
    id: Option<String>,
    message_id: Option<String>,
    status: Option<String>,
}

impl WebhookProvider {
    pub fn new(settings: WebhookSettings, client: Client) -> Self {
        Self { url: settings.url, secret: settings.secret, client }
    }

    async fn deliver(&self, message: &OutgoingSms) -> Result<Accepted, SendError> {
        let body = serde_json::to_vec(message)
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
            .map_err(|e| transport_error("webhook", e))?;
        let status = response.status();
        let answer = response.bytes().await.map_err(|e| transport_error("webhook", e))?;
        if status.is_success() {
            // the receiver took it; an answer we cannot read only costs us its id
            let receipt = serde_json::from_slice::<Receipt>(&answer).ok();
            let (id, message_id, status) = match receipt {
                Some(r) => (r.id, r.message_id, r.status),
                None => (None, None, None),
            };
            return Ok(Accepted { provider_message_id: id.or(message_id), status });
        }
        let failure = format!("webhook answered {status}: {}", excerpt(&answer));
        Err(if is_retryable_status(status) { SendError::Retryable(failure) } else { SendError::Permanent(failure) })
    }
}

impl SmsProvider for WebhookProvider {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn send<'a>(&'a self, message: &'a OutgoingSms) -> SendFuture<'a> {
        Box::pin(self.deliver(message))
    }
}

/// The value of [`SIGNATURE_HEADER`] for `body`.
pub fn sign(secret: &[u8], body: &[u8]) -> Result<String, SendError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)
        .map_err(|e| SendError::Permanent(format!("webhook: unusable secret: {e}")))?;
    mac.update(body);
    Ok(format!("sha256={}", hex::encode(mac.finalize().into_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_rfc_4231_hmac_in_lowercase_hex() {
        // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?"
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?").unwrap(),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
