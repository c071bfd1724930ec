use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn an_admin_creates_sites_and_users() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let res = app
        .post("/api/v1/sites", &admin, &json!({ "code": "gy1", "name": "光谷一期", "timezone": "Asia/Shanghai" }))
        .await;
    assert_eq!(res.status(), 201);
    let site: Value = res.json().await.unwrap();
    assert_eq!(site["code"], "GY1");
    let site_id = site["id"].as_str().unwrap();

    let res = app
        .post(
            "/api/v1/users",
            &admin,
            &json!({
                "username": "Zhang.San", "password": "long-enough", "display_name": "张三",
                "role": "technician", "site_ids": [site_id], "trades": ["water", "electric"], "phone": "138 1234 5678"
            }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let user: Value = res.json().await.unwrap();
    assert_eq!(user["username"], "zhang.san");
    assert_eq!(user["phone"], "+8613812345678");
    assert_eq!(user["site_ids"], json!([site_id]));
    assert_eq!(user["trades"], json!(["electric", "water"]));
    assert_eq!(user["active"], true);
    assert!(user.get("password_hash").is_none());

    let id = user["id"].as_str().unwrap();
    let fetched: Value = app.get(&format!("/api/v1/users/{id}"), &admin).await.json().await.unwrap();
    assert_eq!(fetched, user);
    let list: Value = app.get("/api/v1/users?role=technician", &admin).await.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let sites: Value = app.get("/api/v1/sites", &admin).await.json().await.unwrap();
    assert_eq!(sites["items"][0]["id"], site_id);

    let res = app
        .patch(
            &format!("/api/v1/users/{id}"),
            &admin,
            &json!({ "display_name": "张三丰", "phone": null, "trades": ["gas"] }),
        )
        .await;
    assert_eq!(res.status(), 200);
    let patched: Value = res.json().await.unwrap();
    assert_eq!(patched["display_name"], "张三丰");
    assert_eq!(patched["phone"], Value::Null);
    assert_eq!(patched["trades"], json!(["gas"]));
}

#[tokio::test]
async fn a_technician_and_a_dispatcher_cannot_administer() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let site = app.create_site(&admin, "GY").await;
    let (_, tech) = app.user_token(&admin, "tech1", "technician", &[&site], &["water"]).await;
    let (_, desk) = app.user_token(&admin, "desk1", "dispatcher", &[&site], &[]).await;
    for token in [&tech, &desk] {
        let new_user = json!({ "username": "x1x", "password": "long-enough", "display_name": "x", "role": "admin", "site_ids": [] });
        assert_problem(app.post("/api/v1/users", token, &new_user).await, 403, "forbidden").await;
        let new_site = json!({ "code": "ZZ", "name": "z", "timezone": "Asia/Shanghai" });
        assert_problem(app.post("/api/v1/sites", token, &new_site).await, 403, "forbidden").await;
    }
    assert_problem(app.get("/api/v1/users", &tech).await, 403, "forbidden").await;
    let me: Value = app.get("/api/v1/me", &tech).await.json().await.unwrap();
    let id = me["id"].as_str().unwrap();
    assert_problem(
        app.patch(&format!("/api/v1/users/{id}"), &tech, &json!({ "role": "admin" })).await,
        403,
        "forbidden",
    )
    .await;
}

