//! Sync in the shape of standard replication (RxDB): operation documents pushed and pulled,
//! tickets pulled with tombstones. The RxDB library itself drives the same endpoints in
//! `tests/rxdb/` (run by `.ci/run`).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::helpers::*;
use crate::tickets::{desk_with, ticket_body, Desk};

fn public_ticket(site: &str) -> Value {
    let mut body = ticket_body(site);
    body["area"] = json!("public");
    body["location"] = json!("2栋电梯厅");
    body
}

async fn tid(d: &Desk, body: Value) -> String {
    d.create(&body).await["id"].as_str().unwrap().to_owned()
}

/// An operation document as a phone makes it.
fn doc(client: &str, op_id: i64, name: &str, ticket: &str, args: Value) -> Value {
    json!({ "id": format!("{client}:{op_id}"), "client_id": client, "op_id": op_id, "name": name,
        "ticket_id": ticket, "args": args, "device_time": "2026-12-03T08:00:00Z", "result": null, "_deleted": false })
}

/// RxDB's push rows for new documents.
fn fresh(docs: &[Value]) -> Value {
    Value::Array(docs.iter().map(|d| json!({ "assumedMasterState": null, "newDocumentState": d })).collect())
}

async fn rx_push(app: &TestApp, token: &str, rows: &Value) -> Vec<Value> {
    let res = app.post("/api/v1/sync/rx/ops/push", token, rows).await;
    assert_eq!(res.status(), 200);
    res.json::<Vec<Value>>().await.unwrap()
}

async fn rx_pull(app: &TestApp, path: &str, token: &str, checkpoint: &Value, batch: i64) -> (Vec<Value>, Value) {
    let res = app.post(path, token, &json!({ "checkpoint": checkpoint, "batchSize": batch })).await;
    assert_eq!(res.status(), 200);
    let page: Value = res.json().await.unwrap();
    (page["documents"].as_array().unwrap().clone(), page["checkpoint"].clone())
}

/// Pulls tickets until a short page, as RxDB does: the documents by id (the last of an id wins),
/// the checkpoint, and the page sizes.
async fn pull_tickets(
    app: &TestApp,
    token: &str,
    mut checkpoint: Value,
    batch: i64,
) -> (BTreeMap<String, Value>, Value, Vec<usize>) {
    let (mut docs, mut sizes) = (BTreeMap::new(), Vec::new());
    loop {
        let (page, next) = rx_pull(app, "/api/v1/sync/rx/tickets/pull", token, &checkpoint, batch).await;
        sizes.push(page.len());
        if page.is_empty() {
            break;
        }
        checkpoint = next;
        for d in &page {
            docs.insert(d["id"].as_str().unwrap().to_owned(), d.clone());
        }
        if (page.len() as i64) < batch {
            break;
        }
    }
    (docs, checkpoint, sizes)
}

fn live(docs: &BTreeMap<String, Value>) -> Vec<String> {
    docs.iter().filter(|(_, d)| d["_deleted"] == false).map(|(id, _)| id.clone()).collect()
}

fn gone(docs: &BTreeMap<String, Value>) -> Vec<String> {
    docs.iter().filter(|(_, d)| d["_deleted"] == true).map(|(id, _)| id.clone()).collect()
}

