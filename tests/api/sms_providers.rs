//! The SMS gateways against local stubs that check each request the way the real gateway does
//! (signatures recomputed from what arrived, credentials, paths, fields) and answer as it would.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::stub::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use repairdesk::sms::{build_provider, Accepted, OutgoingSms, SendError, SmsProvider, SmsSettings};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// The provider under test

fn provider(pairs: &[(&str, &str)]) -> Arc<dyn SmsProvider> {
    let vars: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let settings = SmsSettings::from_lookup(|k| vars.get(k).cloned()).expect("test SMS settings are valid");
    build_provider(&settings).expect("the provider builds")
}

fn arrival_code(to: &str) -> OutgoingSms {
    OutgoingSms {
        id: "0196f7d2-5b1e-7c44-9a0e-3f1d2c4b5a61".into(),
        to: to.into(),
        text: "【物业报修】师傅已到达 GY-20261122-0001，到场码 482913".into(),
        template: "arrival_code".into(),
        params: BTreeMap::from([
            ("code".to_owned(), "482913".to_owned()),
            ("number".to_owned(), "GY-20261122-0001".to_owned()),
            ("site".to_owned(), "翠湖花园 3栋".to_owned()),
        ]),
    }
}

const MAINLAND: &str = "+8613812345678";

fn assert_retryable(result: Result<Accepted, SendError>, mentions: &str) {
    match result {
        Err(SendError::Retryable(m)) => assert!(m.contains(mentions), "{m:?} does not mention {mentions:?}"),
        other => panic!("expected retryable mentioning {mentions:?}, got {other:?}"),
    }
}

fn assert_permanent(result: Result<Accepted, SendError>, mentions: &str) {
    match result {
        Err(SendError::Permanent(m)) => assert!(m.contains(mentions), "{m:?} does not mention {mentions:?}"),
        other => panic!("expected permanent mentioning {mentions:?}, got {other:?}"),
    }
}

/// Sends to a gateway that outlasts the 1 s timeout, and checks the client gave up in time.
async fn send_to_slow(sms: &dyn SmsProvider) -> Result<Accepted, SendError> {
    let started = Instant::now();
    let result = sms.send(&arrival_code(MAINLAND)).await;
    assert!(started.elapsed() < Duration::from_millis(2500), "took {:?}", started.elapsed());
    result
}

// ---------------------------------------------------------------------------------------------
// Webhook

pub const WEBHOOK_SECRET: &str = "whsec-7c1d9e0a-test";

/// A receiver that checks the signature over the raw body, as a customer's endpoint would.
pub fn webhook_receiver(secret: &'static str, receipt: Value) -> impl Fn(&Received) -> Answer {
    move |r| {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(&r.body);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        if r.method != "POST" || r.header("content-type") != Some("application/json") {
            return answer(415, json!({ "error": "POST application/json only" }));
        }
        if r.header("x-repairdesk-signature") != Some(expected.as_str()) {
            return answer(401, json!({ "error": "bad signature" }));
        }
        answer(200, receipt.clone())
    }
}

fn webhook(url: &str) -> Arc<dyn SmsProvider> {
    webhook_with(url, &[])
}

fn webhook_with(url: &str, extra: &[(&str, &str)]) -> Arc<dyn SmsProvider> {
    let mut pairs = vec![
        ("REPAIRDESK_SMS_PROVIDER", "webhook"),
        ("REPAIRDESK_SMS_WEBHOOK_URL", url),
        ("REPAIRDESK_SMS_WEBHOOK_SECRET", WEBHOOK_SECRET),
    ];
    pairs.extend_from_slice(extra);
    provider(&pairs)
}

#[tokio::test]
async fn the_webhook_signs_the_exact_body() {
    let receiver = stub(webhook_receiver(WEBHOOK_SECRET, json!({ "id": "hook-77", "status": "queued" })));
    let sms = webhook(&receiver.url("/hooks/sms"));

    let accepted = sms.send(&arrival_code(MAINLAND)).await.expect("the receiver takes it");

    assert_eq!(accepted, Accepted { provider_message_id: Some("hook-77".into()), status: Some("queued".into()) });
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/hooks/sms");
    let body: Value = serde_json::from_slice(&received[0].body).expect("a JSON body");
    assert_eq!(
        body,
        json!({
            "id": "0196f7d2-5b1e-7c44-9a0e-3f1d2c4b5a61",
            "to": MAINLAND,
            "text": "【物业报修】师傅已到达 GY-20261122-0001，到场码 482913",
            "template": "arrival_code",
            "params": { "code": "482913", "number": "GY-20261122-0001", "site": "翠湖花园 3栋" },
        })
    );
}

