//! How many statements a few requests run against the database, on each engine. A change that
//! adds one fails here; so does one that removes one, until [`EXPECTED`] says so. The table is
//! also in `docs/performance.md` (`UPDATE_DOCS=1 cargo test --test api statements` rewrites it).
//! `-- --nocapture` prints each request's statements.

use std::future::Future;

use repairdesk::db::statements::Counts;
use repairdesk::db::Statements;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::sync::op;
use crate::tickets::{ticket_body, Desk};

/// One request's statements per engine: (besides transaction control, transaction control).
struct Expected {
    request: &'static str,
    case: &'static str,
    sqlite: (u64, u64),
    postgres: (u64, u64),
}

const fn row(request: &'static str, case: &'static str, sqlite: (u64, u64), postgres: (u64, u64)) -> Expected {
    Expected { request, case, sqlite, postgres }
}

const IN_HOME: &str = "in-home";
const PUBLIC: &str = "public area";
const PUSH: &str = "50 ops on a checked-in ticket: 25 add_material, 25 add_note";
const FIRST_PULL: &str = "the desk's first page (3 tickets)";
const NEXT_PULL: &str = "the desk's, from a cursor, one ticket changed";
const ESCALATIONS: &str = "the desk's, 2 escalations with their tickets (and the matters', none)";
const ONE: &str = "one escalation";
const HANDOVER: &str = "a site with 4 unfinished tickets";
const HANDOVERS: &str = "the desk's, 1 handover of 4 tickets";

/// Today's counts. A change that makes a request run more statements fails here; one that makes
/// it run fewer updates its row.
const EXPECTED: &[Expected] = &[
    row("POST /tickets", IN_HOME, (12, 2), (12, 2)),
    row("POST /tickets/{id}/claim", IN_HOME, (7, 2), (5, 2)),
    row("POST /tickets/{id}/arrive", IN_HOME, (9, 2), (9, 2)),
    row("POST /tickets/{id}/materials", IN_HOME, (6, 2), (6, 2)),
    row("POST /tickets/{id}/complete", IN_HOME, (9, 2), (9, 2)),
    row("POST /tickets", PUBLIC, (7, 2), (7, 2)),
    row("POST /tickets/{id}/claim", PUBLIC, (6, 2), (4, 2)),
    row("POST /tickets/{id}/arrive", PUBLIC, (6, 2), (6, 2)),
    row("POST /tickets/{id}/materials", PUBLIC, (6, 2), (6, 2)),
    row("POST /tickets/{id}/complete", PUBLIC, (7, 2), (7, 2)),
    row("POST /sync/push", PUSH, (14, 4), (15, 4)),
    row("POST /sync/pull", FIRST_PULL, (14, 2), (14, 2)),
    row("POST /sync/pull", NEXT_PULL, (15, 2), (15, 2)),
    row("GET /escalations", ESCALATIONS, (3, 0), (3, 0)),
    row("POST /escalations/{id}/ack", ONE, (6, 2), (6, 2)),
    row("POST /handovers", HANDOVER, (11, 4), (8, 2)),
    row("GET /handovers", HANDOVERS, (4, 0), (4, 0)),
];

/// What one request ran.
struct Ran {
    request: &'static str,
    case: &'static str,
    counts: Counts,
    sql: Vec<String>,
}

/// Sends requests one at a time and keeps what the server's pool ran for each.
struct Measured {
    statements: Statements,
    ran: Vec<Ran>,
}

impl Measured {
    /// Sends one request and checks its answer's status. The server is quiet
    /// ([`spawn_quiet_app`]) and nothing else is in flight, so what its pool runs meanwhile is all
    /// the request's own work.
    async fn request<F>(&mut self, request: &'static str, case: &'static str, status: u16, send: F) -> Value
    where
        F: Future<Output = reqwest::Response>,
    {
        let statements = &self.statements;
        statements.take_recorded();
        statements.record(true);
        let before = statements.counts();
        let res = send.await;
        let counts = statements.counts() - before;
        statements.record(false);
        let sql = statements.take_recorded();
        assert_eq!(res.status(), status, "{request} ({case})");
        self.ran.push(Ran { request, case, counts, sql });
        res.json().await.unwrap()
    }
}

fn material() -> Value {
    json!({ "id": uuid::Uuid::new_v4(), "name": "角阀", "spec": "DN15", "quantity": "2", "unit": "个",
            "unit_price_cents": 1500, "supplied_by": "company" })
}

fn public_ticket(site: &str) -> Value {
    let mut body = ticket_body(site);
    body["area"] = json!("public");
    body["location"] = json!("2栋电梯厅");
    body
}

/// The arrival code texted for the ticket, read from the outbox (which the quiet server never runs).
fn arrival_code(app: &TestApp, ticket_id: &str) -> String {
    let mut conn = app.jobs.pool.get().unwrap();
    let rows = repairdesk::db::outbox::for_tickets(&mut conn, &[ticket_id.to_owned()]).unwrap();
    let params: Value = serde_json::from_str(&rows.last().expect("the code's message").params).unwrap();
    params["code"].as_str().unwrap().to_owned()
}

