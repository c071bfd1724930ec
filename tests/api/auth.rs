use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

fn forge(claims: &Value, alg: Algorithm, secret: &str) -> String {
    encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

fn claims_for(tokens: &Value) -> Value {
    // read the real token's claims, to tamper with one at a time
    let token = token(tokens);
    let payload = token.split('.').nth(1).unwrap();
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn refresh(app: &TestApp, refresh_token: &str) -> reqwest::Response {
    app.request(Method::POST, "/api/v1/auth/refresh", None, Some(&json!({ "refresh_token": refresh_token }))).await
}

#[tokio::test]
async fn login_answers_tokens_and_the_user() {
    let app = spawn_app().await;
    let tokens = app.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["expires_in"].as_i64().unwrap() <= 900);
    assert!(tokens["refresh_token"].as_str().unwrap().len() >= 40);
    assert_eq!(tokens["user"]["username"], "admin");
    assert_eq!(tokens["user"]["role"], "admin");

    let me: Value = app.get("/api/v1/me", &token(&tokens)).await.json().await.unwrap();
    assert_eq!(me["id"], tokens["user"]["id"]);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_401() {
    let app = spawn_app().await;
    let wrong = assert_problem(app.login_response("admin", "not-the-password").await, 401, "invalid_credentials").await;
    let unknown =
        assert_problem(app.login_response("nobody", "not-the-password").await, 401, "invalid_credentials").await;
    assert_eq!(wrong["detail"], unknown["detail"]);
}

/// A login from `address`, as a trusted proxy in front of the server forwards it.
async fn login_from(app: &TestApp, address: &str, username: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-for", address)
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .unwrap()
}

fn retry_after(res: &reqwest::Response) -> u64 {
    res.headers()["retry-after"].to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn five_failures_from_one_address_lock_it_out_of_the_account_even_for_the_right_password() {
    let app = spawn_app().await;
    for _ in 0..5 {
        assert_problem(app.login_response("admin", "wrong-password").await, 401, "invalid_credentials").await;
    }
    let res = app.login_response("admin", ADMIN_PASSWORD).await;
    let retry_after = retry_after(&res);
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    assert_problem(res, 429, "too_many_attempts").await;
}

#[tokio::test]
async fn someone_elses_guesses_do_not_lock_the_owner_out_from_their_own_phone() {
    let app = spawn_app_with(&[("REPAIRDESK_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let (prankster, owners_phone) = ("203.0.113.9", "198.51.100.7");
    for _ in 0..5 {
        assert_problem(login_from(&app, prankster, "admin", "wrong-password").await, 401, "invalid_credentials").await;
    }
    // the prankster is stopped, even with the right password
    let refused = login_from(&app, prankster, "admin", ADMIN_PASSWORD).await;
    assert!((1..=900).contains(&retry_after(&refused)));
    assert_problem(refused, 429, "too_many_attempts").await;
    // the owner is not
    assert_eq!(login_from(&app, owners_phone, "admin", ADMIN_PASSWORD).await.status(), 200);
    // and the owner logging in does not lift the prankster's lock
    assert_problem(login_from(&app, prankster, "admin", ADMIN_PASSWORD).await, 429, "too_many_attempts").await;
}

#[tokio::test]
async fn a_hundred_failures_in_a_row_from_many_addresses_lock_the_account_everywhere() {
    let app = spawn_app_with(&[("REPAIRDESK_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let admin = app.admin_token().await;
    let site = app.create_site(&admin, "GY").await;
    app.create_user(&admin, "li.disp", "dispatcher", &[&site], &[]).await;
    // a guesser spread over 25 addresses, 4 guesses each: under every per-address limit
    let addresses: Vec<String> = (0..25).map(|i| format!("203.0.113.{}", i + 1)).collect();
    let mut failures = 0;
    for address in &addresses {
        for _ in 0..4 {
            if failures == 99 {
                break;
            }
            let res = login_from(&app, address, "admin", "wrong-password").await;
            assert_problem(res, 401, "invalid_credentials").await;
            failures += 1;
        }
    }
    // the 100th failure is still an answer on the password
    assert_problem(login_from(&app, "198.51.100.1", "admin", "wrong-password").await, 401, "invalid_credentials").await;
    // then the account waits, from anywhere, for up to a day
    let refused = login_from(&app, "198.51.100.2", "admin", ADMIN_PASSWORD).await;
    let wait = retry_after(&refused);
    assert!((900..=86_400).contains(&wait), "{wait}");
    assert_problem(refused, 429, "too_many_attempts").await;
    // other accounts are untouched
    assert_eq!(login_from(&app, "198.51.100.2", "li.disp", PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn a_success_resets_the_account_count() {
    let app = spawn_app().await;
    for _ in 0..4 {
        app.login_response("admin", "wrong-password").await;
    }
    app.login("admin", ADMIN_PASSWORD).await;
    for _ in 0..4 {
        app.login_response("admin", "wrong-password").await;
    }
    app.login("admin", ADMIN_PASSWORD).await;
}

#[tokio::test]
async fn fifty_failures_from_one_address_throttle_it_whatever_it_forwards() {
    let app = spawn_app().await;
    for i in 0..50 {
        // a forged X-Forwarded-For from an untrusted peer must not spread the count
        let res = app
            .client
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", format!("10.9.{}.{}", i / 250, i % 250))
            .json(&json!({ "username": format!("user{i}"), "password": "wrong-password" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    let res = app.login_response("admin", ADMIN_PASSWORD).await;
    assert!(res.headers().contains_key("retry-after"));
    assert_problem(res, 429, "too_many_attempts").await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_counts_alone() {
    let app = spawn_app_with(&[("REPAIRDESK_TRUSTED_PROXIES", "127.0.0.1")]).await;
    for i in 0..50 {
        let res = app
            .client
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", "203.0.113.9")
            .json(&json!({ "username": format!("user{i}"), "password": "wrong-password" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    let blocked = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-for", "203.0.113.9")
        .json(&json!({ "username": "admin", "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_problem(blocked, 429, "too_many_attempts").await;
    let other = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-for", "198.51.100.7")
        .json(&json!({ "username": "admin", "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
}

#[tokio::test]
async fn forged_expired_and_foreign_tokens_are_refused() {
    let app = spawn_app().await;
    let tokens = app.login("admin", ADMIN_PASSWORD).await;
    let claims = claims_for(&tokens);
    let now = chrono::Utc::now().timestamp();
    let good = token(&tokens);

    // the real token, re-signed by us with the right key, works: the forgeries below fail for their flaw alone
    let resigned = forge(&claims, Algorithm::HS256, JWT_SECRET);
    assert_eq!(app.get("/api/v1/me", &resigned).await.status(), 200);

    let mut tampered = good.clone();
    tampered.insert(good.find('.').unwrap() + 3, 'x');
    let mut expired = claims.clone();
    expired["exp"] = json!(now - 120);
    expired["iat"] = json!(now - 1000);
    expired["nbf"] = json!(now - 1000);
    let mut not_yet = claims.clone();
    not_yet["nbf"] = json!(now + 600);
    let mut wrong_aud = claims.clone();
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_typ = claims.clone();
    wrong_typ["typ"] = json!("refresh");
    let mut no_jti = claims.clone();
    no_jti.as_object_mut().unwrap().remove("jti");
    let none_token = {
        use base64::Engine;
        let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&claims))
    };

    let cases = [
        ("tampered", tampered),
        ("expired", forge(&expired, Algorithm::HS256, JWT_SECRET)),
        ("not yet valid", forge(&not_yet, Algorithm::HS256, JWT_SECRET)),
        ("other audience", forge(&wrong_aud, Algorithm::HS256, JWT_SECRET)),
        ("typ refresh", forge(&wrong_typ, Algorithm::HS256, JWT_SECRET)),
        ("no jti", forge(&no_jti, Algorithm::HS256, JWT_SECRET)),
        ("HS512", forge(&claims, Algorithm::HS512, JWT_SECRET)),
        ("other key", forge(&claims, Algorithm::HS256, "another-secret-another-secret-0123456")),
        ("alg none", none_token),
        ("refresh token as access", tokens["refresh_token"].as_str().unwrap().to_owned()),
    ];
    for (what, bad) in cases {
        let res = app.get("/api/v1/me", &bad).await;
        assert_eq!(res.status(), 401, "{what}");
        assert_problem(res, 401, "invalid_token").await;
    }
    let res = app.request(Method::GET, "/api/v1/me", None, None).await;
    assert_problem(res, 401, "missing_token").await;
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_ends_the_login() {
    let app = spawn_app().await;
    let first = app.login("admin", ADMIN_PASSWORD).await;
    let r1 = first["refresh_token"].as_str().unwrap();

    let second: Value = refresh(&app, r1).await.json().await.unwrap();
    let r2 = second["refresh_token"].as_str().unwrap();
    assert_ne!(r1, r2);
    assert_eq!(app.get("/api/v1/me", &token(&second)).await.status(), 200);

    // the phone lost the answer and retries at once: it gets the same successor again
    let retried: Value = refresh(&app, r1).await.json().await.unwrap();
    assert_eq!(retried["refresh_token"], r2);

    // the successor is used; now the old token is a replay and the whole login ends
    let third: Value = refresh(&app, r2).await.json().await.unwrap();
    assert_problem(refresh(&app, r1).await, 401, "invalid_refresh_token").await;
    let r3 = third["refresh_token"].as_str().unwrap();
    assert_problem(refresh(&app, r3).await, 401, "invalid_refresh_token").await;
    assert_problem(app.get("/api/v1/me", &token(&third)).await, 401, "invalid_token").await;

    // other logins of the same user are untouched
    let other = app.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(app.get("/api/v1/me", &token(&other)).await.status(), 200);
    assert_problem(refresh(&app, "not-a-token").await, 401, "invalid_refresh_token").await;
}

#[tokio::test]
async fn logout_ends_the_login_at_once() {
    let app = spawn_app().await;
    let tokens = app.login("admin", ADMIN_PASSWORD).await;
    let res = app
        .request(Method::POST, "/api/v1/auth/logout", None, Some(&json!({ "refresh_token": tokens["refresh_token"] })))
        .await;
    assert_eq!(res.status(), 204);
    assert_problem(app.get("/api/v1/me", &token(&tokens)).await, 401, "invalid_token").await;
    assert_problem(refresh(&app, tokens["refresh_token"].as_str().unwrap()).await, 401, "invalid_refresh_token").await;
}

#[tokio::test]
async fn deactivating_a_user_ends_their_sessions_at_once() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let site = app.create_site(&admin, "GY").await;
    let user = app.create_user(&admin, "wang.tech", "technician", &[&site], &["water"]).await;
    let tokens = app.login("wang.tech", PASSWORD).await;
    assert_eq!(app.get("/api/v1/me", &token(&tokens)).await.status(), 200);

    let id = user["id"].as_str().unwrap();
    let res = app.patch(&format!("/api/v1/users/{id}"), &admin, &json!({ "active": false })).await;
    assert_eq!(res.status(), 200);
    assert_problem(app.get("/api/v1/me", &token(&tokens)).await, 401, "invalid_token").await;
    assert_problem(refresh(&app, tokens["refresh_token"].as_str().unwrap()).await, 401, "invalid_refresh_token").await;
    assert_problem(app.login_response("wang.tech", PASSWORD).await, 401, "invalid_credentials").await;
}

#[tokio::test]
async fn a_password_reset_or_change_ends_sessions() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let site = app.create_site(&admin, "GY").await;
    let user = app.create_user(&admin, "li.disp", "dispatcher", &[&site], &[]).await;
    let id = user["id"].as_str().unwrap();

    let before = app.login("li.disp", PASSWORD).await;
    let res = app.patch(&format!("/api/v1/users/{id}"), &admin, &json!({ "password": "reset-by-admin" })).await;
    assert_eq!(res.status(), 200);
    assert_problem(app.get("/api/v1/me", &token(&before)).await, 401, "invalid_token").await;
    assert_problem(app.login_response("li.disp", PASSWORD).await, 401, "invalid_credentials").await;

    let again = app.login("li.disp", "reset-by-admin").await;
    let bad = app
        .post(
            "/api/v1/me/password",
            &token(&again),
            &json!({ "current_password": "wrong-one", "new_password": "mine-now-123" }),
        )
        .await;
    assert_problem(bad, 403, "wrong_password").await;
    let short = app
        .post(
            "/api/v1/me/password",
            &token(&again),
            &json!({ "current_password": "reset-by-admin", "new_password": "short" }),
        )
        .await;
    assert_problem(short, 422, "validation_failed").await;
    let ok = app
        .post(
            "/api/v1/me/password",
            &token(&again),
            &json!({ "current_password": "reset-by-admin", "new_password": "mine-now-123" }),
        )
        .await;
    assert_eq!(ok.status(), 204);
    assert_problem(app.get("/api/v1/me", &token(&again)).await, 401, "invalid_token").await;
    app.login("li.disp", "mine-now-123").await;
}

#[tokio::test]
async fn a_stolen_token_cannot_guess_the_password_through_a_password_change() {
    let app = spawn_app_with(&[("REPAIRDESK_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let admin = app.admin_token().await;
    let site = app.create_site(&admin, "GY").await;
    app.create_user(&admin, "li.disp", "dispatcher", &[&site], &[]).await;
    let stolen = token(&login_from(&app, "198.51.100.7", "li.disp", PASSWORD).await.json::<Value>().await.unwrap());
    let change = |current: &'static str| {
        app.client
            .post(app.url("/api/v1/me/password"))
            .bearer_auth(&stolen)
            .header("x-forwarded-for", "203.0.113.9")
            .json(&json!({ "current_password": current, "new_password": "taken-over-123" }))
            .send()
    };
    for _ in 0..5 {
        // 403, not 401: the app must not think it was logged out
        let wrong = assert_problem(change("guess-123").await.unwrap(), 403, "wrong_password").await;
        assert_eq!(wrong["detail"], "the current password is wrong");
    }
    let refused = change(PASSWORD).await.unwrap();
    assert!((1..=900).contains(&retry_after(&refused)));
    assert_problem(refused, 429, "too_many_attempts").await;
    // the guesses counted as failed logins from that address, not against the owner elsewhere
    assert_problem(login_from(&app, "203.0.113.9", "li.disp", PASSWORD).await, 429, "too_many_attempts").await;
    assert_eq!(login_from(&app, "198.51.100.7", "li.disp", PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn tokens_and_the_user_are_never_cached() {
    let app = spawn_app().await;
    let no_store = |res: &reqwest::Response| res.headers().get("cache-control").map(|v| v.to_str().unwrap().to_owned());
    let store_nothing = Some("no-store".to_owned());

    let login = app.login_response("admin", ADMIN_PASSWORD).await;
    assert_eq!(no_store(&login), store_nothing, "login");
    let tokens: Value = login.json().await.unwrap();
    let wrong = app.login_response("admin", "wrong-password").await;
    assert_eq!(no_store(&wrong), store_nothing, "a refused login");
    let malformed = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(no_store(&malformed), store_nothing, "a malformed login");

    let refreshed = refresh(&app, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refreshed.status(), 200);
    assert_eq!(no_store(&refreshed), store_nothing, "refresh");
    let refused = refresh(&app, "not-a-token").await;
    assert_eq!(refused.status(), 401);
    assert_eq!(no_store(&refused), store_nothing, "a refused refresh");

    let tokens: Value = refreshed.json().await.unwrap();
    let me = app.get("/api/v1/me", &token(&tokens)).await;
    assert_eq!(me.status(), 200);
    assert_eq!(no_store(&me), store_nothing, "/me");
}
