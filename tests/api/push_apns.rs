//! Apple Push Notification service (token authentication) against a stub that speaks only HTTP/2
//! and checks what Apple checks: the ES256 provider token (signature with the key's public half,
//! `kid`, the team as issuer, not older than an hour), the `apns-*` headers, and the device token
//! in the path.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::Duration;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use repairdesk::domain::push::Provider;
use repairdesk::push::{OutgoingPush, Providers, SendError};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::push::{id, push_message, push_states, technician_with, ticket_view, ticket_with};
use crate::push_fcm::{fixture, providers_of};
use crate::stub::{answer, h2_stub, Answer, Received, Stub};
use crate::tickets::desk_with;

const KEY_ID: &str = "ABC123DEFG";
const TEAM_ID: &str = "DEF123GHIJ";
const TOPIC: &str = "cn.example.repairdesk";

/// A device token as iOS hands it out: 32 bytes in hex.
fn device(n: u8) -> String {
    format!("{:02x}", n).repeat(32)
}

#[derive(Default)]
struct Apple {
    /// Device tokens whose app was removed.
    unregistered: HashSet<String>,
    /// What a push to a device token is answered before it is taken, in turn.
    faults: HashMap<String, VecDeque<Answer>>,
    /// The next push is refused as if its provider token had expired.
    expire_next_token: bool,
    /// Provider tokens refused so far; one shown again is refused again.
    refused: HashSet<String>,
    /// The pushes taken (answered 200): their device token, headers and payload.
    delivered: Vec<(String, HashMap<String, String>, Value)>,
}

struct Apns {
    stub: Stub,
    apple: Arc<Mutex<Apple>>,
}

impl Apns {
    fn delivered(&self) -> Vec<(String, HashMap<String, String>, Value)> {
        self.apple.lock().unwrap().delivered.clone()
    }

    fn settings(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut settings: Vec<(String, String)> = [
            ("REPAIRDESK_APNS_KEY_FILE", fixture("test-only-apns-p256.p8")),
            ("REPAIRDESK_APNS_KEY_ID", KEY_ID.to_owned()),
            ("REPAIRDESK_APNS_TEAM_ID", TEAM_ID.to_owned()),
            ("REPAIRDESK_APNS_TOPIC", TOPIC.to_owned()),
            ("REPAIRDESK_APNS_BASE_URL", self.stub.url("")),
            ("REPAIRDESK_PUSH_TIMEOUT_SECS", "2".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        settings.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        settings
    }

    fn providers(&self) -> Providers {
        providers_of(&self.settings(&[]))
    }
}

fn apns(faults: Vec<(String, Vec<Answer>)>, unregistered: &[String]) -> Apns {
    let apple = Arc::new(Mutex::new(Apple {
        faults: faults.into_iter().map(|(token, answers)| (token, VecDeque::from(answers))).collect(),
        unregistered: unregistered.iter().cloned().collect(),
        ..Apple::default()
    }));
    let state = apple.clone();
    let stub = h2_stub(move |r: &Received| push_endpoint(&mut state.lock().unwrap(), r));
    Apns { stub, apple }
}

fn refuse(status: u16, reason: &str) -> Answer {
    answer(status, json!({ "reason": reason }))
}

/// `POST /3/device/{token}` as Apple answers it.
fn push_endpoint(apple: &mut Apple, r: &Received) -> Answer {
    if r.version != "HTTP/2.0" {
        return refuse(400, "BadProtocol");
    }
    if r.method != "POST" {
        return refuse(405, "MethodNotAllowed");
    }
    let Some(token) = r.path.strip_prefix("/3/device/") else { return refuse(404, "BadPath") };
    // the provider token
    let Some(jwt) = r.header("authorization").and_then(|a| a.strip_prefix("bearer ")) else {
        return refuse(403, "MissingProviderToken");
    };
    let Ok(header) = jsonwebtoken::decode_header(jwt) else { return refuse(403, "InvalidProviderToken") };
    if header.alg != Algorithm::ES256 || header.kid.as_deref() != Some(KEY_ID) {
        return refuse(403, "InvalidProviderToken");
    }
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[TEAM_ID]);
    // Apple's tokens carry no expiry: the issue time decides
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["iss"]);
    let key = DecodingKey::from_ec_pem(&std::fs::read(fixture("test-only-apns-p256.pub.pem")).unwrap()).unwrap();
    let Ok(claims) = jsonwebtoken::decode::<Value>(jwt, &key, &validation).map(|t| t.claims) else {
        return refuse(403, "InvalidProviderToken");
    };
    let iat = claims["iat"].as_i64().unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    if iat > now + 60 {
        return refuse(403, "InvalidProviderToken");
    }
    if now - iat > 3600 || apple.refused.contains(jwt) {
        return refuse(403, "ExpiredProviderToken");
    }
    if apple.expire_next_token {
        apple.expire_next_token = false;
        apple.refused.insert(jwt.to_owned());
        return refuse(403, "ExpiredProviderToken");
    }
    // the headers
    match r.header("apns-topic") {
        None => return refuse(400, "MissingTopic"),
        Some(topic) if topic != TOPIC => return refuse(400, "TopicDisallowed"),
        Some(_) => {}
    }
    if r.header("apns-push-type") != Some("alert") {
        return refuse(400, "InvalidPushType");
    }
    if !["5", "10"].contains(&r.header("apns-priority").unwrap_or("10")) {
        return refuse(400, "BadPriority");
    }
    if r.header("apns-collapse-id").is_some_and(|c| c.len() > 64) {
        return refuse(400, "BadCollapseId");
    }
    if r.header("apns-expiration").is_some_and(|e| e.parse::<u64>().is_err()) {
        return refuse(400, "BadExpirationDate");
    }
    // the payload
    let payload: Value = serde_json::from_slice(&r.body).unwrap_or_default();
    if !payload["aps"].is_object() {
        return refuse(400, "PayloadEmpty");
    }
    // the device token
    if token.len() != 64 || !token.chars().all(|c| c.is_ascii_hexdigit()) {
        return refuse(400, "BadDeviceToken");
    }
    if apple.unregistered.contains(token) {
        return answer(410, json!({ "reason": "Unregistered", "timestamp": now * 1000 }));
    }
    if let Some(fault) = apple.faults.get_mut(token).and_then(|f| f.pop_front()) {
        return fault;
    }
    apple.delivered.push((token.to_owned(), r.headers.clone(), payload));
    Answer { headers: vec![("apns-id", "EC1BF194-B3B2-424A-89A9-5A918A6E6B5D".to_owned())], ..answer(200, Value::Null) }
}