/// A job as a phone does it, each request measured: the desk registers a ticket, the technician
/// claims it, checks in (with the resident's code in a home), records a material line, completes.
async fn job(m: &mut Measured, d: &Desk, tech: &str, case: &'static str) {
    let body = if case == IN_HOME { ticket_body(&d.site) } else { public_ticket(&d.site) };
    let t = m.request("POST /tickets", case, 201, d.app.post("/api/v1/tickets", &d.desk, &body)).await;
    let id = t["id"].as_str().unwrap();
    let path = |action: &str| format!("/api/v1/tickets/{id}/{action}");
    m.request("POST /tickets/{id}/claim", case, 200, d.app.post(&path("claim"), tech, &json!({}))).await;
    let arrival = if case == IN_HOME { json!({ "code": arrival_code(&d.app, id) }) } else { json!({}) };
    let arrived = m.request("POST /tickets/{id}/arrive", case, 200, d.app.post(&path("arrive"), tech, &arrival)).await;
    assert_eq!(arrived["status"], "on_site");
    m.request("POST /tickets/{id}/materials", case, 201, d.app.post(&path("materials"), tech, &material())).await;
    let done = json!({ "result": "更换角阀" });
    m.request("POST /tickets/{id}/complete", case, 200, d.app.post(&path("complete"), tech, &done)).await;
}

/// Every request of [`EXPECTED`], each on a ticket (or a view) in the state it needs; and the engine.
async fn measure_every_request() -> (Vec<Ran>, &'static str) {
    let app = spawn_quiet_app().await;
    let engine = if app.db_url.starts_with("postgres") { "PostgreSQL" } else { "SQLite" };
    let admin = app.admin_token().await;
    let site = app.create_site(&admin, "GY").await;
    let (_, desk) = app.user_token(&admin, "desk1", "dispatcher", &[&site], &[]).await;
    let d = Desk { app, admin, site, desk };
    let (_, tech) = d.technician("tech1").await;
    let mut m = Measured { statements: d.app.statements.clone(), ran: Vec::new() };
    job(&mut m, &d, &tech, IN_HOME).await;
    job(&mut m, &d, &tech, PUBLIC).await;

    // as the benchmark pushes: alternating lines and notes, from a new phone
    let t = d.create(&public_ticket(&d.site)).await;
    let id = t["id"].as_str().unwrap();
    for step in ["claim", "arrive"] {
        assert_eq!(d.app.post(&format!("/api/v1/tickets/{id}/{step}"), &tech, &json!({})).await.status(), 200);
    }
    let ops: Vec<Value> = (1..=50)
        .map(|i| match i % 2 {
            1 => op(i, "add_material", id, material()),
            _ => op(i, "add_note", id, json!({ "id": uuid::Uuid::new_v4(), "note": format!("第{i}步：已处理") })),
        })
        .collect();
    let body = json!({ "client_id": uuid::Uuid::new_v4(), "schema_version": 1, "ops": ops });
    let pushed = m.request("POST /sync/push", PUSH, 200, d.app.post("/api/v1/sync/push", &tech, &body)).await;
    let results = pushed["results"].as_array().unwrap();
    assert!(results.len() == 50 && results.iter().all(|r| r["status"] == "applied"), "{pushed}");

    let client = uuid::Uuid::new_v4();
    let first = json!({ "client_id": client, "cursor": null });
    let page = m.request("POST /sync/pull", FIRST_PULL, 200, d.app.post("/api/v1/sync/pull", &d.desk, &first)).await;
    assert_eq!(page["tickets"].as_array().unwrap().len(), 3);
    let note = json!({ "note": "业主不在家，改约明天" });
    assert_eq!(d.app.post(&format!("/api/v1/tickets/{id}/notes"), &tech, &note).await.status(), 201);
    let next = json!({ "client_id": client, "cursor": page["cursor"] });
    let changed = m.request("POST /sync/pull", NEXT_PULL, 200, d.app.post("/api/v1/sync/pull", &d.desk, &next)).await;
    assert_eq!(changed["tickets"].as_array().unwrap().len(), 1, "{changed}");

    // the desk's day: two tickets left unclaimed past the claim timeout
    d.ticket().await;
    d.create(&public_ticket(&d.site)).await;
    assert_eq!(d.app.scan_at(repairdesk::db::now() + chrono::Duration::minutes(6)).await, 2);
    let list = m.request("GET /escalations", ESCALATIONS, 200, d.app.get("/api/v1/escalations", &d.desk)).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
    let ack = format!("/api/v1/escalations/{}/ack", list["items"][0]["id"].as_str().unwrap());
    m.request("POST /escalations/{id}/ack", ONE, 200, d.app.post(&ack, &d.desk, &json!({ "note": "已联系" }))).await;
    let body = json!({ "site_id": d.site, "shift": "day" });
    let h = m.request("POST /handovers", HANDOVER, 201, d.app.post("/api/v1/handovers", &d.desk, &body)).await;
    assert_eq!(h["tickets"].as_array().unwrap().len(), 4, "{h}");
    m.request("GET /handovers", HANDOVERS, 200, d.app.get("/api/v1/handovers", &d.desk)).await;
    (m.ran, engine)
}

