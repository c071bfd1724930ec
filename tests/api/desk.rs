//! The desk's day: escalations it takes, tickets it takes from a technician at the door, and
//! shift handovers (交接班).

use serde_json::{json, Value};

use crate::helpers::*;
use crate::sync::{op, push};
use crate::tickets::{desk_with, ticket_body, Desk};

fn public_ticket(site: &str) -> Value {
    let mut body = ticket_body(site);
    body["area"] = json!("public");
    body["location"] = json!("2栋电梯厅");
    body
}

async fn escalations(d: &Desk, query: &str, token: &str) -> Vec<Value> {
    let res = d.app.get(&format!("/api/v1/escalations{query}"), token).await;
    assert_eq!(res.status(), 200);
    json_of(res).await["items"].as_array().unwrap().clone()
}

/// A ticket left unclaimed past the claim timeout: its `unclaimed` escalation's id.
async fn unclaimed_escalation(d: &Desk) -> (String, String) {
    let t = d.ticket().await;
    let tid = t["id"].as_str().unwrap().to_owned();
    assert_eq!(d.app.scan_at(repairdesk::db::now() + chrono::Duration::minutes(6)).await, 1);
    let items = escalations(d, "", &d.desk).await;
    (items[0]["id"].as_str().unwrap().to_owned(), tid)
}

#[tokio::test]
async fn the_desk_takes_an_escalation_which_stays_open_until_the_ticket_moves_on() {
    let d = desk_with(&[]).await;
    let (tech_id, tech) = d.technician("tech1").await;
    let (eid, tid) = unclaimed_escalation(&d).await;

    let waiting = escalations(&d, "?acknowledged=false", &d.desk).await;
    assert_eq!(waiting.len(), 1);
    let item = &waiting[0];
    assert_eq!(item["kind"], "unclaimed");
    assert_eq!(item["ticket_number"].as_str().unwrap().len(), "GY-20261203-0001".len());
    assert_eq!(item["location"], "3栋2单元1201");
    assert_eq!(item["category"], "water");
    assert_eq!(item["ticket_status"], "open");
    assert_eq!(item["assignee_id"], Value::Null);
    assert_eq!(item["acknowledged_at"], Value::Null);

    let res = d.app.post(&format!("/api/v1/escalations/{eid}/ack"), &d.desk, &json!({ "note": " 已通知班长 " })).await;
    assert_eq!(res.status(), 200);
    let taken = json_of(res).await;
    let me: Value = json_of(d.app.get("/api/v1/me", &d.desk).await).await;
    assert_eq!(taken["acknowledged_by"], me["id"]);
    assert_eq!(taken["note"], "已通知班长");
    assert!(taken["acknowledged_at"].is_string());
    assert_eq!(taken["resolved_at"], Value::Null, "acknowledging does not close it");

    assert!(escalations(&d, "?acknowledged=false", &d.desk).await.is_empty());
    assert_eq!(escalations(&d, "?acknowledged=true", &d.desk).await.len(), 1);
    assert_eq!(escalations(&d, "?open=true", &d.desk).await.len(), 1);

    // a second time, by anyone: refused, and the first note stands
    let again = d.app.post(&format!("/api/v1/escalations/{eid}/ack"), &d.admin, &json!({ "note": "x" })).await;
    let problem = assert_problem(again, 409, "already_acknowledged").await;
    assert_eq!(problem["acknowledged_by"], me["id"]);
    assert_eq!(escalations(&d, "", &d.desk).await[0]["note"], "已通知班长");

    // the ticket moves on: resolved, and the list shows who holds it now
    let claimed = d.app.post(&format!("/api/v1/tickets/{tid}/claim"), &tech, &json!({})).await;
    assert_eq!(claimed.status(), 200);
    assert!(escalations(&d, "?open=true", &d.desk).await.is_empty());
    let all = escalations(&d, "", &d.desk).await;
    assert!(all[0]["resolved_at"].is_string());
    assert_eq!(all[0]["ticket_status"], "assigned");
    assert_eq!(all[0]["assignee_id"], tech_id.as_str());
    assert_eq!(all[0]["assignee_name"], "tech1");
}