#[tokio::test]
async fn a_webhook_receipt_names_its_id_as_id_or_message_id_or_not_at_all() {
    for (receipt, id) in [
        (json!({ "message_id": "m-9" }), Some("m-9")),
        (json!({ "id": "a", "message_id": "b" }), Some("a")),
        (json!({ "ok": true }), None),
        (Value::Null, None),
    ] {
        let receiver = stub(webhook_receiver(WEBHOOK_SECRET, receipt.clone()));
        let accepted = webhook(&receiver.url("/")).send(&arrival_code(MAINLAND)).await.expect("accepted");
        assert_eq!(accepted.provider_message_id.as_deref(), id, "receipt {receipt}");
    }
}

#[tokio::test]
async fn a_webhook_that_does_not_know_our_secret_fails_for_good() {
    let receiver = stub(webhook_receiver("another-secret", json!({ "id": "never" })));
    assert_permanent(webhook(&receiver.url("/")).send(&arrival_code(MAINLAND)).await, "401");
}

#[tokio::test]
async fn a_webhook_refusing_the_message_fails_for_good() {
    let receiver = stub_answering(400, json!({ "error": "unknown template" }));
    assert_permanent(webhook(&receiver.url("/")).send(&arrival_code(MAINLAND)).await, "unknown template");
}

#[tokio::test]
async fn a_webhook_failing_or_busy_is_retried_later() {
    for (status, mentions) in [(500, "500"), (503, "503"), (429, "429")] {
        let receiver = stub_answering(status, json!({ "error": "try later" }));
        assert_retryable(webhook(&receiver.url("/")).send(&arrival_code(MAINLAND)).await, mentions);
    }
}

#[tokio::test]
async fn a_webhook_slower_than_the_timeout_is_retried_later() {
    let receiver = slow_stub();
    let sms = webhook_with(&receiver.url("/"), &[("REPAIRDESK_SMS_TIMEOUT_SECS", "1")]);
    assert_retryable(send_to_slow(sms.as_ref()).await, "timed out");
}

#[tokio::test]
async fn a_webhook_nobody_listens_on_is_retried_later() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address");
    // the listener is gone once bound and dropped: connecting is refused
    assert_retryable(webhook(&format!("http://{closed}/")).send(&arrival_code(MAINLAND)).await, "webhook");
}

// ---------------------------------------------------------------------------------------------
// Alibaba Cloud

const ALIYUN_KEY_ID: &str = "LTAI5tTestKeyId";
const ALIYUN_SECRET: &str = "aliyun-test-secret-0123";
const SIGN_NAME: &str = "翠湖物业";
const TEMPLATES: &str = "arrival_code=SMS_482001, quote_code=SMS_482002";

fn aliyun(endpoint: &str) -> Arc<dyn SmsProvider> {
    aliyun_with(endpoint, &[])
}

fn aliyun_with(endpoint: &str, extra: &[(&str, &str)]) -> Arc<dyn SmsProvider> {
    let mut pairs = vec![
        ("REPAIRDESK_SMS_PROVIDER", "aliyun"),
        ("REPAIRDESK_ALIYUN_ACCESS_KEY_ID", ALIYUN_KEY_ID),
        ("REPAIRDESK_ALIYUN_ACCESS_KEY_SECRET", ALIYUN_SECRET),
        ("REPAIRDESK_ALIYUN_SIGN_NAME", SIGN_NAME),
        ("REPAIRDESK_ALIYUN_TEMPLATES", TEMPLATES),
        ("REPAIRDESK_ALIYUN_ENDPOINT", endpoint),
    ];
    pairs.extend_from_slice(extra);
    provider(&pairs)
}

