//! Push notifications to technicians' phones, through the `webhook` push service pointed at a
//! local stub that checks our signature and answers as told. The outbox runs only when a test
//! asks (`TestApp::deliver_push_at`), at the time it names.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chrono::Duration;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::onsite::act;
use crate::stub::{answer, stub, Answer, Received, Stub};
use crate::tickets::{desk_with, ticket_body, Desk};

const SECRET: &str = "push-whsec-test";

/// A desk whose pushes go to `phones` through the webhook service.
async fn desk_pushing_to(phones: &Stub, extra: &[(&str, &str)]) -> Desk {
    let url = phones.url("/push");
    let mut settings = vec![
        ("REPAIRDESK_PUSH_WEBHOOK_URL", url.as_str()),
        ("REPAIRDESK_PUSH_WEBHOOK_SECRET", SECRET),
        ("REPAIRDESK_PUSH_TIMEOUT_SECS", "2"),
    ];
    settings.extend_from_slice(extra);
    desk_with(&settings).await
}

/// A push gateway that checks the signature, then answers the scripted answers in turn (then 200).
fn phones_answering(script: Vec<Answer>) -> Stub {
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    stub(move |r: &Received| {
        let signed = crate::sms_providers::webhook_receiver(SECRET, json!({}))(r);
        if signed.status != 200 {
            return signed;
        }
        script.lock().unwrap().pop_front().unwrap_or_else(|| answer(200, json!({ "ok": true })))
    })
}

fn phones() -> Stub {
    phones_answering(Vec::new())
}

/// What the gateway received, as the JSON we sent, in order.
fn pushed(phones: &Stub) -> Vec<Value> {
    phones.received().iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect()
}

/// What reached `token`.
fn pushed_to(phones: &Stub, token: &str) -> Vec<Value> {
    pushed(phones).into_iter().filter(|m| m["token"] == token).collect()
}

fn kinds(messages: &[Value]) -> Vec<String> {
    messages.iter().map(|m| m["data"]["kind"].as_str().unwrap().to_owned()).collect()
}

/// A technician of the desk's site (water) with a phone registered under `token`.
async fn technician_with_phone(d: &Desk, name: &str, token: &str) -> (String, String) {
    technician_with(d, name, "webhook", token, "android").await
}

/// A technician of the desk's site (water) with a phone of `platform` registered with `provider`.
pub(crate) async fn technician_with(
    d: &Desk,
    name: &str,
    provider: &str,
    token: &str,
    platform: &str,
) -> (String, String) {
    let (id, access) = d.technician(name).await;
    let body = json!({ "provider": provider, "token": token, "platform": platform });
    let res = d.app.post("/api/v1/devices", &access, &body).await;
    assert_eq!(res.status(), 201);
    (id, access)
}

pub(crate) async fn ticket_view(d: &Desk, id: &str) -> Value {
    json_of(d.app.get(&format!("/api/v1/tickets/{id}"), &d.desk).await).await
}

pub(crate) fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