#[tokio::test]
async fn only_the_desk_of_the_tickets_site_acknowledges_an_escalation() {
    let d = desk_with(&[]).await;
    let (_, tech) = d.technician("tech1").await;
    let other_site = d.app.create_site(&d.admin, "HX").await;
    let (_, other_desk) = d.app.user_token(&d.admin, "desk_hx", "dispatcher", &[&other_site], &[]).await;
    let (eid, _) = unclaimed_escalation(&d).await;
    let ack = format!("/api/v1/escalations/{eid}/ack");

    assert_problem(d.app.post(&ack, &tech, &json!({})).await, 403, "forbidden").await;
    // another site's escalation is as unknown to its desk as its tickets are
    assert_problem(d.app.post(&ack, &other_desk, &json!({})).await, 404, "not_found").await;
    assert!(escalations(&d, "", &other_desk).await.is_empty());
    let unknown = format!("/api/v1/escalations/{}/ack", uuid::Uuid::new_v4());
    assert_problem(d.app.post(&unknown, &d.desk, &json!({})).await, 404, "not_found").await;
    let long = json!({ "note": "长".repeat(501) });
    let problem = assert_problem(d.app.post(&ack, &d.desk, &long).await, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "note");
    assert_problem(d.app.post(&ack, &d.desk, &json!({ "note": 5 })).await, 422, "validation_failed").await;
    assert!(escalations(&d, "?acknowledged=true", &d.desk).await.is_empty(), "nothing was recorded");

    // an admin is the desk of every site; no note is fine
    let res = d.app.post(&ack, &d.admin, &json!({})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(json_of(res).await["note"], Value::Null);
}

#[tokio::test]
async fn the_desk_takes_an_on_site_ticket_from_its_technician_only_with_a_reason() {
    let d = desk_with(&[]).await;
    let (tech1_id, tech1) = d.technician("tech1").await;
    let (tech2_id, tech2) = d.technician("tech2").await;
    let t = d.create(&public_ticket(&d.site)).await["id"].as_str().unwrap().to_owned();
    let phone = uuid::Uuid::new_v4().to_string();
    let done = push(&d.app, &tech1, &phone, vec![op(1, "claim", &t, json!({})), op(2, "arrive", &t, json!({}))]).await;
    assert_eq!(done["results"][1]["status"], "applied");

    let assign = format!("/api/v1/tickets/{t}/assign");
    let problem = assert_problem(
        d.app.post(&assign, &d.desk, &json!({ "technician_id": tech2_id })).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "reason");
    let blank = json!({ "technician_id": tech2_id, "reason": "  " });
    assert_problem(d.app.post(&assign, &d.desk, &blank).await, 422, "validation_failed").await;
    let still: Value = json_of(d.app.get(&format!("/api/v1/tickets/{t}"), &d.desk).await).await;
    assert_eq!((still["status"].as_str(), still["assignee_id"].as_str()), (Some("on_site"), Some(tech1_id.as_str())));
    // a technician cannot do it, with or without a reason
    let by_tech = json!({ "technician_id": tech2_id, "reason": "我来" });
    assert_problem(d.app.post(&assign, &tech1, &by_tech).await, 403, "forbidden").await;

    let body = json!({ "technician_id": tech2_id, "reason": "需要电工证" });
    let res = d.app.post(&assign, &d.desk, &body).await;
    assert_eq!(res.status(), 200);
    let moved = json_of(res).await;
    assert_eq!(moved["status"], "assigned");
    assert_eq!(moved["assignee_id"], tech2_id.as_str());
    assert_eq!(moved["arrived_at"], Value::Null, "the new holder checks in again");
    let events: Value = json_of(d.app.get(&format!("/api/v1/tickets/{t}/events"), &d.desk).await).await;
    let last = events["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "reassigned");
    assert_eq!(last["data"]["reason"], "需要电工证");
    assert_eq!(last["data"]["previous_assignee_id"], tech1_id.as_str());

    // the old holder's phone still had work queued on it: refused, and kept for the desk
    let note = op(3, "add_note", &t, json!({ "id": uuid::Uuid::new_v4(), "note": "换了开关" }));
    let late = push(&d.app, &tech1, &phone, vec![note]).await;
    assert_eq!(late["results"][0]["status"], "rejected");
    assert_eq!(late["results"][0]["code"], "not_your_ticket");
    let rejected: Value = json_of(d.app.get("/api/v1/sync/rejections", &d.desk).await).await;
    assert_eq!(rejected["items"][0]["name"], "add_note");
    assert_eq!(rejected["items"][0]["code"], "not_your_ticket");

    // the new holder goes to the door
    let res = d.app.post(&format!("/api/v1/tickets/{t}/arrive"), &tech2, &json!({})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(json_of(res).await["status"], "on_site");
}

async fn handover(d: &Desk, token: &str, body: &Value) -> Value {
    let res = d.app.post("/api/v1/handovers", token, body).await;
    assert_eq!(res.status(), 201);
    json_of(res).await
}

async fn write_note(d: &Desk, ticket: &str, token: &str, text: &str) {
    let url = format!("/api/v1/tickets/{ticket}/notes");
    assert_eq!(d.app.post(&url, token, &json!({ "note": text })).await.status(), 201);
}

#[tokio::test]
async fn a_handover_lists_the_sites_unfinished_tickets_and_the_next_shift_takes_it() {
    let d = desk_with(&[]).await;
    let (tech_id, tech) = d.technician("tech1").await;
    let (_, night) = d.app.user_token(&d.admin, "night1", "supervisor", &[&d.site], &[]).await;
    let escalated = d.ticket().await["id"].as_str().unwrap().to_owned();
    assert_eq!(d.app.scan_at(repairdesk::db::now() + chrono::Duration::minutes(6)).await, 1);
    let held = d.ticket().await["id"].as_str().unwrap().to_owned();
    assert_eq!(d.app.post(&format!("/api/v1/tickets/{held}/claim"), &tech, &json!({})).await.status(), 200);
    let voided = d.ticket().await["id"].as_str().unwrap().to_owned();
    let cancel = d.app.post(&format!("/api/v1/tickets/{voided}/cancel"), &d.desk, &json!({ "reason": "重复" })).await;
    assert_eq!(cancel.status(), 200);

    write_note(&d, &held, &tech, "水管老化，需换阀门").await;
    write_note(&d, &escalated, &d.desk, "住户下午3点后在家").await;

    let h = handover(&d, &d.desk, &json!({ "site_id": d.site, "shift": "day", "note": " 3号楼停水 " })).await;
    // the site's first handover passes on every note of its tickets, with who wrote it
    assert_eq!(h["notes_since"], Value::Null);
    let notes = |h: &Value, i: usize| -> Vec<(String, String)> {
        let notes = h["tickets"][i]["notes"].as_array().unwrap().iter();
        notes.map(|n| (n["note"].as_str().unwrap().to_owned(), n["author_name"].as_str().unwrap().to_owned())).collect()
    };
    assert_eq!(notes(&h, 0), [("住户下午3点后在家".to_owned(), "desk1".to_owned())]);
    assert_eq!(notes(&h, 1), [("水管老化，需换阀门".to_owned(), "tech1".to_owned())]);
    assert_eq!((h["shift"].as_str(), h["note"].as_str()), (Some("day"), Some("3号楼停水")));
    assert_eq!(h["acknowledged_at"], Value::Null);
    let tickets = h["tickets"].as_array().unwrap();
    let ids: Vec<&str> = tickets.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [escalated.as_str(), held.as_str()], "the cancelled ticket is not handed on");
    assert_eq!((tickets[0]["status"].as_str(), tickets[0]["open_escalations"].as_i64()), (Some("open"), Some(1)));
    assert_eq!(tickets[1]["status"], "assigned");
    assert_eq!(tickets[1]["assignee_id"], tech_id.as_str());
    assert_eq!(tickets[1]["open_escalations"], 0);
    let hid = h["id"].as_str().unwrap().to_owned();
    let ack = format!("/api/v1/handovers/{hid}/ack");

    // its writer cannot take it over; the next shift does, once
    assert_problem(d.app.post(&ack, &d.desk, &json!({})).await, 409, "own_handover").await;
    let res = d.app.post(&ack, &night, &json!({})).await;
    assert_eq!(res.status(), 200);
    let taken = json_of(res).await;
    let night_me: Value = json_of(d.app.get("/api/v1/me", &night).await).await;
    assert_eq!(taken["acknowledged_by"], night_me["id"]);
    assert!(taken["acknowledged_at"].is_string());
    assert_eq!(taken["tickets"], h["tickets"]);
    assert_problem(d.app.post(&ack, &night, &json!({})).await, 409, "already_acknowledged").await;
    let admin_again = assert_problem(d.app.post(&ack, &d.admin, &json!({})).await, 409, "already_acknowledged").await;
    assert_eq!(admin_again["acknowledged_by"], night_me["id"]);

    // later work does not change what was handed over; the list is newest first
    assert_eq!(d.app.post(&format!("/api/v1/tickets/{escalated}/claim"), &tech, &json!({})).await.status(), 200);
    write_note(&d, &held, &tech, "阀门已订，明早到货").await;
    let second = handover(&d, &night, &json!({ "site_id": d.site, "shift": "night" })).await;
    // the next one passes on only what was written since the last
    assert_eq!(second["notes_since"], h["created_at"]);
    assert_eq!(notes(&second, 0), []);
    assert_eq!(notes(&second, 1), [("阀门已订，明早到货".to_owned(), "tech1".to_owned())]);
    let list: Value = json_of(d.app.get(&format!("/api/v1/handovers?site_id={}", d.site), &d.desk).await).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], second["id"]);
    assert_eq!(items[0]["tickets"][0]["open_escalations"], 0);
    assert_eq!(items[1]["id"], hid.as_str());
    assert_eq!(items[1]["tickets"], h["tickets"]);
    assert_eq!(items[1]["acknowledged_by"], night_me["id"]);
}

