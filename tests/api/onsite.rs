use serde_json::{json, Value};

use crate::helpers::*;
use crate::sms_providers::{webhook_receiver, WEBHOOK_SECRET};
use crate::stub::{answer, stub, Stub};
use crate::tickets::{desk_with, ticket_body, Desk};

/// A 1×1 PNG.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

/// A desk whose SMS go to `gateway` through the webhook provider, when the test runs the outbox.
pub async fn desk_sending_to(gateway: &Stub, extra: &[(&str, &str)]) -> Desk {
    let url = gateway.url("/sms");
    let mut settings = vec![
        ("REPAIRDESK_SMS_PROVIDER", "webhook"),
        ("REPAIRDESK_SMS_WEBHOOK_URL", url.as_str()),
        ("REPAIRDESK_SMS_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("REPAIRDESK_SMS_TIMEOUT_SECS", "2"),
    ];
    settings.extend_from_slice(extra);
    desk_with(&settings).await
}

/// A gateway that checks our signature and accepts everything.
pub fn gateway() -> Stub {
    stub(webhook_receiver(WEBHOOK_SECRET, json!({ "id": "hook-1", "status": "queued" })))
}

/// The messages the gateway accepted, as the JSON we sent.
pub fn delivered(gateway: &Stub) -> Vec<Value> {
    gateway.received().iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect()
}

/// Runs the outbox, then finds the `nth` (0-based) message of `template` about ticket `number`
/// that the gateway got; returns its code.
pub async fn code_sent(d: &Desk, gateway: &Stub, number: &str, template: &str, nth: usize) -> String {
    d.app.deliver_sms().await;
    let mut ids = Vec::new();
    for m in delivered(gateway) {
        if m["template"] == template && m["params"]["number"] == number && !ids.contains(&m["id"]) {
            ids.push(m["id"].clone());
            if ids.len() > nth {
                return m["params"]["code"].as_str().unwrap().to_owned();
            }
        }
    }
    panic!("no {template} #{nth} for {number}: {:?}", delivered(gateway));
}

pub async fn ticket(d: &Desk, token: &str, id: &str) -> Value {
    d.app.get(&format!("/api/v1/tickets/{id}"), token).await.json().await.unwrap()
}

pub async fn act(d: &Desk, token: &str, id: &str, action: &str, body: Value) -> reqwest::Response {
    d.app.post(&format!("/api/v1/tickets/{id}/{action}"), token, &body).await
}

/// A new in-home ticket claimed by a new technician; returns (ticket, technician token).
pub async fn claimed(d: &Desk, body: Value, tech: &str) -> (Value, String) {
    let (_, token) = d.technician(tech).await;
    let t = d.create(&body).await;
    let res = act(d, &token, t["id"].as_str().unwrap(), "claim", json!({})).await;
    assert_eq!(res.status(), 200);
    (t, token)
}

pub fn wrong(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

#[tokio::test]
async fn an_in_home_ticket_goes_from_the_call_to_the_callback() {
    let gw = gateway();
    let d = desk_sending_to(&gw, &[]).await;
    let (t, tech) = claimed(&d, ticket_body(&d.site), "tech1").await;
    let (tid, number) = (t["id"].as_str().unwrap(), t["number"].as_str().unwrap());

    // the resident's code arrives by SMS, at the number on the ticket, naming site and ticket
    let code = code_sent(&d, &gw, number, "arrival_code", 0).await;
    let sms = delivered(&gw).into_iter().find(|m| m["params"]["code"] == code.as_str()).unwrap();
    assert_eq!(sms["to"], "+8613812345678");
    let text = sms["text"].as_str().unwrap();
    assert!(text.contains(number) && text.contains(&code) && text.contains("GY 管理处"), "{text}");

    // four wrong codes count down, the fifth locks, and then even the right one is refused
    for left in (0..5).rev() {
        let res = act(&d, &tech, tid, "arrive", json!({ "code": wrong(&code) })).await;
        assert_eq!(assert_problem(res, 422, "invalid_code").await["attempts_left"], left);
    }
    assert_problem(act(&d, &tech, tid, "arrive", json!({ "code": code })).await, 423, "code_locked").await;

    // a minute later the desk resends: a new code replaces the old one
    as_if_later(&d.app, tid, 60).await;
    assert_eq!(act(&d, &d.desk, tid, "resend-code", json!({})).await.status(), 202);
    let new_code = code_sent(&d, &gw, number, "arrival_code", 1).await;
    if new_code != code {
        assert_problem(act(&d, &tech, tid, "arrive", json!({ "code": code })).await, 422, "invalid_code").await;
    }
    let device_time = chrono::Utc::now().to_rfc3339();
    let res = act(
        &d,
        &tech,
        tid,
        "arrive",
        json!({ "code": new_code, "lat": 30.5, "lng": 114.3, "device_time": device_time }),
    )
    .await;
    assert_eq!(res.status(), 200);
    let arrived: Value = res.json().await.unwrap();
    assert_eq!(arrived["status"], "on_site");
    assert_eq!(arrived["arrival_on_time"], true);
    assert_eq!(arrived["arrival_verified_via"], "code");

    // materials: a company line, a resident-supplied one, a retried add, a refused stale edit
    let line_id = uuid::Uuid::new_v4().to_string();
    let valve = json!({ "id": line_id, "name": "角阀", "spec": "DN15", "quantity": "2", "unit": "个",
        "unit_price_cents": 1500, "supplied_by": "company" });
    let res = act(&d, &tech, tid, "materials", valve.clone()).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.json::<Value>().await.unwrap()["total_cents"], 3000);
    let again = act(&d, &tech, tid, "materials", valve).await;
    assert_eq!(again.json::<Value>().await.unwrap()["id"], line_id.as_str(), "the same add twice is one line");
    let hose =
        json!({ "name": "软管", "quantity": "1.5", "unit": "米", "unit_price_cents": 800, "supplied_by": "resident" });
    assert_eq!(act(&d, &tech, tid, "materials", hose).await.status(), 201);
    let now = ticket(&d, &tech, tid).await;
    assert_eq!(now["materials"].as_array().unwrap().len(), 2);
    assert_eq!(now["totals"]["materials_cents"], 3000);
    assert_eq!(now["totals"]["resident_supplied_cents"], 1200);
    assert_eq!(now["totals"]["billable_cents"], 3000);
    assert_eq!(now["materials"][1]["billable"], false);

    let stale = arrived["version"].as_i64().unwrap();
    let path = format!("/api/v1/tickets/{tid}/materials/{line_id}");
    let res = d.app.patch(&path, &tech, &json!({ "quantity": "3", "version": stale })).await;
    let conflict = assert_problem(res, 409, "version_conflict").await;
    assert_eq!(conflict["current"]["quantity"], "2");
    let res = d.app.patch(&path, &tech, &json!({ "quantity": "3", "version": now["version"] })).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["total_cents"], 4500);
    let res = d.app.request(reqwest::Method::DELETE, &path, Some(&tech), None).await;
    assert_eq!(res.status(), 204);
    assert_eq!(ticket(&d, &tech, tid).await["totals"]["materials_cents"], 0);

    // completion with the resident's signature and rating
    let bad_png =
        act(&d, &tech, tid, "complete", json!({ "result": "换角阀", "resident_signature_png_base64": "aGVsbG8=" }))
            .await;
    assert_problem(bad_png, 422, "validation_failed").await;
    let done = act(
        &d,
        &tech,
        tid,
        "complete",
        json!({ "result": "更换角阀，试水无渗漏", "resident_rating": 5,
        "resident_signature_png_base64": PNG, "fee_collected_cents": 0 }),
    )
    .await;
    assert_eq!(done.status(), 200);
    let done: Value = done.json().await.unwrap();
    assert_eq!(done["status"], "completed");
    assert_eq!(done["resident_rating"], 5);
    let png = d.app.get(&format!("/api/v1/tickets/{tid}/signature"), &d.desk).await;
    assert_eq!(png.headers()["content-type"], "image/png");
    assert!(png.bytes().await.unwrap().starts_with(b"\x89PNG"));

    // the callback: unreached stays due, reached closes
    let due: Value = d.app.get("/api/v1/callbacks/due", &d.desk).await.json().await.unwrap();
    assert_eq!(due["items"][0]["id"], tid);
    let res = act(&d, &d.desk, tid, "callback", json!({ "reached": false, "comment": "无人接听" })).await;
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "completed");
    let due: Value = d.app.get("/api/v1/callbacks/due", &d.desk).await.json().await.unwrap();
    assert_eq!(due["items"].as_array().unwrap().len(), 1);
    let res = act(&d, &d.desk, tid, "callback", json!({ "reached": true, "satisfaction": 5, "comment": "满意" })).await;
    let closed: Value = res.json().await.unwrap();
    assert_eq!(closed["status"], "closed");
    assert_eq!(closed["callbacks"].as_array().unwrap().len(), 2);
    let due: Value = d.app.get("/api/v1/callbacks/due", &d.desk).await.json().await.unwrap();
    assert_eq!(due["items"], json!([]));

    let events: Value = d.app.get(&format!("/api/v1/tickets/{tid}/events"), &d.desk).await.json().await.unwrap();
    let types: Vec<&str> = events["items"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    for expected in [
        "sms_sent",
        "code_resent",
        "arrived",
        "material_added",
        "material_updated",
        "material_removed",
        "completed",
        "callback",
    ] {
        assert!(types.contains(&expected), "{expected} missing from {types:?}");
    }
    let sms = &closed["sms"];
    assert_eq!(sms[0]["status"], "sent");
    assert_eq!(sms[0]["provider_message_id"], "hook-1");
}

