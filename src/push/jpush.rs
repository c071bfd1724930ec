//! JPush (极光推送), for Android phones without Google's services (most in mainland China), and
//! iPhones through it: REST API v3 `POST /v3/push`, HTTP basic auth with the app key and the
//! master secret. One message to one registration id.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Client, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{retry_after, OutgoingPush, PushProvider, SendError, SendFuture};
use crate::config::push::JpushSettings;
use crate::sms::{excerpt, is_retryable_status, transport_error};

/// JPush's error code for an audience that matches no device: the registration id is unknown
/// (the app was removed, or the id belongs to another app key).
const NO_SUCH_AUDIENCE: i64 = 1011;

pub struct JpushProvider {
    url: String,
    authorization: String,
    client: Client,
}

#[derive(Deserialize)]
struct Failure {
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: Option<i64>,
    message: Option<String>,
}

impl JpushProvider {
    pub fn new(settings: JpushSettings, client: Client) -> Self {
        let credentials = format!("{}:{}", settings.app_key, settings.master_secret.expose());
        Self {
            url: format!("{}/v3/push", settings.base_url),
            authorization: format!("Basic {}", STANDARD.encode(credentials)),
            client,
        }
    }

    async fn deliver(&self, message: &OutgoingPush) -> Result<(), SendError> {
        let response = self
            .client
            .post(&self.url)
            .header(CONTENT_TYPE, "application/json")
            .header(AUTHORIZATION, &self.authorization)
            .json(&payload(message))
            .send()
            .await
            .map_err(|e| transport_error("jpush", e))?;
        let status = response.status();
        let wait = retry_after(response.headers(), crate::db::now());
        let answer = response.bytes().await.map_err(|e| transport_error("jpush", e))?;
        if status.is_success() {
            return Ok(());
        }
        let error = serde_json::from_slice::<Failure>(&answer).ok().and_then(|f| f.error);
        let code = error.as_ref().and_then(|e| e.code);
        let text = error.and_then(|e| e.message).unwrap_or_else(|| excerpt(&answer));
        let failure = format!("jpush answered {status} (code {}): {text}", code.map_or("-".into(), |c| c.to_string()));
        Err(if status == StatusCode::BAD_REQUEST && code == Some(NO_SUCH_AUDIENCE) {
            SendError::Unregistered(failure)
        } else if is_retryable_status(status) {
            SendError::Retryable { error: failure, retry_after: wait }
        } else {
            SendError::Permanent(failure)
        })
    }
}

/// The v3 push body: a notification for the device's platform, our data and the message's id as
/// its extras.
fn payload(message: &OutgoingPush) -> Value {
    let high = message.priority == "high";
    // JPush's own `sendno` is a number, too small for our ids: `push_id` names the message
    let extras: Value = message.data_with_id().into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    let notification = if message.platform == "ios" {
        json!({ "ios": {
            "alert": { "title": message.title, "body": message.body },
            "sound": "default",
            "thread-id": message.collapse_key,
            "extras": extras,
        } })
    } else {
        json!({ "android": {
            "alert": message.body,
            "title": message.title,
            // -2 to 2; 2 shows as a heads-up notification
            "priority": if high { 2 } else { 0 },
            "extras": extras,
        } })
    };
    json!({
        "platform": if message.platform == "ios" { "ios" } else { "android" },
        "audience": { "registration_id": [message.token] },
        "notification": notification,
        "options": {
            "sendno": 0,
            // a message about the pool is stale within the hour
            "time_to_live": 3600,
            "apns_production": true,
            "apns_collapse_id": message.collapse_key,
        },
    })
}

impl PushProvider for JpushProvider {
    fn name(&self) -> &'static str {
        "jpush"
    }

    fn send<'a>(&'a self, message: &'a OutgoingPush) -> SendFuture<'a> {
        Box::pin(self.deliver(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn an_android_message_goes_to_its_registration_id_with_our_data() {
        let message = OutgoingPush {
            id: "m1".into(),
            token: "1a0018970a".into(),
            platform: "android".into(),
            title: "【紧急】新工单 GY-1".into(),
            body: "3栋502，可以抢单了".into(),
            priority: "high".into(),
            collapse_key: "pool_added-u1".into(),
            data: BTreeMap::from([("kind".to_owned(), "pool_added".to_owned())]),
        };
        let body = payload(&message);
        assert_eq!(body["platform"], "android");
        assert_eq!(body["audience"]["registration_id"], json!(["1a0018970a"]));
        assert_eq!(body["notification"]["android"]["priority"], 2);
        assert_eq!(body["notification"]["android"]["extras"]["kind"], "pool_added");
        assert_eq!(body["notification"]["android"]["extras"]["push_id"], "m1");
        assert_eq!(body["options"]["apns_collapse_id"], "pool_added-u1");
    }
}
