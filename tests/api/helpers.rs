//! `spawn_app()`: a real server on a free port with a database of its own.
//!
//! `TEST_DATABASE_URL=postgres://...` runs on PostgreSQL (a fresh database per test, dropped
//! afterwards); unset, each test gets its own SQLite file in a temporary folder.
//!
//! The server's dispatch clock and SMS outbox do not run on their timers: a test runs a round of
//! either when it wants, at the time it wants ([`TestApp::deliver_sms`], [`TestApp::deliver_push`],
//! [`TestApp::scan_at`]).
//! [`spawn_quiet_app`] stops the change feed's polling too, so the database sees only the test's
//! requests ([`TestApp::statements`]).

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::{Connection, PgConnection, RunQueryDsl};
use repairdesk::config::Settings;
use repairdesk::db::Statements;
use repairdesk::jobs::Jobs;
use repairdesk::startup::{Application, StopHandle, Timers};
use reqwest::{Client, Method, Response};
use serde_json::{json, Value};

pub const ADMIN_PASSWORD: &str = "admin-password-1";
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";
pub const PASSWORD: &str = "password-123";

/// The test's database; dropping it removes it.
pub enum TestDb {
    Sqlite(#[allow(dead_code)] tempfile::TempDir, String),
    Postgres { server_url: String, name: String },
}

#[allow(clippy::new_without_default)]
impl TestDb {
    pub fn new() -> Self {
        match std::env::var("TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) {
            Some(server_url) => {
                let name = format!("rd_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = PgConnection::establish(&server_url).expect("connect to TEST_DATABASE_URL");
                diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn).expect("create test db");
                TestDb::Postgres { server_url, name }
            }
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                TestDb::Sqlite(dir, url)
            }
        }
    }