#[tokio::test]
async fn a_phone_is_registered_listed_and_removed_and_bad_registrations_name_their_field() {
    let gw = phones();
    let d = desk_pushing_to(&gw, &[]).await;
    let (_, tech) = d.technician("tech1").await;
    let body = json!({ "provider": "webhook", "token": "tok-A", "platform": "android", "app_version": "2.3.1" });
    let device = json_of(d.app.post("/api/v1/devices", &tech, &body).await).await;
    assert_eq!((device["provider"].clone(), device["token"].clone()), (json!("webhook"), json!("tok-A")));
    assert_eq!((device["platform"].clone(), device["app_version"].clone()), (json!("android"), json!("2.3.1")));
    assert!(device["created_at"].is_string());
    // the same token again: the same registration
    let res = d
        .app
        .post("/api/v1/devices", &tech, &json!({ "provider": "webhook", "token": "tok-A", "platform": "ios" }))
        .await;
    assert_eq!(res.status(), 201);
    let again = json_of(res).await;
    assert_eq!((again["id"].clone(), again["platform"].clone()), (device["id"].clone(), json!("ios")));
    let list = json_of(d.app.get("/api/v1/devices", &tech).await).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    let bad = [
        (json!({ "provider": "fcm", "token": "t", "platform": "android" }), "provider"),
        (json!({ "provider": "pigeon", "token": "t", "platform": "android" }), "provider"),
        (json!({ "provider": "webhook", "token": "t", "platform": "windows" }), "platform"),
        (json!({ "provider": "webhook", "token": " ", "platform": "android" }), "token"),
        (json!({ "provider": "webhook", "token": "a b", "platform": "android" }), "token"),
        (json!({ "provider": "webhook", "token": "t\u{0}x", "platform": "android" }), "token"),
        (json!({ "provider": "webhook", "token": "t", "platform": "android", "app_version": "  " }), "app_version"),
        (
            json!({ "provider": "webhook", "token": "t", "platform": "android", "app_version": "v".repeat(51) }),
            "app_version",
        ),
        (json!({ "provider": "webhook", "platform": "android" }), "token"),
    ];
    for (body, field) in bad {
        let problem = assert_problem(d.app.post("/api/v1/devices", &tech, &body).await, 422, "validation_failed").await;
        let fields: Vec<&str> =
            problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(fields, vec![field], "{body}: {problem}");
    }

    // someone else's device is not theirs to remove
    let (_, other) = d.technician("tech2").await;
    let path = format!("/api/v1/devices/{}", id(&device));
    assert_problem(d.app.delete(&path, &other).await, 404, "not_found").await;
    assert_eq!(d.app.delete(&path, &tech).await.status(), 204);
    assert_problem(d.app.delete(&path, &tech).await, 404, "not_found").await;
    let list = json_of(d.app.get("/api/v1/devices", &tech).await).await;
    assert_eq!(list["items"], json!([]));
}

#[tokio::test]
async fn a_server_without_push_services_takes_no_registration() {
    let d = desk_with(&[]).await;
    let (_, tech) = d.technician("tech1").await;
    let body = json!({ "provider": "webhook", "token": "tok", "platform": "android" });
    let problem = assert_problem(d.app.post("/api/v1/devices", &tech, &body).await, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "provider", "{problem}");
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("not configured"), "{problem}");
}

#[tokio::test]
async fn each_change_reaches_the_technicians_it_concerns_once() {
    let gw = phones();
    let d = desk_pushing_to(&gw, &[]).await;
    let (t1, tech1) = technician_with_phone(&d, "tech1", "phone-1").await;
    let (t2, tech2) = technician_with_phone(&d, "tech2", "phone-2").await;

    // a new ticket: both phones, as pool_added, naming the ticket
    let body = ticket_with(&d, &[("area", json!("public")), ("paid", json!(true)), ("location", json!("3栋大堂"))]);
    let t = d.create(&body).await;
    let (tid, number) = (id(&t).to_owned(), t["number"].as_str().unwrap().to_owned());
    assert_eq!(d.app.deliver_push().await, 2);
    for (token, user) in [("phone-1", &t1), ("phone-2", &t2)] {
        let got = pushed_to(&gw, token);
        assert_eq!(got.len(), 1, "{got:?}");
        let m = &got[0];
        assert_eq!(m["provider"], "webhook");
        assert_eq!(m["data"], json!({ "kind": "pool_added", "ticket_id": tid, "number": number }));
        assert_eq!(m["priority"], "normal");
        assert_eq!(m["collapse_key"], format!("pool_added-{user}"));
        assert_eq!(m["title"], format!("新工单 {number}"));
        assert!(m["body"].as_str().unwrap().contains("3栋大堂"), "{m}");
        assert!(m["id"].is_string());
    }

    // claimed: nobody is told; the desk hands it to tech2: tech1 loses it, tech2 gets it
    assert_eq!(act(&d, &tech1, &tid, "claim", json!({})).await.status(), 200);
    assert_eq!(d.app.deliver_push().await, 0);
    let res = act(&d, &d.desk, &tid, "assign", json!({ "technician_id": t2, "reason": "离得近" })).await;
    assert_eq!(res.status(), 200);
    assert_eq!(d.app.deliver_push().await, 2);
    assert_eq!(kinds(&pushed_to(&gw, "phone-1")), ["pool_added", "unassigned"]);
    assert_eq!(kinds(&pushed_to(&gw, "phone-2")), ["pool_added", "assigned"]);

    // the desk records the resident's consent to tech2's quote: tech2 hears of it
    assert_eq!(act(&d, &tech2, &tid, "arrive", json!({})).await.status(), 200);
    assert!(act(&d, &tech2, &tid, "quote", json!({ "amount_cents": 8000 })).await.status().is_success());
    let res = act(&d, &d.desk, &tid, "quote/accept", json!({ "via": "phone", "note": "业主电话同意" })).await;
    assert_eq!(res.status(), 200);
    assert_eq!(d.app.deliver_push().await, 1);
    let decided = pushed_to(&gw, "phone-2").pop().unwrap();
    assert_eq!(decided["data"]["kind"], "quote_decided");
    assert_eq!(decided["title"], format!("报价已同意 {number}"));

    // cancelled: its holder is told
    let res = act(&d, &d.desk, &tid, "cancel", json!({ "reason": "业主自行修好" })).await;
    assert_eq!(res.status(), 200);
    assert_eq!(d.app.deliver_push().await, 1);
    assert_eq!(kinds(&pushed_to(&gw, "phone-2")), ["pool_added", "assigned", "quote_decided", "cancelled"]);
    // and nothing goes twice
    assert_eq!(d.app.deliver_push_at(repairdesk::db::now() + Duration::hours(1)).await, 0);
    assert_eq!(pushed(&gw).len(), 6);
    let ids: std::collections::HashSet<String> =
        pushed(&gw).iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 6);

    // the desk sees each message's state on the ticket; a technician sees none of it
    let view = ticket_view(&d, &tid).await;
    let push = view["push"].as_array().unwrap();
    assert_eq!(push.len(), 6, "{push:?}");
    assert!(push.iter().all(|m| m["status"] == "sent" && m["attempts"] == 1 && m["last_error"].is_null()), "{push:?}");
    let to_tech1: Vec<&Value> = push.iter().filter(|m| m["user_id"] == t1.as_str()).collect();
    assert_eq!(to_tech1.iter().map(|m| m["kind"].as_str().unwrap()).collect::<Vec<_>>(), ["pool_added", "unassigned"]);
    let seen_by_tech = json_of(d.app.get(&format!("/api/v1/tickets/{tid}"), &tech2).await).await;
    assert_eq!(seen_by_tech["push"], json!([]));
}

