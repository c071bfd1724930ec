//! Apple Push Notification service with token authentication: HTTP/2 `POST /3/device/{token}`,
//! authorised by a provider token (a JWT signed ES256 with the team's `.p8` key). Apple refuses a
//! token older than an hour and one replaced too often, so one is kept for 50 minutes.

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parking_lot::Mutex;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::AUTHORIZATION;
use reqwest::{Client, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{retry_after, OutgoingPush, PushProvider, SendError, SendFuture};
use crate::config::push::ApnsSettings;
use crate::sms::{excerpt, is_retryable_status, transport_error};

const KEY_SETTING: &str = "REPAIRDESK_APNS_KEY_FILE";
/// How long a provider token is used: within Apple's hour, and not replaced more often.
const TOKEN_LIFETIME: Duration = Duration::from_secs(50 * 60);
/// The longest `apns-collapse-id` Apple takes, in bytes.
const MAX_COLLAPSE_ID: usize = 64;
/// A message about the pool is stale within the hour (as with JPush and FCM).
const TIME_TO_LIVE_SECS: u64 = 3600;
/// A device token is hex; anything else is escaped so it stays one path segment.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: u64,
}

struct ProviderToken {
    value: String,
    made: Instant,
}

pub struct ApnsProvider {
    device_url: String,
    topic: String,
    team_id: String,
    header: Header,
    key: EncodingKey,
    /// An HTTP/2 client: Apple speaks nothing else.
    client: Client,
    token: Mutex<Option<ProviderToken>>,
}

#[derive(Deserialize)]
struct Failure {
    reason: Option<String>,
}

impl ApnsProvider {
    /// Reads the `.p8` key and checks that it signs. `client` must speak HTTP/2.
    pub fn new(settings: &ApnsSettings, client: Client) -> Result<Self, String> {
        let path = settings.key_file.display();
        let pem = std::fs::read(&settings.key_file).map_err(|e| format!("{KEY_SETTING}: cannot read {path}: {e}"))?;
        let key = EncodingKey::from_ec_pem(&pem)
            .map_err(|e| format!("{KEY_SETTING}: {path} is not an EC private key in PEM (a .p8 file): {e}"))?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(settings.key_id.clone());
        let provider = Self {
            device_url: format!("{}/3/device/", settings.base_url),
            topic: settings.topic.clone(),
            team_id: settings.team_id.clone(),
            header,
            key,
            client,
            token: Mutex::new(None),
        };
        // a key that parses may still not sign (not P-256): find out at start
        provider.sign(jsonwebtoken::get_current_timestamp()).map_err(|e| {
            format!("{KEY_SETTING}: the key in {path} cannot sign ES256 provider tokens (it must be P-256): {e}")
        })?;
        Ok(provider)
    }

    fn sign(&self, now: u64) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&self.header, &Claims { iss: &self.team_id, iat: now }, &self.key)
    }

    /// The provider token in use at `now`, or a new one when it is 50 minutes old.
    fn provider_token(&self, now: Instant) -> Result<String, SendError> {
        let mut cached = self.token.lock();
        if let Some(token) = cached.as_ref().filter(|t| now.saturating_duration_since(t.made) < TOKEN_LIFETIME) {
            return Ok(token.value.clone());
        }
        let value = self
            .sign(jsonwebtoken::get_current_timestamp())
            .map_err(|e| SendError::Permanent(format!("apns: cannot sign the provider token: {e}")))?;
        *cached = Some(ProviderToken { value: value.clone(), made: now });
        Ok(value)
    }

    /// Apple refused `used`: the next send signs another (unless one already replaced it).
    fn forget_token(&self, used: &str) {
        let mut cached = self.token.lock();
        if cached.as_ref().is_some_and(|t| t.value == used) {
            *cached = None;
        }
    }

    async fn deliver(&self, message: &OutgoingPush) -> Result<(), SendError> {
        let token = self.provider_token(Instant::now())?;
        let mut request = self
            .client
            .post(format!("{}{}", self.device_url, utf8_percent_encode(&message.token, PATH_SEGMENT)))
            .header(AUTHORIZATION, format!("bearer {token}"))
            .header("apns-topic", &self.topic)
            .header("apns-push-type", "alert")
            .header("apns-expiration", (jsonwebtoken::get_current_timestamp() + TIME_TO_LIVE_SECS).to_string())
            .json(&payload(message));
        for (name, value) in headers(message) {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| transport_error("apns", e))?;
        let status = response.status();
        let wait = retry_after(response.headers(), crate::db::now());
        let answer = response.bytes().await.map_err(|e| transport_error("apns", e))?;
        if status.is_success() {
            return Ok(());
        }
        let reason = serde_json::from_slice::<Failure>(&answer).ok().and_then(|f| f.reason);
        let failure = format!("apns answered {status}: {}", reason.clone().unwrap_or_else(|| excerpt(&answer)));
        Err(match (status, reason.as_deref()) {
            (StatusCode::GONE, _) => SendError::Unregistered(failure),
            (StatusCode::BAD_REQUEST, Some("BadDeviceToken" | "DeviceTokenNotForTopic")) => {
                SendError::Unregistered(failure)
            }
            (StatusCode::FORBIDDEN, Some("ExpiredProviderToken" | "InvalidProviderToken")) => {
                self.forget_token(&token);
                SendError::Retryable { error: failure, retry_after: wait }
            }
            _ if is_retryable_status(status) => SendError::Retryable { error: failure, retry_after: wait },
            _ => SendError::Permanent(failure),
        })
    }
}

