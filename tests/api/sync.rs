use serde_json::{json, Value};

use crate::helpers::*;
use crate::tickets::{desk_with, ticket_body, Desk};

fn public_ticket(site: &str) -> Value {
    // public-area tickets need no resident code, so offline arrivals can be replayed freely
    let mut body = ticket_body(site);
    body["area"] = json!("public");
    body["location"] = json!("2栋电梯厅");
    body
}

pub fn op(op_id: i64, name: &str, ticket_id: &str, args: Value) -> Value {
    json!({ "op_id": op_id, "name": name, "ticket_id": ticket_id, "args": args,
        "device_time": chrono::Utc::now().to_rfc3339() })
}

pub async fn push(app: &TestApp, token: &str, client: &str, ops: Vec<Value>) -> Value {
    let res =
        app.post("/api/v1/sync/push", token, &json!({ "client_id": client, "schema_version": 1, "ops": ops })).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

pub async fn pull(app: &TestApp, token: &str, client: &str, cursor: Option<&str>) -> Value {
    let res = app.post("/api/v1/sync/pull", token, &json!({ "client_id": client, "cursor": cursor })).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn statuses(response: &Value) -> Vec<String> {
    response["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap().to_owned()).collect()
}

fn new_client() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn tid(d: &Desk, body: Value) -> String {
    d.create(&body).await["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_days_offline_work_is_replayed_in_order_and_duplicates_are_answered_not_applied() {
    let d = desk_with(&[]).await;
    let (_, tech) = d.technician("tech1").await;
    let t = tid(&d, public_ticket(&d.site)).await;
    let client = new_client();
    let line = uuid::Uuid::new_v4().to_string();
    let ops = vec![
        op(1, "claim", &t, json!({})),
        op(2, "arrive", &t, json!({ "lat": 30.5, "lng": 114.3 })),
        op(
            3,
            "add_material",
            &t,
            json!({ "id": line, "name": "电梯按钮", "quantity": "1", "unit": "个",
            "unit_price_cents": 4500, "supplied_by": "company" }),
        ),
        op(4, "add_note", &t, json!({ "id": uuid::Uuid::new_v4(), "note": "按钮卡死，已更换" })),
        op(5, "complete", &t, json!({ "result": "更换按钮" })),
    ];
    let first = push(&d.app, &tech, &client, ops.clone()).await;
    assert_eq!(statuses(&first), ["applied"; 5]);
    assert_eq!(first["last_op_id"], 5);

    // the answer was lost: the phone sends the same batch again
    let again = push(&d.app, &tech, &client, ops).await;
    assert_eq!(statuses(&again), ["duplicate"; 5], "duplicates are answered, not applied again");
    assert_eq!(again["last_op_id"], 5);

    let ticket: Value = d.app.get(&format!("/api/v1/tickets/{t}"), &d.desk).await.json().await.unwrap();
    assert_eq!(ticket["status"], "awaiting_inspection");
    assert_eq!(ticket["materials"].as_array().unwrap().len(), 1);
    assert_eq!(ticket["notes"][0]["note"], "按钮卡死，已更换");

    // an op after a gap is not applied; the answer says where the server stands
    let gap = push(&d.app, &tech, &client, vec![op(7, "add_note", &t, json!({ "note": "x" }))]).await;
    assert_eq!(gap["results"], json!([]));
    assert_eq!(gap["last_op_id"], 5);
}

/// A day's queue: `n` operations from `first`, alternating material lines and notes.
fn days_work(ticket: &str, first: i64, n: i64) -> Vec<Value> {
    (first..first + n)
        .map(|i| match i % 2 {
            0 => op(i, "add_note", ticket, json!({ "id": uuid::Uuid::new_v4(), "note": format!("note {i}") })),
            _ => op(
                i,
                "add_material",
                ticket,
                json!({ "id": uuid::Uuid::new_v4(), "name": format!("part {i}"), "quantity": "1", "unit": "个",
                    "unit_price_cents": 100, "supplied_by": "company" }),
            ),
        })
        .collect()
}

async fn lines_and_notes(d: &Desk, t: &str) -> (usize, usize) {
    let ticket: Value = d.app.get(&format!("/api/v1/tickets/{t}"), &d.desk).await.json().await.unwrap();
    (ticket["materials"].as_array().unwrap().len(), ticket["notes"].as_array().unwrap().len())
}

#[tokio::test]
async fn a_full_queue_spans_several_transactions_without_losing_or_doubling_an_operation() {
    let d = desk_with(&[]).await;
    let (_, tech) = d.technician("tech1").await;
    let t = tid(&d, public_ticket(&d.site)).await;
    let client = new_client();
    let mut ops = vec![op(1, "claim", &t, json!({})), op(2, "arrive", &t, json!({}))];
    ops.extend(days_work(&t, 3, 498));
    ops[149] = op(150, "resume", &t, json!({})); // refused in the second transaction
    let first = push(&d.app, &tech, &client, ops).await;
    assert_eq!(first["last_op_id"], 500);
    let results = first["results"].as_array().unwrap();
    let ids: Vec<i64> = results.iter().map(|r| r["op_id"].as_i64().unwrap()).collect();
    assert_eq!(ids, (1..=500).collect::<Vec<_>>(), "one result per operation, in order");
    assert_eq!(results[149]["status"], "rejected");
    assert_eq!(results.iter().filter(|r| r["status"] == "applied").count(), 499);
    assert_eq!(lines_and_notes(&d, &t).await, (249, 248));

    // the answer was lost after the first 400 landed: the phone resends from 401 with more work;
    // the duplicates straddle a transaction boundary and a gap stops the batch in its second
    let mut resend = days_work(&t, 401, 120);
    resend.push(op(522, "add_note", &t, json!({ "id": uuid::Uuid::new_v4(), "note": "after a gap" })));
    let mut with_old = days_work(&t, 301, 100); // already applied (fresh line ids, never used)
    with_old.extend(resend);
    let second = push(&d.app, &tech, &client, with_old).await;
    let ids: Vec<i64> = second["results"].as_array().unwrap().iter().map(|r| r["op_id"].as_i64().unwrap()).collect();
    assert_eq!(ids, (301..=520).collect::<Vec<_>>(), "a line for every operation up to the gap");
    let answered = statuses(&second);
    assert_eq!(answered[..200], ["duplicate"; 200], "the ones already received are not applied again");
    assert_eq!(answered[200..], ["applied"; 20], "only the new operations are applied");
    assert_eq!(second["last_op_id"], 520);
    assert_eq!(lines_and_notes(&d, &t).await, (259, 258));
}

/// What a run of adds leaves on a ticket, without the ids and times that differ between tickets.
async fn what_adds_leave(d: &Desk, t: &str) -> Value {
    let ticket: Value = d.app.get(&format!("/api/v1/tickets/{t}"), &d.desk).await.json().await.unwrap();
    let events: Value = d.app.get(&format!("/api/v1/tickets/{t}/events"), &d.desk).await.json().await.unwrap();
    let pick = |items: &Value, keys: &[&str]| -> Vec<Value> {
        items.as_array().unwrap().iter().map(|i| keys.iter().map(|k| i[*k].clone()).collect()).collect()
    };
    let kept: Vec<Value> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            json!([e["type"], e["from_status"], e["to_status"], e["data"]["note"], e["data"]["line"]["total_cents"]])
        })
        .collect();
    json!({
        "version": ticket["version"],
        "status": ticket["status"],
        "materials": pick(&ticket["materials"], &["name", "spec", "quantity", "unit", "unit_price_cents", "supplied_by", "total_cents", "billable"]),
        "notes": pick(&ticket["notes"], &["note"]),
        "events": kept,
    })
}

#[tokio::test]
async fn a_run_of_adds_pushed_together_leaves_what_the_routes_leave_one_by_one() {
    let d = desk_with(&[]).await;
    let (_, tech) = d.technician("tech1").await;
    let (pushed, by_hand) = (tid(&d, public_ticket(&d.site)).await, tid(&d, public_ticket(&d.site)).await);
    let adds = |i: usize| -> (&'static str, Value) {
        match i % 3 {
            1 => ("add_note", json!({ "id": uuid::Uuid::new_v4(), "note": format!("第{i}条") })),
            _ => (
                "add_material",
                json!({ "id": uuid::Uuid::new_v4(), "name": format!("part {i}"), "spec": "DN15", "quantity": "1.5",
                    "unit": "个", "unit_price_cents": 1000 + i, "supplied_by": if i % 2 == 0 { "company" } else { "resident" } }),
            ),
        }
    };
    let client = new_client();
    let mut ops = vec![op(1, "claim", &pushed, json!({})), op(2, "arrive", &pushed, json!({}))];
    for i in 0..9 {
        let (name, args) = adds(i);
        ops.push(op(3 + i as i64, name, &pushed, args));
    }
    let res = push(&d.app, &tech, &client, ops).await;
    assert_eq!(statuses(&res), ["applied"; 11]);

    for step in ["claim", "arrive"] {
        assert_eq!(d.app.post(&format!("/api/v1/tickets/{by_hand}/{step}"), &tech, &json!({})).await.status(), 200);
    }
    for i in 0..9 {
        let (name, args) = adds(i);
        let path = if name == "add_note" { "notes" } else { "materials" };
        let res = d.app.post(&format!("/api/v1/tickets/{by_hand}/{path}"), &tech, &args).await;
        assert!(res.status().is_success(), "{name}: {}", res.status());
    }
    let (a, b) = (what_adds_leave(&d, &pushed).await, what_adds_leave(&d, &by_hand).await);
    assert_eq!(a, b);
    assert_eq!(a["notes"].as_array().unwrap().len(), 3, "{a}");
    // and the pushed run was written together: its adds are a microsecond apart, in order
    let events: Value = d.app.get(&format!("/api/v1/tickets/{pushed}/events"), &d.desk).await.json().await.unwrap();
    let times: Vec<chrono::DateTime<chrono::Utc>> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "material_added" || e["type"] == "note_added")
        .map(|e| e["at"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(times.len(), 9);
    assert!(times.windows(2).all(|w| w[1] - w[0] == chrono::Duration::microseconds(1)), "{times:?}");

    // a run holding a retried note and a bad line goes one by one: each answered as alone
    let note_again = json!({ "id": uuid::Uuid::new_v4(), "note": "again" });
    push(&d.app, &tech, &client, vec![op(12, "add_note", &pushed, note_again.clone())]).await;
    let res = push(
        &d.app,
        &tech,
        &client,
        vec![
            op(13, "add_note", &pushed, json!({ "id": uuid::Uuid::new_v4(), "note": "new" })),
            op(14, "add_note", &pushed, note_again),
            op(15, "add_material", &pushed, json!({ "name": "x", "quantity": "-1", "unit": "个", "unit_price_cents": 1, "supplied_by": "company" })),
            op(16, "add_material", &pushed, json!({ "id": uuid::Uuid::new_v4(), "name": "y", "quantity": "1", "unit": "个", "unit_price_cents": 1, "supplied_by": "company" })),
        ],
    )
    .await;
    assert_eq!(statuses(&res), ["applied", "applied", "rejected", "applied"]);
    assert_eq!(res["results"][2]["code"], "validation_failed");
    assert_eq!(lines_and_notes(&d, &pushed).await, (7, 5));
}

#[tokio::test]
async fn the_same_queue_pushed_twice_at_once_is_applied_once() {
    let d = desk_with(&[]).await;
    let (_, tech) = d.technician("tech1").await;
    let t = tid(&d, public_ticket(&d.site)).await;
    let client = new_client();
    push(&d.app, &tech, &client, vec![op(1, "claim", &t, json!({})), op(2, "arrive", &t, json!({}))]).await;
    let ops = days_work(&t, 3, 300);
    let (a, b) = tokio::join!(push(&d.app, &tech, &client, ops.clone()), push(&d.app, &tech, &client, ops));
    let mut ids: Vec<i64> = [&a, &b]
        .iter()
        .flat_map(|r| r["results"].as_array().unwrap().iter().filter(|r| r["status"] == "applied"))
        .map(|r| r["op_id"].as_i64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, (3..=302).collect::<Vec<_>>(), "each operation answered applied by exactly one push");
    for r in [&a, &b] {
        let lines: Vec<i64> = r["results"].as_array().unwrap().iter().map(|r| r["op_id"].as_i64().unwrap()).collect();
        assert_eq!(lines, (3..=302).collect::<Vec<_>>(), "and answered by both, the other's as duplicates");
    }
    assert_eq!((a["last_op_id"].as_i64(), b["last_op_id"].as_i64()), (Some(302), Some(302)));
    assert_eq!(lines_and_notes(&d, &t).await, (150, 150));
}

#[tokio::test]
async fn a_view_of_many_tickets_gives_each_exactly_its_own_lines_notes_and_events() {
    // a view reads each kind of row for all its tickets at once and sorts them out by ticket
    let d = desk_with(&[("REPAIRDESK_MAX_ACTIVE_TICKETS", "10")]).await;
    let (_, tech) = d.technician("tech1").await;
    let client = new_client();
    let mut ops = Vec::new();
    let mut tickets = Vec::new();
    for k in 0..6 {
        let t = tid(&d, public_ticket(&d.site)).await;
        let next = ops.len() as i64 + 1;
        ops.push(op(next, "claim", &t, json!({})));
        ops.push(op(next + 1, "arrive", &t, json!({})));
        // ticket k gets k lines and k notes, each naming its ticket
        for i in 0..k {
            let line = json!({ "id": uuid::Uuid::new_v4(), "name": format!("{t} part {i}"), "quantity": "1", "unit": "个",
                "unit_price_cents": 100, "supplied_by": "company" });
            ops.push(op(ops.len() as i64 + 1, "add_material", &t, line));
            ops.push(op(ops.len() as i64 + 1, "add_note", &t, json!({ "note": format!("{t} note {i}") })));
        }
        tickets.push((t, k));
    }
    let res = push(&d.app, &tech, &client, ops).await;
    assert!(statuses(&res).iter().all(|s| s == "applied"), "{res}");

    let view = pull(&d.app, &d.desk, &new_client(), None).await;
    assert_eq!(view["tickets"].as_array().unwrap().len(), 6);
    for (t, k) in &tickets {
        let mine = view["tickets"].as_array().unwrap().iter().find(|v| v["id"] == t.as_str()).unwrap();
        let names: Vec<&str> =
            mine["materials"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
        let notes: Vec<&str> = mine["notes"].as_array().unwrap().iter().map(|n| n["note"].as_str().unwrap()).collect();
        assert_eq!(names, (0..*k).map(|i| format!("{t} part {i}")).collect::<Vec<_>>());
        assert_eq!(notes, (0..*k).map(|i| format!("{t} note {i}")).collect::<Vec<_>>());
        let events = mine["events"].as_array().unwrap();
        assert_eq!(events.len(), 3 + 2 * k, "created, claimed, arrived and the adds: {events:?}");
        assert!(events
            .iter()
            .all(|e| e["type"] != "note_added" || e["data"]["note"].as_str().unwrap().starts_with(t.as_str())));
    }
}

#[tokio::test]
async fn a_poisoned_operation_is_rejected_with_the_ticket_and_does_not_block_the_queue() {
    let d = desk_with(&[]).await;
    let (_, tech) = d.technician("tech1").await;
    let t = tid(&d, public_ticket(&d.site)).await;
    let client = new_client();
    let res = push(
        &d.app,
        &tech,
        &client,
        vec![
            op(1, "complete", &t, json!({ "result": "too early" })),
            op(2, "levitate", &t, json!({})),
            op(3, "claim", &t, json!({})),
            op(4, "add_material", &t, json!({ "quantity": "many", "supplied_by": "company" })),
        ],
    )
    .await;
    assert_eq!(statuses(&res), ["rejected", "rejected", "applied", "rejected"]);
    assert_eq!(res["results"][0]["code"], "invalid_transition");
    assert_eq!(res["results"][1]["code"], "unknown_operation");
    assert_eq!(res["results"][3]["code"], "validation_failed");
    assert_eq!(res["results"][3]["ticket"]["status"], "assigned", "a rejection carries the ticket as it stands");
    // as it stands after the whole push: the claim after the refused completion is in it
    assert_eq!(res["results"][0]["ticket"]["status"], "assigned");
    assert_eq!(res["results"][0]["removed"], false);
    assert_eq!(res["last_op_id"], 4);

    let rejected: Value = d.app.get("/api/v1/sync/rejections", &d.desk).await.json().await.unwrap();
    let names: Vec<&str> = rejected["items"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"add_material") && names.contains(&"levitate"), "{names:?}");
}

#[tokio::test]
async fn two_technicians_claiming_offline_the_first_push_wins_and_the_other_learns_on_pull() {
    let d = desk_with(&[]).await;
    let (winner_id, winner) = d.technician("tech1").await;
    let (_, loser) = d.technician("tech2").await;
    let t = tid(&d, public_ticket(&d.site)).await;
    let (c1, c2) = (new_client(), new_client());
    let loser_view = pull(&d.app, &loser, &c2, None).await;
    assert_eq!(loser_view["tickets"][0]["id"], t.as_str(), "the open ticket was in the loser's pool");

    let won = push(&d.app, &winner, &c1, vec![op(1, "claim", &t, json!({}))]).await;
    assert_eq!(statuses(&won), ["applied"]);
    let lost = push(&d.app, &loser, &c2, vec![op(1, "claim", &t, json!({})), op(2, "arrive", &t, json!({}))]).await;
    assert_eq!(statuses(&lost), ["rejected", "rejected"]);
    assert_eq!(lost["results"][0]["code"], "already_claimed");
    // the loser may no longer see the ticket: the answer says to drop it, without waiting for a pull
    assert_eq!(lost["results"][0]["removed"], true);
    assert_eq!(lost["results"][0]["ticket"], Value::Null);
    assert_eq!(lost["last_op_id"], 2);
    // its answer lost, the loser's phone pushes again: the duplicate says the same
    let again = push(&d.app, &loser, &c2, vec![op(1, "claim", &t, json!({}))]).await;
    assert_eq!(statuses(&again), ["duplicate"]);
    assert_eq!(again["results"][0]["stored_status"], "rejected");
    assert_eq!(again["results"][0]["code"], "already_claimed");
    assert_eq!(again["results"][0]["removed"], true);

    let after = pull(&d.app, &loser, &c2, loser_view["cursor"].as_str()).await;
    assert_eq!(after["removed"], json!([t]));
    assert_eq!(after["last_op_id"], 2);
    let winner_view = pull(&d.app, &winner, &c1, None).await;
    assert_eq!(winner_view["tickets"][0]["assignee_id"], winner_id.as_str());
}

#[tokio::test]
async fn an_offline_arrival_at_a_reassigned_ticket_is_recorded_for_the_desk() {
    let d = desk_with(&[]).await;
    let (_, tech1) = d.technician("tech1").await;
    let (tech2_id, _) = d.technician("tech2").await;
    let t = tid(&d, public_ticket(&d.site)).await;
    let client = new_client();
    push(&d.app, &tech1, &client, vec![op(1, "claim", &t, json!({}))]).await;
    // meanwhile the desk gives it to someone else
    d.app.post(&format!("/api/v1/tickets/{t}/assign"), &d.desk, &json!({ "technician_id": tech2_id })).await;
    let res = push(&d.app, &tech1, &client, vec![op(2, "arrive", &t, json!({ "lat": 30.1, "lng": 114.2 }))]).await;
    assert_eq!(res["results"][0]["code"], "not_your_ticket");
    let events: Value = d.app.get(&format!("/api/v1/tickets/{t}/events"), &d.desk).await.json().await.unwrap();
    let visit =
        events["items"].as_array().unwrap().iter().find(|e| e["type"] == "arrival_unassigned").expect("recorded");
    assert_eq!(visit["data"]["lat"], 30.1);
    let rejected: Value = d.app.get("/api/v1/sync/rejections", &d.desk).await.json().await.unwrap();
    assert_eq!(rejected["items"][0]["name"], "arrive");
}

#[tokio::test]
async fn completing_a_ticket_cancelled_meanwhile_is_kept_for_the_desk_with_everything_attached() {
    let d = desk_with(&[]).await;
    let (_, tech) = d.technician("tech1").await;
    let t = tid(&d, public_ticket(&d.site)).await;
    let client = new_client();
    push(&d.app, &tech, &client, vec![op(1, "claim", &t, json!({})), op(2, "arrive", &t, json!({}))]).await;
    d.app.post(&format!("/api/v1/tickets/{t}/cancel"), &d.desk, &json!({ "reason": "重复报修" })).await;
    let res =
        push(&d.app, &tech, &client, vec![op(3, "complete", &t, json!({ "result": "已修好", "resident_rating": 4 }))])
            .await;
    assert_eq!(statuses(&res), ["rejected"]);
    assert_eq!(res["results"][0]["code"], "invalid_transition");
    let rejected: Value = d.app.get("/api/v1/sync/rejections", &d.desk).await.json().await.unwrap();
    let kept = &rejected["items"][0];
    assert_eq!(kept["name"], "complete");
    assert_eq!(kept["args"]["result"], "已修好");
    assert_eq!(kept["args"]["resident_rating"], 4);
}

#[tokio::test]
async fn material_edits_win_by_commit_order_and_a_delete_wins_over_an_edit() {
    let d = desk_with(&[]).await;
    let (_, tech) = d.technician("tech1").await;
    let t = tid(&d, public_ticket(&d.site)).await;
    let (phone, desk_phone) = (new_client(), new_client());
    let line = uuid::Uuid::new_v4().to_string();
    push(
        &d.app,
        &tech,
        &phone,
        vec![
            op(1, "claim", &t, json!({})),
            op(2, "arrive", &t, json!({})),
            op(
                3,
                "add_material",
                &t,
                json!({ "id": line, "name": "线缆", "quantity": "10", "unit": "米",
                "unit_price_cents": 300, "supplied_by": "company" }),
            ),
        ],
    )
    .await;
    // two edits made offline; the later commit wins, the earlier value stays in the history
    push(&d.app, &tech, &phone, vec![op(4, "update_material", &t, json!({ "line_id": line, "quantity": "12" }))]).await;
    let path = format!("/api/v1/tickets/{t}/materials/{line}");
    assert_eq!(d.app.patch(&path, &d.desk, &json!({ "quantity": "15" })).await.status(), 200);
    let ticket: Value = d.app.get(&format!("/api/v1/tickets/{t}"), &d.desk).await.json().await.unwrap();
    assert_eq!(ticket["materials"][0]["quantity"], "15");
    let events: Value = d.app.get(&format!("/api/v1/tickets/{t}/events"), &d.desk).await.json().await.unwrap();
    let before: Vec<&Value> =
        events["items"].as_array().unwrap().iter().filter(|e| e["type"] == "material_updated").collect();
    assert_eq!(before[1]["data"]["before"]["quantity"], "12");

    // a delete commits; an edit queued before it is refused, not resurrecting the line
    push(&d.app, &tech, &phone, vec![op(5, "remove_material", &t, json!({ "line_id": line }))]).await;
    let late =
        push(&d.app, &tech, &phone, vec![op(6, "update_material", &t, json!({ "line_id": line, "quantity": "1" }))])
            .await;
    assert_eq!(statuses(&late), ["rejected"]);
    let ticket: Value = d.app.get(&format!("/api/v1/tickets/{t}"), &d.desk).await.json().await.unwrap();
    assert_eq!(ticket["materials"], json!([]));
    let _ = desk_phone;
}

#[tokio::test]
async fn pull_pages_the_view_then_follows_changes_and_resets_a_cursor_it_cannot_honour() {
    let d = desk_with(&[]).await;
    let client = new_client();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(tid(&d, ticket_body(&d.site)).await);
    }
    // the code SMS go out (a change of its own) now, so the cursor below is past them
    assert_eq!(d.app.deliver_sms().await, 5);
    // the first pull pages through the whole view, two tickets at a time
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let res = d
            .app
            .post("/api/v1/sync/pull", &d.desk, &json!({ "client_id": client, "cursor": cursor, "limit": 2 }))
            .await;
        let page: Value = res.json().await.unwrap();
        assert_eq!(page["reset"], false);
        let first_page = cursor.is_none();
        seen.extend(page["tickets"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned()));
        cursor = page["cursor"].as_str().map(str::to_owned);
        if first_page {
            // a ticket already sent changes while the phone is still paging
            d.app.post(&format!("/api/v1/tickets/{}/cancel", seen[0]), &d.desk, &json!({ "reason": "x" })).await;
        }
        if page["has_more"] == false {
            break;
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(sorted, expected, "each ticket once");
    // after the pages, the changes made since the view was read, in commit order
    let since = pull(&d.app, &d.desk, &client, cursor.as_deref()).await;
    assert_eq!(since["tickets"][0]["id"], seen[0].as_str());
    assert_eq!(since["tickets"][0]["status"], "cancelled");
    let cursor = since["cursor"].as_str().map(str::to_owned);
    let quiet = pull(&d.app, &d.desk, &client, cursor.as_deref()).await;
    assert_eq!(quiet["tickets"], json!([]));

    // a change brings the ticket back with its events
    d.app.post(&format!("/api/v1/tickets/{}/cancel", seen[1]), &d.desk, &json!({ "reason": "x" })).await;
    let changed = pull(&d.app, &d.desk, &client, cursor.as_deref()).await;
    assert_eq!(changed["tickets"][0]["id"], seen[1].as_str());
    assert_eq!(changed["tickets"][0]["status"], "cancelled");
    assert!(changed["tickets"][0]["events"].as_array().unwrap().iter().any(|e| e["type"] == "cancelled"));

    for bad in ["garbage", "djEuOTk5OTk5LjA"] {
        let reset = pull(&d.app, &d.desk, &client, Some(bad)).await;
        assert_eq!(reset["reset"], true);
        assert_eq!(reset["tickets"].as_array().unwrap().len(), 5);
    }
}

#[tokio::test]
async fn the_protocol_refuses_what_it_cannot_take() {
    let d = desk_with(&[]).await;
    let (_, tech) = d.technician("tech1").await;
    let (_, other) = d.technician("tech2").await;
    let client = new_client();
    let res =
        d.app.post("/api/v1/sync/push", &tech, &json!({ "client_id": client, "schema_version": 99, "ops": [] })).await;
    let problem = assert_problem(res, 426, "unsupported_schema_version").await;
    assert_eq!(problem["supported"], json!([1]));
    push(&d.app, &tech, &client, vec![]).await;
    pull(&d.app, &tech, &client, None).await;
    let res = d.app.post("/api/v1/sync/pull", &other, &json!({ "client_id": client })).await;
    assert_problem(res, 403, "client_of_another_user").await;
    let res = d
        .app
        .post(
            "/api/v1/sync/push",
            &other,
            &json!({ "client_id": client, "schema_version": 1,
        "ops": [op(1, "add_note", "x", json!({ "note": "n" }))] }),
        )
        .await;
    assert_problem(res, 403, "client_of_another_user").await;
    let res = d
        .app
        .post("/api/v1/sync/push", &tech, &json!({ "client_id": "phone-1", "schema_version": 1, "ops": [] }))
        .await;
    assert_problem(res, 422, "validation_failed").await;
    let many: Vec<Value> = (1..=501).map(|i| op(i, "add_note", "x", json!({ "note": "n" }))).collect();
    let res =
        d.app.post("/api/v1/sync/push", &tech, &json!({ "client_id": client, "schema_version": 1, "ops": many })).await;
    assert_problem(res, 413, "payload_too_large").await;
    assert_problem(d.app.get("/api/v1/sync/rejections", &tech).await, 403, "forbidden").await;
}

#[tokio::test]
async fn concurrent_writers_never_make_a_reader_skip_a_change() {
    let d = desk_with(&[("REPAIRDESK_DB_POOL_SIZE", "12")]).await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(tid(&d, public_ticket(&d.site)).await);
    }
    let client = new_client();
    let first = pull(&d.app, &d.desk, &client, None).await;
    let mut versions: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    let mut cursor = first["cursor"].as_str().unwrap().to_owned();

    const WRITERS: usize = 4;
    let writing = std::sync::atomic::AtomicUsize::new(WRITERS);
    let writers = (0..WRITERS).map(|w| {
        let (app, desk, ids, writing) = (&d.app, d.desk.clone(), ids.clone(), &writing);
        async move {
            for i in 0..12 {
                let t = &ids[(w * 5 + i) % ids.len()];
                let res = app
                    .post(&format!("/api/v1/tickets/{t}/notes"), &desk, &json!({ "note": format!("w{w} n{i}") }))
                    .await;
                assert_eq!(res.status(), 201);
            }
            writing.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    // the reader pulls again and again for as long as anyone writes
    let reader = async {
        let mut pulls = 0;
        loop {
            let last = writing.load(std::sync::atomic::Ordering::SeqCst) == 0;
            let page = pull(&d.app, &d.desk, &client, Some(&cursor)).await;
            for t in page["tickets"].as_array().unwrap() {
                versions.insert(t["id"].as_str().unwrap().to_owned(), t["version"].as_i64().unwrap());
            }
            cursor = page["cursor"].as_str().unwrap().to_owned();
            pulls += 1;
            if last {
                break pulls;
            }
        }
    };
    let (_, pulls) = futures_util::join!(futures_util::future::join_all(writers), reader);
    assert!(pulls > 1, "the reader pulled while the writers wrote");
    loop {
        let page = pull(&d.app, &d.desk, &client, Some(&cursor)).await;
        for t in page["tickets"].as_array().unwrap() {
            versions.insert(t["id"].as_str().unwrap().to_owned(), t["version"].as_i64().unwrap());
        }
        cursor = page["cursor"].as_str().unwrap().to_owned();
        if page["has_more"] == false {
            break;
        }
    }
    for id in &ids {
        let now: Value = d.app.get(&format!("/api/v1/tickets/{id}"), &d.desk).await.json().await.unwrap();
        assert_eq!(versions.get(id).copied(), now["version"].as_i64(), "the reader holds the latest version of {id}");
        assert_eq!(now["notes"].as_array().unwrap().len(), 8);
    }
}

#[tokio::test]
async fn the_sync_stream_tells_a_phone_to_pull_when_its_tickets_change() {
    let d = desk_with(&[]).await;
    let (_, tech) = d.technician("tech1").await;
    let res = d.app.client.get(d.app.url("/api/v1/sync/stream")).bearer_auth(&tech).send().await.unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let t = tid(&d, public_ticket(&d.site)).await;
    changed_event_id(res, &t).await;
}

#[tokio::test]
async fn an_operation_on_another_sites_ticket_is_kept_for_the_pushers_desk_not_that_sites() {
    let d = desk_with(&[]).await;
    let other = d.app.create_site(&d.admin, "HB").await;
    let (_, other_desk) = d.app.user_token(&d.admin, "deskhb", "dispatcher", &[&other], &[]).await;
    let (_, stranger) = d.app.user_token(&d.admin, "techhb", "technician", &[&other], &["water"]).await;
    let t = tid(&d, public_ticket(&d.site)).await;
    let note = json!({ "note": "我是另一个小区的师傅" });
    let res = push(&d.app, &stranger, &new_client(), vec![op(1, "add_note", &t, note.clone())]).await;
    assert_eq!(res["results"][0]["code"], "not_found");

    // the ticket's desk never sees what another site's technician sent
    let theirs: Value = d.app.get("/api/v1/sync/rejections", &d.desk).await.json().await.unwrap();
    assert_eq!(theirs["items"], json!([]), "{theirs}");
    let filtered: Value =
        d.app.get(&format!("/api/v1/sync/rejections?site_id={}", d.site), &d.admin).await.json().await.unwrap();
    assert_eq!(filtered["items"], json!([]), "{filtered}");

    // the pusher's own desk does, and the admin
    for token in [&other_desk, &d.admin] {
        let ours: Value = d.app.get("/api/v1/sync/rejections", token).await.json().await.unwrap();
        let items = ours["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{ours}");
        assert_eq!(items[0]["args"], note);
        assert_eq!(items[0]["code"], "not_found");
    }
}

#[tokio::test]
async fn a_resent_operation_is_answered_as_a_duplicate_with_what_it_got_the_first_time() {
    let d = desk_with(&[]).await;
    let (_, tech) = d.technician("tech1").await;
    let t = tid(&d, public_ticket(&d.site)).await;
    let client = new_client();
    let ops = vec![
        op(1, "claim", &t, json!({})),
        op(2, "resume", &t, json!({})), // nothing to resume: refused
        op(3, "add_note", &t, json!({ "id": uuid::Uuid::new_v4(), "note": "水管已关" })),
    ];
    let first = push(&d.app, &tech, &client, ops.clone()).await;
    assert_eq!(statuses(&first), ["applied", "rejected", "applied"]);

    // the answer was lost; the phone sends the queue again with one more operation, and op 3 twice
    let mut again = ops.clone();
    again.push(op(4, "add_note", &t, json!({ "id": uuid::Uuid::new_v4(), "note": "换了阀门" })));
    again.push(ops[2].clone());
    let second = push(&d.app, &tech, &client, again).await;
    let ids: Vec<i64> = second["results"].as_array().unwrap().iter().map(|r| r["op_id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [1, 2, 3, 4, 3], "a line for every operation sent");
    assert_eq!(statuses(&second), ["duplicate", "duplicate", "duplicate", "applied", "duplicate"]);
    let results = second["results"].as_array().unwrap();
    assert_eq!(results[0]["code"], Value::Null, "it was applied the first time");
    assert_eq!(results[0]["stored_status"], "applied");
    assert_eq!(results[1]["stored_status"], "rejected");
    assert_eq!(results[1]["code"], "invalid_transition", "it was refused the first time, and why");
    assert!(results[3].get("stored_status").is_none(), "only a duplicate has one");
    assert!(results[1]["detail"].as_str().is_some_and(|d| !d.is_empty()));
    assert_eq!(second["last_op_id"], 4);
    assert!(second.get("retry_from").is_none());

    // nothing was applied twice, and the refusal is listed once
    let ticket: Value = d.app.get(&format!("/api/v1/tickets/{t}"), &d.desk).await.json().await.unwrap();
    assert_eq!(ticket["notes"].as_array().unwrap().len(), 2);
    let rejected: Value = d.app.get("/api/v1/sync/rejections", &d.desk).await.json().await.unwrap();
    assert_eq!(rejected["items"].as_array().unwrap().len(), 1);
}

/// A server that fails pushes reaching operation `op_id` with a serialization failure, `times`
/// times (every run of the transaction counts).
async fn desk_with_push_fault(op_id: i64, times: u32) -> Desk {
    desk_with(&[("REPAIRDESK_FAULT_PUSH_OP", &op_id.to_string()), ("REPAIRDESK_FAULT_PUSH_TIMES", &times.to_string())])
        .await
}

#[tokio::test]
async fn a_database_failure_during_a_push_stops_it_and_the_phone_pushes_the_rest_again() {
    // the failure outlasts the server's own retries
    let d = desk_with_push_fault(3, repairdesk::db::TRANSACTION_ATTEMPTS).await;
    let (tech_id, tech) = d.technician("tech1").await;
    let (a, b) = (tid(&d, public_ticket(&d.site)).await, tid(&d, public_ticket(&d.site)).await);
    let client = new_client();
    let ops = vec![
        op(1, "claim", &a, json!({})),
        op(2, "arrive", &a, json!({ "lat": 30.5, "lng": 114.3 })),
        op(3, "claim", &b, json!({})),
        op(4, "add_note", &b, json!({ "id": uuid::Uuid::new_v4(), "note": "到场" })),
    ];
    let res =
        d.app.post("/api/v1/sync/push", &tech, &json!({ "client_id": client, "schema_version": 1, "ops": ops })).await;
    assert_eq!(res.status(), 200, "what was applied before the failure is answered");
    assert_eq!(res.headers()["retry-after"], "1");
    let first: Value = res.json().await.unwrap();
    assert_eq!(statuses(&first), ["applied", "applied"], "the push stopped at the failure");
    assert_eq!(first["last_op_id"], 2, "the failed operation was not received");
    assert_eq!(first["retry_from"], 3);

    // nothing of it was kept, nor listed for the desk as the technician's fault
    let rejected: Value = d.app.get("/api/v1/sync/rejections", &d.desk).await.json().await.unwrap();
    assert_eq!(rejected["items"], json!([]));
    let ticket: Value = d.app.get(&format!("/api/v1/tickets/{b}"), &d.desk).await.json().await.unwrap();
    assert_eq!(ticket["status"], "open");

    // the phone pushes its queue again: the rest is applied
    let second = push(&d.app, &tech, &client, ops).await;
    assert_eq!(statuses(&second), ["duplicate", "duplicate", "applied", "applied"]);
    assert_eq!(second["last_op_id"], 4);
    assert!(second.get("retry_from").is_none());
    let ticket: Value = d.app.get(&format!("/api/v1/tickets/{b}"), &d.desk).await.json().await.unwrap();
    assert_eq!(ticket["status"], "assigned");
    assert_eq!(ticket["assignee_id"], tech_id.as_str());
    assert_eq!(ticket["notes"][0]["note"], "到场");
    let rejected: Value = d.app.get("/api/v1/sync/rejections", &d.desk).await.json().await.unwrap();
    assert_eq!(rejected["items"], json!([]));
}

#[tokio::test]
async fn a_push_the_database_fails_before_any_operation_answers_503_and_applies_when_sent_again() {
    let d = desk_with_push_fault(1, repairdesk::db::TRANSACTION_ATTEMPTS).await;
    let (_, tech) = d.technician("tech1").await;
    let t = tid(&d, public_ticket(&d.site)).await;
    let client = new_client();
    let ops = vec![op(1, "claim", &t, json!({})), op(2, "arrive", &t, json!({}))];
    let body = json!({ "client_id": client, "schema_version": 1, "ops": ops });
    let res = d.app.post("/api/v1/sync/push", &tech, &body).await;
    assert_eq!(res.headers()["retry-after"], "1");
    assert_problem(res, 503, "database_busy").await;
    let rejected: Value = d.app.get("/api/v1/sync/rejections", &d.desk).await.json().await.unwrap();
    assert_eq!(rejected["items"], json!([]));

    let again = push(&d.app, &tech, &client, ops).await;
    assert_eq!(statuses(&again), ["applied", "applied"]);
    assert_eq!(again["last_op_id"], 2);
}

#[tokio::test]
async fn a_conflict_the_server_gets_past_by_running_the_push_again_is_not_seen_by_the_phone() {
    // one run fewer than the server makes
    let d = desk_with_push_fault(2, repairdesk::db::TRANSACTION_ATTEMPTS - 1).await;
    let (_, tech) = d.technician("tech1").await;
    let t = tid(&d, public_ticket(&d.site)).await;
    let ops = vec![
        op(1, "claim", &t, json!({})),
        op(2, "arrive", &t, json!({})),
        op(3, "add_note", &t, json!({ "id": uuid::Uuid::new_v4(), "note": "好了" })),
    ];
    let first = push(&d.app, &tech, &new_client(), ops).await;
    assert_eq!(statuses(&first), ["applied"; 3]);
    assert_eq!(first["last_op_id"], 3);
    assert!(first.get("retry_from").is_none());
    let ticket: Value = d.app.get(&format!("/api/v1/tickets/{t}"), &d.desk).await.json().await.unwrap();
    assert_eq!(ticket["status"], "on_site");
    assert_eq!(ticket["notes"].as_array().unwrap().len(), 1, "applied once, though run several times");
}

/// Writers of two sites share no row or lock: while a transaction that changed a ticket of one
/// site is still open, a change in another site commits at once, and a reader sees it. The
/// open transaction, whose id is older, commits after that read: the reader's cursor still
/// brings its change (it never skips a late commit). PostgreSQL only: SQLite has one writer at a
/// time by design.
#[tokio::test]
async fn writes_in_two_sites_never_wait_on_each_other_and_a_late_commit_is_not_skipped() {
    use diesel::{Connection, RunQueryDsl};
    use repairdesk::db::{events, DbConn};
    let d = desk_with(&[]).await;
    let Some(url) = Some(d.app.db.url()).filter(|u| u.starts_with("postgres")) else {
        eprintln!("two writers at once: PostgreSQL only (SQLite has one writer)");
        return;
    };
    let other_site = d.app.create_site(&d.admin, "LX").await;
    let (_, other_desk) = d.app.user_token(&d.admin, "desk2", "dispatcher", &[&other_site], &[]).await;
    let here = d.ticket().await;
    let res = d.app.post("/api/v1/tickets", &other_desk, &ticket_body(&other_site)).await;
    let there: Value = res.json().await.unwrap();
    let client = new_client();
    let mut cursor = pull(&d.app, &d.admin, &client, None).await["cursor"].as_str().unwrap().to_owned();

    // a writer of the first site, its transaction left open after its ticket and event
    let mut open = DbConn::Postgres(diesel::PgConnection::establish(&url).unwrap());
    diesel::sql_query("BEGIN").execute(&mut open).unwrap();
    diesel::sql_query("UPDATE tickets SET version = version + 1 WHERE id = $1")
        .bind::<diesel::sql_types::Text, _>(here["id"].as_str().unwrap())
        .execute(&mut open)
        .unwrap();
    events::append(
        &mut open,
        vec![events::NewEvent {
            ticket_id: here["id"].as_str().unwrap().to_owned(),
            site_id: d.site.clone(),
            event_type: "note_added",
            actor_id: None,
            at: repairdesk::db::now(),
            from_status: None,
            to_status: None,
            data: json!({ "note": "late" }),
        }],
    )
    .unwrap();

    // the other site's desk writes meanwhile, and does not wait for it
    let (path, body) = (format!("/api/v1/tickets/{}/notes", id_of(&there)), json!({ "note": "now" }));
    let note = d.app.post(&path, &other_desk, &body);
    let res = tokio::time::timeout(std::time::Duration::from_secs(20), note)
        .await
        .expect("a write in another site waited for the open transaction");
    assert_eq!(res.status(), 201);
    let page = pull(&d.app, &d.admin, &client, Some(&cursor)).await;
    let ids: Vec<&str> = page["tickets"].as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(ids, [id_of(&there)]);
    cursor = page["cursor"].as_str().unwrap().to_owned();

    // the older transaction commits last: the next pull brings its change
    diesel::sql_query("COMMIT").execute(&mut open).unwrap();
    let page = pull(&d.app, &d.admin, &client, Some(&cursor)).await;
    let ids: Vec<&str> = page["tickets"].as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(ids, [id_of(&here)]);
    assert!(page["tickets"][0]["events"].as_array().unwrap().iter().any(|e| e["data"]["note"] == "late"));
}

fn id_of(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

/// A page holds `limit` tickets whenever more follow: tickets the caller may not see (another
/// technician's, another trade's) never take room in it, so a client that stops at a short page
/// (as standard replication libraries do) has the whole view.
#[tokio::test]
async fn a_technicians_first_pull_fills_every_page_but_the_last() {
    let d = desk_with(&[]).await;
    let (_, tech) = d.technician("tech1").await;
    let (_, other) = d.technician("tech2").await;
    let mut mine = Vec::new();
    for i in 0..9 {
        let t = tid(&d, public_ticket(&d.site)).await;
        match i % 3 {
            // claimed by the other technician: not in this one's view
            0 => assert_eq!(d.app.post(&format!("/api/v1/tickets/{t}/claim"), &other, &json!({})).await.status(), 200),
            // claimed by this technician
            1 => {
                assert_eq!(d.app.post(&format!("/api/v1/tickets/{t}/claim"), &tech, &json!({})).await.status(), 200);
                mine.push(t);
            }
            // in the pool
            _ => mine.push(t),
        }
    }
    let mut electric = public_ticket(&d.site);
    electric["category"] = json!("electric");
    tid(&d, electric).await;
    let client = new_client();
    let (mut seen, mut cursor, mut sizes) = (Vec::new(), None::<String>, Vec::new());
    loop {
        let page = d
            .app
            .post("/api/v1/sync/pull", &tech, &json!({ "client_id": client, "cursor": cursor, "limit": 2 }))
            .await
            .json::<Value>()
            .await
            .unwrap();
        let tickets = page["tickets"].as_array().unwrap();
        sizes.push(tickets.len());
        seen.extend(tickets.iter().map(|t| t["id"].as_str().unwrap().to_owned()));
        cursor = page["cursor"].as_str().map(str::to_owned);
        if page["has_more"] == false {
            break;
        }
        assert_eq!(tickets.len(), 2, "a page that is not the last is full: {sizes:?}");
    }
    seen.sort();
    mine.sort();
    assert_eq!(seen, mine);
}

/// A browser's `EventSource` cannot send `Authorization`: a ticket from an authenticated request
/// opens the stream once, within a minute, for that login only.
#[tokio::test]
async fn a_stream_ticket_opens_the_stream_once() {
    use repairdesk::db::{self, DatabaseUrl};
    let d = desk_with(&[]).await;
    let (tech_id, tech) = d.technician("tech1").await;
    let res = d.app.post("/api/v1/sync/stream-ticket", &tech, &json!({})).await;
    assert_eq!(res.status(), 201);
    let issued: Value = res.json().await.unwrap();
    assert_eq!(issued["expires_in"], 60);
    let ticket = issued["ticket"].as_str().unwrap().to_owned();
    let open = |ticket: &str| d.app.client.get(d.app.url(&format!("/api/v1/sync/stream?ticket={ticket}"))).send();
    let res = open(&ticket).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let t = tid(&d, public_ticket(&d.site)).await;
    changed_event_id(res, &t).await;
    // once only; an unknown ticket, or none and no token, is refused
    assert_problem(open(&ticket).await.unwrap(), 401, "invalid_token").await;
    assert_problem(open("not-a-ticket").await.unwrap(), 401, "invalid_token").await;
    let bare = d.app.client.get(d.app.url("/api/v1/sync/stream")).send().await.unwrap();
    assert_problem(bare, 401, "missing_token").await;

    // past its minute it no longer opens anything (the clock is passed in)
    let ticket: Value = d.app.post("/api/v1/sync/stream-ticket", &tech, &json!({})).await.json().await.unwrap();
    let hash = repairdesk::auth::tokens::hash_refresh_token(ticket["ticket"].as_str().unwrap());
    let pool = db::connect(&DatabaseUrl::parse(&d.app.db.url()).unwrap(), 1).unwrap();
    let mut conn = pool.get().unwrap();
    let later = db::now() + chrono::Duration::seconds(61);
    assert_eq!(db::tokens::take_stream_ticket(&mut conn, &hash, later).unwrap(), None);
    let (_, user) = db::tokens::take_stream_ticket(&mut conn, &hash, db::now()).unwrap().expect("still good now");
    assert_eq!(user, tech_id);
}