/// The intake form of `ticket_body` with some fields changed.
pub(crate) fn ticket_with(d: &Desk, changes: &[(&str, Value)]) -> Value {
    let mut body = ticket_body(&d.site);
    for (field, value) in changes {
        body[*field] = value.clone();
    }
    body
}

#[tokio::test]
async fn off_duty_technicians_hear_of_no_new_ticket_and_a_ticket_claimed_first_is_not_pushed() {
    let gw = phones();
    let d = desk_pushing_to(&gw, &[]).await;
    let (_, tech1) = technician_with_phone(&d, "tech1", "phone-1").await;
    let (_, tech2) = technician_with_phone(&d, "tech2", "phone-2").await;
    let me = json_of(d.app.post("/api/v1/me/duty", &tech1, &json!({ "on_duty": false })).await).await;
    assert_eq!((me["username"].clone(), me["on_duty"].clone()), (json!("tech1"), json!(false)));
    assert_eq!(json_of(d.app.get("/api/v1/me", &tech2).await).await["on_duty"], true);
    assert_problem(d.app.post("/api/v1/me/duty", &tech1, &json!({ "on_duty": "no" })).await, 422, "validation_failed")
        .await;

    let a = d.ticket().await;
    let b = d.ticket().await;
    // tech2 takes b before its message goes out
    assert_eq!(act(&d, &tech2, id(&b), "claim", json!({})).await.status(), 200);
    assert_eq!(d.app.deliver_push().await, 1);
    assert!(pushed_to(&gw, "phone-1").is_empty());
    let got = pushed_to(&gw, "phone-2");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["data"]["ticket_id"], id(&a));
    let view = ticket_view(&d, id(&b)).await;
    assert_eq!(view["push"][0]["status"], "superseded", "{view}");
    assert_eq!(view["push"][0]["attempts"], 1);

    // back on duty: the next new ticket reaches tech1 too
    assert_eq!(
        json_of(d.app.post("/api/v1/me/duty", &tech1, &json!({ "on_duty": true })).await).await["on_duty"],
        true
    );
    d.ticket().await;
    assert_eq!(d.app.deliver_push().await, 2);
    assert_eq!(pushed_to(&gw, "phone-1").len(), 1);
}

