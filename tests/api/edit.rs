//! The desk corrects a ticket after intake (`PATCH /tickets/{id}`), and what each correction sets
//! off: a new code for a new number, a move between trades' pools, a restarted arrival clock.

use std::time::Duration;

use chrono::Duration as Span;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::onsite::{code_sent, delivered, desk_sending_to, gateway};
use crate::tickets::{desk_with, open_stream, ticket_body, wait_for_event, Desk};

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

async fn edit(d: &Desk, t: &Value, body: Value) -> reqwest::Response {
    d.app.patch(&format!("/api/v1/tickets/{}", id(t)), &d.desk, &body).await
}

async fn fetch(d: &Desk, t: &Value) -> Value {
    d.app.get(&format!("/api/v1/tickets/{}", id(t)), &d.desk).await.json().await.unwrap()
}

async fn events(d: &Desk, t: &Value) -> Vec<Value> {
    let list: Value = d.app.get(&format!("/api/v1/tickets/{}/events", id(t)), &d.desk).await.json().await.unwrap();
    list["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_desk_corrects_a_ticket_and_the_history_says_what_changed() {
    let d = desk_with(&[]).await;
    let t = d.ticket().await;
    let res = edit(
        &d,
        &t,
        json!({ "version": t["version"], "location": "3栋2单元1503", "description": "卫生间漏水",
            "paid": true, "reason": "业主来电更正" }),
    )
    .await;
    assert_eq!(res.status(), 200);
    let edited: Value = res.json().await.unwrap();
    assert_eq!(edited["version"], t["version"].as_i64().unwrap() + 1);
    assert_eq!((edited["location"].clone(), edited["paid"].clone()), (json!("3栋2单元1503"), json!(true)));
    assert_eq!(edited["reporter_name"], t["reporter_name"], "what the edit left out stays");
    let last = events(&d, &t).await.pop().unwrap();
    assert_eq!(last["type"], "edited");
    assert_eq!(last["data"]["reason"], "业主来电更正");
    assert_eq!(
        last["data"]["changes"],
        json!({ "location": { "from": t["location"], "to": "3栋2单元1503" },
            "description": { "from": t["description"], "to": "卫生间漏水" },
            "paid": { "from": false, "to": true } })
    );
    // the same values again: nothing to record
    let again = edit(&d, &edited, json!({ "version": edited["version"], "location": "3栋2单元1503" })).await;
    assert_eq!(again.json::<Value>().await.unwrap()["version"], edited["version"]);
}

#[tokio::test]
async fn a_stale_edit_gets_the_ticket_as_it_stands_and_a_finished_one_none() {
    let d = desk_with(&[]).await;
    let t = d.ticket().await;
    edit(&d, &t, json!({ "version": t["version"], "urgency": "emergency" })).await;
    let res = edit(&d, &t, json!({ "version": t["version"], "location": "5栋" })).await;
    let problem = assert_problem(res, 409, "version_conflict").await;
    let now = fetch(&d, &t).await;
    assert_eq!(problem["ticket"], now, "the ticket as it stands, to edit again");
    assert_eq!(problem["current_version"], now["version"]);
    assert_eq!(now["location"], t["location"]);

    let res =
        d.app.post(&format!("/api/v1/tickets/{}/cancel", id(&t)), &d.desk, &json!({ "reason": "重复报修" })).await;
    assert_eq!(res.status(), 200);
    let cancelled = fetch(&d, &t).await;
    let res = edit(&d, &t, json!({ "version": cancelled["version"], "location": "5栋" })).await;
    assert_problem(res, 409, "invalid_transition").await;
}

#[tokio::test]
async fn an_edit_is_refused_for_every_bad_field_by_the_desk_of_the_site_only() {
    let d = desk_with(&[]).await;
    let t = d.ticket().await;
    let (_, tech) = d.technician("tech1").await;
    let other_site = d.app.create_site(&d.admin, "HY").await;
    let (_, other_desk) = d.app.user_token(&d.admin, "desk2", "dispatcher", &[&other_site], &[]).await;
    let v = t["version"].clone();
    let res = edit(
        &d,
        &t,
        json!({ "version": v, "location": " ", "reporter_phone": null, "category": "magic",
            "appointment_at": "2020-01-01T00:00:00Z", "urgency": "soon" }),
    )
    .await;
    let problem = assert_problem(res, 422, "validation_failed").await;
    let fields: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["location", "reporter_phone", "category", "urgency", "appointment_at"]);
    for body in [json!({ "location": "5栋" }), json!({ "version": "one" }), json!([1])] {
        assert_problem(edit(&d, &t, body).await, 422, "validation_failed").await;
    }
    let body = json!({ "version": v, "location": "5栋" });
    let res = d.app.patch(&format!("/api/v1/tickets/{}", id(&t)), &tech, &body).await;
    assert_problem(res, 403, "forbidden").await;
    let res = d.app.patch(&format!("/api/v1/tickets/{}", id(&t)), &other_desk, &body).await;
    assert_problem(res, 404, "not_found").await;
    assert_eq!(fetch(&d, &t).await, t, "nothing refused changed the ticket");
}

