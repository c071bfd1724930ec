//! The desk console over plain HTTP: what its login, cookie, CSRF tokens and headers promise.
//! What it looks like and does in a browser: `tests/console/` (scripts/console.py).

use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE};
use reqwest::{Client, Method, Response};

use crate::helpers::*;
use crate::tickets::{desk_with, ticket_body};

fn browser() -> Client {
    Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn cookie_named(res: &Response, name: &str) -> Option<String> {
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn value_of(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_owned()
}

/// The value of the first hidden `csrf` field of a page.
fn csrf_in(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("a form with a CSRF token") + r#"name="csrf" value=""#.len();
    html[at..].split('"').next().unwrap().to_owned()
}

/// Logs in through the login form; answers the login's response.
async fn form_login(app: &TestApp, username: &str, password: &str, headers: &[(&str, &str)]) -> Response {
    let client = browser();
    let page = client.get(app.url("/console/login")).send().await.unwrap();
    let login_cookie = cookie_named(&page, "rd_login_csrf").expect("the login form's cookie");
    let csrf = csrf_in(&page.text().await.unwrap());
    let mut req = client
        .post(app.url("/console/login"))
        .header("cookie", format!("rd_login_csrf={}", value_of(&login_cookie)))
        .form(&[("username", username), ("password", password), ("csrf", &csrf)]);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// A logged-in console: its session cookie.
async fn session(app: &TestApp, username: &str) -> String {
    let res = form_login(app, username, PASSWORD, &[]).await;
    assert_eq!(res.status(), 303, "the login goes to the board");
    format!("rd_console={}", value_of(&cookie_named(&res, "rd_console").expect("a session cookie")))
}

async fn get(app: &TestApp, cookie: &str, path: &str) -> Response {
    browser().get(app.url(path)).header("cookie", cookie).send().await.unwrap()
}

#[tokio::test]
async fn the_board_sends_a_stranger_to_the_login_and_every_answer_carries_the_csp() {
    let app = spawn_app().await;
    let res = browser().get(app.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()[LOCATION], "/console/login");
    let csp = res.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'self'") && csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    for path in ["/console/login", "/console/assets/htmx.min.js", "/console/assets/console.js", "/console/nothing"] {
        let res = browser().get(app.url(path)).send().await.unwrap();
        assert!(res.headers().contains_key(CONTENT_SECURITY_POLICY), "{path}");
    }
    let page = browser().get(app.url("/console/login")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(r#"data-testid="login-form""#));
    assert!(!page.contains("<script>") && !page.contains("style="), "no inline script or style");
}

#[tokio::test]
async fn a_dispatcher_gets_a_strict_http_only_cookie_secure_behind_tls() {
    let d = desk_with(&[]).await;
    let res = form_login(&d.app, "desk1", PASSWORD, &[]).await;
    assert_eq!(res.status(), 303);
    let cookie = cookie_named(&res, "rd_console").unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let res = form_login(&d.app, "desk1", PASSWORD, &[("x-forwarded-proto", "https")]).await;
    let cookie = cookie_named(&res, "rd_console").unwrap();
    assert!(cookie.contains("Secure"), "{cookie}");

    // the cookie is the console's: no API call takes it as a bearer token
    let res = d.app.get("/api/v1/me", &value_of(&cookie)).await;
    assert_problem(res, 401, "invalid_token").await;
}

#[tokio::test]
async fn a_technician_and_a_wrong_password_are_refused_and_a_forged_login_form_too() {
    let d = desk_with(&[]).await;
    d.technician("wang").await;
    let res = form_login(&d.app, "wang", PASSWORD, &[]).await;
    assert_eq!(res.status(), 403);
    assert!(cookie_named(&res, "rd_console").is_none());
    assert!(res.text().await.unwrap().contains("维修师傅请使用手机 App"));

    let res = form_login(&d.app, "desk1", "not the password", &[]).await;
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("用户名或密码错误"));

    // a login form posted from elsewhere has no cookie of ours to match
    let res = browser()
        .post(d.app.url("/console/login"))
        .form(&[("username", "desk1"), ("password", PASSWORD), ("csrf", "guessed")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(cookie_named(&res, "rd_console").is_none());
}

#[tokio::test]
async fn a_form_without_the_sessions_csrf_token_changes_nothing() {
    let d = desk_with(&[]).await;
    let ticket = d.create(&ticket_body(&d.site)).await;
    let (tech, _) = d.technician("wang").await;
    let cookie = session(&d.app, "desk1").await;
    let path = format!("/console/tickets/{}/assign", ticket["id"].as_str().unwrap());
    for csrf in ["", "0000"] {
        let res = browser()
            .post(d.app.url(&path))
            .header("cookie", &cookie)
            .form(&[("technician_id", tech.as_str()), ("csrf", csrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "csrf {csrf:?}");
    }
    let id = ticket["id"].as_str().unwrap();
    let now: serde_json::Value = d.app.get(&format!("/api/v1/tickets/{id}"), &d.desk).await.json().await.unwrap();
    assert_eq!(now["status"], "open");

    // with the page's token it goes through the same command as the API's
    let page = get(&d.app, &cookie, &format!("/console/tickets/{id}")).await.text().await.unwrap();
    let res = browser()
        .post(d.app.url(&path))
        .header("cookie", &cookie)
        .form(&[("technician_id", tech.as_str()), ("csrf", &csrf_in(&page))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let now: serde_json::Value = d.app.get(&format!("/api/v1/tickets/{id}"), &d.desk).await.json().await.unwrap();
    assert_eq!((now["status"].as_str(), now["assignee_id"].as_str()), (Some("assigned"), Some(tech.as_str())));
}

#[tokio::test]
async fn logging_out_ends_the_session_the_cookie_names() {
    let d = desk_with(&[]).await;
    let cookie = session(&d.app, "desk1").await;
    let board = get(&d.app, &cookie, "/").await;
    assert_eq!(board.status(), 200);
    let csrf = csrf_in(&board.text().await.unwrap());
    let res = browser()
        .post(d.app.url("/console/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    // the old cookie, kept by someone, no longer opens anything
    let res = get(&d.app, &cookie, "/").await;
    assert_eq!((res.status().as_u16(), res.headers()[LOCATION].to_str().unwrap()), (303, "/console/login"));
}

#[tokio::test]
async fn the_board_lists_the_sites_live_tickets_with_their_clocks_and_a_bad_phone_is_named() {
    let d = desk_with(&[]).await;
    let ticket = d.create(&ticket_body(&d.site)).await;
    let cookie = session(&d.app, "desk1").await;
    let board = get(&d.app, &cookie, "/").await.text().await.unwrap();
    let number = ticket["number"].as_str().unwrap();
    assert!(board.contains(&format!(r#"data-testid="ticket-card" data-number="{number}" data-status="open""#)));
    assert!(board.contains(r#"data-clock="green""#), "a new ticket's claim clock has just started");

    let csrf = csrf_in(&board);
    let mut form = vec![("csrf", csrf.as_str()), ("site_id", d.site.as_str()), ("reporter_phone", "12345")];
    form.extend([("area", "in_home"), ("location", "5栋101"), ("category", "water"), ("urgency", "normal")]);
    form.extend([("reporter_name", "张先生"), ("description", "漏水"), ("channel", "phone")]);
    let res = browser()
        .post(d.app.url("/console/tickets"))
        .header("cookie", &cookie)
        .header("hx-request", "true")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "htmx swaps the form with its errors");
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"data-testid="field-error" data-field="reporter_phone""#), "{html}");
    assert_eq!(html.matches(r#"data-testid="field-error""#).count(), 1);
    let listed: serde_json::Value = d.app.get("/api/v1/tickets", &d.desk).await.json().await.unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "nothing was registered");
}

/// The console's routes are its own: outside `/api/v1` and outside the OpenAPI document, and
/// each one served (a stranger is sent to the login or refused, never told "no such route").
#[tokio::test]
async fn the_consoles_routes_are_served_and_are_no_part_of_the_api() {
    let app = spawn_app().await;
    let spec: serde_json::Value = serde_json::from_str(repairdesk::routes::openapi::spec_json()).unwrap();
    for (method, template) in repairdesk::console::ROUTES {
        assert!(!template.starts_with("/api/"), "{template}");
        assert!(spec["paths"].get(*template).is_none(), "{template} is in the API's spec");
        let path = template.replace("{id}", "x").replace("{action}", "assign").replace("{lang}", "en");
        let path = path.replace("{name}", "console.js");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = browser().request(method.clone(), app.url(&path));
        if method == Method::POST {
            req = req.form(&[("csrf", "")]);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        assert!([200, 303, 403].contains(&status), "{method} {path}: {status}");
        assert!(res.headers().contains_key(CONTENT_SECURITY_POLICY), "{method} {path}");
    }
}

/// The edit form sends what it shows: a field left as shown is no change (the appointment shown to
/// the minute included), a changed one goes through the same command as `PATCH /tickets/{id}`.
#[tokio::test]
async fn the_edit_form_changes_only_what_was_changed_and_a_stale_version_is_refused() {
    let d = desk_with(&[]).await;
    let mut body = ticket_body(&d.site);
    let at = chrono::Utc::now() + chrono::Duration::hours(3) + chrono::Duration::seconds(17);
    body["appointment_at"] = serde_json::json!(at.to_rfc3339());
    let ticket = d.create(&body).await;
    let id = ticket["id"].as_str().unwrap();
    let cookie = session(&d.app, "desk1").await;
    let page = get(&d.app, &cookie, &format!("/console/tickets/{id}")).await.text().await.unwrap();
    let shown = at.with_timezone(&chrono_tz::Asia::Shanghai).format("%Y-%m-%dT%H:%M").to_string();
    assert!(page.contains(&shown), "the appointment in the site's zone");
    let csrf = csrf_in(&page);
    let send = |version: &'static str, location: &'static str| {
        let form = [
            ("csrf", csrf.clone()),
            ("version", version.to_owned()),
            ("location", location.to_owned()),
            ("reporter_name", "王女士".to_owned()),
            ("reporter_phone", "+8613812345678".to_owned()),
            ("category", "water".to_owned()),
            ("urgency", "normal".to_owned()),
            ("appointment_at", shown.clone()),
            ("description", "厨房水管漏水".to_owned()),
        ];
        browser()
            .post(d.app.url(&format!("/console/tickets/{id}/edit")))
            .header("cookie", &cookie)
            .header("hx-request", "true")
            .form(&form)
            .send()
    };
    let html = send("1", "3栋2单元1202").await.unwrap().text().await.unwrap();
    assert!(!html.contains(r#"data-testid="form-error""#), "{html}");
    let now: serde_json::Value = d.app.get(&format!("/api/v1/tickets/{id}"), &d.desk).await.json().await.unwrap();
    assert_eq!(now["location"], "3栋2单元1202");
    assert_eq!(now["version"], 2);
    let events: serde_json::Value =
        d.app.get(&format!("/api/v1/tickets/{id}/events"), &d.desk).await.json().await.unwrap();
    let edited = events["items"].as_array().unwrap().iter().find(|e| e["type"] == "edited").unwrap().clone();
    let changed: Vec<&String> = edited["data"]["changes"].as_object().unwrap().keys().collect();
    assert_eq!(changed, ["location"], "only the place changed");

    // the same form again, from the page before: the version it saw is stale
    let html = send("1", "3栋2单元1203").await.unwrap().text().await.unwrap();
    assert!(html.contains(r#"data-testid="form-error""#), "{html}");
    let now: serde_json::Value = d.app.get(&format!("/api/v1/tickets/{id}"), &d.desk).await.json().await.unwrap();
    assert_eq!(now["location"], "3栋2单元1202");
}

/// The monthly report's page: the figures of `GET /reports/monthly` as tables with SVG charts,
/// and the same report's files downloaded with the console's session; the desk of another site
/// and a member who is no longer of the desk get neither.
#[tokio::test]
async fn the_report_page_draws_the_month_and_hands_out_its_files_to_the_sites_desk_only() {
    let d = desk_with(&[]).await;
    d.create(&ticket_body(&d.site)).await;
    let cookie = session(&d.app, "desk1").await;
    let month = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai).format("%Y-%m").to_string();

    let res = get(&d.app, &cookie, "/console/reports").await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"data-testid="report""#), "{html}");
    assert!(html.contains(&format!(r#"data-month="{month}""#)), "the site's current month by default");
    for chart in ["targets", "by_trade", "by_channel"] {
        assert!(html.contains(&format!(r#"data-chart="{chart}""#)), "{chart}");
    }
    assert!(html.contains(r#"data-label="水" data-value="1""#), "one water ticket this month: {html}");
    assert!(html.contains("工单量") && html.contains("及时率"), "the tables' headers in Chinese");
    assert!(!html.contains("style=") && !html.contains("<script>"), "nothing the CSP refuses");

    let download = |format: &'static str, cookie: String| {
        let path = format!("/console/reports/download?site={}&month={month}&format={format}", d.site);
        let app = &d.app;
        async move { get(app, &cookie, &path).await }
    };
    for (format, content_type) in [("xlsx", repairdesk::commands::XLSX), ("csv", repairdesk::commands::ZIP)] {
        let res = download(format, cookie.clone()).await;
        assert_eq!(res.status(), 200, "{format}");
        assert_eq!(res.headers()["content-type"], content_type);
        let disposition = res.headers()["content-disposition"].to_str().unwrap().to_owned();
        assert!(disposition.contains(&format!("repairdesk-report-{month}.")), "{disposition}");
        let bytes = res.bytes().await.unwrap();
        assert!(bytes.starts_with(b"PK"), "{format}: a ZIP container");
    }

    // a month that is no month, and a format it does not make, are named
    let res = get(&d.app, &cookie, &format!("/console/reports?site={}&month=2026-13", d.site)).await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains(r#"data-field="month""#));
    let res =
        get(&d.app, &cookie, &format!("/console/reports/download?site={}&month={month}&format=pdf", d.site)).await;
    assert_eq!(res.status(), 422);

    // the desk of another site sees neither its page nor its files
    let other = d.app.create_site(&d.admin, "LY").await;
    d.app.user_token(&d.admin, "desk2", "dispatcher", &[&other], &[]).await;
    let stranger = session(&d.app, "desk2").await;
    let res = get(&d.app, &stranger, &format!("/console/reports?site={}", d.site)).await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"data-field="site_id""#) && !html.contains("data-chart"), "{html}");
    let res = download("xlsx", stranger).await;
    assert_eq!(res.status(), 422);
    assert!(!res.bytes().await.unwrap().starts_with(b"PK"));

    // nor does someone who is no longer of the desk, nor a stranger
    let desk1 = d.app.get("/api/v1/me", &d.desk).await.json::<serde_json::Value>().await.unwrap();
    let path = format!("/api/v1/users/{}", desk1["id"].as_str().unwrap());
    let res = d.app.patch(&path, &d.admin, &serde_json::json!({ "role": "technician", "trades": ["water"] })).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let res = download("xlsx", cookie.clone()).await;
    assert!([303, 403].contains(&res.status().as_u16()), "{}", res.status());
    assert!(!res.bytes().await.unwrap().starts_with(b"PK"));
    let res = download("csv", String::new()).await;
    assert_eq!((res.status().as_u16(), res.headers()[LOCATION].to_str().unwrap()), (303, "/console/login"));
}

/// Reads a console event stream until a `change` frame holds `needle` (2 s at most: the
/// console's promise); panics otherwise.
async fn console_change(res: Response, needle: &str) -> String {
    use futures_util::StreamExt;
    let mut stream = res.bytes_stream();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        if let Some(frame) = text.split("\n\n").find(|f| f.starts_with("event: change") && f.contains(needle)) {
            return frame.to_owned();
        }
        let chunk = tokio::time::timeout_at(deadline, stream.next()).await;
        let chunk = chunk.unwrap_or_else(|_| panic!("no change holding {needle} within 2 s: {text}"));
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap()));
    }
}

/// An escalation taken by one dispatcher is an event of its ticket: the other dispatchers'
/// consoles hear of it through their event stream (their boards drop its button at once, not at
/// the half-minute tick), and the ticket's history says who took it and what they noted.
#[tokio::test]
async fn an_acknowledged_escalation_reaches_the_other_dispatchers_boards_at_once() {
    let d = desk_with(&[]).await;
    let ticket = d.create(&ticket_body(&d.site)).await;
    let id = ticket["id"].as_str().unwrap();
    assert_eq!(d.app.scan_at(repairdesk::db::now() + chrono::Duration::minutes(6)).await, 1);
    let listed: serde_json::Value = d.app.get("/api/v1/escalations", &d.desk).await.json().await.unwrap();
    let eid = listed["items"][0]["id"].as_str().unwrap().to_owned();

    d.app.user_token(&d.admin, "desk2", "dispatcher", &[&d.site], &[]).await;
    let other = session(&d.app, "desk2").await;
    let stream = get(&d.app, &other, "/console/events").await;
    assert_eq!(stream.status(), 200);
    let board = get(&d.app, &other, "/").await.text().await.unwrap();
    assert!(
        board.contains(&format!(r#"data-testid="escalation" data-id="{eid}""#))
            && board.contains(r#"data-testid="ack""#)
    );

    let res =
        d.app.post(&format!("/api/v1/escalations/{eid}/ack"), &d.desk, &serde_json::json!({ "note": "已联系" })).await;
    assert_eq!(res.status(), 200);
    let frame = console_change(stream, "escalation_acknowledged").await;
    assert!(frame.contains(id), "{frame}");
    let board = get(&d.app, &other, "/").await.text().await.unwrap();
    assert!(!board.contains(r#"data-testid="ack""#), "the button is gone from the other board");

    let events: serde_json::Value =
        d.app.get(&format!("/api/v1/tickets/{id}/events"), &d.desk).await.json().await.unwrap();
    let taken = events["items"].as_array().unwrap().iter().find(|e| e["type"] == "escalation_acknowledged");
    let taken = taken.expect("the acknowledgement is in the ticket's history");
    assert_eq!(
        (taken["data"]["escalation_id"].as_str(), taken["data"]["note"].as_str()),
        (Some(eid.as_str()), Some("已联系"))
    );
    assert_eq!(taken["data"]["kind"], "unclaimed");

    // taken twice: refused, and the history holds it once
    let again = d.app.post(&format!("/api/v1/escalations/{eid}/ack"), &d.admin, &serde_json::json!({})).await;
    assert_eq!(again.status(), 409);
    let events: serde_json::Value =
        d.app.get(&format!("/api/v1/tickets/{id}/events"), &d.desk).await.json().await.unwrap();
    let count = events["items"].as_array().unwrap().iter().filter(|e| e["type"] == "escalation_acknowledged").count();
    assert_eq!(count, 1);
}

/// The matters page registers a matter through the same command as `POST /matters`, every bad
/// field named by it in Chinese, and calls the reporter back once the department replied.
#[tokio::test]
async fn a_matter_is_registered_and_called_back_from_the_matters_page() {
    let d = desk_with(&[]).await;
    let cookie = session(&d.app, "desk1").await;
    let page = get(&d.app, &cookie, "/console/matters").await.text().await.unwrap();
    let csrf = csrf_in(&page);
    let post = |path: &str, form: Vec<(&'static str, String)>| {
        let mut form = form;
        form.push(("csrf", csrf.clone()));
        browser().post(d.app.url(path)).header("cookie", &cookie).header("hx-request", "true").form(&form).send()
    };
    let mut form = vec![("site_id", d.site.clone()), ("kind", "complaint".into()), ("department", "cleaning".into())];
    form.extend([("channel", "phone".into()), ("reporter_name", "刘女士".into()), ("reporter_phone", "123".into())]);
    let html = post("/console/matters", form.clone()).await.unwrap().text().await.unwrap();
    assert!(html.contains(r#"data-testid="field-error" data-field="reporter_phone""#), "{html}");
    assert!(html.contains(r#"data-testid="field-error" data-field="description""#), "{html}");
    assert!(html.contains("手机号") && html.contains("必填"), "{html}");
    let listed: serde_json::Value = d.app.get("/api/v1/matters", &d.desk).await.json().await.unwrap();
    assert_eq!(listed["items"], serde_json::json!([]), "nothing was registered");

    form.retain(|(k, _)| *k != "reporter_phone");
    form.push(("description", "楼道垃圾未清".into()));
    let html = post("/console/matters", form).await.unwrap().text().await.unwrap();
    assert!(!html.contains(r#"data-testid="field-error""#), "{html}");
    let listed: serde_json::Value = d.app.get("/api/v1/matters", &d.desk).await.json().await.unwrap();
    let matter = &listed["items"][0];
    assert_eq!((matter["status"].as_str(), matter["description"].as_str()), (Some("open"), Some("楼道垃圾未清")));
    let id = matter["id"].as_str().unwrap().to_owned();
    assert!(!html.contains("matter-reply-form"), "a dispatcher does not answer for a department");

    let reply =
        d.app.post(&format!("/api/v1/matters/{id}/reply"), &d.admin, &serde_json::json!({ "reply": "已清理" })).await;
    assert_eq!(reply.status(), 200);
    let callback = format!("/console/matters/{id}/callback");
    // a rating from someone not reached is refused by the field
    let html = post(&callback, vec![("reached", "false".into()), ("satisfaction", "5".into())]).await.unwrap();
    let html = html.text().await.unwrap();
    assert!(html.contains(r#"data-testid="field-error" data-field="satisfaction""#), "{html}");
    let html = post(&callback, vec![("reached", "true".into()), ("satisfaction", "4".into())]).await.unwrap();
    assert!(html.text().await.unwrap().contains(r#"data-status="closed""#));
    let now: serde_json::Value = d.app.get(&format!("/api/v1/matters/{id}"), &d.desk).await.json().await.unwrap();
    assert_eq!(now["status"], "closed");
}