#[tokio::test]
async fn a_burst_of_tickets_shares_one_collapse_key_per_technician_and_emergencies_are_urgent() {
    let gw = phones();
    let d = desk_pushing_to(&gw, &[]).await;
    let (t1, _) = technician_with_phone(&d, "tech1", "phone-1").await;
    for _ in 0..3 {
        d.ticket().await;
    }
    d.create(&ticket_with(&d, &[("urgency", json!("emergency"))])).await;
    assert_eq!(d.app.deliver_push().await, 4);
    let got = pushed_to(&gw, "phone-1");
    assert_eq!(got.len(), 4);
    assert!(got.iter().all(|m| m["collapse_key"] == format!("pool_added-{t1}")), "{got:?}");
    let tickets: std::collections::HashSet<&str> =
        got.iter().map(|m| m["data"]["ticket_id"].as_str().unwrap()).collect();
    assert_eq!(tickets.len(), 4);
    let urgent: Vec<&Value> = got.iter().filter(|m| m["priority"] == "high").collect();
    assert_eq!(urgent.len(), 1);
    assert!(urgent[0]["title"].as_str().unwrap().starts_with("【紧急】"), "{urgent:?}");
}

/// The ticket's one message reached the service twice under one id, and is sent after 2 attempts.
async fn sent_on_the_second_attempt(d: &Desk, gw: &Stub, t: &Value) {
    let received = pushed(gw);
    assert_eq!(received.len(), 2);
    assert_eq!(received[0]["id"], received[1]["id"]);
    let m = &ticket_view(d, id(t)).await["push"][0];
    assert_eq!((m["status"].clone(), m["attempts"].clone()), (json!("sent"), json!(2)));
}

#[tokio::test]
async fn a_busy_service_is_asked_again_no_sooner_than_its_retry_after() {
    let slow_down =
        Answer { headers: vec![("retry-after", "120".to_owned())], ..answer(429, json!({ "error": "slow down" })) };
    let gw = phones_answering(vec![slow_down]);
    let d = desk_pushing_to(&gw, &[("REPAIRDESK_PUSH_RETRY_BASE_MS", "1000")]).await;
    technician_with_phone(&d, "tech1", "phone-1").await;
    let t = d.ticket().await;
    let start = repairdesk::db::now();
    assert_eq!(d.app.deliver_push_at(start).await, 1);
    let m = &ticket_view(&d, id(&t)).await["push"][0];
    assert_eq!((m["status"].clone(), m["attempts"].clone()), (json!("pending"), json!(1)));
    assert!(m["last_error"].as_str().unwrap().contains("429"), "{m}");
    // the backoff alone would try again after a second; the service asked for two minutes
    assert_eq!(d.app.deliver_push_at(start + Duration::seconds(60)).await, 0);
    assert_eq!(d.app.deliver_push_at(start + Duration::seconds(119)).await, 0);
    assert_eq!(d.app.deliver_push_at(start + Duration::seconds(121)).await, 1);
    assert_eq!(d.app.deliver_push_at(start + Duration::hours(1)).await, 0);
    sent_on_the_second_attempt(&d, &gw, &t).await;
}