#[tokio::test]
async fn operation_documents_come_back_with_their_verdict_and_a_resent_one_with_its_stored_verdict() {
    let d = desk_with(&[]).await;
    let (_, tech) = d.technician("tech1").await;
    let (_, rival) = d.technician("tech2").await;
    let t = tid(&d, public_ticket(&d.site)).await;
    let (client, rival_client) = (uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string());
    let mut note = doc(&client, 2, "add_note", &t, json!({ "id": uuid::Uuid::new_v4(), "note": "水管已关" }));
    // what the library keeps of its own is not the document's
    note["_meta"] = json!({ "lwt": 1_764_000_000_000.5 });
    note["_rev"] = json!("1-abc");
    let sent = [doc(&client, 1, "claim", &t, json!({})), note];
    let answer = rx_push(&d.app, &tech, &fresh(&sent)).await;
    assert_eq!(answer.len(), 2, "every new document comes back with its verdict: {answer:?}");
    for (a, s) in answer.iter().zip(&sent) {
        assert_eq!(a["id"], s["id"]);
        assert_eq!(a["result"], json!({ "status": "applied", "code": null, "detail": null }));
        assert_eq!(a["args"], s["args"]);
        assert_eq!(a["_deleted"], false);
        assert!(a.get("_meta").is_none());
    }
    let ticket: Value = d.app.get(&format!("/api/v1/tickets/{t}"), &d.desk).await.json().await.unwrap();
    assert_eq!(ticket["status"], "assigned");
    assert_eq!(ticket["notes"].as_array().unwrap().len(), 1);

    // the rival's claim loses, and says why
    let lost = rx_push(&d.app, &rival, &fresh(&[doc(&rival_client, 1, "claim", &t, json!({}))])).await;
    assert_eq!(lost[0]["result"]["status"], "rejected");
    assert_eq!(lost[0]["result"]["code"], "already_claimed");

    // RxDB writes the verdict onto the phone and pushes that state once more: nothing differs
    let settled: Vec<Value> =
        answer.iter().map(|a| json!({ "assumedMasterState": a, "newDocumentState": a })).collect();
    assert_eq!(rx_push(&d.app, &tech, &Value::Array(settled)).await, Vec::<Value>::new());
    // a phone whose answer was lost pushes the documents again: the stored verdicts come back,
    // and nothing is applied twice
    let again = rx_push(&d.app, &tech, &fresh(&sent)).await;
    assert_eq!(again, answer);
    let again = rx_push(&d.app, &rival, &fresh(&[doc(&rival_client, 1, "claim", &t, json!({}))])).await;
    assert_eq!(again, lost);
    let ticket: Value = d.app.get(&format!("/api/v1/tickets/{t}"), &d.desk).await.json().await.unwrap();
    assert_eq!(ticket["notes"].as_array().unwrap().len(), 1);
    // a deleted document is an operation all the same, and is answered undeleted
    let mut deleted = doc(&client, 3, "add_note", &t, json!({ "id": uuid::Uuid::new_v4(), "note": "再看" }));
    deleted["_deleted"] = json!(true);
    let answer = rx_push(&d.app, &tech, &fresh(&[deleted])).await;
    assert_eq!(
        (answer[0]["_deleted"].clone(), answer[0]["result"]["status"].clone()),
        (json!(false), json!("applied"))
    );
}

#[tokio::test]
async fn pulling_operations_recovers_every_verdict_of_the_caller_only() {
    let d = desk_with(&[]).await;
    let (_, tech) = d.technician("tech1").await;
    let (_, other) = d.technician("tech2").await;
    let t = tid(&d, public_ticket(&d.site)).await;
    let client = uuid::Uuid::new_v4().to_string();
    let sent = [
        doc(&client, 1, "claim", &t, json!({})),
        doc(&client, 2, "resume", &t, json!({})), // nothing to resume: refused
        doc(&client, 3, "add_note", &t, json!({ "id": uuid::Uuid::new_v4(), "note": "阀门已换" })),
    ];
    let answer = rx_push(&d.app, &tech, &fresh(&sent)).await;
    // a second install of the same technician pushed the old way: its operations are theirs too
    let second = uuid::Uuid::new_v4().to_string();
    crate::sync::push(
        &d.app,
        &tech,
        &second,
        vec![crate::sync::op(1, "add_note", &t, json!({ "id": uuid::Uuid::new_v4(), "note": "另一台手机" }))],
    )
    .await;
    // another technician's operations are not
    crate::sync::push(
        &d.app,
        &other,
        &uuid::Uuid::new_v4().to_string(),
        vec![crate::sync::op(1, "claim", &t, json!({}))],
    )
    .await;

    let (mut pulled, mut checkpoint, mut sizes) = (Vec::new(), Value::Null, Vec::new());
    loop {
        let (page, next) = rx_pull(&d.app, "/api/v1/sync/rx/ops/pull", &tech, &checkpoint, 2).await;
        sizes.push(page.len());
        if page.is_empty() {
            break;
        }
        checkpoint = next;
        pulled.extend(page);
    }
    assert_eq!(sizes, [2, 2, 0]);
    let mine: Vec<&Value> = pulled.iter().filter(|p| p["client_id"] == client.as_str()).collect();
    assert_eq!(mine, answer.iter().collect::<Vec<_>>(), "the pulled documents are the push's answer");
    assert_eq!(answer[1]["result"]["code"], "invalid_transition");
    let theirs: Vec<&Value> = pulled.iter().filter(|p| p["client_id"] == second.as_str()).collect();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0]["id"], format!("{second}:1"));
    assert_eq!(theirs[0]["result"]["status"], "applied");

    // later operations follow from the checkpoint, and nothing earlier comes again
    rx_push(&d.app, &tech, &fresh(&[doc(&client, 4, "claim", &t, json!({}))])).await;
    let (page, _) = rx_pull(&d.app, "/api/v1/sync/rx/ops/pull", &tech, &checkpoint, 2).await;
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["id"], format!("{client}:4"));
}