/// RFC 3986 percent-encoding, written here apart from the provider's so the two check each other.
fn rfc3986(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What Alibaba checks before sending: the refusal it would answer with, as (HTTP status, Code).
fn aliyun_refusal(r: &Received, secret: &str, nonces: &Mutex<HashSet<String>>) -> Option<(u16, String)> {
    let refuse = |status: u16, code: &str| Some((status, code.to_owned()));
    if r.method != "GET" || r.path != "/" {
        return refuse(404, "InvalidAction.NotFound");
    }
    let mut fields = r.fields();
    let Some(signature) = fields.remove("Signature") else { return refuse(400, "MissingSignature") };
    let canonicalized =
        fields.iter().map(|(k, v)| format!("{}={}", rfc3986(k), rfc3986(v))).collect::<Vec<_>>().join("&");
    let string_to_sign = format!("GET&{}&{}", rfc3986("/"), rfc3986(&canonicalized));
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(format!("{secret}&").as_bytes()).expect("any key length");
    mac.update(string_to_sign.as_bytes());
    if STANDARD.encode(mac.finalize().into_bytes()) != signature {
        return refuse(400, "SignatureDoesNotMatch");
    }
    if fields.get("AccessKeyId").map(String::as_str) != Some(ALIYUN_KEY_ID) {
        return refuse(404, "InvalidAccessKeyId.NotFound");
    }
    for (name, value) in [
        ("Action", "SendSms"),
        ("Version", "2017-05-25"),
        ("Format", "JSON"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
    ] {
        if fields.get(name).map(String::as_str) != Some(value) {
            return refuse(400, &format!("InvalidParameter.{name}"));
        }
    }
    let timestamp = fields.get("Timestamp").cloned().unwrap_or_default();
    let Ok(sent_at) = chrono::NaiveDateTime::parse_from_str(&timestamp, "%Y-%m-%dT%H:%M:%SZ") else {
        return refuse(400, "InvalidTimeStamp.Format");
    };
    if timestamp.len() != 20 {
        return refuse(400, "InvalidTimeStamp.Format");
    }
    if (chrono::Utc::now().naive_utc() - sent_at).num_minutes().abs() > 15 {
        return refuse(400, "InvalidTimeStamp.Expired");
    }
    let nonce = fields.get("SignatureNonce").cloned().unwrap_or_default();
    if nonce.is_empty() || !nonces.lock().expect("nonces").insert(nonce) {
        return refuse(400, "SignatureNonceUsed");
    }
    let phone = fields.get("PhoneNumbers").cloned().unwrap_or_default();
    if phone.is_empty() || !phone.bytes().all(|b| b.is_ascii_digit()) {
        return refuse(200, "isv.MOBILE_NUMBER_ILLEGAL");
    }
    if fields.get("SignName").map(String::as_str) != Some(SIGN_NAME) {
        return refuse(200, "isv.SMS_SIGNATURE_ILLEGAL");
    }
    if !matches!(fields.get("TemplateCode").map(String::as_str), Some("SMS_482001" | "SMS_482002")) {
        return refuse(200, "isv.SMS_TEMPLATE_ILLEGAL");
    }
    let template_param = fields.get("TemplateParam").map(|p| serde_json::from_str::<BTreeMap<String, String>>(p));
    if !matches!(template_param, Some(Ok(_))) {
        return refuse(200, "isv.INVALID_JSON_PARAM");
    }
    None
}

/// Alibaba's SendSms as far as a client can tell: checks, then `OK` with a BizId.
fn aliyun_gateway(secret: &'static str) -> impl Fn(&Received) -> Answer {
    let nonces = Mutex::new(HashSet::new());
    move |r| match aliyun_refusal(r, secret, &nonces) {
        Some((status, code)) => {
            answer(status, json!({ "Code": code, "Message": "refused by the stub", "RequestId": "stub-request-1" }))
        }
        None => answer(
            200,
            json!({ "Code": "OK", "Message": "OK", "BizId": "900619746936498440^0", "RequestId": "stub-request-1" }),
        ),
    }
}

#[tokio::test]
async fn aliyun_gets_a_send_sms_request_whose_signature_it_can_recompute() {
    let gateway = stub(aliyun_gateway(ALIYUN_SECRET));
    let message = arrival_code(MAINLAND);

    let accepted = aliyun(&gateway.address).send(&message).await.expect("Alibaba takes it");

    assert_eq!(
        accepted,
        Accepted { provider_message_id: Some("900619746936498440^0".into()), status: Some("OK".into()) }
    );
    let received = gateway.received();
    assert_eq!(received.len(), 1);
    let fields = received[0].fields();
    let field = |name: &str| fields.get(name).map(String::as_str);
    assert_eq!(field("PhoneNumbers"), Some("13812345678"));
    assert_eq!(field("TemplateCode"), Some("SMS_482001"));
    assert_eq!(field("SignName"), Some(SIGN_NAME));
    assert_eq!(field("OutId"), Some(message.id.as_str()));
    assert_eq!(field("RegionId"), Some("cn-hangzhou"));
    let template_param: BTreeMap<String, String> =
        serde_json::from_str(field("TemplateParam").unwrap_or_default()).expect("TemplateParam is JSON");
    assert_eq!(template_param, message.params);
    let nonce = field("SignatureNonce").unwrap_or_default();
    assert!(uuid::Uuid::parse_str(nonce).is_ok(), "nonce {nonce:?}");
}

#[tokio::test]
async fn aliyun_gets_foreign_numbers_with_their_country_code_and_no_plus() {
    let gateway = stub(aliyun_gateway(ALIYUN_SECRET));
    aliyun(&gateway.address).send(&arrival_code("+85291234567")).await.expect("Alibaba takes it");
    assert_eq!(gateway.received()[0].fields().get("PhoneNumbers").map(String::as_str), Some("85291234567"));
}

#[tokio::test]
async fn each_aliyun_attempt_signs_with_a_fresh_nonce() {
    let gateway = stub(aliyun_gateway(ALIYUN_SECRET));
    let sms = aliyun(&gateway.address);
    let message = arrival_code(MAINLAND);
    sms.send(&message).await.expect("first attempt");
    // the stub refuses a nonce it has seen, as Alibaba does
    sms.send(&message).await.expect("second attempt");
}

#[tokio::test]
async fn aliyun_with_the_wrong_secret_fails_for_good_with_its_code() {
    let gateway = stub(aliyun_gateway("the-real-secret"));
    assert_permanent(aliyun(&gateway.address).send(&arrival_code(MAINLAND)).await, "SignatureDoesNotMatch");
}

#[tokio::test]
async fn aliyun_refusals_fail_for_good_with_their_code() {
    for (status, code) in [
        (200, "isv.MOBILE_NUMBER_ILLEGAL"),
        (200, "isv.SMS_TEMPLATE_ILLEGAL"),
        (200, "isv.AMOUNT_NOT_ENOUGH"),
        (404, "InvalidAccessKeyId.NotFound"),
    ] {
        let gateway = stub_answering(status, json!({ "Code": code, "Message": "no", "RequestId": "r-1" }));
        assert_permanent(aliyun(&gateway.address).send(&arrival_code(MAINLAND)).await, code);
    }
}

#[tokio::test]
async fn aliyun_rate_limits_and_outages_are_retried_later() {
    for (status, code) in [
        (200, "isv.BUSINESS_LIMIT_CONTROL"),
        (400, "Throttling.User"),
        (200, "isp.SYSTEM_ERROR"),
        (503, "ServiceUnavailable"),
    ] {
        let gateway = stub_answering(status, json!({ "Code": code, "Message": "later", "RequestId": "r-1" }));
        assert_retryable(aliyun(&gateway.address).send(&arrival_code(MAINLAND)).await, code);
    }
}

#[tokio::test]
async fn aliyun_server_errors_and_429_are_retried_later() {
    for (status, body) in [(500, json!("upstream failed")), (502, Value::Null), (429, json!({ "error": "slow down" }))]
    {
        let gateway = stub_answering(status, body);
        assert_retryable(aliyun(&gateway.address).send(&arrival_code(MAINLAND)).await, &status.to_string());
    }
}

#[tokio::test]
async fn a_slow_aliyun_is_retried_later() {
    let gateway = slow_stub();
    let sms = aliyun_with(&gateway.address, &[("REPAIRDESK_SMS_TIMEOUT_SECS", "1")]);
    assert_retryable(send_to_slow(sms.as_ref()).await, "timed out");
}

#[tokio::test]
async fn a_template_aliyun_has_no_code_for_fails_for_good_without_a_request() {
    let gateway = stub(aliyun_gateway(ALIYUN_SECRET));
    let mut message = arrival_code(MAINLAND);
    message.template = "callback_reminder".into();
    assert_permanent(aliyun(&gateway.address).send(&message).await, "callback_reminder");
    assert!(gateway.received().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Twilio

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const AUTH_TOKEN: &str = "twilio-test-token-0123";

fn twilio_with(base_url: &str, extra: &[(&str, &str)]) -> Arc<dyn SmsProvider> {
    let mut pairs = vec![
        ("REPAIRDESK_SMS_PROVIDER", "twilio"),
        ("REPAIRDESK_TWILIO_ACCOUNT_SID", ACCOUNT_SID),
        ("REPAIRDESK_TWILIO_BASE_URL", base_url),
    ];
    pairs.extend_from_slice(extra);
    if !pairs.iter().any(|(k, _)| *k == "REPAIRDESK_TWILIO_AUTH_TOKEN") {
        pairs.push(("REPAIRDESK_TWILIO_AUTH_TOKEN", AUTH_TOKEN));
    }
    if !pairs.iter().any(|(k, _)| *k == "REPAIRDESK_TWILIO_MESSAGING_SERVICE_SID") {
        pairs.push(("REPAIRDESK_TWILIO_FROM", "+15005550006"));
    }
    provider(&pairs)
}

fn twilio(base_url: &str) -> Arc<dyn SmsProvider> {
    twilio_with(base_url, &[])
}

fn twilio_error(status: u16, code: u32, message: &str) -> Answer {
    let more_info = format!("https://www.twilio.com/docs/errors/{code}");
    answer(status, json!({ "code": code, "message": message, "more_info": more_info, "status": status }))
}

/// Twilio's Messages API as far as a client can tell: checks, then 201 with the new Message.
fn twilio_api(r: &Received) -> Answer {
    let credentials = STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"));
    if r.header("authorization") != Some(format!("Basic {credentials}").as_str()) {
        return twilio_error(401, 20003, "Authenticate");
    }
    if r.method != "POST" || r.path != format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json") {
        return twilio_error(404, 20404, "The requested resource was not found");
    }
    if !r.header("content-type").unwrap_or_default().starts_with("application/x-www-form-urlencoded") {
        return twilio_error(400, 20001, "Content-Type must be a form");
    }
    let fields = r.fields();
    let to = fields.get("To").cloned().unwrap_or_default();
    let e164 =
        to.strip_prefix('+').is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()));
    if !e164 {
        return twilio_error(400, 21211, &format!("The 'To' number {to} is not a valid phone number."));
    }
    if fields.get("Body").is_none_or(String::is_empty) {
        return twilio_error(400, 21602, "Message body is required.");
    }
    if fields.contains_key("From") == fields.contains_key("MessagingServiceSid") {
        return twilio_error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message.");
    }
    answer(
        201,
        json!({ "sid": "SM5b1e7c449a0e3f1d2c4b5a61deadbeef", "status": "queued", "to": to, "num_segments": "1" }),
    )
}

#[tokio::test]
async fn twilio_gets_a_form_post_with_basic_auth_on_the_account_path() {
    let api = stub(twilio_api);
    let message = arrival_code(MAINLAND);

    let accepted = twilio(&api.address).send(&message).await.expect("Twilio takes it");

    assert_eq!(
        accepted,
        Accepted {
            provider_message_id: Some("SM5b1e7c449a0e3f1d2c4b5a61deadbeef".into()),
            status: Some("queued".into())
        }
    );
    let fields = api.received()[0].fields();
    let expected: BTreeMap<String, String> =
        [("To", MAINLAND), ("Body", message.text.as_str()), ("From", "+15005550006")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    assert_eq!(fields, expected);
}

#[tokio::test]
async fn twilio_can_send_through_a_messaging_service() {
    let api = stub(twilio_api);
    let sms = twilio_with(&api.address, &[("REPAIRDESK_TWILIO_MESSAGING_SERVICE_SID", "MG0123456789abcdef")]);
    sms.send(&arrival_code(MAINLAND)).await.expect("Twilio takes it");
    let fields = api.received()[0].fields();
    assert_eq!(fields.get("MessagingServiceSid").map(String::as_str), Some("MG0123456789abcdef"));
    assert!(!fields.contains_key("From"));
}

#[tokio::test]
async fn wrong_twilio_credentials_fail_for_good_with_twilios_code() {
    let api = stub(twilio_api);
    let sms = twilio_with(&api.address, &[("REPAIRDESK_TWILIO_AUTH_TOKEN", "stale-token")]);
    let result = sms.send(&arrival_code(MAINLAND)).await;
    assert_permanent(result.clone(), "20003");
    assert_permanent(result, "Authenticate");
}

#[tokio::test]
async fn a_number_twilio_refuses_fails_for_good_with_twilios_code_and_message() {
    let api = stub(twilio_api);
    let result = twilio(&api.address).send(&arrival_code("+1555")).await;
    assert_permanent(result.clone(), "21211");
    assert_permanent(result, "is not a valid phone number");
}

#[tokio::test]
async fn twilio_server_errors_and_rate_limits_are_retried_later() {
    let cases = [
        (500, "500", json!("Internal Server Error")),
        (429, "20429", json!({ "code": 20429, "message": "Too Many Requests" })),
    ];
    for (status, mentions, body) in cases {
        let api = stub_answering(status, body);
        assert_retryable(twilio(&api.address).send(&arrival_code(MAINLAND)).await, mentions);
    }
}

#[tokio::test]
async fn a_slow_twilio_is_retried_later() {
    let api = slow_stub();
    let sms = twilio_with(&api.address, &[("REPAIRDESK_SMS_TIMEOUT_SECS", "1")]);
    assert_retryable(send_to_slow(sms.as_ref()).await, "timed out");
}