#[tokio::test]
async fn bad_user_fields_are_each_named() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let res = app
        .post(
            "/api/v1/users",
            &admin,
            &json!({
                "username": "x", "password": "short", "display_name": " ", "role": "boss",
                "site_ids": [], "trades": ["plumbing"], "phone": "12345"
            }),
        )
        .await;
    let body = assert_problem(res, 422, "validation_failed").await;
    let mut fields: Vec<&str> =
        body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    fields.sort();
    assert_eq!(fields, ["display_name", "password", "phone", "role", "trades", "username"]);

    let unknown_site = json!({
        "username": "tech1", "password": "long-enough", "display_name": "t", "role": "technician", "site_ids": ["nope"]
    });
    let body = assert_problem(app.post("/api/v1/users", &admin, &unknown_site).await, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "site_ids");
    let users: Value = app.get("/api/v1/users", &admin).await.json().await.unwrap();
    assert_eq!(users["items"].as_array().unwrap().len(), 1, "nothing was created");

    let bad_site = json!({ "code": "g", "name": "", "timezone": "Mars/Base" });
    let body = assert_problem(app.post("/api/v1/sites", &admin, &bad_site).await, 422, "validation_failed").await;
    assert_eq!(body["errors"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn usernames_and_site_codes_are_unique() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let site = app.create_site(&admin, "GY").await;
    app.create_user(&admin, "tech1", "technician", &[&site], &[]).await;
    let again = json!({ "username": "TECH1", "password": "long-enough", "display_name": "t", "role": "technician", "site_ids": [site] });
    assert_problem(app.post("/api/v1/users", &admin, &again).await, 409, "username_taken").await;
    let site_again = json!({ "code": "gy", "name": "again", "timezone": "Asia/Shanghai" });
    assert_problem(app.post("/api/v1/sites", &admin, &site_again).await, 409, "site_code_taken").await;
}

#[tokio::test]
async fn the_desk_sees_only_the_users_of_its_sites() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let ours = app.create_site(&admin, "GY").await;
    let theirs = app.create_site(&admin, "HK").await;
    let (_, desk) = app.user_token(&admin, "desk1", "dispatcher", &[&ours], &[]).await;
    let mine = app.create_user(&admin, "tech.ours", "technician", &[&ours], &["water"]).await;
    let other = app.create_user(&admin, "tech.theirs", "technician", &[&theirs], &["water"]).await;

    let list: Value = app.get("/api/v1/users?role=technician", &desk).await.json().await.unwrap();
    let names: Vec<&str> = list["items"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["tech.ours"]);
    assert_eq!(app.get(&format!("/api/v1/users/{}", mine["id"].as_str().unwrap()), &desk).await.status(), 200);
    let res = app.get(&format!("/api/v1/users/{}", other["id"].as_str().unwrap()), &desk).await;
    assert_problem(res, 404, "not_found").await;
    let sites: Value = app.get("/api/v1/sites", &desk).await.json().await.unwrap();
    assert_eq!(sites["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_admin_cannot_lock_themselves_out() {
    let app = spawn_app().await;
    let tokens = app.login("admin", ADMIN_PASSWORD).await;
    let id = tokens["user"]["id"].as_str().unwrap();
    let admin = token(&tokens);
    let res = app.patch(&format!("/api/v1/users/{id}"), &admin, &json!({ "active": false })).await;
    assert_problem(res, 422, "validation_failed").await;
    let res = app.patch(&format!("/api/v1/users/{id}"), &admin, &json!({ "role": "technician" })).await;
    assert_problem(res, 422, "validation_failed").await;
    assert_eq!(app.get("/api/v1/me", &admin).await.status(), 200);
}

#[tokio::test]
async fn the_cli_migrates_and_creates_an_admin() {
    let app = spawn_app().await;
    let bin = env!("CARGO_BIN_EXE_repairdesk");
    let migrate = std::process::Command::new(bin)
        .arg("migrate")
        .env("DATABASE_URL", &app.db_url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(migrate.status.success(), "migrate failed: {}", String::from_utf8_lossy(&migrate.stderr));
    let mut child = std::process::Command::new(bin)
        .args(["admin", "create", "--username", "ops.admin", "--password-stdin"])
        .env("DATABASE_URL", &app.db_url)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"ops-password-1\n").unwrap();
    assert!(child.wait().unwrap().success());
    let tokens = app.login("ops.admin", "ops-password-1").await;
    assert_eq!(tokens["user"]["role"], "admin");
}

#[tokio::test]
async fn instances_starting_together_on_a_new_database_share_one_admin() {
    // both see no admin and hash its password at the same time; one insert wins
    let db = std::sync::Arc::new(TestDb::new());
    let (a, b) = tokio::join!(spawn_on(db.clone(), &[]), spawn_on(db.clone(), &[]));
    for app in [&a, &b] {
        let token = app.admin_token().await;
        let users: serde_json::Value = app.get("/api/v1/users", &token).await.json().await.unwrap();
        let admins = users["items"].as_array().unwrap().iter().filter(|u| u["username"] == "admin").count();
        assert_eq!(admins, 1);
    }
}

/// Moving a technician off a site, taking away their technician role or deactivating them puts
/// the tickets they held there back into the pool at once, with the reason, for the desk to see.
#[tokio::test]
async fn a_technician_taken_off_a_site_lets_go_of_its_tickets_at_once() {
    let d = crate::tickets::desk_with(&[]).await;
    let other = d.app.create_site(&d.admin, "HB").await;
    let cases = [
        ("moved", json!({ "site_ids": [other] }), "technician_removed_from_site"),
        ("promoted", json!({ "role": "dispatcher" }), "no_longer_a_technician"),
        ("leaving", json!({ "active": false }), "technician_deactivated"),
    ];
    for (name, change, reason) in cases {
        let (tech_id, tech) = d.technician(name).await;
        let t = d.ticket().await;
        let path = format!("/api/v1/tickets/{}", t["id"].as_str().unwrap());
        assert_eq!(d.app.post(&format!("{path}/claim"), &tech, &json!({})).await.status(), 200);
        let held: Value = d.app.get(&path, &tech).await.json().await.unwrap();
        assert_eq!(held["reporter_phone"], "+8613812345678", "the holder reads the resident's phone");

        let res = d.app.patch(&format!("/api/v1/users/{tech_id}"), &d.admin, &change).await;
        assert_eq!(res.status(), 200, "{name}");

        // their access to the ticket ends at once
        let seen = d.app.get(&path, &tech).await;
        match name {
            "moved" => drop(assert_problem(seen, 404, "not_found").await),
            "leaving" => drop(assert_problem(seen, 401, "invalid_token").await),
            // now on the desk of the same site: they see it as the desk does, no longer as its holder
            _ => assert_eq!(seen.status(), 200),
        }
        if name == "moved" {
            let note = d.app.post(&format!("{path}/notes"), &tech, &json!({ "note": "还在修" })).await;
            assert_problem(note, 404, "not_found").await;
            let mine: Value = d.app.get("/api/v1/tickets", &tech).await.json().await.unwrap();
            assert_eq!(mine["items"], json!([]), "{name}: {mine}");
        }

        // the ticket is back in the pool, with the reason, and the desk is told
        let now: Value = d.app.get(&path, &d.desk).await.json().await.unwrap();
        assert_eq!(now["status"], "open", "{name}");
        assert_eq!(now["assignee_id"], Value::Null, "{name}");
        let events: Value = d.app.get(&format!("{path}/events"), &d.desk).await.json().await.unwrap();
        let unassigned: Vec<&Value> =
            events["items"].as_array().unwrap().iter().filter(|e| e["type"] == "unassigned").collect();
        assert_eq!(unassigned.len(), 1, "{name}: {events}");
        assert_eq!(unassigned[0]["data"]["reason"], reason);
        assert_eq!(unassigned[0]["data"]["previous_assignee_id"], tech_id.as_str());
        assert_eq!(unassigned[0]["to_status"], "open");
        let open: Value = d.app.get("/api/v1/escalations?open=true", &d.desk).await.json().await.unwrap();
        let kinds: Vec<&Value> = open["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ticket_id"] == t["id"])
            .map(|e| &e["kind"])
            .collect();
        assert_eq!(kinds, [&json!("technician_removed")], "{name}: {open}");
    }

    // back in the pool, each ticket's unclaimed clock runs again
    let url = repairdesk::db::DatabaseUrl::parse(&d.app.db_url).unwrap();
    let recorded = tokio::task::spawn_blocking(move || {
        let pool = repairdesk::db::connect(&url, 1).unwrap();
        let later = repairdesk::db::now() + chrono::Duration::minutes(6);
        repairdesk::jobs::clock::scan(&mut pool.get().unwrap(), &Default::default(), later).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(recorded, 3, "one unclaimed escalation per ticket");
}

/// A technician who keeps the ticket's site keeps the ticket.
#[tokio::test]
async fn a_technician_given_another_site_as_well_keeps_their_tickets() {
    let d = crate::tickets::desk_with(&[]).await;
    let other = d.app.create_site(&d.admin, "HB").await;
    let (tech_id, tech) = d.technician("tech1").await;
    let t = d.ticket().await;
    let path = format!("/api/v1/tickets/{}", t["id"].as_str().unwrap());
    assert_eq!(d.app.post(&format!("{path}/claim"), &tech, &json!({})).await.status(), 200);
    let change = json!({ "site_ids": [d.site, other], "display_name": "王师傅" });
    assert_eq!(d.app.patch(&format!("/api/v1/users/{tech_id}"), &d.admin, &change).await.status(), 200);
    let held: Value = d.app.get(&path, &tech).await.json().await.unwrap();
    assert_eq!(held["status"], "assigned");
    assert_eq!(held["assignee_id"], tech_id.as_str());
}
