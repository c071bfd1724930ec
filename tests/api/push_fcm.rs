//! Firebase Cloud Messaging (HTTP v1) against a stub of Google that checks what Google checks:
//! the token endpoint verifies the service account's JWT assertion (RS256 signature with the
//! account's public key, issuer, audience, scope, at most an hour) and the grant type; the send
//! endpoint takes only an access token it issued, and only a well-formed v1 message.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::Duration;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use repairdesk::domain::push::Provider;
use repairdesk::push::{OutgoingPush, Providers, PushSettings, SendError};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::push::{id, push_message, push_states, technician_with, ticket_view, ticket_with};
use crate::stub::{answer, stub, Answer, Received, Stub};
use crate::tickets::desk_with;

const PROJECT: &str = "repairdesk-test";
const CLIENT_EMAIL: &str = "push@repairdesk-test.iam.gserviceaccount.com";
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

pub fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/push/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// What the stub of Google knows and has done.
#[derive(Default)]
struct Google {
    /// Access tokens issued, in order.
    issued: Vec<String>,
    revoked: HashSet<String>,
    /// Requests to the token endpoint, taken or not.
    token_requests: usize,
    /// Registration tokens whose app is gone.
    unregistered: HashSet<String>,
    /// What a send to a registration token is answered before it is taken, in turn.
    faults: HashMap<String, VecDeque<Answer>>,
    /// The messages taken (answered 200), as sent.
    delivered: Vec<Value>,
}

struct Fcm {
    stub: Stub,
    google: Arc<Mutex<Google>>,
    /// The service-account key file pointing at the stub.
    account: tempfile::NamedTempFile,
}

impl Fcm {
    fn delivered(&self) -> Vec<Value> {
        self.google.lock().unwrap().delivered.clone()
    }

    fn token_requests(&self) -> usize {
        self.google.lock().unwrap().token_requests
    }

    /// Every access token issued so far stops working (as when it expires early).
    fn revoke_tokens(&self) {
        let mut google = self.google.lock().unwrap();
        let issued = google.issued.clone();
        google.revoked.extend(issued);
    }

    /// The bearer tokens the send endpoint was shown, in order.
    fn bearers(&self) -> Vec<String> {
        self.stub
            .received()
            .iter()
            .filter(|r| r.path.ends_with("messages:send"))
            .map(|r| r.header("authorization").unwrap_or_default().to_owned())
            .collect()
    }

    fn settings(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut settings = vec![
            ("REPAIRDESK_FCM_SERVICE_ACCOUNT_FILE".to_owned(), self.account.path().display().to_string()),
            ("REPAIRDESK_FCM_BASE_URL".to_owned(), self.stub.url("")),
            ("REPAIRDESK_PUSH_TIMEOUT_SECS".to_owned(), "2".to_owned()),
        ];
        settings.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        settings
    }

    fn providers(&self) -> Providers {
        providers_of(&self.settings(&[]))
    }
}

pub fn providers_of(settings: &[(String, String)]) -> Providers {
    let settings =
        PushSettings::from_lookup(|k| settings.iter().find(|(name, _)| name == k).map(|(_, v)| v.clone())).unwrap();
    repairdesk::push::build_providers(&settings).unwrap()
}

/// A service-account key file as the Firebase console hands it out, its `token_uri` the stub's.
fn service_account(stub: &Stub, client_email: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    let account = json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "0123456789abcdef",
        "private_key": std::fs::read_to_string(fixture("test-only-fcm-rsa.pem")).unwrap(),
        "client_email": client_email,
        "client_id": "100000000000000000001",
        "token_uri": stub.url("/token"),
    });
    std::fs::write(file.path(), account.to_string()).unwrap();
    file
}