#[tokio::test]
async fn handovers_belong_to_the_desk_of_their_site() {
    let d = desk_with(&[]).await;
    let (_, tech) = d.technician("tech1").await;
    let other_site = d.app.create_site(&d.admin, "HX").await;
    let (_, other_desk) = d.app.user_token(&d.admin, "desk_hx", "dispatcher", &[&other_site], &[]).await;

    let body = json!({ "site_id": d.site, "shift": "night" });
    assert_problem(d.app.post("/api/v1/handovers", &tech, &body).await, 403, "forbidden").await;
    assert_problem(d.app.get("/api/v1/handovers", &tech).await, 403, "forbidden").await;
    let problem =
        assert_problem(d.app.post("/api/v1/handovers", &other_desk, &body).await, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "site_id");
    let bad = json!({ "shift": "evening", "note": "长".repeat(1001) });
    let problem = assert_problem(d.app.post("/api/v1/handovers", &d.desk, &bad).await, 422, "validation_failed").await;
    let mut fields: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    fields.sort();
    assert_eq!(fields, ["note", "shift", "site_id"]);

    let h = handover(&d, &d.desk, &body).await;
    let ack = format!("/api/v1/handovers/{}/ack", h["id"].as_str().unwrap());
    assert_problem(d.app.post(&ack, &tech, &json!({})).await, 403, "forbidden").await;
    assert_problem(d.app.post(&ack, &other_desk, &json!({})).await, 404, "not_found").await;
    let unknown = format!("/api/v1/handovers/{}/ack", uuid::Uuid::new_v4());
    assert_problem(d.app.post(&unknown, &d.desk, &json!({})).await, 404, "not_found").await;

    // each desk lists its own sites' handovers; an admin all of them
    let theirs: Value = json_of(d.app.get("/api/v1/handovers", &other_desk).await).await;
    assert_eq!(theirs["items"], json!([]));
    let asked: Value = json_of(d.app.get(&format!("/api/v1/handovers?site_id={}", d.site), &other_desk).await).await;
    assert_eq!(asked["items"], json!([]));
    let ours: Value = json_of(d.app.get("/api/v1/handovers", &d.desk).await).await;
    assert_eq!(ours["items"][0]["id"], h["id"]);
    let all: Value = json_of(d.app.get("/api/v1/handovers", &d.admin).await).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
    let handover_ack = d.app.post(&ack, &d.admin, &json!({})).await;
    assert_eq!(handover_ack.status(), 200);
}