#[tokio::test]
async fn the_desk_can_verify_by_phone_when_the_resident_cannot_give_the_code() {
    let gw = gateway();
    let d = desk_sending_to(&gw, &[]).await;
    let (t, tech) = claimed(&d, ticket_body(&d.site), "tech1").await;
    let tid = t["id"].as_str().unwrap();
    assert_problem(act(&d, &tech, tid, "arrive", json!({})).await, 422, "validation_failed").await;
    assert_problem(act(&d, &tech, tid, "verify-by-phone", json!({ "note": "x" })).await, 403, "forbidden").await;
    let res = act(&d, &d.desk, tid, "verify-by-phone", json!({ "note": "已致电业主王女士确认师傅在门口" })).await;
    assert!(res.json::<Value>().await.unwrap()["phone_verified_at"].is_string());
    let arrived: Value = act(&d, &tech, tid, "arrive", json!({})).await.json().await.unwrap();
    assert_eq!(arrived["status"], "on_site");
    assert_eq!(arrived["arrival_verified_via"], "phone");
}

#[tokio::test]
async fn codes_are_resent_at_most_three_times_an_hour() {
    let gw = gateway();
    let d = desk_sending_to(&gw, &[]).await;
    let t = d.ticket().await;
    let tid = t["id"].as_str().unwrap();
    // the first code went with the ticket, a moment ago
    assert_eq!(d.app.deliver_sms().await, 1);
    let res = act(&d, &d.desk, tid, "resend-code", json!({})).await;
    assert!(res.headers().contains_key("retry-after"));
    assert_problem(res, 429, "sms_rate_limited").await;
    for _ in 0..2 {
        as_if_later(&d.app, tid, 60).await;
        assert_eq!(act(&d, &d.desk, tid, "resend-code", json!({})).await.status(), 202);
        assert_eq!(d.app.deliver_sms().await, 1);
    }
    as_if_later(&d.app, tid, 60).await;
    assert_problem(act(&d, &d.desk, tid, "resend-code", json!({})).await, 429, "sms_rate_limited").await;
}

