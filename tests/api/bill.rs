//! What a paid job bills: a quote covers `all` (the whole price) or `labour` (materials added),
//! and completing with a bill past what the resident accepted needs a new accepted quote.

use serde_json::{json, Value};

use crate::helpers::*;
use crate::onsite::{act, as_if_later, claimed, code_sent, delivered, desk_sending_to, gateway, ticket};
use crate::stub::Stub;
use crate::sync::{op, push};
use crate::tickets::{ticket_body, Desk};

/// A paid in-home ticket, claimed and arrived at; returns (ticket id, number, technician token).
async fn on_site_paid(d: &Desk, gw: &Stub, tech: &str) -> (String, String, String) {
    let mut body = ticket_body(&d.site);
    body["paid"] = json!(true);
    let (t, token) = claimed(d, body, tech).await;
    let (tid, number) = (t["id"].as_str().unwrap().to_owned(), t["number"].as_str().unwrap().to_owned());
    let code = code_sent(d, gw, &number, "arrival_code", 0).await;
    assert_eq!(act(d, &token, &tid, "arrive", json!({ "code": code })).await.status(), 200);
    (tid, number, token)
}

/// Quotes `quote` and has the resident accept it with the `nth` quote code sent; returns the ticket.
async fn quoted_and_accepted(
    d: &Desk,
    gw: &Stub,
    tid: &str,
    number: &str,
    tech: &str,
    quote: Value,
    nth: usize,
) -> Value {
    let res = act(d, tech, tid, "quote", quote).await;
    assert_eq!(res.status(), 201);
    let code = code_sent(d, gw, number, "quote_code", nth).await;
    let res = act(d, tech, tid, "quote/accept", json!({ "code": code })).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn part(cents: i64, supplied_by: &str) -> Value {
    json!({ "name": "角阀", "quantity": "1", "unit": "个", "unit_price_cents": cents, "supplied_by": supplied_by })
}

#[tokio::test]
async fn a_quote_covering_all_is_the_bill_and_a_labour_quote_adds_the_materials() {
    let gw = gateway();
    let d = desk_sending_to(&gw, &[]).await;

    // the desk's case: 80 yuan "labour included" and a 25-yuan part is billed 80 yuan
    let (all, all_number, tech1) = on_site_paid(&d, &gw, "tech1").await;
    let accepted = quoted_and_accepted(&d, &gw, &all, &all_number, &tech1, json!({ "amount_cents": 8000 }), 0).await;
    assert_eq!(accepted["quote"]["covers"], "all", "covers defaults to all");
    assert_eq!(accepted["quote"]["accepted_total_cents"], 8000);
    let sms = delivered(&gw).into_iter().find(|m| m["template"] == "quote_code" && m["params"]["number"] == all_number);
    assert_eq!(sms.unwrap()["params"]["covers"], "全包价，含材料");
    assert_eq!(act(&d, &tech1, &all, "materials", part(2500, "company")).await.status(), 201);
    let seen = ticket(&d, &d.desk, &all).await;
    assert_eq!(seen["bill"], json!({ "quote_cents": 8000, "materials_cents": 0, "total_cents": 8000 }));
    assert_eq!(seen["totals"]["materials_cents"], 2500, "the part is still listed");
    assert_eq!(seen["totals"]["billable_cents"], 8000);
    assert_eq!(seen["materials"].as_array().unwrap().len(), 1);
    let done: Value = act(&d, &tech1, &all, "complete", json!({ "result": "已更换角阀" })).await.json().await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["bill"]["total_cents"], 8000);

    // the same price for labour only: the part is added, 105 yuan
    let (labour, labour_number, tech2) = on_site_paid(&d, &gw, "tech2").await;
    let before = ticket(&d, &d.desk, &labour).await;
    assert_eq!(before["bill"], json!({ "quote_cents": 0, "materials_cents": 0, "total_cents": 0 }));
    let quote = json!({ "amount_cents": 8000, "covers": "labour", "note": "人工费" });
    let accepted = quoted_and_accepted(&d, &gw, &labour, &labour_number, &tech2, quote, 0).await;
    assert_eq!(accepted["quote"]["covers"], "labour");
    let sms =
        delivered(&gw).into_iter().find(|m| m["template"] == "quote_code" && m["params"]["number"] == labour_number);
    assert_eq!(sms.unwrap()["params"]["covers"], "仅人工费，材料另计");
    assert_eq!(act(&d, &tech2, &labour, "materials", part(2500, "company")).await.status(), 201);
    assert_eq!(act(&d, &tech2, &labour, "materials", part(1200, "resident")).await.status(), 201);
    let seen = ticket(&d, &tech2, &labour).await;
    assert_eq!(seen["bill"], json!({ "quote_cents": 8000, "materials_cents": 2500, "total_cents": 10500 }));
    assert_eq!(seen["totals"]["resident_supplied_cents"], 1200, "what the resident supplied is never billed");
    assert_eq!(seen["totals"]["billable_cents"], 10500);
}

