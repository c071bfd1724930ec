use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::helpers::*;

/// A site with its admin, a dispatcher and technicians in the water trade.
pub struct Desk {
    pub app: TestApp,
    pub admin: String,
    pub site: String,
    pub desk: String,
}

pub async fn desk_with(extra: &[(&str, &str)]) -> Desk {
    let app = spawn_app_with(extra).await;
    let admin = app.admin_token().await;
    let site = app.create_site(&admin, "GY").await;
    let (_, desk) = app.user_token(&admin, "desk1", "dispatcher", &[&site], &[]).await;
    Desk { app, admin, site, desk }
}

pub fn ticket_body(site: &str) -> Value {
    json!({
        "site_id": site, "area": "in_home", "location": "3栋2单元1201", "category": "water",
        "urgency": "normal", "paid": false, "description": "厨房水管漏水", "reporter_name": "王女士",
        "reporter_phone": "13812345678", "resident_supplies_parts": false, "channel": "phone"
    })
}

impl Desk {
    pub async fn technician(&self, name: &str) -> (String, String) {
        self.app.user_token(&self.admin, name, "technician", &[&self.site], &["water"]).await
    }

    pub async fn create(&self, body: &Value) -> Value {
        let res = self.app.post("/api/v1/tickets", &self.desk, body).await;
        assert_eq!(res.status(), 201);
        res.json().await.unwrap()
    }

    pub async fn ticket(&self) -> Value {
        self.create(&ticket_body(&self.site)).await
    }
}

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

/// The ticket's event types, without SMS deliveries (they land whenever the gateway answers).
async fn event_types(app: &TestApp, token: &str, ticket: &str) -> Vec<String> {
    let events: Value = app.get(&format!("/api/v1/tickets/{ticket}/events"), token).await.json().await.unwrap();
    events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .filter(|t| !t.starts_with("sms_"))
        .collect()
}

#[tokio::test]
async fn the_desk_registers_a_ticket_with_a_site_number() {
    let d = desk_with(&[]).await;
    let t = d.ticket().await;
    assert_eq!(t["status"], "open");
    assert_eq!(t["reporter_phone"], "+8613812345678");
    assert_eq!(t["materials"], json!([]));
    assert_eq!(t["version"], 1);
    let today = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai).format("%Y%m%d").to_string();
    assert_eq!(t["number"], format!("GY-{today}-0001"));
    assert_eq!(event_types(&d.app, &d.desk, id(&t)).await, ["created"]);
}

#[tokio::test]
async fn each_bad_intake_field_is_named_and_nothing_is_created() {
    let d = desk_with(&[]).await;
    let body = json!({
        "site_id": d.site, "area": "garden", "location": "", "category": "plumbing", "urgency": "soon",
        "description": "x", "reporter_name": "王", "reporter_phone": "12345", "channel": "fax",
        "appointment_at": "2001-01-01T00:00:00Z"
    });
    let problem = assert_problem(d.app.post("/api/v1/tickets", &d.desk, &body).await, 422, "validation_failed").await;
    let mut fields: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    fields.sort();
    assert_eq!(fields, ["appointment_at", "area", "category", "channel", "location", "reporter_phone", "urgency"]);

    let mut no_phone = ticket_body(&d.site);
    no_phone.as_object_mut().unwrap().remove("reporter_phone");
    let problem =
        assert_problem(d.app.post("/api/v1/tickets", &d.desk, &no_phone).await, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "reporter_phone");
    let mut wrong_type = ticket_body(&d.site);
    wrong_type["paid"] = json!("yes");
    let problem =
        assert_problem(d.app.post("/api/v1/tickets", &d.desk, &wrong_type).await, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "paid");

    let list: Value = d.app.get("/api/v1/tickets", &d.desk).await.json().await.unwrap();
    assert_eq!(list["items"], json!([]));
}

#[tokio::test]
async fn fifty_concurrent_creates_get_consecutive_numbers() {
    let d = desk_with(&[("REPAIRDESK_DB_POOL_SIZE", "16")]).await;
    let body = ticket_body(&d.site);
    let creates = (0..50).map(|_| d.app.post("/api/v1/tickets", &d.desk, &body));
    let mut numbers = Vec::new();
    for res in futures_util::future::join_all(creates).await {
        assert_eq!(res.status(), 201);
        let t: Value = res.json().await.unwrap();
        numbers.push(t["number"].as_str().unwrap().rsplit('-').next().unwrap().parse::<u32>().unwrap());
    }
    numbers.sort();
    assert_eq!(numbers, (1..=50).collect::<Vec<_>>());
}