/// The `apns-*` headers of a message, here and in FCM's `apns.headers`.
pub(super) fn headers(message: &OutgoingPush) -> [(&'static str, String); 2] {
    let priority = if message.priority == "high" { "10" } else { "5" };
    [("apns-priority", priority.to_owned()), ("apns-collapse-id", collapse_id(&message.collapse_key))]
}

/// `aps` of a message: the alert (unless FCM fills it from its notification), the thread that
/// groups a burst, and a sound only for an emergency.
pub(super) fn aps(message: &OutgoingPush, with_alert: bool) -> Value {
    let mut aps = json!({ "thread-id": message.collapse_key });
    if with_alert {
        aps["alert"] = json!({ "title": message.title, "body": message.body });
    }
    if message.priority == "high" {
        aps["sound"] = json!("default");
    }
    aps
}

/// Apple's payload: `aps`, and our data beside it.
fn payload(message: &OutgoingPush) -> Value {
    let mut body: Map<String, Value> = message.data_with_id().into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    body.insert("aps".into(), aps(message, true));
    Value::Object(body)
}

/// Our collapse key as Apple takes it: at most 64 bytes, a longer one replaced by its SHA-256
/// (so keys stay distinct).
fn collapse_id(key: &str) -> String {
    if key.len() <= MAX_COLLAPSE_ID {
        key.to_owned()
    } else {
        hex::encode(Sha256::digest(key.as_bytes()))
    }
}

impl PushProvider for ApnsProvider {
    fn name(&self) -> &'static str {
        "apns"
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
    fn the_payload_carries_the_alert_the_thread_and_our_data_beside_aps() {
        let message = OutgoingPush {
            id: "m1".into(),
            token: "a1b2".into(),
            platform: "ios".into(),
            title: "派单 GY-1".into(),
            body: "3栋502的工单已派给您".into(),
            priority: "normal".into(),
            collapse_key: "assigned-u1".into(),
            data: BTreeMap::from([
                ("kind".to_owned(), "assigned".to_owned()),
                ("number".to_owned(), "GY-1".to_owned()),
            ]),
        };
        let body = payload(&message);
        assert_eq!(
            body,
            json!({
                "aps": { "alert": { "title": "派单 GY-1", "body": "3栋502的工单已派给您" }, "thread-id": "assigned-u1" },
                "kind": "assigned",
                "number": "GY-1",
                "push_id": "m1",
            })
        );
        assert_eq!(headers(&message)[0], ("apns-priority", "5".to_owned()));
    }

    #[test]
    fn a_provider_token_is_kept_for_50_minutes_then_replaced() {
        let settings = ApnsSettings {
            key_file: crate::push::tests::fixture("test-only-apns-p256.p8").into(),
            key_id: "ABC123DEFG".into(),
            team_id: "DEF123GHIJ".into(),
            topic: "cn.example.repair".into(),
            base_url: "https://api.push.apple.com".into(),
        };
        let apns = ApnsProvider::new(&settings, Client::new()).unwrap();
        let start = Instant::now();
        let first = apns.provider_token(start).unwrap();
        assert_eq!(apns.provider_token(start + Duration::from_secs(49 * 60)).unwrap(), first);
        let next = apns.provider_token(start + Duration::from_secs(51 * 60)).unwrap();
        assert_ne!(next, first);
        let header = jsonwebtoken::decode_header(&next).unwrap();
        assert_eq!((header.alg, header.kid.as_deref()), (Algorithm::ES256, Some("ABC123DEFG")));
        // refused by Apple: the next send signs a new one, even within the 50 minutes
        apns.forget_token(&next);
        assert_ne!(apns.provider_token(start + Duration::from_secs(52 * 60)).unwrap(), next);
    }

    #[test]
    fn a_collapse_id_past_64_bytes_is_hashed_not_cut() {
        assert_eq!(
            collapse_id("pool_added-0193a0b2-7c1d-7e4f-8a9b-0c1d2e3f4a5b"),
            "pool_added-0193a0b2-7c1d-7e4f-8a9b-0c1d2e3f4a5b"
        );
        let long = format!("quote_decided-{}", "x".repeat(60));
        let other = format!("quote_decided-{}y", "x".repeat(59));
        assert_eq!(collapse_id(&long).len(), MAX_COLLAPSE_ID);
        assert_ne!(collapse_id(&long), collapse_id(&other));
    }
}