/// Google, answering sends to the registration tokens in `faults` with those answers first.
fn fcm(faults: Vec<(&str, Vec<Answer>)>, unregistered: &[&str]) -> Fcm {
    let google = Arc::new(Mutex::new(Google {
        faults: faults.into_iter().map(|(token, answers)| (token.to_owned(), VecDeque::from(answers))).collect(),
        unregistered: unregistered.iter().map(|t| (*t).to_owned()).collect(),
        ..Google::default()
    }));
    let state = google.clone();
    let stub = stub(move |r: &Received| {
        let mut google = state.lock().unwrap();
        let send = format!("/v1/projects/{PROJECT}/messages:send");
        match (r.method.as_str(), r.path.as_str()) {
            ("POST", "/token") => token_endpoint(&mut google, r),
            ("POST", path) if path == send => send_endpoint(&mut google, r),
            _ => v1_error(404, "NOT_FOUND", "no such method", json!([])),
        }
    });
    let account = service_account(&stub, CLIENT_EMAIL);
    Fcm { stub, google, account }
}

/// Google's OAuth2 token endpoint for a JWT-bearer grant.
fn token_endpoint(google: &mut Google, r: &Received) -> Answer {
    google.token_requests += 1;
    let refuse = |why: String| answer(400, json!({ "error": "invalid_grant", "error_description": why }));
    if r.header("content-type") != Some("application/x-www-form-urlencoded") {
        return refuse("not a form".into());
    }
    let fields = r.fields();
    if fields.get("grant_type").map(String::as_str) != Some(GRANT_TYPE) {
        return answer(400, json!({ "error": "unsupported_grant_type" }));
    }
    let Some(assertion) = fields.get("assertion") else { return refuse("no assertion".into()) };
    // the audience is this endpoint, as the key file names it
    let audience = format!("http://{}/token", r.header("host").unwrap_or_default());
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[CLIENT_EMAIL]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
    let key = DecodingKey::from_rsa_pem(&std::fs::read(fixture("test-only-fcm-rsa.pub.pem")).unwrap()).unwrap();
    let claims = match jsonwebtoken::decode::<Value>(assertion, &key, &validation) {
        Ok(token) => token.claims,
        Err(e) => return refuse(format!("Invalid JWT: {e}")),
    };
    if claims["scope"] != SCOPE {
        return refuse(format!("wrong scope {}", claims["scope"]));
    }
    let (iat, exp) = (claims["iat"].as_i64().unwrap_or_default(), claims["exp"].as_i64().unwrap_or_default());
    let now = chrono::Utc::now().timestamp();
    if !(1..=3600).contains(&(exp - iat)) || iat > now + 60 {
        return refuse(format!("Invalid JWT: iat {iat}, exp {exp}: at most an hour, not in the future"));
    }
    let token = format!("ya29.test-{}", google.issued.len() + 1);
    google.issued.push(token.clone());
    answer(200, json!({ "access_token": token, "expires_in": 3599, "token_type": "Bearer" }))
}

fn v1_error(code: u16, status: &str, message: &str, details: Value) -> Answer {
    answer(code, json!({ "error": { "code": code, "message": message, "status": status, "details": details } }))
}

