//! Input PostgreSQL refuses though SQLite would store it (a NUL character, a lone UTF-16
//! surrogate, a time out of range, an integer past `BIGINT`): on both engines it is a named
//! field (404 for a path id), never a server error, and nothing is stored.
//! And numbers as the spec's JSON Schema reads them: a whole number written with a decimal
//! point is an integer.

use reqwest::{Method, Response};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::sync::op;
use crate::tickets::{desk_with, ticket_body, Desk};

/// Sends `body` as it is written, so that it can hold what `json!` never writes.
async fn post_raw(app: &TestApp, path: &str, token: Option<&str>, body: String) -> Response {
    let mut req = app.client.post(app.url(path)).header("content-type", "application/json").body(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

/// Asserts 422 `validation_failed` naming `field`.
async fn assert_refused(res: Response, field: &str) {
    let body = assert_problem(res, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], field, "{body}");
}

async fn ticket_count(d: &Desk) -> usize {
    let list: Value = d.app.get("/api/v1/tickets", &d.desk).await.json().await.unwrap();
    list["items"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_nul_character_in_a_login_is_a_named_field_before_any_login() {
    let app = spawn_app().await;
    let res = app
        .request(Method::POST, "/api/v1/auth/login", None, Some(&json!({ "username": "ad\0min", "password": "x" })))
        .await;
    assert_refused(res, "username").await;
    let res = post_raw(&app, "/api/v1/auth/login", None, r#"{"username":"admin","password":"\u0000"}"#.into()).await;
    assert_refused(res, "password").await;
    // an escaped backslash before `u0000` is plain text
    let res = post_raw(&app, "/api/v1/auth/login", None, r#"{"username":"admin","password":"\\u0000"}"#.into()).await;
    assert_problem(res, 401, "invalid_credentials").await;
    // a member name holding one
    let res = post_raw(&app, "/api/v1/auth/login", None, r#"{"username":"a","password":"b","\u0000":1}"#.into()).await;
    assert_refused(res, "\u{FFFD}").await;
    // the admin still logs in: none of it counted as a wrong password
    app.admin_token().await;
}

#[tokio::test]
async fn a_ticket_carrying_what_the_database_refuses_is_refused_by_field_and_not_created() {
    let d = desk_with(&[]).await;
    let mut body = ticket_body(&d.site);
    body["description"] = json!("厨房水管漏水\0");
    assert_refused(d.app.post("/api/v1/tickets", &d.desk, &body).await, "description").await;

    // a lone surrogate, as JavaScript's JSON.stringify writes half an emoji
    for half in [r"\ud83d", r"\ude00", r"\ud83d\u0041"] {
        let raw = serde_json::to_string(&ticket_body(&d.site)).unwrap().replace("厨房水管漏水", half);
        assert_refused(post_raw(&d.app, "/api/v1/tickets", Some(&d.desk), raw).await, "description").await;
    }
    // a whole surrogate pair is an emoji like any other
    let raw = serde_json::to_string(&ticket_body(&d.site)).unwrap().replace("厨房水管漏水", r"漏水 \ud83d\ude00");
    assert_eq!(post_raw(&d.app, "/api/v1/tickets", Some(&d.desk), raw).await.status(), 201);
    assert_eq!(ticket_count(&d).await, 1, "only the ticket with the emoji was created");
}

#[tokio::test]
async fn a_path_id_holding_a_nul_character_is_not_found() {
    let d = desk_with(&[]).await;
    let t = d.ticket().await["id"].as_str().unwrap().to_owned();
    assert_problem(d.app.get(&format!("/api/v1/tickets/{t}%00"), &d.desk).await, 404, "not_found").await;
    assert_problem(d.app.get("/api/v1/users/%00", &d.admin).await, 404, "not_found").await;
    let (_, tech) = d.technician("tech1").await;
    let res = d.app.post(&format!("/api/v1/tickets/{t}%00/claim"), &tech, &json!({})).await;
    assert_problem(res, 404, "not_found").await;
    let ticket: Value = d.app.get(&format!("/api/v1/tickets/{t}"), &d.desk).await.json().await.unwrap();
    assert_eq!(ticket["status"], "open", "nobody claimed it");
}

#[tokio::test]
async fn a_query_parameter_the_database_refuses_is_refused_by_name() {
    let d = desk_with(&[]).await;
    d.ticket().await;
    let refused = [
        ("/api/v1/tickets?status=open%00", "status"),
        ("/api/v1/tickets?site_id=%00", "site_id"),
        ("/api/v1/tickets?created_after=%2B300000-01-01T00:00:00Z", "created_after"),
        ("/api/v1/tickets?created_before=-5000-01-01T00:00:00Z", "created_before"),
        ("/api/v1/tickets?limit=9223372036854775808", "limit"),
        ("/api/v1/escalations?site_id=a%00", "site_id"),
        ("/api/v1/sync/rejections?site_id=%00", "site_id"),
    ];
    for (path, field) in refused {
        assert_refused(d.app.get(path, &d.desk).await, field).await;
    }
    assert_refused(d.app.get("/api/v1/users?role=%00", &d.admin).await, "role").await;
    // in range, they list as before
    let res = d.app.get("/api/v1/tickets?status=open&created_after=2000-01-01T00:00:00Z&limit=10", &d.desk).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn sync_ops_carrying_what_the_database_refuses_are_rejected_one_by_one() {
    let d = desk_with(&[]).await;
    let t = d.ticket().await["id"].as_str().unwrap().to_owned();
    let (_, tech) = d.technician("tech1").await;
    let client = uuid::Uuid::new_v4().to_string();
    let mut year_zero = op(4, "add_note", &t, json!({ "note": "到达" }));
    year_zero["device_time"] = json!("0000-06-01T00:00:00Z");
    let ops = vec![
        op(1, "claim", &t, json!({})),
        op(2, "add_note", &t, json!({ "note": "阀门\0坏了" })),
        op(3, "add_note", &format!("{t}\0"), json!({ "note": "阀门坏了" })),
        year_zero,
        op(5, "release", &t, json!({ "reason": "\0" })),
        op(6, "cl\0aim", &t, json!({})),
        op(7, "add_note", &t, json!({ "note": "换了阀门" })),
    ];
    let res =
        d.app.post("/api/v1/sync/push", &tech, &json!({ "client_id": client, "schema_version": 1, "ops": ops })).await;
    assert_eq!(res.status(), 200);
    let pushed: Value = res.json().await.unwrap();
    assert_eq!(pushed["last_op_id"], 7);
    let results = pushed["results"].as_array().unwrap();
    let outcome: Vec<(&str, Option<&str>)> =
        results.iter().map(|r| (r["status"].as_str().unwrap(), r["code"].as_str())).collect();
    let refused = ("rejected", Some("validation_failed"));
    assert_eq!(outcome, [("applied", None), refused, refused, refused, refused, refused, ("applied", None)]);
    for (result, field) in results[1..6].iter().zip(["note", "ticket_id", "device_time", "reason", "name"]) {
        assert!(result["detail"].as_str().unwrap().contains(field), "{result}");
    }

    let ticket: Value = d.app.get(&format!("/api/v1/tickets/{t}"), &d.desk).await.json().await.unwrap();
    assert_eq!(ticket["status"], "assigned", "the release was refused");
    let notes: Vec<&str> = ticket["notes"].as_array().unwrap().iter().map(|n| n["note"].as_str().unwrap()).collect();
    assert_eq!(notes, ["换了阀门"]);
    // the desk sees the refusals of its site
    let listed: Value = d.app.get("/api/v1/sync/rejections", &d.desk).await.json().await.unwrap();
    assert!(listed["items"].as_array().unwrap().iter().any(|r| r["code"] == "validation_failed"), "{listed}");

    // an op number past BIGINT is the push's own field
    let res = post_raw(
        &d.app,
        "/api/v1/sync/push",
        Some(&tech),
        format!(r#"{{"client_id":"{client}","schema_version":1,"ops":[{{"op_id":9223372036854775808,"name":"claim","ticket_id":"{t}"}}]}}"#),
    )
    .await;
    assert_refused(res, "ops[0].op_id").await;
}

/// `1200.0` is an integer to JSON Schema, so to the spec's `type: integer`, and the server takes it
/// as 1200; a number with a fraction is still refused, by name. Found by schemathesis
/// (`scripts/fuzz.sh`): it writes some of the integers it draws with a decimal point.
#[tokio::test]
async fn a_whole_number_written_with_a_decimal_point_is_the_integer() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let site = app.create_site(&admin, "GY").await;
    let path = format!("/api/v1/sites/{site}/materials");
    let item = json!({ "name": "PPR pipe 20mm", "unit": "m", "default_price_cents": 1200.0 });
    let res = app.post(&path, &admin, &item).await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["default_price_cents"], 1200);
    for refused in [json!(12.5), json!(1e300)] {
        let item = json!({ "name": "PPR pipe 20mm", "unit": "m", "default_price_cents": refused });
        let problem = assert_problem(app.post(&path, &admin, &item).await, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], "default_price_cents", "{problem}");
    }
}
