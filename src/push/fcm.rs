//! Firebase Cloud Messaging, HTTP v1: `POST /v1/projects/{project}/messages:send`, one message to
//! one registration token, authorised by an OAuth2 access token that the service account's key
//! buys at its `token_uri` (a JWT assertion signed RS256). The access token is kept until shortly
//! before it expires, shared by every send.

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Client, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::{apns, retry_after, OutgoingPush, PushProvider, SendError, SendFuture};
use crate::config::push::FcmSettings;
use crate::sms::{excerpt, is_retryable_status, transport_error};

const FILE_SETTING: &str = "REPAIRDESK_FCM_SERVICE_ACCOUNT_FILE";
/// What the access token may do: send messages, nothing else.
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Google takes assertions valid for at most an hour.
const ASSERTION_LIFETIME_SECS: u64 = 3600;
/// A cached access token is replaced this long before it expires, so none expires in flight.
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// A message about the pool is stale within the hour (as with JPush and APNs).
const TIME_TO_LIVE: &str = "3600s";

/// The fields of a service-account key file this provider uses.
#[derive(Deserialize)]
struct ServiceAccount {
    project_id: String,
    client_email: String,
    private_key: String,
    token_uri: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

struct AccessToken {
    value: String,
    refresh_at: Instant,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

pub struct FcmProvider {
    send_url: String,
    client_email: String,
    token_uri: String,
    key: EncodingKey,
    client: Client,
    /// Held while a token is fetched, so concurrent sends wait for that one fetch.
    token: Mutex<Option<AccessToken>>,
}

impl FcmProvider {
    /// Reads the service account's key file and checks that its key signs.
    pub fn new(settings: &FcmSettings, client: Client) -> Result<Self, String> {
        let path = settings.service_account_file.display();
        let text = std::fs::read_to_string(&settings.service_account_file)
            .map_err(|e| format!("{FILE_SETTING}: cannot read {path}: {e}"))?;
        let account: ServiceAccount = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{FILE_SETTING}: {path} is not a Google service-account key file \
                 (JSON with project_id, client_email, private_key, token_uri): {e}"
            )
        })?;
        let project = account.project_id.trim();
        if project.is_empty() || !project.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':' || c == '.')
        {
            return Err(format!("{FILE_SETTING}: {path} has no usable project_id"));
        }
        crate::config::sms::http_url(&format!("{FILE_SETTING}'s token_uri"), &account.token_uri)?;
        let key = EncodingKey::from_rsa_pem(account.private_key.as_bytes())
            .map_err(|e| format!("{FILE_SETTING}: the private_key in {path} is not an RSA key in PEM: {e}"))?;
        // a key that parses may still not sign (not RSA after all, too short): find out at start
        assertion(&account.client_email, &account.token_uri, &key, now_secs())
            .map_err(|e| format!("{FILE_SETTING}: the private_key in {path} cannot sign: {e}"))?;
        Ok(Self {
            send_url: format!("{}/v1/projects/{project}/messages:send", settings.base_url),
            client_email: account.client_email,
            token_uri: account.token_uri,
            key,
            client,
            token: Mutex::new(None),
        })
    }

    /// The cached access token, or a new one if it is (nearly) expired.
    async fn access_token(&self) -> Result<String, SendError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.refresh_at) {
            return Ok(token.value.clone());
        }
        let fresh = self.fetch_token().await?;
        let value = fresh.value.clone();
        *cached = Some(fresh);
        Ok(value)
    }

    /// Google refused `used`: the next send fetches another (unless one already replaced it).
    async fn forget_token(&self, used: &str) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|t| t.value == used) {
            *cached = None;
        }
    }

    async fn fetch_token(&self) -> Result<AccessToken, SendError> {
        let signed = assertion(&self.client_email, &self.token_uri, &self.key, now_secs())
            .map_err(|e| SendError::Permanent(format!("fcm: cannot sign the token request: {e}")))?;
        let response = self
            .client
            .post(&self.token_uri)
            .form(&[("grant_type", GRANT_TYPE), ("assertion", signed.as_str())])
            .send()
            .await
            .map_err(|e| transport_error("fcm token", e))?;
        let status = response.status();
        let wait = retry_after(response.headers(), crate::db::now());
        let answer = response.bytes().await.map_err(|e| transport_error("fcm token", e))?;
        if !status.is_success() {
            // invalid_grant and the like: a revoked key or a wrong account stays wrong
            let failure = format!("fcm token endpoint answered {status}: {}", excerpt(&answer));
            return Err(if is_retryable_status(status) {
                SendError::Retryable { error: failure, retry_after: wait }
            } else {
                SendError::Permanent(failure)
            });
        }
        let token: TokenAnswer = serde_json::from_slice(&answer).map_err(|e| SendError::Retryable {
            error: format!("fcm token endpoint answered 200 without an access token ({e})"),
            retry_after: None,
        })?;
        let lifetime = Duration::from_secs(token.expires_in);
        let keep = lifetime.saturating_sub(REFRESH_MARGIN).max(lifetime / 2);
        Ok(AccessToken { value: token.access_token, refresh_at: Instant::now() + keep })
    }

    async fn deliver(&self, message: &OutgoingPush) -> Result<(), SendError> {
        let token = self.access_token().await?;
        let response = self
            .client
            .post(&self.send_url)
            .bearer_auth(&token)
            .json(&payload(message))
            .send()
            .await
            .map_err(|e| transport_error("fcm", e))?;
        let status = response.status();
        let wait = retry_after(response.headers(), crate::db::now());
        let answer = response.bytes().await.map_err(|e| transport_error("fcm", e))?;
        if status.is_success() {
            return Ok(());
        }
        let error = classify(status, &answer, wait);
        if status == StatusCode::UNAUTHORIZED && matches!(error, SendError::Retryable { .. }) {
            self.forget_token(&token).await;
        }
        Err(error)
    }
}