fn fcm_error(code: &str) -> Value {
    json!({ "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code })
}

/// `messages:send`: a token it issued, a well-formed message, a registration token it knows.
fn send_endpoint(google: &mut Google, r: &Received) -> Answer {
    let bearer = r.header("authorization").and_then(|h| h.strip_prefix("Bearer "));
    if !bearer.is_some_and(|b| google.issued.iter().any(|t| t == b) && !google.revoked.contains(b)) {
        let message = "Request had invalid authentication credentials. Expected OAuth 2 access token";
        return v1_error(401, "UNAUTHENTICATED", message, json!([]));
    }
    let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
    let message = &body["message"];
    if let Some(field) = misshapen(message) {
        let violation = json!({ "@type": "type.googleapis.com/google.rpc.BadRequest",
                                "fieldViolations": [{ "field": field, "description": "Invalid value" }] });
        return v1_error(400, "INVALID_ARGUMENT", &format!("Invalid value at '{field}'"), json!([violation]));
    }
    let token = message["token"].as_str().unwrap_or_default();
    if token.starts_with("not-a-token") {
        let text = "The registration token is not a valid FCM registration token";
        return v1_error(400, "INVALID_ARGUMENT", text, json!([fcm_error("INVALID_ARGUMENT")]));
    }
    if google.unregistered.contains(token) {
        return v1_error(404, "NOT_FOUND", "Requested entity was not found.", json!([fcm_error("UNREGISTERED")]));
    }
    if let Some(fault) = google.faults.get_mut(token).and_then(|f| f.pop_front()) {
        return fault;
    }
    google.delivered.push(message.clone());
    answer(200, json!({ "name": format!("projects/{PROJECT}/messages/{}", google.delivered.len()) }))
}

/// The first field of a v1 message that FCM would refuse, if any: unknown names included.
fn misshapen(m: &Value) -> Option<&'static str> {
    let only = |v: &Value, names: &[&str]| v.as_object().is_some_and(|o| o.keys().all(|k| names.contains(&k.as_str())));
    let text = |v: &Value| v.as_str().is_some_and(|s| !s.is_empty());
    if !only(m, &["token", "notification", "data", "android", "apns"]) {
        return Some("message");
    }
    if !text(&m["token"]) {
        return Some("message.token");
    }
    let n = &m["notification"];
    if !only(n, &["title", "body"]) || !text(&n["title"]) || !text(&n["body"]) {
        return Some("message.notification");
    }
    if !m["data"].as_object().is_some_and(|d| d.values().all(Value::is_string)) {
        return Some("message.data");
    }
    let a = &m["android"];
    if !only(a, &["priority", "collapse_key", "ttl", "notification"])
        || !["HIGH", "NORMAL"].contains(&a["priority"].as_str().unwrap_or_default())
        || !text(&a["collapse_key"])
        || !a["ttl"].as_str().is_some_and(|t| t.ends_with('s') && t[..t.len() - 1].parse::<u64>().is_ok())
        || !only(&a["notification"], &["sound", "tag", "title", "body", "channel_id"])
    {
        return Some("message.android");
    }
    let apns = &m["apns"];
    let headers = &apns["headers"];
    if !only(apns, &["headers", "payload"])
        || !headers.as_object().is_some_and(|h| h.values().all(Value::is_string))
        || !["5", "10"].contains(&headers["apns-priority"].as_str().unwrap_or_default())
        || !headers["apns-collapse-id"].as_str().is_some_and(|c| !c.is_empty() && c.len() <= 64)
        || !apns["payload"]["aps"].is_object()
    {
        return Some("message.apns");
    }
    None
}

fn message(token: &str, priority: &str) -> OutgoingPush {
    push_message(token, "android", priority)
}

#[tokio::test]
async fn fcm_signs_in_once_for_many_sends_and_again_when_google_refuses_the_token() {
    let google = fcm(Vec::new(), &[]);
    let providers = google.providers();
    let provider = providers.for_service(Provider::Fcm).expect("fcm is configured");
    assert_eq!(provider.name(), "fcm");
    assert!(providers.for_service(Provider::Apns).is_none() && providers.for_service(Provider::Webhook).is_none());

    // three sends at once: one sign-in, the others wait for its token
    let messages: Vec<OutgoingPush> = (1..=3).map(|n| message(&format!("fcm-phone-{n}"), "normal")).collect();
    let sent = futures_util::future::join_all(messages.iter().map(|m| provider.send(m))).await;
    assert!(sent.iter().all(Result::is_ok), "{sent:?}");
    assert_eq!(provider.send(&messages[0]).await, Ok(()));
    assert_eq!(google.token_requests(), 1);
    assert_eq!(google.bearers(), vec!["Bearer ya29.test-1"; 4]);
    assert_eq!(google.delivered().len(), 4);

    // Google stops taking that token: the send is to be retried, and the retry signs in again
    google.revoke_tokens();
    match provider.send(&messages[0]).await {
        Err(SendError::Retryable { error, .. }) => assert!(error.contains("401"), "{error}"),
        other => panic!("expected a retryable 401, got {other:?}"),
    }
    assert_eq!(provider.send(&messages[0]).await, Ok(()));
    assert_eq!(provider.send(&messages[1]).await, Ok(()));
    assert_eq!(google.token_requests(), 2);
    assert_eq!(google.bearers().last().unwrap(), "Bearer ya29.test-2");
    assert_eq!(google.delivered().len(), 6);
}

#[tokio::test]
async fn fcm_says_which_failures_to_retry_and_which_tokens_to_forget() {
    let busy = Answer {
        headers: vec![("retry-after", "30".to_owned())],
        ..v1_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded", json!([fcm_error("QUOTA_EXCEEDED")]))
    };
    let down = v1_error(503, "UNAVAILABLE", "The service is currently unavailable.", json!([fcm_error("UNAVAILABLE")]));
    let google = fcm(vec![("fcm-phone-1", vec![busy, down])], &["fcm-gone"]);
    let providers = google.providers();
    let provider = providers.for_service(Provider::Fcm).unwrap();
    let m = message("fcm-phone-1", "high");
    match provider.send(&m).await {
        Err(SendError::Retryable { error, retry_after }) => {
            assert!(error.contains("429") && error.contains("QUOTA_EXCEEDED"), "{error}");
            assert_eq!(retry_after, Some(std::time::Duration::from_secs(30)));
        }
        other => panic!("expected a retryable 429, got {other:?}"),
    }
    assert!(
        matches!(provider.send(&m).await, Err(SendError::Retryable { retry_after: None, error }) if error.contains("503"))
    );
    assert_eq!(provider.send(&m).await, Ok(()));
    // the emergency, as Google took it
    let taken = google.delivered().pop().unwrap();
    assert_eq!(taken["token"], "fcm-phone-1");
    assert_eq!(taken["notification"], json!({ "title": m.title, "body": m.body }));
    assert_eq!(
        taken["data"],
        json!({ "kind": "pool_added", "ticket_id": "t-1", "number": "GY-20261203-0001", "push_id": m.id })
    );
    assert_eq!(taken["android"]["priority"], "HIGH");
    assert_eq!(taken["android"]["collapse_key"], "pool_added-u1");
    assert_eq!(taken["android"]["notification"], json!({ "sound": "default", "tag": "pool_added-u1" }));
    assert_eq!(taken["apns"]["headers"], json!({ "apns-priority": "10", "apns-collapse-id": "pool_added-u1" }));
    assert_eq!(taken["apns"]["payload"]["aps"], json!({ "sound": "default", "thread-id": "pool_added-u1" }));

    // the app is gone, or the token was never one: the device is to be forgotten
    let gone = provider.send(&message("fcm-gone", "normal")).await;
    assert!(
        matches!(gone, Err(SendError::Unregistered(ref e)) if e.contains("404") && e.contains("UNREGISTERED")),
        "{gone:?}"
    );
    let invalid = provider.send(&message("not-a-token", "normal")).await;
    assert!(matches!(invalid, Err(SendError::Unregistered(ref e)) if e.contains("INVALID_ARGUMENT")), "{invalid:?}");
    // one sign-in for all of it
    assert_eq!(google.token_requests(), 1);

    // an account Google does not know signs in with no luck, and that does not change
    let stranger = service_account(&google.stub, "someone@elsewhere.iam.gserviceaccount.com");
    let mut settings = google.settings(&[]);
    settings[0].1 = stranger.path().display().to_string();
    let refused = providers_of(&settings).for_service(Provider::Fcm).unwrap().send(&m).await;
    assert!(matches!(refused, Err(SendError::Permanent(ref e)) if e.contains("invalid_grant")), "{refused:?}");
}

#[tokio::test]
async fn fcm_phones_get_each_message_once_through_busy_and_failing_moments_and_unknown_tokens_are_pruned() {
    let busy = Answer {
        headers: vec![("retry-after", "120".to_owned())],
        ..v1_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded", json!([fcm_error("QUOTA_EXCEEDED")]))
    };
    let down = v1_error(500, "INTERNAL", "Internal error", json!([fcm_error("INTERNAL")]));
    let google = fcm(vec![("fcm-phone-1", vec![busy, down])], &["fcm-gone"]);
    let settings = google.settings(&[("REPAIRDESK_PUSH_RETRY_BASE_MS", "1000")]);
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let d = desk_with(&settings).await;
    let (t1, _) = technician_with(&d, "tech1", "fcm", "fcm-phone-1", "android").await;
    let plain = d.ticket().await;
    // tech2's phone is registered after the first ticket: it hears only of the emergency
    let (_, tech2) = technician_with(&d, "tech2", "fcm", "fcm-gone", "android").await;
    let urgent = d.create(&ticket_with(&d, &[("urgency", json!("emergency"))])).await;
    // a service this server is not configured for is still refused
    let webhook = json!({ "provider": "webhook", "token": "t", "platform": "android" });
    assert_problem(d.app.post("/api/v1/devices", &tech2, &webhook).await, 422, "validation_failed").await;

    let start = repairdesk::db::now();
    assert_eq!(d.app.deliver_push_at(start).await, 3);
    // one message met 429 (asking for two minutes), the other 500 (a second's backoff)
    assert!(google.delivered().is_empty());
    assert_eq!(json_of(d.app.get("/api/v1/devices", &tech2).await).await["items"], json!([]));
    assert_eq!(d.app.deliver_push_at(start + Duration::seconds(3)).await, 1);
    assert_eq!(d.app.deliver_push_at(start + Duration::seconds(60)).await, 0);
    assert_eq!(d.app.deliver_push_at(start + Duration::seconds(121)).await, 1);
    assert_eq!(d.app.deliver_push_at(start + Duration::hours(2)).await, 0);

    let delivered = google.delivered();
    let mut tickets: Vec<&str> = delivered.iter().map(|m| m["data"]["ticket_id"].as_str().unwrap()).collect();
    tickets.sort();
    let mut expected = vec![id(&plain), id(&urgent)];
    expected.sort();
    assert_eq!(tickets, expected, "each ticket reached the phone exactly once");
    for m in &delivered {
        assert_eq!(m["token"], "fcm-phone-1");
        assert_eq!(m["android"]["collapse_key"], format!("pool_added-{t1}"));
        assert_eq!(m["apns"]["payload"]["aps"]["thread-id"], format!("pool_added-{t1}"));
        let emergency = m["data"]["ticket_id"] == id(&urgent);
        assert_eq!(m["android"]["priority"], if emergency { "HIGH" } else { "NORMAL" });
        assert_eq!(m["android"]["notification"].get("sound").is_some(), emergency, "{m}");
        assert_eq!(m["notification"]["title"].as_str().unwrap().starts_with("【紧急】"), emergency, "{m}");
        assert_eq!(&m["data"]["number"], if emergency { &urgent["number"] } else { &plain["number"] });
    }
    assert_eq!(google.token_requests(), 1);

    // the desk sees both sent on the second attempt, and tech2's message unregistered
    let view = ticket_view(&d, id(&plain)).await;
    let m = &view["push"][0];
    assert_eq!(
        (m["status"].clone(), m["attempts"].clone(), m["provider"].clone()),
        (json!("sent"), json!(2), json!("fcm"))
    );
    let view = ticket_view(&d, id(&urgent)).await;
    assert_eq!(push_states(&view), [("sent".to_owned(), 2), ("unregistered".to_owned(), 1)]);
}