fn message(token: &str, priority: &str) -> OutgoingPush {
    push_message(token, "ios", priority)
}

#[tokio::test]
async fn apns_pushes_over_http2_with_a_provider_token_and_says_which_failures_to_retry() {
    let busy = Answer { headers: vec![("retry-after", "30".to_owned())], ..refuse(429, "TooManyRequests") };
    let apple = apns(vec![(device(1), vec![busy, refuse(503, "ServiceUnavailable")])], &[device(9)]);
    let providers = apple.providers();
    let provider = providers.for_service(Provider::Apns).expect("apns is configured");
    assert_eq!(provider.name(), "apns");
    assert!(providers.for_service(Provider::Fcm).is_none());

    let m = message(&device(1), "high");
    match provider.send(&m).await {
        Err(SendError::Retryable { error, retry_after }) => {
            assert!(error.contains("429") && error.contains("TooManyRequests"), "{error}");
            assert_eq!(retry_after, Some(std::time::Duration::from_secs(30)));
        }
        other => panic!("expected a retryable 429, got {other:?}"),
    }
    let down = provider.send(&m).await;
    assert!(
        matches!(down, Err(SendError::Retryable { retry_after: None, ref error }) if error.contains("503")),
        "{down:?}"
    );
    assert_eq!(provider.send(&m).await, Ok(()));
    let (token, headers, payload) = apple.delivered().pop().unwrap();
    assert_eq!(token, device(1));
    assert_eq!(headers["apns-priority"], "10");
    assert_eq!(headers["apns-collapse-id"], "pool_added-u1");
    assert!(headers["apns-expiration"].parse::<i64>().unwrap() > chrono::Utc::now().timestamp());
    assert_eq!(
        payload,
        json!({
            "aps": { "alert": { "title": m.title, "body": m.body }, "sound": "default", "thread-id": "pool_added-u1" },
            "kind": "pool_added", "ticket_id": "t-1", "number": "GY-20261203-0001", "push_id": m.id,
        })
    );
    // every request went over HTTP/2, with one provider token
    let received = apple.stub.received();
    assert!(received.iter().all(|r| r.version == "HTTP/2.0"), "{received:?}");
    let tokens: HashSet<&str> = received.iter().map(|r| r.header("authorization").unwrap()).collect();
    assert_eq!(tokens.len(), 1);

    // an ordinary message: normal priority, no sound
    assert_eq!(provider.send(&message(&device(2), "normal")).await, Ok(()));
    let (_, headers, payload) = apple.delivered().pop().unwrap();
    assert_eq!(headers["apns-priority"], "5");
    assert!(payload["aps"].get("sound").is_none(), "{payload}");

    // the app was removed, or the token is no device's: forget the device
    let gone = provider.send(&message(&device(9), "normal")).await;
    assert!(
        matches!(gone, Err(SendError::Unregistered(ref e)) if e.contains("410") && e.contains("Unregistered")),
        "{gone:?}"
    );
    let bad = provider.send(&message("not-hex", "normal")).await;
    assert!(matches!(bad, Err(SendError::Unregistered(ref e)) if e.contains("BadDeviceToken")), "{bad:?}");

    // Apple calls the provider token expired: retried, with a new one
    apple.apple.lock().unwrap().expire_next_token = true;
    let expired = provider.send(&m).await;
    assert!(
        matches!(expired, Err(SendError::Retryable { ref error, .. }) if error.contains("ExpiredProviderToken")),
        "{expired:?}"
    );
    assert_eq!(provider.send(&m).await, Ok(()));
    let received = apple.stub.received();
    let last_two: Vec<&str> = received.iter().rev().take(2).map(|r| r.header("authorization").unwrap()).collect();
    assert_ne!(last_two[0], last_two[1]);

    // a topic Apple does not give this key gives the message up, and keeps the device
    let mut settings = apple.settings(&[]);
    settings[3].1 = "cn.example.other".into();
    let refused = providers_of(&settings).for_service(Provider::Apns).unwrap().send(&m).await;
    assert!(matches!(refused, Err(SendError::Permanent(ref e)) if e.contains("TopicDisallowed")), "{refused:?}");
}