#[tokio::test]
async fn a_message_whose_instance_died_mid_delivery_goes_out_again_once_its_lease_has_passed() {
    let held = Answer { delay: std::time::Duration::from_secs(3), ..answer(200, json!({ "ok": true })) };
    let gw = phones_answering(vec![held]);
    let d = desk_pushing_to(&gw, &[("REPAIRDESK_PUSH_LEASE_SECS", "30")]).await;
    technician_with_phone(&d, "tech1", "phone-1").await;
    let t = d.ticket().await;
    let start = repairdesk::db::now();
    // the service has the message when the round dies (its future dropped): nothing recorded it
    let taken = async {
        while pushed(&gw).is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::select! {
        _ = d.app.deliver_push_at(start) => panic!("the round ended while the service held its request"),
        _ = taken => {}
    }
    let m = &ticket_view(&d, id(&t)).await["push"][0];
    assert_eq!((m["status"].clone(), m["attempts"].clone()), (json!("sending"), json!(1)));
    // no round takes it from its worker before the lease runs out; then one sends it again, same id
    assert_eq!(d.app.deliver_push_at(start + Duration::seconds(29)).await, 0);
    assert_eq!(d.app.deliver_push_at(start + Duration::seconds(31)).await, 1);
    assert_eq!(d.app.deliver_push_at(start + Duration::hours(1)).await, 0);
    sent_on_the_second_attempt(&d, &gw, &t).await;
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_and_given_up_after_the_limit() {
    let gw = phones_answering(vec![answer(503, json!({})), answer(500, json!({}))]);
    let d =
        desk_pushing_to(&gw, &[("REPAIRDESK_PUSH_RETRY_BASE_MS", "1000"), ("REPAIRDESK_PUSH_MAX_ATTEMPTS", "3")]).await;
    technician_with_phone(&d, "tech1", "phone-1").await;
    let t = d.ticket().await;
    let start = repairdesk::db::now();
    assert_eq!(d.app.deliver_push_at(start).await, 1);
    // 1 s (+10% at most), then 2 s
    assert_eq!(d.app.deliver_push_at(start + Duration::milliseconds(900)).await, 0);
    assert_eq!(d.app.deliver_push_at(start + Duration::seconds(2)).await, 1);
    assert_eq!(d.app.deliver_push_at(start + Duration::seconds(6)).await, 1);
    assert_eq!(d.app.deliver_push_at(start + Duration::hours(1)).await, 0);
    assert_eq!(pushed(&gw).len(), 3);
    let m = &ticket_view(&d, id(&t)).await["push"][0];
    assert_eq!((m["status"].clone(), m["attempts"].clone()), (json!("sent"), json!(3)));

    // always failing: given up after three attempts
    let down = phones_answering((0..10).map(|_| answer(502, json!({}))).collect());
    let d = desk_pushing_to(&down, &[("REPAIRDESK_PUSH_RETRY_BASE_MS", "1000"), ("REPAIRDESK_PUSH_MAX_ATTEMPTS", "3")])
        .await;
    technician_with_phone(&d, "tech1", "phone-1").await;
    let t = d.ticket().await;
    for minute in 0..5 {
        d.app.deliver_push_at(start + Duration::minutes(minute)).await;
    }
    assert_eq!(pushed(&down).len(), 3);
    let m = &ticket_view(&d, id(&t)).await["push"][0];
    assert_eq!((m["status"].clone(), m["attempts"].clone()), (json!("failed"), json!(3)));
    assert!(m["last_error"].as_str().unwrap().contains("502") && m["failed_at"].is_string(), "{m}");
}

#[tokio::test]
async fn a_token_the_service_no_longer_knows_is_forgotten() {
    let gw = phones_answering(vec![answer(410, json!({ "error": "unregistered" }))]);
    let d = desk_pushing_to(&gw, &[]).await;
    let (_, tech) = technician_with_phone(&d, "tech1", "phone-1").await;
    let t = d.ticket().await;
    assert_eq!(d.app.deliver_push().await, 1);
    let m = &ticket_view(&d, id(&t)).await["push"][0];
    assert_eq!(m["status"], "unregistered", "{m}");
    assert_eq!(json_of(d.app.get("/api/v1/devices", &tech).await).await["items"], json!([]));
    // nothing more for that phone
    d.ticket().await;
    assert_eq!(d.app.deliver_push().await, 0);
    assert_eq!(pushed(&gw).len(), 1);
}

#[tokio::test]
async fn a_phone_registered_by_the_next_shift_moves_to_them() {
    let gw = phones();
    let d = desk_pushing_to(&gw, &[]).await;
    let (t1, tech1) = technician_with_phone(&d, "tech1", "shared-phone").await;
    // a message for tech1 still waits when the phone changes hands
    let waiting = d.ticket().await;
    let (t2, tech2) = technician_with_phone(&d, "tech2", "shared-phone").await;
    assert_eq!(json_of(d.app.get("/api/v1/devices", &tech1).await).await["items"], json!([]));
    let theirs = json_of(d.app.get("/api/v1/devices", &tech2).await).await;
    assert_eq!(theirs["items"][0]["token"], "shared-phone");

    let t = d.ticket().await;
    d.app.deliver_push().await;
    // tech1's messages do not reach the phone any more; tech2's new-ticket message does
    let got = pushed_to(&gw, "shared-phone");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["collapse_key"], format!("pool_added-{t2}"));
    assert_eq!(got[0]["data"]["ticket_id"], id(&t));
    let view = ticket_view(&d, id(&waiting)).await;
    let statuses: Vec<(&str, &str)> = view["push"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["user_id"].as_str().unwrap(), m["status"].as_str().unwrap()))
        .collect();
    assert_eq!(statuses, [(t1.as_str(), "unregistered")]);
}

