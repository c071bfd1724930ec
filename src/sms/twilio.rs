//! Twilio's Messages API (2010-04-01): one form POST per message, HTTP Basic auth.

use reqwest::Client;
use serde::Deserialize;

use super::{excerpt, is_retryable_status, transport_error, Accepted, OutgoingSms, SendError, SendFuture, SmsProvider};
use crate::config::sms::{TwilioSender, TwilioSettings};

pub struct TwilioProvider {
    settings: TwilioSettings,
    client: Client,
}

/// The created Message resource, of which we keep two fields.
#[derive(Deserialize)]
struct CreatedMessage {
    sid: Option<String>,
    status: Option<String>,
}

/// Twilio's error body, e.g. `{"code": 21211, "message": "The 'To' number ... is not a valid phone number."}`.
#[derive(Deserialize)]
struct TwilioError {
    code: Option<i64>,
    message: Option<String>,
}

impl TwilioProvider {
    pub fn new(settings: TwilioSettings, client: Client) -> Self {
        Self { settings, client }
    }

    async fn deliver(&self, message: &OutgoingSms) -> Result<Accepted, SendError> {
        let settings = &self.settings;
        let url = format!("{}/2010-04-01/Accounts/{}/Messages.json", settings.base_url, settings.account_sid);
        let sender = match &settings.sender {
            TwilioSender::From(number) => ("From", number.as_str()),
            TwilioSender::MessagingService(sid) => ("MessagingServiceSid", sid.as_str()),
        };
        let form = [("To", message.to.as_str()), ("Body", message.text.as_str()), sender];
        let response = self
            .client
            .post(url)
            .basic_auth(&settings.account_sid, Some(settings.auth_token.expose()))
            .form(&form)
            .send()
            .await
            .map_err(|e| transport_error("twilio", e))?;
        let status = response.status();
        let answer = response.bytes().await.map_err(|e| transport_error("twilio", e))?;
        if status.is_success() {
            // created; an answer we cannot read only costs us the SID
            let created = serde_json::from_slice::<CreatedMessage>(&answer).ok();
            let (sid, state) = created.map(|c| (c.sid, c.status)).unwrap_or_default();
            return Ok(Accepted { provider_message_id: sid, status: state });
        }
        let failure = match serde_json::from_slice::<TwilioError>(&answer) {
            Ok(TwilioError { code, message }) => format!(
                "twilio answered {status}: code {} {}",
                code.map(|c| c.to_string()).unwrap_or_else(|| "none".into()),
                message.unwrap_or_default()
            ),
            Err(_) => format!("twilio answered {status}: {}", excerpt(&answer)),
        };
        Err(if is_retryable_status(status) { SendError::Retryable(failure) } else { SendError::Permanent(failure) })
    }
}

impl SmsProvider for TwilioProvider {
    fn name(&self) -> &'static str {
        "twilio"
    }

    fn send<'a>(&'a self, message: &'a OutgoingSms) -> SendFuture<'a> {
        Box::pin(self.deliver(message))
    }
}