fn now_secs() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// The signed request for an access token, valid for an hour from `now`.
fn assertion(client_email: &str, token_uri: &str, key: &EncodingKey, now: u64) -> Result<String, String> {
    let claims =
        Claims { iss: client_email, scope: SCOPE, aud: token_uri, iat: now, exp: now + ASSERTION_LIFETIME_SECS };
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, key).map_err(|e| e.to_string())
}

/// The message for the device's token: the notification both platforms show, our data, and
/// per platform its priority, what replaces what on the phone, and the sound of an emergency.
fn payload(message: &OutgoingPush) -> Value {
    let high = message.priority == "high";
    let mut android_notification = json!({ "tag": message.collapse_key });
    if high {
        android_notification["sound"] = json!("default");
    }
    json!({ "message": {
        "token": message.token,
        "notification": { "title": message.title, "body": message.body },
        "data": message.data_with_id(),
        "android": {
            "priority": if high { "HIGH" } else { "NORMAL" },
            "collapse_key": message.collapse_key,
            "ttl": TIME_TO_LIVE,
            "notification": android_notification,
        },
        "apns": {
            "headers": apns::headers(message).into_iter().collect::<std::collections::BTreeMap<_, _>>(),
            // the alert comes from `notification`
            "payload": { "aps": apns::aps(message, false) },
        },
    } })
}

/// The v1 API's error body: `{error: {code, message, status, details: [...]}}`.
#[derive(Deserialize)]
struct Failure {
    error: Option<ErrorStatus>,
}

#[derive(Deserialize)]
struct ErrorStatus {
    message: Option<String>,
    status: Option<String>,
    #[serde(default)]
    details: Vec<Detail>,
}

/// One of `details`: an `FcmError` carries `errorCode`, a `BadRequest` its `fieldViolations`.
#[derive(Deserialize)]
struct Detail {
    #[serde(rename = "errorCode")]
    error_code: Option<String>,
    #[serde(rename = "fieldViolations", default)]
    field_violations: Vec<FieldViolation>,
}

#[derive(Deserialize)]
struct FieldViolation {
    field: Option<String>,
}

/// What a refusal means for the message and the device.
fn classify(status: StatusCode, answer: &[u8], wait: Option<Duration>) -> SendError {
    let error = serde_json::from_slice::<Failure>(answer).ok().and_then(|f| f.error);
    let code =
        error.as_ref().and_then(|e| e.details.iter().find_map(|d| d.error_code.clone()).or_else(|| e.status.clone()));
    let text = error.as_ref().and_then(|e| e.message.clone()).unwrap_or_else(|| excerpt(answer));
    let failure = format!("fcm answered {status} ({}): {text}", code.as_deref().unwrap_or("-"));
    // an INVALID_ARGUMENT may be about anything in the message; only one about the token
    // (a `message.token` violation, or the plain "not a valid registration token") forgets it
    let about_token = error.as_ref().is_some_and(|e| {
        let fields: Vec<&str> =
            e.details.iter().flat_map(|d| &d.field_violations).filter_map(|v| v.field.as_deref()).collect();
        fields.contains(&"message.token")
            || (fields.is_empty() && e.message.as_deref().is_some_and(|m| m.contains("registration token")))
    });
    match code.as_deref() {
        Some("UNREGISTERED") => SendError::Unregistered(failure),
        Some("INVALID_ARGUMENT") if about_token => SendError::Unregistered(failure),
        // the APNs credentials in the Firebase project are wrong: no new access token mends that
        Some("THIRD_PARTY_AUTH_ERROR") => SendError::Permanent(failure),
        _ if status == StatusCode::UNAUTHORIZED => SendError::Retryable { error: failure, retry_after: wait },
        _ if is_retryable_status(status) => SendError::Retryable { error: failure, retry_after: wait },
        _ => SendError::Permanent(failure),
    }
}