#[tokio::test]
async fn a_public_area_ticket_needs_no_code_and_passes_inspection() {
    let gw = gateway();
    let d = desk_sending_to(&gw, &[]).await;
    let mut body = ticket_body(&d.site);
    body["area"] = json!("public");
    body["location"] = json!("3栋地下室水泵房");
    body.as_object_mut().unwrap().remove("reporter_phone");
    let (t, tech) = claimed(&d, body, "tech1").await;
    let tid = t["id"].as_str().unwrap();
    let arrived: Value = act(&d, &tech, tid, "arrive", json!({})).await.json().await.unwrap();
    assert_eq!(arrived["arrival_verified_via"], "not_required");
    let done: Value =
        act(&d, &tech, tid, "complete", json!({ "result": "更换水泵密封圈" })).await.json().await.unwrap();
    assert_eq!(done["status"], "awaiting_inspection");
    assert_problem(act(&d, &tech, tid, "inspect", json!({ "passed": true })).await, 403, "forbidden").await;
    assert_problem(act(&d, &d.desk, tid, "inspect", json!({ "passed": false })).await, 422, "validation_failed").await;
    let back: Value =
        act(&d, &d.desk, tid, "inspect", json!({ "passed": false, "note": "仍有渗水" })).await.json().await.unwrap();
    assert_eq!(back["status"], "assigned");
    act(&d, &tech, tid, "arrive", json!({})).await;
    act(&d, &tech, tid, "complete", json!({ "result": "重新密封" })).await;
    let passed: Value = act(&d, &d.desk, tid, "inspect", json!({ "passed": true })).await.json().await.unwrap();
    assert_eq!(passed["status"], "completed");
    assert_eq!(d.app.deliver_sms().await, 0);
    assert!(delivered(&gw).is_empty(), "no resident, no SMS");
}