#[tokio::test]
async fn exactly_one_of_32_racing_technicians_wins_each_ticket() {
    let d = desk_with(&[("REPAIRDESK_MAX_ACTIVE_TICKETS", "100"), ("REPAIRDESK_DB_POOL_SIZE", "16")]).await;
    let mut techs = Vec::new();
    for i in 0..32 {
        techs.push(d.technician(&format!("tech{i}")).await);
    }
    for _ in 0..8 {
        let t = d.ticket().await;
        let path = format!("/api/v1/tickets/{}/claim", id(&t));
        let empty = json!({});
        let claims = techs.iter().map(|(_, token)| d.app.post(&path, token, &empty));
        let results = futures_util::future::join_all(claims).await;
        let mut winners = Vec::new();
        for (res, (tech_id, _)) in results.into_iter().zip(&techs) {
            match res.status().as_u16() {
                200 => winners.push(tech_id.clone()),
                409 => {
                    assert_problem(res, 409, "already_claimed").await;
                }
                other => panic!("unexpected {other}"),
            }
        }
        assert_eq!(winners.len(), 1, "exactly one winner");
        let now: Value = d.app.get(&format!("/api/v1/tickets/{}", id(&t)), &d.desk).await.json().await.unwrap();
        assert_eq!(now["assignee_id"], winners[0].as_str());
        assert_eq!(now["status"], "assigned");
        assert_eq!(event_types(&d.app, &d.desk, id(&t)).await, ["created", "claimed"]);
    }
}

#[tokio::test]
async fn a_technician_holding_too_many_tickets_cannot_claim_more() {
    let d = desk_with(&[("REPAIRDESK_MAX_ACTIVE_TICKETS", "2")]).await;
    let (_, tech) = d.technician("tech1").await;
    for _ in 0..2 {
        let t = d.ticket().await;
        assert_eq!(d.app.post(&format!("/api/v1/tickets/{}/claim", id(&t)), &tech, &json!({})).await.status(), 200);
    }
    let third = d.ticket().await;
    let res = d.app.post(&format!("/api/v1/tickets/{}/claim", id(&third)), &tech, &json!({})).await;
    assert_problem(res, 409, "too_many_active").await;
    let still: Value = d.app.get(&format!("/api/v1/tickets/{}", id(&third)), &d.desk).await.json().await.unwrap();
    assert_eq!(still["status"], "open");
}

/// The cap holds when one technician's claims race each other (two phones, a push and a tap):
/// each claim counts under the technician's lock, after its own update.
#[tokio::test]
async fn a_technicians_claims_at_once_never_pass_the_cap() {
    let d = desk_with(&[("REPAIRDESK_MAX_ACTIVE_TICKETS", "2"), ("REPAIRDESK_DB_POOL_SIZE", "10")]).await;
    let (tech_id, tech) = d.technician("tech1").await;
    let mut tickets = Vec::new();
    for _ in 0..8 {
        tickets.push(id(&d.ticket().await).to_owned());
    }
    let claims = tickets.iter().map(|t| {
        let (path, tech) = (format!("/api/v1/tickets/{t}/claim"), tech.clone());
        let app = &d.app;
        async move { app.post(&path, &tech, &json!({})).await.status().as_u16() }
    });
    let mut statuses = futures_util::future::join_all(claims).await;
    statuses.sort();
    assert_eq!(statuses, [200, 200, 409, 409, 409, 409, 409, 409]);
    let mut held = 0;
    for t in &tickets {
        let now: Value = d.app.get(&format!("/api/v1/tickets/{t}"), &d.desk).await.json().await.unwrap();
        if now["assignee_id"] == tech_id.as_str() {
            held += 1;
        } else {
            assert_eq!(now["status"], "open");
        }
    }
    assert_eq!(held, 2);
}

