//! Matters that are not repairs (报事): the desk registers a complaint, the department's
//! supervisor replies, the desk calls the reporter back.

use serde_json::{json, Value};

use crate::helpers::*;
use crate::tickets::{desk_with, Desk};

fn matter_body(site: &str) -> Value {
    json!({
        "site_id": site, "kind": "complaint", "department": "cleaning",
        "description": "3栋楼道垃圾两天没人清", "reporter_name": "李先生",
        "reporter_phone": "13812345678", "location": "3栋1单元", "channel": "phone"
    })
}

/// A supervisor of the site answering for `departments`; returns (user id, token).
async fn supervisor(d: &Desk, name: &str, site: &str, departments: &[&str]) -> (String, String) {
    let res = d
        .app
        .post(
            "/api/v1/users",
            &d.admin,
            &json!({
                "username": name, "password": PASSWORD, "display_name": name, "role": "supervisor",
                "site_ids": [site], "departments": departments,
            }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let user = json_of(res).await;
    assert_eq!(user["departments"], json!(departments));
    (user["id"].as_str().unwrap().to_owned(), token(&d.app.login(name, PASSWORD).await))
}

async fn create(d: &Desk, body: &Value) -> Value {
    let res = d.app.post("/api/v1/matters", &d.desk, body).await;
    assert_eq!(res.status(), 201);
    json_of(res).await
}

async fn matters(d: &Desk, query: &str) -> Vec<Value> {
    let res = d.app.get(&format!("/api/v1/matters{query}"), &d.desk).await;
    assert_eq!(res.status(), 200);
    json_of(res).await["items"].as_array().unwrap().clone()
}

async fn due(d: &Desk) -> Vec<Value> {
    let res = d.app.get("/api/v1/callbacks/due", &d.desk).await;
    assert_eq!(res.status(), 200);
    json_of(res).await["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_complaint_is_replied_to_by_its_department_and_closed_by_a_reached_callback() {
    let d = desk_with(&[]).await;
    let (boss_id, boss) = supervisor(&d, "cleaning-boss", &d.site, &["cleaning"]).await;

    let m = create(&d, &matter_body(&d.site)).await;
    let id = m["id"].as_str().unwrap();
    let number = m["number"].as_str().unwrap();
    assert!(number.starts_with("GY-BS-") && number.ends_with("-0001"), "{number}");
    assert_eq!(number.len(), "GY-BS-20261203-0001".len());
    assert_eq!((&m["kind"], &m["department"], &m["status"]), (&json!("complaint"), &json!("cleaning"), &json!("open")));
    assert_eq!(m["location"], "3栋1单元");
    let mut praise = matter_body(&d.site);
    praise["kind"] = json!("praise");
    praise["location"] = Value::Null;
    let second = create(&d, &praise).await;
    assert!(second["number"].as_str().unwrap().ends_with("-0002"));
    assert_eq!(second["location"], Value::Null);
    // tickets keep their own series
    let t = d.ticket().await;
    assert!(t["number"].as_str().unwrap().ends_with("-0001"));

    assert_eq!(matters(&d, "?status=open").await.len(), 2);
    assert!(due(&d).await.is_empty(), "nothing to call back before the reply");
    let early = d.app.post(&format!("/api/v1/matters/{id}/callback"), &d.desk, &json!({ "reached": true })).await;
    assert_problem(early, 409, "invalid_transition").await;

    let res =
        d.app.post(&format!("/api/v1/matters/{id}/reply"), &boss, &json!({ "reply": " 已安排保洁当天清运 " })).await;
    assert_eq!(res.status(), 200);
    let replied = json_of(res).await;
    assert_eq!(replied["status"], "replied");
    assert_eq!(replied["reply"], "已安排保洁当天清运");
    assert_eq!(replied["replied_by"], boss_id.as_str());
    let again = d.app.post(&format!("/api/v1/matters/{id}/reply"), &boss, &json!({ "reply": "再说一次" })).await;
    assert_problem(again, 409, "invalid_transition").await;

    let items = due(&d).await;
    assert_eq!(items.len(), 1);
    assert_eq!((&items[0]["kind"], &items[0]["id"]), (&json!("matter"), &json!(id)));
    assert_eq!((&items[0]["matter_kind"], &items[0]["number"]), (&json!("complaint"), &m["number"]));

    let res = d
        .app
        .post(&format!("/api/v1/matters/{id}/callback"), &d.desk, &json!({ "reached": false, "comment": "无人接听" }))
        .await;
    assert_eq!(res.status(), 200);
    let attempt = json_of(res).await;
    assert_eq!(attempt["status"], "replied");
    assert_eq!(attempt["callbacks"].as_array().unwrap().len(), 1);
    assert_eq!(due(&d).await.len(), 1, "still due after an unanswered call");

    let res = d
        .app
        .post(&format!("/api/v1/matters/{id}/callback"), &d.desk, &json!({ "reached": true, "satisfaction": 4 }))
        .await;
    assert_eq!(res.status(), 200);
    let closed = json_of(res).await;
    assert_eq!(closed["status"], "closed");
    assert!(closed["closed_at"].is_string());
    assert_eq!(closed["callbacks"][1]["satisfaction"], 4);
    assert!(due(&d).await.is_empty());
    let shown = json_of(d.app.get(&format!("/api/v1/matters/{id}"), &d.desk).await).await;
    assert_eq!(shown, closed);
    assert_eq!(matters(&d, "?status=closed").await.len(), 1);
    let after = d.app.post(&format!("/api/v1/matters/{id}/callback"), &d.desk, &json!({ "reached": true })).await;
    assert_problem(after, 409, "invalid_transition").await;
}

#[tokio::test]
async fn only_the_departments_supervisor_or_an_admin_replies_and_technicians_see_no_matters() {
    let d = desk_with(&[]).await;
    let (_, security) = supervisor(&d, "security-boss", &d.site, &["security"]).await;
    let (_, tech) = d.technician("tech1").await;
    let m = create(&d, &matter_body(&d.site)).await;
    let id = m["id"].as_str().unwrap();
    let reply = json!({ "reply": "已处理" });
    let path = format!("/api/v1/matters/{id}/reply");

    assert_problem(d.app.post(&path, &security, &reply).await, 403, "forbidden").await;
    assert_problem(d.app.post(&path, &d.desk, &reply).await, 403, "forbidden").await;
    assert_problem(d.app.post(&path, &tech, &reply).await, 403, "forbidden").await;
    assert_problem(d.app.get(&format!("/api/v1/matters/{id}"), &tech).await, 403, "forbidden").await;
    assert_problem(d.app.get("/api/v1/matters", &tech).await, 403, "forbidden").await;
    assert_problem(d.app.post("/api/v1/matters", &tech, &matter_body(&d.site)).await, 403, "forbidden").await;

    // a cleaning supervisor of another site: the matter is not theirs to see
    let other = d.app.create_site(&d.admin, "BJ").await;
    let (_, far) = supervisor(&d, "far-cleaning", &other, &["cleaning"]).await;
    let (_, far_desk) = d.app.user_token(&d.admin, "far-desk", "dispatcher", &[&other], &[]).await;
    assert_problem(d.app.post(&path, &far, &reply).await, 404, "not_found").await;
    assert_problem(d.app.get(&format!("/api/v1/matters/{id}"), &far_desk).await, 404, "not_found").await;
    let cb = json!({ "reached": true });
    assert_problem(d.app.post(&format!("/api/v1/matters/{id}/callback"), &far_desk, &cb).await, 404, "not_found").await;
    let list = json_of(d.app.get("/api/v1/matters", &far_desk).await).await;
    assert_eq!(list["items"], json!([]));
    let res = d.app.post("/api/v1/matters", &far_desk, &matter_body(&d.site)).await;
    let problem = assert_problem(res, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "site_id");

    // given the department, the same supervisor may answer; an admin always may
    let me: Value = json_of(d.app.get("/api/v1/me", &security).await).await;
    let res = d
        .app
        .patch(
            &format!("/api/v1/users/{}", me["id"].as_str().unwrap()),
            &d.admin,
            &json!({ "departments": ["security", "cleaning"] }),
        )
        .await;
    assert_eq!(json_of(res).await["departments"], json!(["cleaning", "security"]));
    let res = d.app.post(&path, &security, &reply).await;
    assert_eq!(res.status(), 200);
    let mut landscaping = matter_body(&d.site);
    landscaping["department"] = json!("landscaping");
    let second = create(&d, &landscaping).await;
    let res = d.app.post(&format!("/api/v1/matters/{}/reply", second["id"].as_str().unwrap()), &d.admin, &reply).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_fields_and_nothing_is_recorded() {
    let d = desk_with(&[]).await;
    let res = d
        .app
        .post(
            "/api/v1/matters",
            &d.desk,
            &json!({ "site_id": d.site, "kind": "rant", "description": " ", "reporter_name": "李先生",
                     "reporter_phone": "12345", "channel": "phone", "location": "x".repeat(201) }),
        )
        .await;
    let problem = assert_problem(res, 422, "validation_failed").await;
    let fields: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    for field in ["kind", "department", "description", "reporter_phone", "location"] {
        assert!(fields.contains(&field), "{field} in {fields:?}");
    }
    assert!(matters(&d, "").await.is_empty());
    let res = d.app.get("/api/v1/matters?status=pending", &d.desk).await;
    assert_eq!(assert_problem(res, 422, "validation_failed").await["errors"][0]["field"], "status");

    let m = create(&d, &matter_body(&d.site)).await;
    let id = m["id"].as_str().unwrap();
    let res = d.app.post(&format!("/api/v1/matters/{id}/reply"), &d.admin, &json!({ "reply": "  " })).await;
    assert_eq!(assert_problem(res, 422, "validation_failed").await["errors"][0]["field"], "reply");
    d.app.post(&format!("/api/v1/matters/{id}/reply"), &d.admin, &json!({ "reply": "好" })).await;
    let res = d
        .app
        .post(&format!("/api/v1/matters/{id}/callback"), &d.desk, &json!({ "reached": false, "satisfaction": 3 }))
        .await;
    assert_eq!(assert_problem(res, 422, "validation_failed").await["errors"][0]["field"], "satisfaction");
    let res = d
        .app
        .post(&format!("/api/v1/matters/{id}/callback"), &d.desk, &json!({ "reached": true, "satisfaction": 9 }))
        .await;
    assert_problem(res, 422, "validation_failed").await;
    let shown = json_of(d.app.get(&format!("/api/v1/matters/{id}"), &d.desk).await).await;
    assert_eq!((&shown["status"], &shown["callbacks"]), (&json!("replied"), &json!([])));

    let res = d
        .app
        .patch(
            &format!("/api/v1/users/{}", json_of(d.app.get("/api/v1/me", &d.desk).await).await["id"].as_str().unwrap()),
            &d.admin,
            &json!({ "departments": ["plumbing"] }),
        )
        .await;
    assert_eq!(assert_problem(res, 422, "validation_failed").await["errors"][0]["field"], "departments");
    assert_problem(d.app.get("/api/v1/matters/no-such-matter", &d.desk).await, 404, "not_found").await;
}

#[tokio::test]
async fn a_matter_left_without_a_reply_escalates_once_and_the_reply_resolves_it() {
    let d = desk_with(&[("REPAIRDESK_MATTER_REPLY_HOURS", "2")]).await;
    let m = create(&d, &matter_body(&d.site)).await;
    let id = m["id"].as_str().unwrap();
    let now = repairdesk::db::now();
    assert_eq!(d.app.scan_at(now + chrono::Duration::minutes(119)).await, 0, "not yet");
    assert_eq!(d.app.scan_at(now + chrono::Duration::minutes(121)).await, 1);
    assert_eq!(d.app.scan_at(now + chrono::Duration::minutes(180)).await, 0, "once");

    let list = json_of(d.app.get("/api/v1/escalations?open=true", &d.desk).await).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let e = &items[0];
    assert_eq!(e["kind"], "unreplied");
    assert_eq!((&e["matter_id"], &e["matter_number"]), (&json!(id), &m["number"]));
    assert_eq!((&e["ticket_id"], &e["ticket_number"]), (&Value::Null, &Value::Null));
    assert_eq!(e["matter_status"], "open");
    let eid = e["id"].as_str().unwrap();

    let res = d.app.post(&format!("/api/v1/escalations/{eid}/ack"), &d.desk, &json!({ "note": "已催清洁主管" })).await;
    assert_eq!(res.status(), 200);
    assert_eq!(json_of(res).await["note"], "已催清洁主管");
    let again = d.app.post(&format!("/api/v1/escalations/{eid}/ack"), &d.desk, &json!({})).await;
    assert_problem(again, 409, "already_acknowledged").await;

    d.app.post(&format!("/api/v1/matters/{id}/reply"), &d.admin, &json!({ "reply": "已清运" })).await;
    let open = json_of(d.app.get("/api/v1/escalations?open=true", &d.desk).await).await;
    assert_eq!(open["items"], json!([]));
    let all = json_of(d.app.get("/api/v1/escalations", &d.desk).await).await;
    assert!(all["items"][0]["resolved_at"].is_string());
}

#[tokio::test]
async fn callbacks_due_lists_tickets_and_matters_each_saying_which() {
    let d = desk_with(&[]).await;
    let (_, tech) = d.technician("tech1").await;
    let t = d.ticket().await;
    let tid = t["id"].as_str().unwrap();
    let act = |action: &str| format!("/api/v1/tickets/{tid}/{action}");
    assert_eq!(d.app.post(&act("claim"), &tech, &json!({})).await.status(), 200);
    assert_eq!(d.app.post(&act("verify-by-phone"), &d.desk, &json!({ "note": "已致电业主确认" })).await.status(), 200);
    assert_eq!(d.app.post(&act("arrive"), &tech, &json!({})).await.status(), 200);
    assert_eq!(d.app.post(&act("complete"), &tech, &json!({ "result": "换角阀" })).await.status(), 200);

    let m = create(&d, &matter_body(&d.site)).await;
    let mid = m["id"].as_str().unwrap();
    d.app.post(&format!("/api/v1/matters/{mid}/reply"), &d.admin, &json!({ "reply": "已处理" })).await;

    let items = due(&d).await;
    let kinds: Vec<(&str, &str)> =
        items.iter().map(|i| (i["kind"].as_str().unwrap(), i["id"].as_str().unwrap())).collect();
    assert_eq!(kinds, [("ticket", tid), ("matter", mid)], "oldest first");
    assert_eq!(items[0]["number"], t["number"]);
    assert_eq!(items[0]["status"], "completed");
    assert_eq!(items[1]["status"], "replied");
}