/// The statements as lines to read: long column and value lists cut, runs of the same statement
/// counted.
fn listing(sql: &[String]) -> String {
    let short = |s: &str| -> String {
        let mut s = s.to_owned();
        if let (Some(0), Some(from)) = (s.find("SELECT "), s.find(" FROM ")) {
            if from > 60 {
                s.replace_range(7..from, "…");
            }
        }
        if let Some(at) = s.find(" RETURNING ").filter(|at| s.len() - at > 60) {
            s.replace_range(at + 11.., "…");
        }
        if let (Some(open), Some(values)) = (s.find(" ("), s.find(") VALUES (")) {
            if s.starts_with("INSERT") && open < values {
                s.replace_range(open + 2..values, "…");
                let v = s.find(") VALUES (").unwrap() + 9;
                let tail = [" ON CONFLICT", " RETURNING"].iter().filter_map(|t| s[v..].find(t)).min();
                let end = v + tail.unwrap_or(s.len() - v);
                let rows = s[v..end].matches("), (").count() + 1;
                let values = if rows == 1 { "(…)".to_owned() } else { format!("(…) × {rows} rows") };
                s.replace_range(v..end, &values);
            }
        }
        s
    };
    let mut lines: Vec<(String, usize)> = Vec::new();
    for line in sql.iter().map(|s| short(s)) {
        match lines.last_mut() {
            Some((last, n)) if *last == line => *n += 1,
            _ => lines.push((line, 1)),
        }
    }
    lines
        .iter()
        .map(|(line, n)| if *n == 1 { format!("    {line}\n") } else { format!("    {line}  (×{n})\n") })
        .collect()
}

#[tokio::test]
async fn each_request_runs_the_statements_in_the_table() {
    let (ran, engine) = measure_every_request().await;
    let mut wrong = Vec::new();
    for r in &ran {
        let got = (r.counts.other, r.counts.transaction_control);
        let row = EXPECTED.iter().find(|e| (e.request, e.case) == (r.request, r.case)).expect("a row for each");
        let expected = if engine == "SQLite" { row.sqlite } else { row.postgres };
        println!("{} ({}): {} + {} on {engine}\n{}", r.request, r.case, got.0, got.1, listing(&r.sql));
        if got != expected {
            let change = if got.0 + got.1 > expected.0 + expected.1 { "more" } else { "fewer" };
            wrong.push(format!(
                "{} ({}) on {engine} runs {} statements and {} of transaction control, the table says {} and {} \
                 ({change}): if that is meant, update its row in EXPECTED (tests/api/statements.rs) and run \
                 `UPDATE_DOCS=1 cargo test --test api statements`. It ran:\n{}",
                r.request,
                r.case,
                got.0,
                got.1,
                expected.0,
                expected.1,
                listing(&r.sql)
            ));
        }
    }
    assert_eq!(ran.len(), EXPECTED.len(), "every row of the table is measured");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/performance.md");
const BEGIN: &str = "<!-- statements per request: generated from tests/api/statements.rs -->\n";
const END: &str = "<!-- end of statements per request -->\n";

/// [`EXPECTED`] as the table `docs/performance.md` shows.
fn table_markdown() -> String {
    let mut out = String::from(
        "| request | case | SQLite | SQLite: transaction control | PostgreSQL | PostgreSQL: transaction control |\n\
         | --- | --- | ---: | ---: | ---: | ---: |\n",
    );
    for r in EXPECTED {
        let (s, p) = (r.sqlite, r.postgres);
        out += &format!("| `{}` | {} | {} | {} | {} | {} |\n", r.request, r.case, s.0, s.1, p.0, p.1);
    }
    out
}

/// `docs/performance.md` shows [`EXPECTED`] between its two markers; `UPDATE_DOCS=1` rewrites it.
#[test]
fn the_performance_doc_shows_the_table_of_statements() {
    let doc = std::fs::read_to_string(DOC).unwrap();
    let start = doc.find(BEGIN).map(|i| i + BEGIN.len()).expect("docs/performance.md has the opening marker");
    let end = start + doc[start..].find(END).expect("docs/performance.md has the closing marker");
    let table = table_markdown();
    if std::env::var("UPDATE_DOCS").is_ok_and(|v| v == "1") {
        std::fs::write(DOC, format!("{}{table}{}", &doc[..start], &doc[end..])).unwrap();
    } else {
        assert!(
            doc[start..end] == table,
            "docs/performance.md's statements per request are stale: run UPDATE_DOCS=1 cargo test --test api statements"
        );
    }
}