// ---------------------------------------------------------------------------------------------
// JPush (极光), against a stub that checks what JPush checks: basic auth of the app key and the
// master secret, and the v3 push body.

const JPUSH_KEY: &str = "4f7a0c1b2d3e4f5a6b7c8d9e";
const JPUSH_SECRET: &str = "master-secret-test";

/// A JPush API that refuses bad credentials and malformed pushes, knows the registration ids in
/// `known`, and otherwise answers `then` (or 200).
fn jpush_api(known: &'static [&'static str], then: Vec<Answer>) -> Stub {
    use base64::Engine;
    let then = Arc::new(Mutex::new(VecDeque::from(then)));
    stub(move |r: &Received| {
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{JPUSH_KEY}:{JPUSH_SECRET}"))
        );
        if r.method != "POST" || r.path != "/v3/push" {
            return answer(404, json!({ "error": { "code": 1000, "message": "no such API" } }));
        }
        if r.header("authorization") != Some(expected.as_str()) {
            return answer(401, json!({ "error": { "code": 1004, "message": "Authen failed" } }));
        }
        let Ok(body) = serde_json::from_slice::<Value>(&r.body) else {
            return answer(400, json!({ "error": { "code": 1003, "message": "not JSON" } }));
        };
        let platform = body["platform"].as_str().unwrap_or_default();
        let ids = body["audience"]["registration_id"].as_array().cloned().unwrap_or_default();
        let alert = &body["notification"][platform]["alert"];
        if !["android", "ios"].contains(&platform) || ids.len() != 1 || alert.is_null() {
            return answer(400, json!({ "error": { "code": 1003, "message": "Parameter value is invalid" } }));
        }
        if !known.contains(&ids[0].as_str().unwrap_or_default()) {
            return answer(400, json!({ "error": { "code": 1011, "message": "cannot find user by this audience" } }));
        }
        then.lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| answer(200, json!({ "sendno": "0", "msg_id": "54043195528" })))
    })
}

fn jpush_settings(api: &Stub, secret: &str) -> repairdesk::push::Providers {
    let url = api.url("");
    let vars = [
        ("REPAIRDESK_JPUSH_APP_KEY", JPUSH_KEY),
        ("REPAIRDESK_JPUSH_MASTER_SECRET", secret),
        ("REPAIRDESK_JPUSH_BASE_URL", url.as_str()),
        ("REPAIRDESK_PUSH_TIMEOUT_SECS", "2"),
    ];
    let settings = repairdesk::push::PushSettings::from_lookup(|k| {
        vars.iter().find(|(name, _)| *name == k).map(|(_, v)| (*v).to_owned())
    })
    .unwrap();
    repairdesk::push::build_providers(&settings).unwrap()
}

/// A message as the outbox hands one to a provider: a new ticket in the pool, an emergency when
/// `priority` is `high`; the provider tests' sample.
pub fn push_message(token: &str, platform: &str, priority: &str) -> repairdesk::push::OutgoingPush {
    let urgent = if priority == "high" { "【紧急】" } else { "" };
    repairdesk::push::OutgoingPush {
        id: "m-1".into(),
        token: token.into(),
        platform: platform.into(),
        title: format!("{urgent}新工单 GY-20261203-0001"),
        body: "3栋2单元1201，可以抢单了".into(),
        priority: priority.into(),
        collapse_key: "pool_added-u1".into(),
        data: [("kind", "pool_added"), ("ticket_id", "t-1"), ("number", "GY-20261203-0001")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    }
}

/// Each message of a ticket's `push` as the desk sees it: its status and attempts, sorted.
pub fn push_states(view: &Value) -> Vec<(String, i64)> {
    let mut states: Vec<(String, i64)> = view["push"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["status"].as_str().unwrap().to_owned(), m["attempts"].as_i64().unwrap()))
        .collect();
    states.sort();
    states
}