#[tokio::test]
async fn iphones_get_each_message_once_through_busy_and_failing_moments_and_unknown_tokens_are_pruned() {
    let busy = Answer { headers: vec![("retry-after", "120".to_owned())], ..refuse(429, "TooManyRequests") };
    let apple = apns(vec![(device(1), vec![busy, refuse(503, "ServiceUnavailable")])], &[device(9)]);
    let settings = apple.settings(&[("REPAIRDESK_PUSH_RETRY_BASE_MS", "1000")]);
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let d = desk_with(&settings).await;
    let (t1, _) = technician_with(&d, "tech1", "apns", &device(1), "ios").await;
    let plain = d.ticket().await;
    // tech2's phone is registered after the first ticket: it hears only of the emergency
    let (_, tech2) = technician_with(&d, "tech2", "apns", &device(9), "ios").await;
    let urgent = d.create(&ticket_with(&d, &[("urgency", json!("emergency"))])).await;

    let start = repairdesk::db::now();
    assert_eq!(d.app.deliver_push_at(start).await, 3);
    // one message met 429 (asking for two minutes), the other 503 (a second's backoff)
    assert!(apple.delivered().is_empty());
    assert_eq!(json_of(d.app.get("/api/v1/devices", &tech2).await).await["items"], json!([]));
    assert_eq!(d.app.deliver_push_at(start + Duration::seconds(3)).await, 1);
    assert_eq!(d.app.deliver_push_at(start + Duration::seconds(60)).await, 0);
    assert_eq!(d.app.deliver_push_at(start + Duration::seconds(121)).await, 1);
    assert_eq!(d.app.deliver_push_at(start + Duration::hours(2)).await, 0);

    let delivered = apple.delivered();
    let mut tickets: Vec<&str> = delivered.iter().map(|(_, _, p)| p["ticket_id"].as_str().unwrap()).collect();
    tickets.sort();
    let mut expected = vec![id(&plain), id(&urgent)];
    expected.sort();
    assert_eq!(tickets, expected, "each ticket reached the phone exactly once");
    for (token, headers, payload) in &delivered {
        assert_eq!(token, &device(1));
        assert_eq!(headers["apns-topic"], TOPIC);
        assert_eq!(headers["apns-push-type"], "alert");
        assert_eq!(headers["apns-collapse-id"], format!("pool_added-{t1}"));
        assert_eq!(payload["aps"]["thread-id"], format!("pool_added-{t1}"));
        assert_eq!(payload["kind"], "pool_added");
        let emergency = payload["ticket_id"] == id(&urgent);
        assert_eq!(headers["apns-priority"], if emergency { "10" } else { "5" });
        assert_eq!(payload["aps"]["sound"] == "default", emergency, "{payload}");
        assert_eq!(payload["aps"]["alert"]["title"].as_str().unwrap().starts_with("【紧急】"), emergency);
        assert_eq!(&payload["number"], if emergency { &urgent["number"] } else { &plain["number"] });
    }

    let view = ticket_view(&d, id(&plain)).await;
    let m = &view["push"][0];
    assert_eq!(
        (m["status"].clone(), m["attempts"].clone(), m["provider"].clone()),
        (json!("sent"), json!(2), json!("apns"))
    );
    let view = ticket_view(&d, id(&urgent)).await;
    assert_eq!(push_states(&view), [("sent".to_owned(), 2), ("unregistered".to_owned(), 1)]);
}