#[tokio::test]
async fn a_push_lacking_an_earlier_operation_is_refused_whole_and_taken_when_that_one_comes() {
    let d = desk_with(&[]).await;
    let (_, tech) = d.technician("tech1").await;
    let t = tid(&d, public_ticket(&d.site)).await;
    let client = uuid::Uuid::new_v4().to_string();
    let first = doc(&client, 1, "claim", &t, json!({}));
    let second = doc(&client, 2, "add_note", &t, json!({ "id": uuid::Uuid::new_v4(), "note": "到了" }));
    // RxDB sends batches side by side: the second may come first
    let res = d.app.post("/api/v1/sync/rx/ops/push", &tech, &fresh(std::slice::from_ref(&second))).await;
    let problem = assert_problem(res, 409, "ops_missing").await;
    assert_eq!(problem["expected"], 1);
    assert_eq!(rx_push(&d.app, &tech, &fresh(&[first])).await[0]["result"]["status"], "applied");
    assert_eq!(rx_push(&d.app, &tech, &fresh(&[second])).await[0]["result"]["status"], "applied");
}

#[tokio::test]
async fn the_standard_endpoints_refuse_what_they_cannot_take_and_change_nothing() {
    let d = desk_with(&[]).await;
    let (_, tech) = d.technician("tech1").await;
    let (_, other) = d.technician("tech2").await;
    let t = tid(&d, public_ticket(&d.site)).await;
    let client = uuid::Uuid::new_v4().to_string();
    // an install is its first user's
    rx_push(&d.app, &other, &fresh(&[doc(&client, 1, "claim", &t, json!({}))])).await;
    let res = d.app.post("/api/v1/sync/rx/ops/push", &tech, &fresh(&[doc(&client, 2, "release", &t, json!({}))])).await;
    assert_problem(res, 403, "client_of_another_user").await;
    let before: Value = d.app.get(&format!("/api/v1/tickets/{t}"), &d.desk).await.json().await.unwrap();

    let mine = uuid::Uuid::new_v4().to_string();
    let mut wrong_id = doc(&mine, 1, "release", &t, json!({}));
    wrong_id["id"] = json!("x");
    let upper = doc(&mine.to_uppercase(), 1, "release", &t, json!({}));
    let zero = doc(&mine, 0, "release", &t, json!({}));
    for (body, status, code) in [
        (fresh(&[zero]), 422, "validation_failed"),
        (fresh(&[wrong_id]), 422, "validation_failed"),
        (fresh(&[upper]), 422, "validation_failed"),
        (fresh(&[json!({ "id": "a" })]), 422, "validation_failed"),
        (json!({ "rows": [] }), 422, "validation_failed"),
        (fresh(&vec![doc(&mine, 1, "release", &t, json!({})); 501]), 413, "payload_too_large"),
    ] {
        let res = d.app.post("/api/v1/sync/rx/ops/push", &tech, &body).await;
        let problem = assert_problem(res, status, code).await;
        assert!(!problem["detail"].as_str().unwrap().is_empty());
    }
    for path in ["/api/v1/sync/rx/ops/pull", "/api/v1/sync/rx/tickets/pull"] {
        for body in [
            json!({ "checkpoint": null, "batchSize": 0 }),
            json!({ "checkpoint": null, "batchSize": 501 }),
            json!({ "checkpoint": null }),
            json!({ "checkpoint": 5, "batchSize": 10 }),
            json!({ "checkpoint": { "position": 1, "scope": "" }, "batchSize": 10 }),
        ] {
            let res = d.app.post(path, &tech, &body).await;
            assert_problem(res, 422, "validation_failed").await;
        }
    }
    let far = json!({ "checkpoint": { "from": "0000-01-01T00:00:00Z", "clients": {} }, "batchSize": 10 });
    assert_problem(d.app.post("/api/v1/sync/rx/ops/pull", &tech, &far).await, 422, "validation_failed").await;
    let ticket: Value = d.app.get(&format!("/api/v1/tickets/{t}"), &d.desk).await.json().await.unwrap();
    assert_eq!(ticket, before, "nothing refused changed the ticket");
}

