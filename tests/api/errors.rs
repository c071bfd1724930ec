use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn malformed_input_gets_problem_json() {
    let app = spawn_app().await;
    let post_raw = |body: &'static str, content_type: &'static str| {
        app.client.post(app.url("/api/v1/auth/login")).header("content-type", content_type).body(body).send()
    };
    assert_problem(post_raw("{\"username\":", "application/json").await.unwrap(), 400, "malformed_json").await;
    assert_problem(post_raw("", "application/json").await.unwrap(), 400, "malformed_json").await;
    assert_problem(post_raw("{}", "text/plain").await.unwrap(), 415, "unsupported_media_type").await;
    let missing =
        assert_problem(post_raw("{\"username\":\"a\"}", "application/json").await.unwrap(), 422, "validation_failed")
            .await;
    assert_eq!(missing["errors"][0]["field"], "password");
    let wrong_type = assert_problem(
        post_raw("{\"username\":1,\"password\":\"x\"}", "application/json").await.unwrap(),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(wrong_type["errors"][0]["field"], "username");
    // the fields in order as an array are not a body (serde alone would take them)
    let array = assert_problem(
        post_raw(" [\"admin\", \"admin-password-1\"]", "application/json").await.unwrap(),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(array["errors"][0]["field"], "body");

    let huge = format!("{{\"username\":\"{}\",\"password\":\"x\"}}", "a".repeat(3 * 1024 * 1024));
    let res = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_problem(res, 413, "payload_too_large").await;
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_get_problem_json() {
    let app = spawn_app().await;
    assert_problem(app.request(Method::GET, "/api/v1/nothing-here", None, None).await, 404, "not_found").await;
    let res = app.request(Method::DELETE, "/api/v1/auth/login", None, Some(&json!({}))).await;
    assert_eq!(res.headers()["allow"], "POST");
    assert_problem(res, 405, "method_not_allowed").await;
    let admin = app.admin_token().await;
    assert_problem(app.get("/api/v1/users/not-a-user", &admin).await, 404, "not_found").await;
    assert_problem(app.get("/api/v1/users/not-a-user/extra", &admin).await, 404, "not_found").await;
}

#[tokio::test]
async fn health_readiness_and_request_ids() {
    let app = spawn_app().await;
    let res = app.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-request-id"));
    assert_eq!(app.request(Method::GET, "/readyz", None, None).await.status(), 200);
    let res = app.client.get(app.url("/healthz")).header("x-request-id", "desk-42").send().await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "desk-42");
}

#[tokio::test]
async fn readiness_says_which_sms_gateway_residents_are_texted_through() {
    // nobody set REPAIRDESK_SMS_PROVIDER: the monitoring sees that nothing reaches a resident
    let app = spawn_app().await;
    let ready: Value = app.request(Method::GET, "/readyz", None, None).await.json().await.unwrap();
    assert_eq!(ready, json!({ "status": "ready", "sms_provider": "log" }));

    let app = spawn_app_with(&[
        ("REPAIRDESK_SMS_PROVIDER", "webhook"),
        ("REPAIRDESK_SMS_WEBHOOK_URL", "http://127.0.0.1:9/sms"),
        ("REPAIRDESK_SMS_WEBHOOK_SECRET", "webhook-secret"),
    ])
    .await;
    let ready: Value = app.request(Method::GET, "/readyz", None, None).await.json().await.unwrap();
    assert_eq!(ready, json!({ "status": "ready", "sms_provider": "webhook" }));
}