/// A wrong number at intake: the corrected one gets a new code, and the old code no longer
/// opens the door.
#[tokio::test]
async fn a_new_phone_number_gets_a_new_code_and_the_old_one_stops_working() {
    let gateway = gateway();
    let d = desk_sending_to(&gateway, &[]).await;
    let (_, tech) = d.technician("tech1").await;
    let t = d.ticket().await;
    let number = t["number"].as_str().unwrap();
    let old = code_sent(&d, &gateway, number, "arrival_code", 0).await;
    assert_eq!(d.app.post(&format!("/api/v1/tickets/{}/claim", id(&t)), &tech, &json!({})).await.status(), 200);
    let t = fetch(&d, &t).await;
    // at once after intake: the limits on resending to the old number do not hold it back
    let res = edit(&d, &t, json!({ "version": t["version"], "reporter_phone": "13900001111" })).await;
    assert_eq!(res.status(), 200);
    let new = code_sent(&d, &gateway, number, "arrival_code", 1).await;
    let to: Vec<Value> = delivered(&gateway).iter().map(|m| m["to"].clone()).collect();
    assert_eq!(to.last().unwrap(), "+8613900001111");
    let arrive = |code: &str| {
        let body = json!({ "code": code });
        let path = format!("/api/v1/tickets/{}/arrive", id(&t));
        let (app, tech) = (&d.app, tech.clone());
        async move { app.post(&path, &tech, &body).await }
    };
    if old != new {
        assert_problem(arrive(&old).await, 422, "invalid_code").await;
    }
    assert_eq!(arrive(&new).await.status(), 200);
}

/// Another trade: the ticket leaves the pool of the old trade's technicians and enters the new one's.
#[tokio::test]
async fn a_new_category_moves_the_ticket_between_the_trades_pools() {
    let d = desk_with(&[]).await;
    let (_, plumber) = d.technician("plumber").await;
    let (_, electrician) = d.app.user_token(&d.admin, "electrician", "technician", &[&d.site], &["electric"]).await;
    let t = d.ticket().await;
    let plumbers = open_stream(&d.app, &plumber, None).await;
    let electricians = open_stream(&d.app, &electrician, None).await;
    let res = edit(&d, &t, json!({ "version": t["version"], "category": "electric" })).await;
    assert_eq!(res.status(), 200);
    wait_for_event(plumbers, "pool_removed", id(&t), Duration::from_secs(3)).await;
    wait_for_event(electricians, "pool_added", id(&t), Duration::from_secs(3)).await;
    let pool = |token: String| {
        let app = &d.app;
        async move { app.get("/api/v1/pool", &token).await.json::<Value>().await.unwrap() }
    };
    let ids = |list: &Value| list["items"].as_array().unwrap().iter().map(|i| i["id"].clone()).collect::<Vec<_>>();
    assert!(!ids(&pool(plumber.clone()).await).contains(&t["id"]));
    assert!(ids(&pool(electrician.clone()).await).contains(&t["id"]));
    // a plumber's claim queued offline against the old state is refused as any claim of another trade
    let res = d.app.post(&format!("/api/v1/tickets/{}/claim", id(&t)), &plumber, &json!({})).await;
    assert_eq!(res.status(), 409);
}