impl PushProvider for FcmProvider {
    fn name(&self) -> &'static str {
        "fcm"
    }

    fn send<'a>(&'a self, message: &'a OutgoingPush) -> SendFuture<'a> {
        Box::pin(self.deliver(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn message(priority: &str) -> OutgoingPush {
        OutgoingPush {
            id: "m1".into(),
            token: "fcm-token-1".into(),
            platform: "android".into(),
            title: "【紧急】新工单 GY-1".into(),
            body: "3栋502，可以抢单了".into(),
            priority: priority.into(),
            collapse_key: "pool_added-u1".into(),
            data: BTreeMap::from([("kind".to_owned(), "pool_added".to_owned())]),
        }
    }

    #[test]
    fn an_emergency_is_high_priority_with_sound_on_both_platforms_and_collapses_per_key() {
        let body = payload(&message("high"));
        let m = &body["message"];
        assert_eq!(m["token"], "fcm-token-1");
        assert_eq!(m["data"], json!({ "kind": "pool_added", "push_id": message("high").id }));
        assert_eq!(m["android"]["priority"], "HIGH");
        assert_eq!(m["android"]["collapse_key"], "pool_added-u1");
        assert_eq!(m["android"]["notification"], json!({ "tag": "pool_added-u1", "sound": "default" }));
        assert_eq!(m["apns"]["headers"]["apns-priority"], "10");
        assert_eq!(m["apns"]["headers"]["apns-collapse-id"], "pool_added-u1");
        assert_eq!(m["apns"]["payload"]["aps"], json!({ "sound": "default", "thread-id": "pool_added-u1" }));

        let quiet = payload(&message("normal"));
        assert_eq!(quiet["message"]["android"]["priority"], "NORMAL");
        assert!(quiet["message"]["android"]["notification"].get("sound").is_none());
        assert_eq!(quiet["message"]["apns"]["headers"]["apns-priority"], "5");
        assert!(quiet["message"]["apns"]["payload"]["aps"].get("sound").is_none());
    }

    #[test]
    fn only_errors_about_the_token_forget_the_device() {
        let fcm_error =
            |code: &str| json!({ "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code });
        let body = |status: u16, s: &str, message: &str, details: Value| {
            serde_json::to_vec(
                &json!({ "error": { "code": status, "status": s, "message": message, "details": details } }),
            )
            .unwrap()
        };
        let status = |n: u16| StatusCode::from_u16(n).unwrap();
        let gone = body(404, "NOT_FOUND", "Requested entity was not found.", json!([fcm_error("UNREGISTERED")]));
        assert!(matches!(classify(status(404), &gone, None), SendError::Unregistered(m) if m.contains("UNREGISTERED")));
        let bad_token = body(
            400,
            "INVALID_ARGUMENT",
            "The registration token is not a valid FCM registration token",
            json!([fcm_error("INVALID_ARGUMENT")]),
        );
        assert!(matches!(classify(status(400), &bad_token, None), SendError::Unregistered(_)));
        let bad_data = body(
            400,
            "INVALID_ARGUMENT",
            "Invalid value at 'message.data[0].value' (TYPE_STRING), 12",
            json!([{ "@type": "type.googleapis.com/google.rpc.BadRequest",
                     "fieldViolations": [{ "field": "message.data[0].value", "description": "bad" }] }]),
        );
        assert!(matches!(classify(status(400), &bad_data, None), SendError::Permanent(_)));
        let mismatch = body(403, "PERMISSION_DENIED", "SenderId mismatch", json!([fcm_error("SENDER_ID_MISMATCH")]));
        assert!(matches!(classify(status(403), &mismatch, None), SendError::Permanent(_)));
        let wait = Some(Duration::from_secs(60));
        let quota = body(429, "RESOURCE_EXHAUSTED", "quota", json!([fcm_error("QUOTA_EXCEEDED")]));
        assert_eq!(
            classify(status(429), &quota, wait),
            SendError::Retryable {
                error: "fcm answered 429 Too Many Requests (QUOTA_EXCEEDED): quota".into(),
                retry_after: wait
            }
        );
        assert!(matches!(classify(status(503), b"<html>busy</html>", None), SendError::Retryable { .. }));
        let expired = body(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.", json!([]));
        assert!(matches!(classify(status(401), &expired, None), SendError::Retryable { .. }));
        let apns = body(401, "UNAUTHENTICATED", "Auth error from APNS", json!([fcm_error("THIRD_PARTY_AUTH_ERROR")]));
        assert!(matches!(classify(status(401), &apns, None), SendError::Permanent(_)));
    }
}