/// The whole view in full pages, then what changes: a ticket claimed by another technician or
/// reassigned away comes as a tombstone; a stream event's id is a position to pull from.
#[tokio::test]
async fn ticket_documents_fill_every_page_but_the_last_and_leave_as_tombstones() {
    let d = desk_with(&[]).await;
    let (tech_id, tech) = d.technician("tech1").await;
    let (other_id, other) = d.technician("tech2").await;
    let mut mine = Vec::new();
    for i in 0..7 {
        let t = tid(&d, public_ticket(&d.site)).await;
        match i % 3 {
            0 => assert_eq!(d.app.post(&format!("/api/v1/tickets/{t}/claim"), &other, &json!({})).await.status(), 200),
            1 => {
                assert_eq!(d.app.post(&format!("/api/v1/tickets/{t}/claim"), &tech, &json!({})).await.status(), 200);
                mine.push(t);
            }
            _ => mine.push(t),
        }
    }
    let (docs, checkpoint, sizes) = pull_tickets(&d.app, &tech, Value::Null, 2).await;
    assert_eq!(sizes, [2, 2, 0], "full pages until the end");
    mine.sort();
    assert_eq!(live(&docs), mine);
    assert!(gone(&docs).is_empty());
    let first = &docs[&mine[0]];
    let view: Value = d.app.get(&format!("/api/v1/tickets/{}", mine[0]), &tech).await.json().await.unwrap();
    let mut as_document = view.clone();
    as_document["_deleted"] = json!(false);
    assert_eq!(first, &as_document, "a document is the ticket view");

    // another technician takes one from the pool; the desk gives one of mine away
    let pool_ticket = mine.iter().find(|t| docs[*t]["status"] == "open").unwrap().clone();
    let held = mine.iter().find(|t| docs[*t]["assignee_id"] == tech_id.as_str()).unwrap().clone();
    assert_eq!(d.app.post(&format!("/api/v1/tickets/{pool_ticket}/claim"), &other, &json!({})).await.status(), 200);
    let res =
        d.app.post(&format!("/api/v1/tickets/{held}/assign"), &d.desk, &json!({ "technician_id": other_id })).await;
    assert_eq!(res.status(), 200);
    let new = tid(&d, public_ticket(&d.site)).await;
    let (changes, checkpoint, _) = pull_tickets(&d.app, &tech, checkpoint, 2).await;
    let mut left = vec![pool_ticket, held];
    left.sort();
    assert_eq!(gone(&changes), left);
    assert_eq!(changes[&left[0]], json!({ "id": left[0], "_deleted": true }));
    assert_eq!(live(&changes), [new.as_str()]);
    let (none, _, _) = pull_tickets(&d.app, &tech, checkpoint.clone(), 2).await;
    assert!(none.is_empty(), "nothing changed since: {none:?}");

    // a stream event's id is the position of the change it announces
    let stream = d.app.client.get(d.app.url("/api/v1/sync/stream")).bearer_auth(&tech).send().await.unwrap();
    let later = tid(&d, public_ticket(&d.site)).await;
    let id = changed_event_id(stream, &later).await;
    let from_event = json!({ "position": id, "scope": checkpoint["scope"] });
    let (page, _) = rx_pull(&d.app, "/api/v1/sync/rx/tickets/pull", &tech, &from_event, 50).await;
    // the event's batch, and what followed (some changes may come twice)
    assert!(page.iter().any(|p| p["id"] == later.as_str()), "{page:?}");
}

/// Moved off a site, a technician's phone drops its tickets (the open ones of the pool had no
/// change of their own); a scope that is not the server's bounds nothing beyond the caller's sites.
#[tokio::test]
async fn a_technician_moved_off_a_site_gets_its_tickets_as_tombstones_and_no_checkpoint_expires() {
    let d = desk_with(&[]).await;
    let other_site = d.app.create_site(&d.admin, "HY").await;
    let (_, other_desk) = d.app.user_token(&d.admin, "desk2", "dispatcher", &[&other_site], &[]).await;
    let (tech_id, tech) = d.app.user_token(&d.admin, "tech1", "technician", &[&d.site, &other_site], &["water"]).await;
    let here = tid(&d, public_ticket(&d.site)).await;
    let res = d.app.post("/api/v1/tickets", &other_desk, &public_ticket(&other_site)).await;
    let there = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let (docs, checkpoint, _) = pull_tickets(&d.app, &tech, Value::Null, 10).await;
    let mut both = vec![here.clone(), there.clone()];
    both.sort();
    assert_eq!(live(&docs), both);

    let res = d.app.patch(&format!("/api/v1/users/{tech_id}"), &d.admin, &json!({ "site_ids": [d.site] })).await;
    assert_eq!(res.status(), 200);
    let (after, checkpoint, sizes) = pull_tickets(&d.app, &tech, checkpoint, 1).await;
    assert_eq!(gone(&after), [there.as_str()]);
    assert_eq!(live(&after), [here.as_str()], "what stays is sent again as it stands");
    assert_eq!(sizes.last(), Some(&0));
    let (none, _, _) = pull_tickets(&d.app, &tech, checkpoint.clone(), 10).await;
    assert!(none.is_empty(), "the resync ended: {none:?}");

    // a scope the server did not seal: everything of the caller's own sites again, nothing of others
    let forged = json!({ "position": checkpoint["position"], "scope": "e30.00" });
    let (again, _, _) = pull_tickets(&d.app, &tech, forged, 10).await;
    assert_eq!(again.keys().cloned().collect::<Vec<_>>(), [here.as_str()]);
    // a position from another database (ahead of this one) is read the same way
    let ahead = json!({ "position": "999999999:999999999:", "scope": checkpoint["scope"] });
    let (again, _, _) = pull_tickets(&d.app, &tech, ahead, 10).await;
    assert_eq!(again.keys().cloned().collect::<Vec<_>>(), [here]);
}