#[tokio::test]
async fn a_quote_must_say_what_it_covers_in_words_the_server_knows() {
    let gw = gateway();
    let d = desk_sending_to(&gw, &[]).await;
    let (tid, _, tech) = on_site_paid(&d, &gw, "tech1").await;
    for covers in [json!("materials"), json!(""), json!(1)] {
        let res = act(&d, &tech, &tid, "quote", json!({ "amount_cents": 8000, "covers": covers })).await;
        let problem = assert_problem(res, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], "covers", "{problem}");
    }
    assert_eq!(ticket(&d, &tech, &tid).await["quote"], Value::Null, "a refused quote changes nothing");
}

#[tokio::test]
async fn completing_with_a_bill_past_the_accepted_quote_needs_a_new_accepted_quote() {
    let gw = gateway();
    let d = desk_sending_to(&gw, &[]).await;
    let (tid, number, tech) = on_site_paid(&d, &gw, "tech1").await;
    let quote = json!({ "amount_cents": 8000, "covers": "labour" });
    let accepted = quoted_and_accepted(&d, &gw, &tid, &number, &tech, quote, 0).await;
    assert_eq!(accepted["quote"]["accepted_total_cents"], 8000, "no materials yet when it was accepted");
    assert_eq!(act(&d, &tech, &tid, "materials", part(2500, "company")).await.status(), 201);

    let res = act(&d, &tech, &tid, "complete", json!({ "result": "已更换角阀" })).await;
    let problem = assert_problem(res, 409, "quote_required").await;
    assert_eq!(problem["bill_total_cents"], 10500, "{problem}");
    assert_eq!(problem["accepted_total_cents"], 8000);
    assert!(problem["detail"].as_str().unwrap().contains("105.00"), "{problem}");
    assert_eq!(ticket(&d, &tech, &tid).await["status"], "on_site", "the refusal changed nothing");

    // the desk quotes again (a minute on: quoting sends an SMS); once the resident accepts the
    // bill as it stands, the job completes
    as_if_later(&d.app, &tid, 60).await;
    let requote = json!({ "amount_cents": 8000, "covers": "labour", "note": "材料另计25元" });
    let again = quoted_and_accepted(&d, &gw, &tid, &number, &tech, requote, 1).await;
    assert_eq!(again["quote"]["accepted_total_cents"], 10500);
    let done: Value = act(&d, &tech, &tid, "complete", json!({ "result": "已更换角阀" })).await.json().await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["bill"], json!({ "quote_cents": 8000, "materials_cents": 2500, "total_cents": 10500 }));
}

#[tokio::test]
async fn an_accepted_quote_whose_bill_has_not_grown_is_not_quoted_again() {
    let gw = gateway();
    let d = desk_sending_to(&gw, &[]).await;
    let (tid, number, tech) = on_site_paid(&d, &gw, "tech1").await;
    quoted_and_accepted(&d, &gw, &tid, &number, &tech, json!({ "amount_cents": 8000 }), 0).await;
    // covering all, materials never grow the bill
    assert_eq!(act(&d, &tech, &tid, "materials", part(2500, "company")).await.status(), 201);
    let res = act(&d, &tech, &tid, "quote", json!({ "amount_cents": 9000 })).await;
    assert_problem(res, 409, "invalid_transition").await;
    assert_eq!(ticket(&d, &tech, &tid).await["quote"]["status"], "accepted");
}

#[tokio::test]
async fn an_offline_completion_past_the_accepted_quote_is_rejected_for_the_desk() {
    let gw = gateway();
    let d = desk_sending_to(&gw, &[]).await;
    let (tid, number, tech) = on_site_paid(&d, &gw, "tech1").await;
    quoted_and_accepted(&d, &gw, &tid, &number, &tech, json!({ "amount_cents": 8000, "covers": "labour" }), 0).await;
    let client = uuid::Uuid::new_v4().to_string();
    let line = uuid::Uuid::new_v4().to_string();
    let mut added = part(2500, "company");
    added["id"] = json!(line);
    let res = push(
        &d.app,
        &tech,
        &client,
        vec![op(1, "add_material", &tid, added), op(2, "complete", &tid, json!({ "result": "已更换角阀" }))],
    )
    .await;
    assert_eq!(res["results"][0]["status"], "applied", "{res}");
    assert_eq!(res["results"][1]["status"], "rejected");
    assert_eq!(res["results"][1]["code"], "quote_required");
    assert!(res["results"][1]["detail"].as_str().unwrap().contains("80.00"), "{res}");
    assert_eq!(res["results"][1]["ticket"]["status"], "on_site");
    assert_eq!(res["results"][1]["ticket"]["bill"]["total_cents"], 10500);
    let kept: Value = d.app.get("/api/v1/sync/rejections", &d.desk).await.json().await.unwrap();
    let codes: Vec<(&str, &str)> = kept["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["code"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(codes, [("complete", "quote_required")], "{kept}");
}