#[tokio::test]
async fn a_paid_ticket_waits_for_its_quote() {
    let gw = gateway();
    let d = desk_sending_to(&gw, &[]).await;
    let mut body = ticket_body(&d.site);
    body["paid"] = json!(true);
    let (t, tech) = claimed(&d, body.clone(), "tech1").await;
    let (tid, number) = (t["id"].as_str().unwrap(), t["number"].as_str().unwrap());
    let code = code_sent(&d, &gw, number, "arrival_code", 0).await;
    act(&d, &tech, tid, "arrive", json!({ "code": code })).await;

    let valve = json!({ "name": "马桶水箱配件", "quantity": "1", "unit": "套", "unit_price_cents": 6000, "supplied_by": "company" });
    assert_problem(act(&d, &tech, tid, "materials", valve.clone()).await, 409, "quote_required").await;
    assert_problem(act(&d, &tech, tid, "complete", json!({ "result": "x" })).await, 409, "quote_required").await;

    let quoted = act(&d, &tech, tid, "quote", json!({ "amount_cents": 20000, "note": "更换水箱配件含工时" })).await;
    assert_eq!(quoted.status(), 201);
    let quote_code = code_sent(&d, &gw, number, "quote_code", 0).await;
    let sms = delivered(&gw).into_iter().find(|m| m["template"] == "quote_code").unwrap();
    assert_eq!(sms["params"]["amount"], "200.00");
    let res = act(&d, &tech, tid, "quote/accept", json!({ "code": wrong(&quote_code) })).await;
    assert_problem(res, 422, "invalid_code").await;
    let accepted: Value =
        act(&d, &tech, tid, "quote/accept", json!({ "code": quote_code })).await.json().await.unwrap();
    assert_eq!(accepted["quote"]["status"], "accepted");
    assert_eq!(accepted["quote"]["decided_via"], "code");

    assert_eq!(act(&d, &tech, tid, "materials", valve).await.status(), 201);
    let done: Value = act(&d, &tech, tid, "complete", json!({ "result": "已更换" })).await.json().await.unwrap();
    assert_eq!(done["status"], "completed");
    assert_eq!(done["totals"]["labour_cents"], 20000);
    assert_eq!(done["totals"]["billable_cents"], 20000, "the quote covers all: the parts are inside it");
    assert_eq!(done["bill"], json!({ "quote_cents": 20000, "materials_cents": 0, "total_cents": 20000 }));

    // another resident declines; a third agrees by phone with the desk
    let (declining, tech2) = claimed(&d, body.clone(), "tech2").await;
    let did = declining["id"].as_str().unwrap();
    act(&d, &tech2, did, "quote", json!({ "amount_cents": 50000 })).await;
    let declined: Value =
        act(&d, &d.desk, did, "quote/decline", json!({ "note": "业主嫌贵" })).await.json().await.unwrap();
    assert_eq!(declined["status"], "declined");
    let (phoned, tech3) = claimed(&d, body, "tech3").await;
    let pid = phoned["id"].as_str().unwrap();
    act(&d, &tech3, pid, "quote", json!({ "amount_cents": 10000 })).await;
    assert_problem(
        act(&d, &tech3, pid, "quote/accept", json!({ "via": "phone", "note": "x" })).await,
        403,
        "forbidden",
    )
    .await;
    let by_phone: Value = act(&d, &d.desk, pid, "quote/accept", json!({ "via": "phone", "note": "业主电话同意" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_phone["quote"]["decided_via"], "phone", "{by_phone}");
}

#[tokio::test]
async fn a_repeat_job_within_thirty_days_is_rework() {
    let gw = gateway();
    let d = desk_sending_to(&gw, &[]).await;
    let mut first_id = String::new();
    for round in 0..2 {
        let mut body = ticket_body(&d.site);
        if round == 1 {
            // the same room, typed another way: found by the place, not the spelling
            body["location"] = json!("３幢2单元 1201室");
        }
        let (t, tech) = claimed(&d, body, &format!("tech{round}")).await;
        let (tid, number) = (t["id"].as_str().unwrap(), t["number"].as_str().unwrap());
        let code = code_sent(&d, &gw, number, "arrival_code", 0).await;
        act(&d, &tech, tid, "arrive", json!({ "code": code })).await;
        let done: Value = act(&d, &tech, tid, "complete", json!({ "result": "修好" })).await.json().await.unwrap();
        if round == 0 {
            assert_eq!(done["rework_of"], Value::Null);
            first_id = tid.to_owned();
        } else {
            assert_eq!(done["rework_of"], first_id.as_str());
        }
    }
}

#[tokio::test]
async fn holds_need_a_reason_and_resume() {
    let gw = gateway();
    let d = desk_sending_to(&gw, &[]).await;
    let (t, tech) = claimed(&d, ticket_body(&d.site), "tech1").await;
    let (tid, number) = (t["id"].as_str().unwrap(), t["number"].as_str().unwrap());
    let code = code_sent(&d, &gw, number, "arrival_code", 0).await;
    act(&d, &tech, tid, "arrive", json!({ "code": code })).await;
    assert_problem(act(&d, &tech, tid, "hold", json!({ "reason": "lunch" })).await, 422, "validation_failed").await;
    let resume_at = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let held: Value =
        act(&d, &tech, tid, "hold", json!({ "reason": "awaiting_parts", "note": "等配件", "resume_at": resume_at }))
            .await
            .json()
            .await
            .unwrap();
    assert_eq!(held["status"], "on_hold");
    assert_eq!(held["hold_reason"], "awaiting_parts");
    assert_problem(act(&d, &tech, tid, "complete", json!({ "result": "x" })).await, 409, "invalid_transition").await;
    let resumed: Value = act(&d, &tech, tid, "resume", json!({})).await.json().await.unwrap();
    assert_eq!(resumed["status"], "on_site");
    assert_eq!(resumed["hold_reason"], Value::Null);
}

#[tokio::test]
async fn sms_are_retried_after_gateway_failures_and_delivered_once() {
    // the gateway fails twice (500, then 429), then takes the message
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = calls.clone();
    let accept = webhook_receiver(WEBHOOK_SECRET, json!({ "id": "hook-9" }));
    let gw = stub(move |r| match counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
        0 => answer(500, json!({ "error": "down" })),
        1 => answer(429, json!({ "error": "slow down" })),
        _ => accept(r),
    });
    let d = desk_sending_to(&gw, &[]).await;
    let t = d.ticket().await;
    let tid = t["id"].as_str().unwrap();
    // a round now, and one a minute later, when each failure's backoff (5 s, then 10 s) is over
    let start = repairdesk::db::now();
    for minutes in 0..3 {
        assert_eq!(d.app.deliver_sms_at(start + chrono::Duration::minutes(minutes)).await, 1, "round {minutes}");
    }
    let sms = ticket(&d, &d.desk, tid).await["sms"][0].clone();
    assert_eq!(sms["status"], "sent");
    assert_eq!(sms["attempts"], 3);
    assert_eq!(sms["provider_message_id"], "hook-9");
    // more delivery rounds, later still: nothing is sent again
    for minutes in [3, 60, 25 * 60] {
        assert_eq!(d.app.deliver_sms_at(start + chrono::Duration::minutes(minutes)).await, 0);
    }
    let received = delivered(&gw);
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|m| m["id"] == sms["id"]), "every attempt carries the same message id");
}