#[tokio::test]
async fn jpush_takes_a_message_with_basic_auth_and_says_which_failures_to_retry() {
    use repairdesk::domain::push::Provider;
    use repairdesk::push::SendError;
    let busy = Answer {
        headers: vec![("retry-after", "30".to_owned())],
        ..answer(429, json!({ "error": { "code": 2002, "message": "rate limited" } }))
    };
    let api = jpush_api(&["1a0018970af2a3c5d1e"], vec![busy, answer(503, json!({}))]);
    let providers = jpush_settings(&api, JPUSH_SECRET);
    let jpush = providers.for_service(Provider::Jpush).expect("jpush is configured");
    assert_eq!(jpush.name(), "jpush");
    // the webhook, FCM and APNs are not
    assert!(providers.for_service(Provider::Webhook).is_none() && providers.for_service(Provider::Fcm).is_none());

    let message = push_message("1a0018970af2a3c5d1e", "android", "high");
    match jpush.send(&message).await {
        Err(SendError::Retryable { error, retry_after }) => {
            assert!(error.contains("429") && error.contains("2002"), "{error}");
            assert_eq!(retry_after, Some(std::time::Duration::from_secs(30)));
        }
        other => panic!("expected a retryable 429, got {other:?}"),
    }
    assert!(matches!(jpush.send(&message).await, Err(SendError::Retryable { retry_after: None, .. })));
    assert_eq!(jpush.send(&message).await, Ok(()));
    let sent: Value = serde_json::from_slice(&api.received().last().unwrap().body).unwrap();
    assert_eq!(sent["notification"]["android"]["title"], message.title);
    assert_eq!(sent["notification"]["android"]["alert"], message.body);
    assert_eq!(sent["notification"]["android"]["extras"]["ticket_id"], "t-1");
    assert_eq!(sent["notification"]["android"]["priority"], 2);
    // the message's id, the same on every attempt, so the app drops a copy it already has
    assert_eq!(sent["notification"]["android"]["extras"]["push_id"], "m-1");

    // a registration id JPush does not know: the device is to be forgotten
    assert!(
        matches!(jpush.send(&push_message("0000unknown", "android", "high")).await, Err(SendError::Unregistered(m)) if m.contains("1011"))
    );
    // wrong credentials will not get better
    let wrong = jpush_settings(&api, "not-the-secret");
    let refused = wrong.for_service(Provider::Jpush).unwrap().send(&message).await;
    assert!(matches!(refused, Err(SendError::Permanent(m)) if m.contains("401") && m.contains("1004")));
}

#[tokio::test]
async fn a_new_ticket_reaches_a_jpush_phone_and_an_unknown_registration_id_is_forgotten() {
    let api = jpush_api(&["1a0018970af2a3c5d1e"], Vec::new());
    let url = api.url("");
    let d = desk_with(&[
        ("REPAIRDESK_JPUSH_APP_KEY", JPUSH_KEY),
        ("REPAIRDESK_JPUSH_MASTER_SECRET", JPUSH_SECRET),
        ("REPAIRDESK_JPUSH_BASE_URL", url.as_str()),
    ])
    .await;
    let mut techs = Vec::new();
    for (name, token) in [("tech1", "1a0018970af2a3c5d1e"), ("tech2", "0000unknown")] {
        let (_, access) = d.technician(name).await;
        let body = json!({ "provider": "jpush", "token": token, "platform": "android" });
        assert_eq!(d.app.post("/api/v1/devices", &access, &body).await.status(), 201);
        techs.push(access);
    }
    let t = d.ticket().await;
    assert_eq!(d.app.deliver_push().await, 2);
    let view = ticket_view(&d, id(&t)).await;
    let mut statuses: Vec<&str> =
        view["push"].as_array().unwrap().iter().map(|m| m["status"].as_str().unwrap()).collect();
    statuses.sort();
    assert_eq!(statuses, ["sent", "unregistered"]);
    assert_eq!(json_of(d.app.get("/api/v1/devices", &techs[1]).await).await["items"], json!([]));
    assert_eq!(json_of(d.app.get("/api/v1/devices", &techs[0]).await).await["items"].as_array().unwrap().len(), 1);
    let sent: Value = serde_json::from_slice(&api.received()[0].body).unwrap();
    assert_eq!(sent["notification"]["android"]["extras"]["number"], t["number"]);
    // each request names its message, the one taken as the one the ticket shows sent
    let ids_of = |status: &str| -> Vec<Value> {
        view["push"].as_array().unwrap().iter().filter(|m| m["status"] == status).map(|m| m["id"].clone()).collect()
    };
    for r in api.received() {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let status = if body["audience"]["registration_id"][0] == "0000unknown" { "unregistered" } else { "sent" };
        assert_eq!(vec![body["notification"]["android"]["extras"]["push_id"].clone()], ids_of(status), "{body}");
    }
}