    pub fn url(&self) -> String {
        match self {
            TestDb::Sqlite(_, url) => url.clone(),
            TestDb::Postgres { server_url, name } => {
                let base = server_url.split('?').next().unwrap_or(server_url);
                let base = base.rsplit_once('/').map(|(b, _)| b).unwrap_or(base);
                format!("{base}/{name}")
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { server_url, name } = self {
            if let Ok(mut conn) = PgConnection::establish(server_url) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn);
            }
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub client: Client,
    pub db_url: String,
    /// The server's clock and outbox, run by hand.
    pub jobs: Jobs,
    /// The statements the server's pool has run.
    pub statements: Statements,
    handle: StopHandle,
    // held so the database outlives the server; shared by a second instance
    #[allow(dead_code)]
    pub db: std::sync::Arc<TestDb>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // sends the stop command at once; the returned future only waits for completion
        drop(self.handle.stop(false));
    }
}

pub fn base_settings(db_url: &str, extra: &[(&str, &str)]) -> Settings {
    let mut vars: HashMap<String, String> = [
        ("DATABASE_URL", db_url),
        ("REPAIRDESK_ADDR", "127.0.0.1:0"),
        ("REPAIRDESK_JWT_SECRET", JWT_SECRET),
        ("REPAIRDESK_ADMIN_PASSWORD", ADMIN_PASSWORD),
        ("REPAIRDESK_WORKERS", "2"),
        ("REPAIRDESK_DB_POOL_SIZE", "8"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    Settings::from_lookup(|k| vars.get(k).cloned()).expect("test settings are valid")
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// A server with extra settings (names as in the environment).
pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    spawn_on(std::sync::Arc::new(TestDb::new()), extra).await
}

/// Another server on the same database, as a second instance behind a load balancer.
pub async fn spawn_on(db: std::sync::Arc<TestDb>, extra: &[(&str, &str)]) -> TestApp {
    spawn_with_timers(db, extra, Timers::Off).await
}

/// A server whose change feed does not poll: nothing but the test's requests (and the rounds it
/// runs) touches the database, so [`TestApp::statements`] counts exactly those. Its event streams
/// hear of nothing.
pub async fn spawn_quiet_app() -> TestApp {
    spawn_with_timers(std::sync::Arc::new(TestDb::new()), &[], Timers::Quiet).await
}

async fn spawn_with_timers(db: std::sync::Arc<TestDb>, extra: &[(&str, &str)], timers: Timers) -> TestApp {
    let db_url = db.url();
    let app = Application::build_with(base_settings(&db_url, extra), timers).await.expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let (handle, jobs, statements) = (app.handle(), app.jobs().clone(), app.statements().clone());
    tokio::spawn(app.run_until_stopped());
    TestApp { address, client: Client::new(), db_url, jobs, statements, handle, db }
}

impl TestApp {
    /// One round of the SMS outbox at `now`, as the server's timer runs it: each message due then
    /// is handed to the gateway once. How many were.
    pub async fn deliver_sms_at(&self, now: NaiveDateTime) -> usize {
        self.jobs.deliver_sms(now).await.expect("a delivery round")
    }

    /// One round of the SMS outbox now.
    pub async fn deliver_sms(&self) -> usize {
        self.deliver_sms_at(repairdesk::db::now()).await
    }

    /// One round of the push outbox at `now`, as the server's timer runs it: each message due
    /// then is handed to its device's push service once. How many were.
    pub async fn deliver_push_at(&self, now: NaiveDateTime) -> usize {
        self.jobs.deliver_push(now).await.expect("a push delivery round")
    }

    /// One round of the push outbox now.
    pub async fn deliver_push(&self) -> usize {
        self.deliver_push_at(repairdesk::db::now()).await
    }

    /// One pass of the dispatch clock at `now`; how many escalations it recorded.
    pub async fn scan_at(&self, now: NaiveDateTime) -> usize {
        self.jobs.scan(now).await.expect("a clock scan")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn request(&self, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> Response {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        req.send().await.expect("request is sent")
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Response {
        self.request(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.request(Method::DELETE, path, Some(token), None).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: &Value) -> Response {
        self.request(Method::PATCH, path, Some(token), Some(body)).await
    }

    pub async fn login_response(&self, username: &str, password: &str) -> Response {
        self.request(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(&json!({ "username": username, "password": password })),
        )
        .await
    }

    /// Logs in and returns the token response.
    pub async fn login(&self, username: &str, password: &str) -> Value {
        let res = self.login_response(username, password).await;
        assert_eq!(res.status(), 200, "login of {username}");
        res.json().await.unwrap()
    }

    pub async fn admin_token(&self) -> String {
        token(&self.login("admin", ADMIN_PASSWORD).await)
    }

    pub async fn create_site(&self, admin: &str, code: &str) -> String {
        let res = self
            .post(
                "/api/v1/sites",
                admin,
                &json!({ "code": code, "name": format!("{code} 管理处"), "timezone": "Asia/Shanghai" }),
            )
            .await;
        assert_eq!(res.status(), 201);
        res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
    }

    /// Creates a user with [`PASSWORD`] and returns it.
    pub async fn create_user(
        &self,
        admin: &str,
        username: &str,
        role: &str,
        site_ids: &[&str],
        trades: &[&str],
    ) -> Value {
        let res = self
            .post(
                "/api/v1/users",
                admin,
                &json!({
                    "username": username, "password": PASSWORD, "display_name": username,
                    "role": role, "site_ids": site_ids, "trades": trades,
                }),
            )
            .await;
        assert_eq!(res.status(), 201, "create {username}");
        res.json().await.unwrap()
    }

    /// Creates a user and logs them in; returns (user id, access token).
    pub async fn user_token(
        &self,
        admin: &str,
        username: &str,
        role: &str,
        site_ids: &[&str],
        trades: &[&str],
    ) -> (String, String) {
        let user = self.create_user(admin, username, role, site_ids, trades).await;
        let tokens = self.login(username, PASSWORD).await;
        (user["id"].as_str().unwrap().to_owned(), token(&tokens))
    }
}

pub fn token(tokens: &Value) -> String {
    tokens["access_token"].as_str().expect("access_token").to_owned()
}

/// The answer's body as JSON.
pub async fn json_of(res: Response) -> Value {
    res.json().await.unwrap()
}

/// Asserts a problem+json answer with `status` and `code`, and returns its body.
pub async fn assert_problem(res: Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status(), status, "status for expected {code}");
    let content_type = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string() && body["detail"].is_string() && body["type"].is_string());
    body
}

/// Reads a `/sync/stream` answer until a `changed` event names `ticket_id` (3 s at most), and
/// returns that event's id.
pub async fn changed_event_id(res: Response, ticket_id: &str) -> String {
    use futures_util::StreamExt;
    let mut stream = res.bytes_stream();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        if let Some(event) = text.split("\n\n").find(|e| e.contains("event: changed") && e.contains(ticket_id)) {
            let id = event.lines().find_map(|l| l.strip_prefix("id: ")).expect("an event id");
            return id.to_owned();
        }
        let chunk = tokio::time::timeout_at(deadline, stream.next()).await.expect("a changed event within 3 s");
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap()));
    }
}