#[tokio::test]
async fn a_code_replaced_while_the_gateway_is_down_is_never_sent() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    // the gateway fails until it is up again; then it takes messages and we note which
    let (up, accepted) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::<String>::new())));
    let (flag, log) = (up.clone(), accepted.clone());
    let accept = webhook_receiver(WEBHOOK_SECRET, json!({ "id": "hook-1" }));
    let gw = stub(move |r| {
        if !flag.load(Ordering::SeqCst) {
            return answer(500, json!({ "error": "down" }));
        }
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        log.lock().unwrap().push(body["id"].as_str().unwrap().to_owned());
        accept(r)
    });
    let d = desk_sending_to(&gw, &[]).await;
    let (t, tech) = claimed(&d, ticket_body(&d.site), "tech1").await;
    let tid = t["id"].as_str().unwrap();
    assert_eq!(d.app.deliver_sms().await, 1, "the first code is tried");
    assert_eq!(gw.received().len(), 1);
    // the resident never got it: a minute later the desk sends a new code, which replaces the
    // first at once, as it waits for its retry
    as_if_later(&d.app, tid, 60).await;
    assert_eq!(act(&d, &d.desk, tid, "resend-code", json!({})).await.status(), 202);
    assert_eq!(ticket(&d, &d.desk, tid).await["sms"][0]["status"], "superseded");
    up.store(true, Ordering::SeqCst);

    // the rounds after, when the first would have been due again and later: only the new one goes
    let start = repairdesk::db::now();
    assert_eq!(d.app.deliver_sms_at(start).await, 1);
    for minutes in [1, 60] {
        assert_eq!(d.app.deliver_sms_at(start + chrono::Duration::minutes(minutes)).await, 0);
    }
    let sms = ticket(&d, &d.desk, tid).await["sms"].clone();
    assert_eq!((sms[0]["status"].as_str(), sms[1]["status"].as_str()), (Some("superseded"), Some("sent")));
    assert_eq!(*accepted.lock().unwrap(), [sms[1]["id"].as_str().unwrap()]);
    let code = code_sent(&d, &gw, t["number"].as_str().unwrap(), "arrival_code", 1).await;
    assert_eq!(act(&d, &tech, tid, "arrive", json!({ "code": code })).await.status(), 200);
}