async fn open_escalations(d: &Desk) -> usize {
    let list: Value = d.app.get("/api/v1/escalations", &d.desk).await.json().await.unwrap();
    list["items"].as_array().unwrap().iter().filter(|e| e["resolved_at"].is_null()).count()
}

/// The technician will be late: the desk sets a new time with the resident. The lateness is
/// answered, the resident is told the time, and the clock runs to the new time.
#[tokio::test]
async fn a_new_appointment_restarts_the_arrival_clock_and_tells_the_resident() {
    let gateway = gateway();
    let d = desk_sending_to(&gateway, &[]).await;
    let (_, tech) = d.technician("tech1").await;
    let t = d.create(&ticket_body(&d.site)).await;
    assert_eq!(d.app.post(&format!("/api/v1/tickets/{}/claim", id(&t)), &tech, &json!({})).await.status(), 200);
    let now = repairdesk::db::now();
    assert_eq!(d.app.scan_at(now + Span::minutes(25)).await, 1, "late after 20 minutes");
    assert_eq!(open_escalations(&d).await, 1);

    let at = (chrono::Utc::now() + Span::hours(3)).with_timezone(&chrono_tz::Asia::Shanghai);
    let t = fetch(&d, &t).await;
    let res = edit(&d, &t, json!({ "version": t["version"], "appointment_at": at.to_rfc3339() })).await;
    assert_eq!(res.status(), 200);
    assert_eq!(open_escalations(&d).await, 0, "the new time answers the lateness");
    d.app.deliver_sms().await;
    let told = delivered(&gateway).into_iter().find(|m| m["template"] == "appointment").expect("the resident is told");
    assert_eq!(told["params"]["time"], at.format("%-m月%-d日 %H:%M").to_string());
    assert!(told["text"].as_str().unwrap().contains(&at.format("%H:%M").to_string()));
    // not late before the new time; late after it, again
    assert_eq!(d.app.scan_at(now + Span::hours(2)).await, 0);
    assert_eq!(d.app.scan_at(now + Span::hours(3) + Span::minutes(5)).await, 1);
}

#[tokio::test]
async fn an_emergency_runs_on_the_emergency_limit_from_the_edit() {
    let d = desk_with(&[]).await;
    let (_, tech) = d.technician("tech1").await;
    let t = d.ticket().await;
    assert_eq!(d.app.post(&format!("/api/v1/tickets/{}/claim", id(&t)), &tech, &json!({})).await.status(), 200);
    let t = fetch(&d, &t).await;
    let res = edit(&d, &t, json!({ "version": t["version"], "urgency": "emergency" })).await;
    assert_eq!(res.status(), 200);
    let now = repairdesk::db::now();
    assert_eq!(d.app.scan_at(now + Span::minutes(9)).await, 0);
    assert_eq!(d.app.scan_at(now + Span::minutes(11)).await, 1, "ten minutes, not twenty");
}

#[tokio::test]
async fn a_ticket_is_found_by_its_number_by_whoever_may_see_it() {
    let d = desk_with(&[]).await;
    let t = d.ticket().await;
    let number = t["number"].as_str().unwrap();
    let found: Value = d.app.get(&format!("/api/v1/tickets/by-number/{number}"), &d.desk).await.json().await.unwrap();
    assert_eq!(found, fetch(&d, &t).await);
    let other_site = d.app.create_site(&d.admin, "HY").await;
    let (_, other_desk) = d.app.user_token(&d.admin, "desk2", "dispatcher", &[&other_site], &[]).await;
    let res = d.app.get(&format!("/api/v1/tickets/by-number/{number}"), &other_desk).await;
    assert_problem(res, 404, "not_found").await;
    assert_problem(d.app.get("/api/v1/tickets/by-number/GY-19990101-0001", &d.desk).await, 404, "not_found").await;
}