#[tokio::test]
async fn release_assign_reassign_and_cancel_leave_their_events() {
    let d = desk_with(&[]).await;
    let (tech1_id, tech1) = d.technician("tech1").await;
    let (tech2_id, tech2) = d.technician("tech2").await;
    let t = d.ticket().await;
    let tid = id(&t);

    d.app.post(&format!("/api/v1/tickets/{tid}/claim"), &tech1, &json!({})).await;
    let no_reason = d.app.post(&format!("/api/v1/tickets/{tid}/release"), &tech1, &json!({ "reason": " " })).await;
    assert_problem(no_reason, 422, "validation_failed").await;
    let released: Value = d
        .app
        .post(&format!("/api/v1/tickets/{tid}/release"), &tech1, &json!({ "reason": "缺配件" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(released["status"], "open");
    assert_eq!(released["assignee_id"], Value::Null);

    let assigned: Value = d
        .app
        .post(&format!("/api/v1/tickets/{tid}/assign"), &d.desk, &json!({ "technician_id": tech1_id }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(assigned["assignee_id"], tech1_id.as_str());
    let reassigned: Value = d
        .app
        .post(
            &format!("/api/v1/tickets/{tid}/assign"),
            &d.desk,
            &json!({ "technician_id": tech2_id, "reason": "离得近" }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reassigned["assignee_id"], tech2_id.as_str());
    // the previous holder no longer sees it
    assert_problem(d.app.get(&format!("/api/v1/tickets/{tid}"), &tech1).await, 404, "not_found").await;
    assert_eq!(d.app.get(&format!("/api/v1/tickets/{tid}"), &tech2).await.status(), 200);

    let cancelled: Value = d
        .app
        .post(&format!("/api/v1/tickets/{tid}/cancel"), &d.desk, &json!({ "reason": "业主已自行修好" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["cancel_reason"], "业主已自行修好");
    assert_eq!(cancelled["number"], t["number"], "a voided ticket keeps its number");
    let again = d.app.post(&format!("/api/v1/tickets/{tid}/cancel"), &d.desk, &json!({ "reason": "again" })).await;
    assert_problem(again, 409, "invalid_transition").await;

    assert_eq!(
        event_types(&d.app, &d.desk, tid).await,
        ["created", "claimed", "released", "assigned", "reassigned", "cancelled"]
    );
    let events: Value = d.app.get(&format!("/api/v1/tickets/{tid}/events"), &d.desk).await.json().await.unwrap();
    let reassign = events["items"].as_array().unwrap().iter().find(|e| e["type"] == "reassigned").unwrap();
    assert_eq!(reassign["data"]["previous_assignee_id"], tech1_id.as_str());
    assert_eq!(reassign["from_status"], "assigned");
    assert_eq!(reassign["to_status"], "assigned");
    let list: Value = d.app.get("/api/v1/tickets?status=cancelled", &d.desk).await.json().await.unwrap();
    assert_eq!(list["items"][0]["id"], tid, "voided tickets stay listed");
}

#[tokio::test]
async fn roles_are_checked_on_every_action() {
    let d = desk_with(&[]).await;
    let (tech_id, tech) = d.technician("tech1").await;
    let t = d.ticket().await;
    let tid = id(&t);
    assert_problem(d.app.post("/api/v1/tickets", &tech, &ticket_body(&d.site)).await, 403, "forbidden").await;
    assert_problem(d.app.post(&format!("/api/v1/tickets/{tid}/claim"), &d.desk, &json!({})).await, 403, "forbidden")
        .await;
    let assign = json!({ "technician_id": tech_id });
    assert_problem(d.app.post(&format!("/api/v1/tickets/{tid}/assign"), &tech, &assign).await, 403, "forbidden").await;
    let cancel = json!({ "reason": "x" });
    assert_problem(d.app.post(&format!("/api/v1/tickets/{tid}/cancel"), &tech, &cancel).await, 403, "forbidden").await;
    assert_problem(d.app.get("/api/v1/escalations", &tech).await, 403, "forbidden").await;
    assert_problem(d.app.get("/api/v1/pool", &d.desk).await, 403, "forbidden").await;
    // a technician can't release a ticket someone else holds
    let (_, other) = d.technician("tech2").await;
    d.app.post(&format!("/api/v1/tickets/{tid}/claim"), &other, &json!({})).await;
    let release = d.app.post(&format!("/api/v1/tickets/{tid}/release"), &tech, &json!({ "reason": "x" })).await;
    assert_problem(release, 404, "not_found").await;
}

#[tokio::test]
async fn another_sites_ticket_is_not_found() {
    let d = desk_with(&[]).await;
    let other_site = d.app.create_site(&d.admin, "HK").await;
    let (_, other_desk) = d.app.user_token(&d.admin, "desk.hk", "dispatcher", &[&other_site], &[]).await;
    let (_, other_tech) = d.app.user_token(&d.admin, "tech.hk", "technician", &[&other_site], &["water"]).await;
    let t = d.ticket().await;
    let tid = id(&t);
    for token in [&other_desk, &other_tech] {
        let res = d.app.get(&format!("/api/v1/tickets/{tid}"), token).await;
        let body = assert_problem(res, 404, "not_found").await;
        assert!(!body.to_string().contains("13812345678"));
        assert_problem(d.app.get(&format!("/api/v1/tickets/{tid}/events"), token).await, 404, "not_found").await;
    }
    assert_problem(
        d.app.post(&format!("/api/v1/tickets/{tid}/claim"), &other_tech, &json!({})).await,
        404,
        "not_found",
    )
    .await;
    let cancel = json!({ "reason": "x" });
    assert_problem(d.app.post(&format!("/api/v1/tickets/{tid}/cancel"), &other_desk, &cancel).await, 404, "not_found")
        .await;
    let create = d.app.post("/api/v1/tickets", &other_desk, &ticket_body(&d.site)).await;
    assert_eq!(assert_problem(create, 422, "validation_failed").await["errors"][0]["field"], "site_id");
    let list: Value = d.app.get("/api/v1/tickets", &other_desk).await.json().await.unwrap();
    assert_eq!(list["items"], json!([]));
    // held by a technician of its own site, it is still "not found" from the other site
    let (_, ours) = d.technician("tech.gy").await;
    assert_eq!(d.app.post(&format!("/api/v1/tickets/{tid}/claim"), &ours, &json!({})).await.status(), 200);
    assert_problem(
        d.app.post(&format!("/api/v1/tickets/{tid}/claim"), &other_tech, &json!({})).await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn the_pool_shows_a_technicians_trades_emergencies_first_with_phones_masked() {
    let d = desk_with(&[]).await;
    let (_, tech) = d.technician("tech1").await;
    let normal = d.ticket().await;
    let mut emergency_body = ticket_body(&d.site);
    emergency_body["urgency"] = json!("emergency");
    emergency_body["description"] = json!("水管爆裂");
    let emergency = d.create(&emergency_body).await;
    let mut electric = ticket_body(&d.site);
    electric["category"] = json!("electric");
    d.create(&electric).await;

    let pool: Value = d.app.get("/api/v1/pool", &tech).await.json().await.unwrap();
    let ids: Vec<&str> = pool["items"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [id(&emergency), id(&normal)]);
    assert_eq!(pool["items"][0]["reporter_phone"], "+86*******5678");

    let claimed: Value =
        d.app.post(&format!("/api/v1/tickets/{}/claim", id(&normal)), &tech, &json!({})).await.json().await.unwrap();
    assert_eq!(claimed["reporter_phone"], "+8613812345678");
    let pool: Value = d.app.get("/api/v1/pool", &tech).await.json().await.unwrap();
    assert_eq!(pool["items"].as_array().unwrap().len(), 1);
    let mine: Value = d.app.get("/api/v1/tickets", &tech).await.json().await.unwrap();
    assert_eq!(mine["items"][0]["id"], id(&normal));
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_requested_technician_gets_the_ticket_directly() {
    let d = desk_with(&[]).await;
    let (tech_id, tech) = d.technician("tech1").await;
    let mut body = ticket_body(&d.site);
    body["requested_technician_id"] = json!(tech_id);
    let t = d.create(&body).await;
    assert_eq!(t["status"], "assigned");
    assert_eq!(t["assignee_id"], tech_id.as_str());
    assert_eq!(event_types(&d.app, &tech, id(&t)).await, ["created", "assigned"]);
    body["requested_technician_id"] = json!(d.site);
    let res = d.app.post("/api/v1/tickets", &d.desk, &body).await;
    assert_eq!(assert_problem(res, 422, "validation_failed").await["errors"][0]["field"], "requested_technician_id");
}

#[tokio::test]
async fn lists_filter_and_page_with_a_cursor() {
    let d = desk_with(&[]).await;
    let (_, tech) = d.technician("tech1").await;
    let mut created = Vec::new();
    for _ in 0..5 {
        created.push(id(&d.ticket().await).to_owned());
    }
    d.app.post(&format!("/api/v1/tickets/{}/claim", created[0]), &tech, &json!({})).await;

    let mut seen = Vec::new();
    let mut path = "/api/v1/tickets?limit=2".to_owned();
    loop {
        let page: Value = d.app.get(&path, &d.desk).await.json().await.unwrap();
        seen.extend(page["items"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/tickets?limit=2&cursor={c}"),
            None => break,
        }
    }
    created.reverse();
    assert_eq!(seen, created, "newest first, each once");

    let assigned: Value = d.app.get("/api/v1/tickets?status=assigned", &d.desk).await.json().await.unwrap();
    assert_eq!(assigned["items"].as_array().unwrap().len(), 1);
    let open: Value = d.app.get("/api/v1/tickets?status=open,cancelled", &d.desk).await.json().await.unwrap();
    assert_eq!(open["items"].as_array().unwrap().len(), 4);
    let future: Value =
        d.app.get("/api/v1/tickets?created_after=2999-01-01T00:00:00Z", &d.desk).await.json().await.unwrap();
    assert_eq!(future["items"], json!([]));
    assert_problem(d.app.get("/api/v1/tickets?status=lost", &d.desk).await, 422, "validation_failed").await;
    assert_problem(d.app.get("/api/v1/tickets?limit=0", &d.desk).await, 422, "validation_failed").await;
    assert_problem(d.app.get("/api/v1/tickets?cursor=@@", &d.desk).await, 422, "validation_failed").await;
    assert_problem(d.app.get("/api/v1/tickets?created_after=yesterday", &d.desk).await, 422, "validation_failed").await;
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer() {
    let d = desk_with(&[]).await;
    let body = ticket_body(&d.site);
    let send = |body: Value, key: &'static str| {
        d.app
            .client
            .post(d.app.url("/api/v1/tickets"))
            .bearer_auth(&d.desk)
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let first = send(body.clone(), "desk-retry-1").await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let second = send(body.clone(), "desk-retry-1").await.unwrap();
    assert_eq!(second.status(), 201);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let second: Value = second.json().await.unwrap();
    assert_eq!(first, second);
    let mut other = body.clone();
    other["location"] = json!("5栋");
    assert_problem(send(other, "desk-retry-1").await.unwrap(), 422, "idempotency_key_reused").await;
    let list: Value = d.app.get("/api/v1/tickets", &d.desk).await.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "created once");
}

/// Reads the stream until an event of `kind` naming `ticket_id` arrives; returns its id line.
pub async fn wait_for_event(res: reqwest::Response, kind: &str, ticket_id: &str, within: Duration) -> String {
    let found = |text: &str| {
        text.split("\n\n")
            .find(|frame| frame.contains(&format!("event: {kind}")) && frame.contains(ticket_id))
            .map(|frame| frame.lines().find_map(|l| l.strip_prefix("id: ")).unwrap().to_owned())
    };
    read_until(res, &format!("{kind} for {ticket_id}"), within, found).await
}

/// Reads the stream until `found` finds something in what it read so far (`what` names it in the
/// failure).
async fn read_until<T>(res: reqwest::Response, what: &str, within: Duration, found: impl Fn(&str) -> Option<T>) -> T {
    let mut stream = res.bytes_stream();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(it) = found(&text) {
            return it;
        }
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("no {what} within {within:?}; got {text}"))
            .expect("stream open")
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
}

pub async fn open_stream(app: &TestApp, token: &str, last_event_id: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(app.url("/api/v1/pool/stream")).bearer_auth(token);
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    res
}

#[tokio::test]
async fn the_pool_stream_tells_a_phone_of_new_claimed_and_lost_tickets() {
    let d = desk_with(&[]).await;
    let (tech1_id, tech1) = d.technician("tech1").await;
    let (tech2_id, _) = d.technician("tech2").await;

    let stream = open_stream(&d.app, &tech1, None).await;
    let t = d.ticket().await;
    let added = wait_for_event(stream, "pool_added", id(&t), Duration::from_secs(3)).await;

    // offline for a while: a reconnect with Last-Event-ID gets what it missed
    let assign = json!({ "technician_id": tech1_id });
    d.app.post(&format!("/api/v1/tickets/{}/assign", id(&t)), &d.desk, &assign).await;
    let reassign = json!({ "technician_id": tech2_id });
    d.app.post(&format!("/api/v1/tickets/{}/assign", id(&t)), &d.desk, &reassign).await;
    let stream = open_stream(&d.app, &tech1, Some(&added)).await;
    wait_for_event(stream, "ticket_lost", id(&t), Duration::from_secs(3)).await;
    let stream = open_stream(&d.app, &tech1, Some(&added)).await;
    wait_for_event(stream, "ticket_assigned", id(&t), Duration::from_secs(3)).await;
    // an id this server never wrote (the sequence numbers of before): refetch the pool first
    for unknown in ["42", "9:3:", "junk"] {
        let stream = open_stream(&d.app, &tech1, Some(unknown)).await;
        let first = read_until(stream, "event: resync", Duration::from_secs(3), |text| {
            text.contains("event: resync").then(|| text.to_owned())
        })
        .await;
        assert!(!first.contains("pool_added"), "{first}");
    }
}

#[tokio::test]
async fn a_stream_on_one_instance_hears_a_change_made_through_another() {
    let d = desk_with(&[]).await;
    let (_, tech) = d.technician("tech1").await;
    let second = spawn_on(d.app.db.clone(), &[]).await;
    let stream = open_stream(&second, &tech, None).await;
    let t = d.ticket().await;
    wait_for_event(stream, "pool_added", id(&t), Duration::from_secs(3)).await;
}

#[tokio::test]
async fn an_unclaimed_ticket_escalates_exactly_once_across_two_instances() {
    let d = desk_with(&[]).await;
    let second = spawn_on(d.app.db.clone(), &[]).await;
    let (_, tech) = d.technician("tech1").await;
    let t = d.ticket().await;
    let tid = id(&t);

    // past the claim timeout (5 minutes), both instances' clocks scan at once, and again later
    let later = repairdesk::db::now() + chrono::Duration::minutes(6);
    let (first, other) = futures_util::join!(d.app.scan_at(later), second.scan_at(later));
    assert_eq!(first + other, 1, "{first} + {other}");
    let later = later + chrono::Duration::minutes(10);
    let (first, other) = futures_util::join!(d.app.scan_at(later), second.scan_at(later));
    assert_eq!((first, other), (0, 0));
    let all: Value = d.app.get("/api/v1/escalations", &d.desk).await.json().await.unwrap();
    let items = all["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{all}");
    assert_eq!(items[0]["kind"], "unclaimed");
    assert_eq!(items[0]["ticket_id"], tid);
    assert_eq!(event_types(&d.app, &d.desk, tid).await, ["created", "escalated"]);
    let ticket: Value = d.app.get(&format!("/api/v1/tickets/{tid}"), &d.desk).await.json().await.unwrap();
    assert_eq!(ticket["escalations"][0]["kind"], "unclaimed");

    // the ticket moves on: the escalation resolves itself
    d.app.post(&format!("/api/v1/tickets/{tid}/claim"), &tech, &json!({})).await;
    let open: Value = d.app.get("/api/v1/escalations?open=true", &d.desk).await.json().await.unwrap();
    assert_eq!(open["items"], json!([]));
    let all: Value = d.app.get("/api/v1/escalations", &d.desk).await.json().await.unwrap();
    assert!(all["items"][0]["resolved_at"].is_string());
}

/// The clock's later limits are minutes and hours: the scan is run with a clock moved forward.
async fn scan_at(app: &TestApp, minutes_ahead: i64) -> usize {
    app.scan_at(repairdesk::db::now() + chrono::Duration::minutes(minutes_ahead)).await
}

async fn open_kinds(d: &Desk) -> Vec<String> {
    let open: Value = d.app.get("/api/v1/escalations?open=true", &d.desk).await.json().await.unwrap();
    open["items"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn late_arrivals_and_stalled_tickets_escalate_at_their_limits() {
    let d = desk_with(&[]).await;
    let (tech_id, tech) = d.technician("tech1").await;
    let mut emergency = ticket_body(&d.site);
    emergency["urgency"] = json!("emergency");
    emergency["requested_technician_id"] = json!(tech_id);
    let t = d.create(&emergency).await;

    // an emergency must be reached within 10 minutes of assignment
    assert_eq!(scan_at(&d.app, 9).await, 0);
    assert_eq!(scan_at(&d.app, 11).await, 1);
    assert_eq!(scan_at(&d.app, 12).await, 0, "recorded once");
    assert_eq!(open_kinds(&d).await, ["late_arrival"]);

    // two hours with no word: stalled as well
    assert_eq!(scan_at(&d.app, 121).await, 1);
    let mut kinds = open_kinds(&d).await;
    kinds.sort();
    assert_eq!(kinds, ["late_arrival", "stalled"]);
    assert_eq!(event_types(&d.app, &tech, id(&t)).await, ["created", "assigned", "escalated", "escalated"]);

    // an appointment moves the arrival limit to the appointment time
    let mut booked = ticket_body(&d.site);
    booked["requested_technician_id"] = json!(tech_id);
    booked["appointment_at"] = json!((chrono::Utc::now() + chrono::Duration::hours(3)).to_rfc3339());
    let b = d.create(&booked).await;
    assert_eq!(scan_at(&d.app, 60).await, 0);
    assert_eq!(scan_at(&d.app, 181).await, 1, "late against the appointment, {}", id(&b));
}

#[tokio::test]
async fn a_create_retried_after_a_crash_lost_its_answer_finds_the_same_ticket() {
    let d = desk_with(&[]).await;
    let body = ticket_body(&d.site);
    let send = || {
        d.app
            .client
            .post(d.app.url("/api/v1/tickets"))
            .bearer_auth(&d.desk)
            .header("idempotency-key", "crash-1")
            .json(&body)
            .send()
    };
    let first: Value = send().await.unwrap().json().await.unwrap();
    // the process died after the ticket committed but before its answer was stored
    let url = repairdesk::db::DatabaseUrl::parse(&d.app.db_url).unwrap();
    tokio::task::spawn_blocking(move || {
        use diesel::prelude::*;
        let pool = repairdesk::db::connect(&url, 1).unwrap();
        diesel::delete(repairdesk::db::schema::idempotency_keys::table).execute(&mut *pool.get().unwrap()).unwrap();
    })
    .await
    .unwrap();
    let again = send().await.unwrap();
    assert_eq!(again.status(), 201);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["number"], first["number"]);
    let list: Value = d.app.get("/api/v1/tickets", &d.desk).await.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "registered once");
}

/// A request refused before it changed anything leaves its key free: the phone corrects the field
/// and sends again with the same key, which then replays the answer that registered the ticket.
#[tokio::test]
async fn a_key_whose_request_was_refused_serves_the_corrected_request() {
    let d = desk_with(&[]).await;
    let send = |body: Value| {
        d.app
            .client
            .post(d.app.url("/api/v1/tickets"))
            .bearer_auth(&d.desk)
            .header("idempotency-key", "fix-and-resend")
            .json(&body)
            .send()
    };
    let mut wrong = ticket_body(&d.site);
    wrong["category"] = json!("plumbing-ish");
    assert_problem(send(wrong.clone()).await.unwrap(), 422, "validation_failed").await;
    // refused again rather than replayed: nothing was kept for it
    assert_problem(send(wrong).await.unwrap(), 422, "validation_failed").await;
    let fixed = send(ticket_body(&d.site)).await.unwrap();
    assert_eq!(fixed.status(), 201);
    assert!(fixed.headers().get("idempotent-replayed").is_none());
    let again = send(ticket_body(&d.site)).await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let list: Value = d.app.get("/api/v1/tickets", &d.desk).await.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "registered once");
}

/// The same JSON with its members in another order, or spaced otherwise, is the same request.
#[tokio::test]
async fn a_retry_whose_json_members_come_in_another_order_is_the_same_request() {
    let d = desk_with(&[]).await;
    let send = |raw: String| {
        d.app
            .client
            .post(d.app.url("/api/v1/tickets"))
            .bearer_auth(&d.desk)
            .header("idempotency-key", "reordered-1")
            .header("content-type", "application/json")
            .body(raw)
            .send()
    };
    let body = ticket_body(&d.site);
    let first = send(body.to_string()).await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    // the members reversed, with spaces, as another JSON library would write them
    let members: Vec<String> =
        body.as_object().unwrap().iter().rev().map(|(k, v)| format!("{} : {}", Value::String(k.clone()), v)).collect();
    let reordered = format!("{{ {} }}", members.join(", "));
    let again = send(reordered).await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    let list: Value = d.app.get("/api/v1/tickets", &d.desk).await.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "registered once");
}