#[tokio::test]
async fn a_number_past_its_daily_cap_gets_no_more_sms_and_the_desk_is_told() {
    let gw = gateway();
    let d = desk_sending_to(&gw, &[("REPAIRDESK_SMS_DAILY_PER_PHONE", "1")]).await;
    d.ticket().await;
    let second = d.ticket().await;
    assert_eq!(second["status"], "open", "the report itself is kept");
    let open: Value = d.app.get("/api/v1/escalations?open=true", &d.desk).await.json().await.unwrap();
    assert_eq!(open["items"][0]["kind"], "sms_failed");
    assert_eq!(open["items"][0]["ticket_id"], second["id"]);
    assert_eq!(ticket(&d, &d.desk, second["id"].as_str().unwrap()).await["sms"], json!([]));
}

#[tokio::test]
async fn an_sms_the_gateway_never_takes_fails_and_escalates_to_the_desk() {
    let gw = stub(|_| answer(503, json!({ "error": "maintenance" })));
    let d = desk_sending_to(&gw, &[]).await;
    let t = d.ticket().await;
    let tid = t["id"].as_str().unwrap();
    let start = repairdesk::db::now();
    assert_eq!(d.app.deliver_sms_at(start).await, 1);
    assert_eq!(ticket(&d, &d.desk, tid).await["sms"][0]["status"], "pending", "to be retried");
    // past a day undelivered, the next failure is the last
    assert_eq!(d.app.deliver_sms_at(start + chrono::Duration::hours(25)).await, 1);
    let sms = ticket(&d, &d.desk, tid).await["sms"].clone();
    assert_eq!(sms[0]["status"], "failed");
    assert!(sms[0]["last_error"].as_str().unwrap().contains("503"), "{sms}");
    let open: Value = d.app.get("/api/v1/escalations?open=true", &d.desk).await.json().await.unwrap();
    let kinds: Vec<&str> = open["items"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["sms_failed"]);
    assert!(gw.received().len() >= 2, "it was retried before giving up");
}

#[tokio::test]
async fn two_instances_deliver_each_message_once() {
    let gw = gateway();
    let d = desk_sending_to(&gw, &[]).await;
    let url = gw.url("/sms");
    let second = spawn_on(
        d.app.db.clone(),
        &[
            ("REPAIRDESK_SMS_PROVIDER", "webhook"),
            ("REPAIRDESK_SMS_WEBHOOK_URL", url.as_str()),
            ("REPAIRDESK_SMS_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ],
    )
    .await;
    let mut numbers = Vec::new();
    for _ in 0..8 {
        let mut body = ticket_body(&d.site);
        body["reporter_phone"] = json!(format!("139{:08}", numbers.len()));
        numbers.push(d.create(&body).await["number"].as_str().unwrap().to_owned());
    }
    // both instances' outboxes run at once, and again: each message is sent by one of them, once
    let (first, other) = futures_util::join!(d.app.deliver_sms(), second.deliver_sms());
    assert_eq!(first + other, 8, "{first} + {other}");
    let later = repairdesk::db::now() + chrono::Duration::minutes(5);
    let (first, other) = futures_util::join!(d.app.deliver_sms_at(later), second.deliver_sms_at(later));
    assert_eq!((first, other), (0, 0));
    for n in &numbers {
        code_sent(&d, &gw, n, "arrival_code", 0).await;
    }
    let ids: Vec<Value> = delivered(&gw).into_iter().map(|m| m["id"].clone()).collect();
    let mut unique = ids.clone();
    unique.sort_by_key(|v| v.to_string());
    unique.dedup();
    assert_eq!(ids.len(), 8, "{ids:?}");
    assert_eq!(unique.len(), 8);
    drop(second);
}

#[tokio::test]
async fn a_line_from_the_sites_catalogue_takes_its_defaults() {
    let gw = gateway();
    let d = desk_sending_to(&gw, &[]).await;
    let item = d
        .app
        .post(
            &format!("/api/v1/sites/{}/materials", d.site),
            &d.desk,
            &json!({ "name": "三角阀", "spec": "DN15", "model": "J-15", "unit": "个", "default_price_cents": 2500 }),
        )
        .await;
    assert_eq!(item.status(), 201);
    let item: Value = item.json().await.unwrap();
    let listed: Value = d.app.get(&format!("/api/v1/sites/{}/materials", d.site), &d.desk).await.json().await.unwrap();
    assert_eq!(listed["items"][0]["id"], item["id"]);
    let bad = json!({ "name": "", "unit": "", "default_price_cents": -1 });
    let res = d.app.post(&format!("/api/v1/sites/{}/materials", d.site), &d.desk, &bad).await;
    assert_eq!(assert_problem(res, 422, "validation_failed").await["errors"].as_array().unwrap().len(), 3);

    let (t, tech) = claimed(&d, ticket_body(&d.site), "tech1").await;
    let (tid, number) = (t["id"].as_str().unwrap(), t["number"].as_str().unwrap());
    let code = code_sent(&d, &gw, number, "arrival_code", 0).await;
    act(&d, &tech, tid, "arrive", json!({ "code": code })).await;
    let line = act(
        &d,
        &tech,
        tid,
        "materials",
        json!({ "catalogue_item_id": item["id"], "quantity": "2", "supplied_by": "company" }),
    )
    .await;
    assert_eq!(line.status(), 201);
    let line: Value = line.json().await.unwrap();
    assert_eq!(
        (line["name"].as_str(), line["model"].as_str(), line["unit_price_cents"].as_i64()),
        (Some("三角阀"), Some("J-15"), Some(2500))
    );
    assert_eq!(line["total_cents"], 5000);

    // another site's catalogue is not this ticket's
    let other = d.app.create_site(&d.admin, "HK").await;
    let foreign: Value = d
        .app
        .post(
            &format!("/api/v1/sites/{other}/materials"),
            &d.admin,
            &json!({ "name": "x", "unit": "个", "default_price_cents": 1 }),
        )
        .await
        .json()
        .await
        .unwrap();
    let res = act(
        &d,
        &tech,
        tid,
        "materials",
        json!({ "catalogue_item_id": foreign["id"], "quantity": "1", "supplied_by": "company" }),
    )
    .await;
    assert_eq!(assert_problem(res, 422, "validation_failed").await["errors"][0]["field"], "catalogue_item_id");
    assert_problem(d.app.get(&format!("/api/v1/sites/{other}/materials"), &d.desk).await, 404, "not_found").await;
}

/// As if `secs` had passed for ticket `tid`'s messages: each was queued that much earlier.
pub async fn as_if_later(app: &TestApp, tid: &str, secs: i64) {
    use diesel::prelude::*;
    use repairdesk::db::schema::sms_outbox::dsl::*;
    let (pool, tid) = (app.jobs.pool.clone(), tid.to_owned());
    tokio::task::spawn_blocking(move || {
        let conn = &mut *pool.get().unwrap();
        let rows: Vec<(String, chrono::NaiveDateTime)> =
            sms_outbox.filter(ticket_id.eq(&tid)).select((id, created_at)).load(conn).unwrap();
        for (row, at) in rows {
            let earlier = at - chrono::Duration::seconds(secs);
            diesel::update(sms_outbox.filter(id.eq(row))).set(created_at.eq(earlier)).execute(conn).unwrap();
        }
    })
    .await
    .unwrap();
}

fn retry_after(res: &reqwest::Response) -> i64 {
    res.headers()["retry-after"].to_str().unwrap().parse().unwrap()
}

/// Runs the outbox, after which none of the ticket's messages is still waiting for the gateway;
/// returns them.
async fn all_handed(d: &Desk, tid: &str) -> Vec<Value> {
    d.app.deliver_sms().await;
    let sms = ticket(d, &d.desk, tid).await["sms"].as_array().unwrap().clone();
    assert!(sms.iter().all(|m| m["status"] != "pending" && m["status"] != "sending"), "still waiting: {sms:?}");
    sms
}

#[tokio::test]
async fn wrong_quote_codes_count_across_new_quotes_until_the_desk_confirms_by_phone() {
    let gw = gateway();
    let d = desk_sending_to(&gw, &[]).await;
    let mut body = ticket_body(&d.site);
    body["paid"] = json!(true);
    let (t, tech) = claimed(&d, body, "tech1").await;
    let (tid, number) = (t["id"].as_str().unwrap(), t["number"].as_str().unwrap());
    assert_eq!(act(&d, &tech, tid, "quote", json!({ "amount_cents": 20000 })).await.status(), 201);
    let first = code_sent(&d, &gw, number, "quote_code", 0).await;
    for left in [4, 3, 2] {
        let res = act(&d, &tech, tid, "quote/accept", json!({ "code": wrong(&first) })).await;
        assert_eq!(assert_problem(res, 422, "invalid_code").await["attempts_left"], left);
    }

    // quoting again at once is refused like a resend of the arrival code
    let res = act(&d, &tech, tid, "quote", json!({ "amount_cents": 19000 })).await;
    assert!(retry_after(&res) >= 1);
    assert_problem(res, 429, "sms_rate_limited").await;
    assert_eq!(ticket(&d, &tech, tid).await["quote"]["amount_cents"], 20000, "the refused quote changed nothing");

    // a minute later the new quote goes out, but its code has only the guesses left over
    as_if_later(&d.app, tid, 60).await;
    assert_eq!(act(&d, &tech, tid, "quote", json!({ "amount_cents": 19000 })).await.status(), 201);
    let second = code_sent(&d, &gw, number, "quote_code", 1).await;
    for left in [1, 0] {
        let res = act(&d, &tech, tid, "quote/accept", json!({ "code": wrong(&second) })).await;
        assert_eq!(assert_problem(res, 422, "invalid_code").await["attempts_left"], left);
    }
    let res = act(&d, &tech, tid, "quote/accept", json!({ "code": second })).await;
    assert!(assert_problem(res, 423, "code_locked").await["detail"].as_str().unwrap().contains("by phone"));

    // nor does quoting again unlock it; the desk's call to the resident does
    as_if_later(&d.app, tid, 60).await;
    assert_problem(act(&d, &tech, tid, "quote", json!({ "amount_cents": 18000 })).await, 423, "code_locked").await;
    let res = act(&d, &d.desk, tid, "quote/accept", json!({ "via": "phone", "note": "业主电话确认190元" })).await;
    assert_eq!(res.status(), 200);
    let accepted: Value = res.json().await.unwrap();
    assert_eq!(accepted["quote"]["status"], "accepted");
    assert_eq!(accepted["quote"]["amount_cents"], 19000);
    assert_eq!(accepted["quote"]["decided_via"], "phone");
}

#[tokio::test]
async fn codes_replaced_before_they_went_out_do_not_count_towards_the_numbers_cap() {
    let gw = gateway();
    // the outbox does not run: every message waits, and a new code replaces it
    let d = desk_sending_to(&gw, &[("REPAIRDESK_SMS_DAILY_PER_PHONE", "3")]).await;
    let t = d.ticket().await;
    let tid = t["id"].as_str().unwrap();
    for _ in 0..2 {
        as_if_later(&d.app, tid, 60).await;
        assert_eq!(act(&d, &d.desk, tid, "resend-code", json!({})).await.status(), 202);
    }
    let statuses: Vec<Value> =
        ticket(&d, &d.desk, tid).await["sms"].as_array().unwrap().iter().map(|m| m["status"].clone()).collect();
    assert_eq!(statuses, [json!("superseded"), json!("superseded"), json!("pending")]);

    // one message can still reach the resident, not three: the next ticket's code is queued
    let next = d.ticket().await;
    let sms = &ticket(&d, &d.desk, next["id"].as_str().unwrap()).await["sms"];
    assert_eq!(sms[0]["status"], "pending", "{sms}");
    let open: Value = d.app.get("/api/v1/escalations?open=true", &d.desk).await.json().await.unwrap();
    assert_eq!(open["items"], json!([]));
}

#[tokio::test]
async fn a_technician_quoting_as_fast_as_allowed_cannot_silence_the_residents_phone() {
    let gw = gateway();
    let d = desk_sending_to(&gw, &[]).await; // 10 messages a number a day, 3 codes a ticket an hour
    let mut body = ticket_body(&d.site);
    body["paid"] = json!(true);
    let (t, tech) = claimed(&d, body, "tech1").await;
    let tid = t["id"].as_str().unwrap();

    // every quote and resend is let through to the gateway before the next; time runs on as
    // fast as the limits allow, and stops at the first refusal that asks to wait past an hour
    let mut waited = 0;
    for round in 0..30 {
        all_handed(&d, tid).await;
        let quoted = act(&d, &tech, tid, "quote", json!({ "amount_cents": 10000 + round })).await;
        let resent = act(&d, &d.desk, tid, "resend-code", json!({})).await;
        let mut waits = Vec::new();
        for res in [quoted, resent] {
            if res.status() == 429 {
                waits.push(retry_after(&res));
                assert_problem(res, 429, "sms_rate_limited").await;
            }
        }
        if waits.len() < 2 {
            continue;
        }
        waited = *waits.iter().min().unwrap();
        if waited > 3600 {
            break;
        }
        as_if_later(&d.app, tid, waited).await;
    }
    let sms = all_handed(&d, tid).await;

    // the same resident's next ticket still gets its arrival code
    let next = d.ticket().await;
    code_sent(&d, &gw, next["number"].as_str().unwrap(), "arrival_code", 0).await;
    let open: Value = d.app.get("/api/v1/escalations?open=true", &d.desk).await.json().await.unwrap();
    assert_eq!(open["items"], json!([]));
    let sent = sms.iter().filter(|m| m["status"] == "sent").count();
    assert_eq!(sent, 9, "one ticket's messages stay below the number's cap of 10: {sms:?}");
    assert!(waited > 20 * 3600, "the ticket waits for its oldest message to be a day old, not {waited} s");
}
