//! `bench`: load test of a real in-process server, and the database's own ceiling for claims.
//!
//! `cargo run --release --bin bench -- --engine sqlite|postgres --concurrency N --duration SECS
//! [--rate R] [--out FILE.json]`. See docs/performance.md for what each scenario does.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use clap::Parser;
use diesel::{Connection, PgConnection, RunQueryDsl};
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use repairdesk::auth::Caller;
use repairdesk::commands::{self, ArriveBody, Ctx};
use repairdesk::config::Settings;
use repairdesk::db::{self, events::NewEvent, tickets::TicketRow, users::UserRow, DbConn, Pool};
use repairdesk::domain::category::Category;
use repairdesk::domain::ticket::{Area, Channel, NewTicket, Urgency};
use repairdesk::domain::user::Role;
use repairdesk::error::ApiError;
use repairdesk::routes::tickets::claim_and_view;
use repairdesk::startup::Application;
use repairdesk::views::Viewer;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

const JWT_SECRET: &str = "bench-secret-bench-secret-bench-secret-0123";
const ADMIN_PASSWORD: &str = "admin-password-1";
const PASSWORD: &str = "password-123";
/// Tickets claimed twice, one claim at a time, after the hot-ticket race.
const HOT_ALONE: usize = 200;
const HOT_RACERS: usize = 64;
const TRADE: &str = "water";

#[derive(Parser, Clone, Debug)]
#[command(about = "Benchmarks repairdesk over HTTP and its database directly")]
struct Args {
    /// sqlite (a fresh file in a temp folder) or postgres (a fresh database, dropped afterwards)
    #[arg(long, default_value = "sqlite", value_parser = ["sqlite", "postgres"])]
    engine: String,
    /// Requests in flight at most (and threads of the raw database pass)
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds of each measured pass
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Arrival rate (requests/s) of the open-loop passes; default: half of each scenario's maximum
    #[arg(long)]
    rate: Option<f64>,
    /// Write every number as JSON here
    #[arg(long)]
    out: Option<PathBuf>,
    /// Database connections (the server's pool and the raw pass's pool)
    #[arg(long, default_value_t = 10)]
    pool_size: u32,
    /// HTTP worker threads of the server (default: number of cores)
    #[arg(long)]
    workers: Option<usize>,
    /// Technicians of the benchmark site (inserted directly with one precomputed password hash)
    #[arg(long, default_value_t = 300)]
    technicians: usize,
    /// Technicians logged in over HTTP to drive the load (at least 64, for the hot ticket)
    #[arg(long, default_value_t = 100)]
    logged_in: usize,
    /// Open tickets created over HTTP before the run (the realistic pool)
    #[arg(long, default_value_t = 5000)]
    tickets: usize,
    /// PostgreSQL server to create the benchmark database on
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pg_url: String,
    /// Idle SSE connections for the memory measurement (0 skips it)
    #[arg(long, default_value_t = 5000)]
    sse: usize,
    /// Scenarios to run, comma-separated: claim,hot,flow,push,pull,login,raw,push500,sse
    #[arg(long, default_value = "claim,hot,flow,push,pull,login,raw,push500,sse")]
    only: String,
    /// Keep the benchmark's database afterwards (its URL is printed), to look at its plans and data
    #[arg(long)]
    keep_db: bool,
    /// Internal: serve this DATABASE_URL and print the port (the SSE memory measurement's server)
    #[arg(long, hide = true)]
    serve: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// measurements

#[derive(Default)]
struct Recorder {
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
}

impl Recorder {
    fn add(&mut self, latency: Duration, result: Result<(), String>) {
        match result {
            Ok(()) => self.latencies.push(latency),
            Err(e) => {
                self.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(e);
                }
            }
        }
    }
}

#[derive(Clone, Debug)]
struct Summary {
    scenario: String,
    mode: String,
    target_rate: Option<f64>,
    ok: usize,
    errors: u64,
    late_no_slot: u64,
    late_sched: u64,
    elapsed: f64,
    rps: f64,
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
    first_error: Option<String>,
    note: Option<String>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    ms(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn summarise(scenario: &str, mode: &str, target_rate: Option<f64>, mut rec: Recorder, elapsed: Duration) -> Summary {
    rec.latencies.sort();
    let l = &rec.latencies;
    Summary {
        scenario: scenario.to_owned(),
        mode: mode.to_owned(),
        target_rate,
        ok: l.len(),
        errors: rec.errors,
        late_no_slot: 0,
        late_sched: 0,
        elapsed: elapsed.as_secs_f64(),
        rps: l.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        p50: percentile(l, 50.0),
        p95: percentile(l, 95.0),
        p99: percentile(l, 99.0),
        max: l.last().map(|d| ms(*d)).unwrap_or(f64::NAN),
        first_error: rec.first_error,
        note: None,
    }
}

impl Summary {
    fn to_json(&self) -> Value {
        json!({
            "scenario": self.scenario, "mode": self.mode, "target_rate": self.target_rate,
            "ok": self.ok, "errors": self.errors, "late_no_slot": self.late_no_slot,
            "late_sched": self.late_sched, "elapsed_s": self.elapsed, "rps": self.rps,
            "p50_ms": self.p50, "p95_ms": self.p95, "p99_ms": self.p99, "max_ms": self.max,
            "first_error": self.first_error, "note": self.note,
        })
    }
}

/// One request of a scenario: `i` picks its work item. `Err` is an error answer.
type Request = Arc<dyn Fn(usize) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Closed loop: `concurrency` tasks each send the next request as soon as the last one answered,
/// until `duration` is over or the `items` run out. Its throughput is the maximum.
async fn closed_loop(name: &str, concurrency: usize, duration: Duration, items: usize, f: Request) -> Summary {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (next, f) = (next.clone(), f.clone());
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::default();
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= items {
                    break;
                }
                let t0 = Instant::now();
                let r = f(i).await;
                rec.add(t0.elapsed(), r);
            }
            rec
        }));
    }
    let mut all = Recorder::default();
    for t in tasks {
        let r = t.await.expect("load task");
        all.latencies.extend(r.latencies);
        all.errors += r.errors;
        all.first_error = all.first_error.or(r.first_error);
    }
    let elapsed = start.elapsed();
    let mut s = summarise(name, "max (closed loop)", None, all, elapsed);
    if next.load(Ordering::Relaxed) >= items && elapsed < duration {
        s.note = Some(format!("work items ran out after {:.1} s", elapsed.as_secs_f64()));
    }
    s
}

/// Open loop: request `i` is planned at `start + i / rate` and launched then, whether or not earlier
/// ones answered, with at most `concurrency` in flight; latency counts from the planned time.
async fn open_loop(name: &str, rate: f64, concurrency: usize, duration: Duration, items: usize, f: Request) -> Summary {
    let planned_total = ((rate * duration.as_secs_f64()) as usize).min(items);
    let slots = Arc::new(Semaphore::new(concurrency));
    let start = tokio::time::Instant::now();
    let (mut late_no_slot, mut late_sched) = (0u64, 0u64);
    let mut tasks = Vec::with_capacity(planned_total);
    for i in 0..planned_total {
        let planned = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(planned).await;
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                late_no_slot += 1;
                slots.clone().acquire_owned().await.expect("semaphore open")
            }
        };
        if planned.elapsed() > Duration::from_millis(2) {
            late_sched += 1;
        }
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let r = f(i).await;
            let latency = planned.elapsed();
            drop(permit);
            (latency, r)
        }));
    }
    let mut rec = Recorder::default();
    for t in tasks {
        let (latency, r) = t.await.expect("load task");
        rec.add(latency, r);
    }
    let elapsed = start.elapsed();
    let mut s = summarise(name, "open loop", Some(rate), rec, elapsed);
    s.late_no_slot = late_no_slot;
    s.late_sched = late_sched;
    if planned_total < (rate * duration.as_secs_f64()) as usize {
        s.note = Some(format!("only {planned_total} work items"));
    }
    s
}

// ---------------------------------------------------------------------------------------------
// the HTTP side

/// An error with its causes: reqwest's own message leaves out what went wrong underneath.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[derive(Clone)]
struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Result<(u16, actix_web::web::Bytes), String> {
        let mut req = self.client.post(format!("{}{}", self.base, path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.map_err(|e| format!("{path}: {}", chain(&e)))?;
        let status = res.status().as_u16();
        let bytes = res.bytes().await.map_err(|e| format!("{path}: {}", chain(&e)))?;
        Ok((status, bytes))
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Result<(u16, Value), String> {
        let (status, bytes) = self.post_raw(path, token, body).await?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    async fn post_ok(&self, path: &str, token: Option<&str>, body: &Value) -> Result<Value, String> {
        let (status, value) = self.post(path, token, body).await?;
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            Err(format!("{path}: {status} {}", value["code"].as_str().unwrap_or("")))
        }
    }

    async fn login(&self, username: &str, password: &str) -> Result<String, String> {
        let v =
            self.post_ok("/api/v1/auth/login", None, &json!({ "username": username, "password": password })).await?;
        v["access_token"].as_str().map(str::to_owned).ok_or_else(|| "login: no access_token".into())
    }
}

fn settings_for(db_url: &str, args: &Args) -> anyhow::Result<Settings> {
    let workers = args.workers.unwrap_or_else(nproc).to_string();
    let pool = args.pool_size.to_string();
    let vars: HashMap<&str, String> = [
        ("DATABASE_URL", db_url.to_owned()),
        ("REPAIRDESK_ADDR", "127.0.0.1:0".to_owned()),
        ("REPAIRDESK_JWT_SECRET", JWT_SECRET.to_owned()),
        ("REPAIRDESK_ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
        ("REPAIRDESK_MAX_ACTIVE_TICKETS", "1000000".to_owned()),
        ("REPAIRDESK_DB_POOL_SIZE", pool),
        ("REPAIRDESK_WORKERS", workers),
        // no `unclaimed` escalations for the thousands of open tickets during the run
        ("REPAIRDESK_CLAIM_TIMEOUT_SECS", "86400".to_owned()),
    ]
    .into_iter()
    .collect();
    Settings::from_lookup(|k| vars.get(k).cloned()).map_err(anyhow::Error::msg)
}

fn nproc() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

// ---------------------------------------------------------------------------------------------
// the database side: fixtures and the raw claim

/// The benchmark database; dropping it removes it.
enum BenchDb {
    Sqlite(PathBuf),
    Postgres { server: String, name: String },
}

impl BenchDb {
    fn create(args: &Args) -> anyhow::Result<Self> {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        if args.engine == "postgres" {
            let name = format!("rd_bench_{}", &tag[..12]);
            let mut conn = PgConnection::establish(&args.pg_url).context("connecting to --pg-url")?;
            diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn)?;
            Ok(Self::Postgres { server: args.pg_url.clone(), name })
        } else {
            let dir = std::env::temp_dir().join(format!("rd-bench-{}", &tag[..12]));
            std::fs::create_dir_all(&dir)?;
            Ok(Self::Sqlite(dir))
        }
    }

    fn url(&self) -> String {
        match self {
            Self::Sqlite(dir) => format!("sqlite://{}", dir.join("bench.db").display()),
            Self::Postgres { server, name } => {
                let base = server.split('?').next().unwrap_or(server);
                let base = base.rsplit_once('/').map(|(b, _)| b).unwrap_or(base);
                format!("{base}/{name}")
            }
        }
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        match self {
            Self::Sqlite(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Self::Postgres { server, name } => {
                if let Ok(mut conn) = PgConnection::establish(server) {
                    let _ =
                        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn);
                }
            }
        }
    }
}

fn technician_viewer(user_id: &str, site: &str) -> Viewer {
    Viewer {
        caller: Caller { user_id: user_id.to_owned(), session_id: "bench".into(), role: Role::Technician },
        sites: vec![site.to_owned()],
        trades: vec![TRADE.to_owned()],
    }
}

/// Inserts `n` technicians of `site` with one precomputed hash of [`PASSWORD`]; returns (id, username).
fn insert_technicians(pool: &Pool, site: &str, n: usize) -> anyhow::Result<Vec<(String, String)>> {
    let hash = repairdesk::auth::password::hash_now(PASSWORD).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut conn = pool.get()?;
    let at = db::now();
    let techs = db::write_transaction(&mut conn, |conn| -> Result<_, ApiError> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let row = UserRow {
                id: db::new_id(),
                username: format!("tech{i:04}"),
                password_hash: hash.clone(),
                display_name: format!("技师{i}"),
                role: "technician".into(),
                phone: Some(format!("139{:08}", i)),
                active: true,
                created_at: at,
                updated_at: at,
            };
            db::users::insert(conn, &row, &[site.to_owned()], &[TRADE.to_owned()])?;
            out.push((row.id, row.username));
        }
        Ok(out)
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(techs)
}

static NUMBERS: AtomicUsize = AtomicUsize::new(0);

/// Inserts `n` open public-area tickets directly (row and `created` event, as the create route
/// writes them), in transactions of 500. For the work items of the passes, so that a pass never
/// waits for ticket creation.
fn bulk_tickets(pool: &Pool, site: &str, creator: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let mut conn = pool.get()?;
    let mut ids = Vec::with_capacity(n);
    let mut left = n;
    while left > 0 {
        let chunk = left.min(500);
        left -= chunk;
        let made = db::write_transaction(&mut conn, |conn| -> Result<_, ApiError> {
            let now = db::now();
            let mut made = Vec::with_capacity(chunk);
            let mut events = Vec::with_capacity(chunk);
            for _ in 0..chunk {
                let number = format!("BN-W{:08}", NUMBERS.fetch_add(1, Ordering::Relaxed));
                let row = open_ticket(site, creator, number, now);
                db::tickets::insert(conn, &row, None)?;
                events.push(NewEvent {
                    ticket_id: row.id.clone(),
                    site_id: site.to_owned(),
                    event_type: "created",
                    actor_id: Some(creator.to_owned()),
                    at: now,
                    from_status: None,
                    to_status: Some("open"),
                    data: json!({ "number": row.number, "area": row.area, "channel": row.channel }),
                });
                made.push(row.id);
            }
            db::events::append(conn, events)?;
            Ok(made)
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        ids.extend(made);
    }
    Ok(ids)
}

fn open_ticket(site: &str, creator: &str, number: String, now: chrono::NaiveDateTime) -> TicketRow {
    let new = NewTicket {
        site_id: site.to_owned(),
        area: Area::Public,
        location: "2栋电梯厅".into(),
        category: Category::parse(TRADE).expect("the bench trade is a category"),
        urgency: Urgency::Normal,
        paid: false,
        description: "走廊水管漏水".into(),
        reporter_name: "王女士".into(),
        reporter_phone: None,
        appointment_at: None,
        resident_supplies_parts: false,
        channel: Channel::Phone,
        requested_technician_id: None,
    };
    TicketRow::from_intake(new, number, creator.to_owned(), now)
}

/// One claim as `POST /tickets/{id}/claim` makes it, minus HTTP: the session check of the
/// `Caller` extractor, then [`claim_and_view`] (the caller's sites and trades, the refusal from a
/// read, the claim's transaction, the ticket's view), on one connection from the pool.
fn raw_claim(conn: &mut DbConn, ctx: &Ctx, caller: &Caller, ticket: &str) -> Result<(), ApiError> {
    db::tokens::live_session_role(conn, &caller.session_id, &caller.user_id)?
        .ok_or_else(|| ApiError::internal("the bench's session ended"))?;
    claim_and_view(conn, ctx, caller.clone(), ticket).map(|_| ())
}

/// The user and session a logged-in technician's access token names (its payload, unverified:
/// the bench made it).
fn caller_of(token: &str) -> anyhow::Result<Caller> {
    let payload = token.split('.').nth(1).context("not a JWT")?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload)?)?;
    let field = |k: &str| claims[k].as_str().map(str::to_owned).with_context(|| format!("no {k} in the token"));
    Ok(Caller { user_id: field("sub")?, session_id: field("sid")?, role: Role::Technician })
}

fn bench_ctx() -> anyhow::Result<Ctx> {
    let clock = Settings::from_lookup(|_| None).map_err(anyhow::Error::msg)?.clock;
    Ok(Ctx { code_key: Vec::new(), clock, max_active_tickets: 1_000_000, sms_policy: Default::default() })
}

/// Claims `tickets[i]` for `techs[i % techs.len()]` (setup of the flow and push passes), and
/// checks in at the door when `arrive`.
fn hand_out(pool: &Pool, site: &str, tickets: &[String], techs: &[String], arrive: bool) -> anyhow::Result<()> {
    let mut conn = pool.get()?;
    let ctx = bench_ctx()?;
    for (i, t) in tickets.iter().enumerate() {
        let tech = &techs[i % techs.len()];
        let viewer = technician_viewer(tech, site);
        db::write_transaction(&mut conn, |conn| commands::claim(conn, &ctx, &viewer, t, db::now()))
            .map_err(|e| anyhow::anyhow!("setup claim of {t}: {e}"))?;
        if arrive {
            db::write_transaction(&mut conn, |conn| {
                let body = ArriveBody { code: None, lat: Some(30.5), lng: Some(114.3), device_time: None };
                commands::arrive(conn, &ctx, &viewer, t, body, db::now())?
            })
            .map_err(|e| anyhow::anyhow!("setup arrival: {e}"))?;
        }
    }
    Ok(())
}

/// The raw pass: `threads` blocking threads claim distinct tickets on their own pool, closed loop.
fn raw_pass(
    pool: &Pool,
    tickets: Arc<Vec<String>>,
    techs: Arc<Vec<Caller>>,
    threads: usize,
    duration: Duration,
) -> Summary {
    let ctx = match bench_ctx() {
        Ok(ctx) => Arc::new(ctx),
        Err(e) => {
            let mut rec = Recorder::default();
            rec.add(Duration::ZERO, Err(e.to_string()));
            return summarise("raw_db_claim", "max (closed loop, no HTTP)", None, rec, Duration::ZERO);
        }
    };
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (pool, tickets, techs, next, ctx) =
                (pool.clone(), tickets.clone(), techs.clone(), next.clone(), ctx.clone());
            std::thread::spawn(move || {
                let mut rec = Recorder::default();
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= tickets.len() {
                        break;
                    }
                    let t0 = Instant::now();
                    // a connection per claim, as a request takes one from the pool
                    let r = match pool.get() {
                        Ok(mut conn) => {
                            raw_claim(&mut conn, &ctx, &techs[i % techs.len()], &tickets[i]).map_err(|e| e.to_string())
                        }
                        Err(e) => Err(e.to_string()),
                    };
                    rec.add(t0.elapsed(), r);
                }
                rec
            })
        })
        .collect();
    let mut all = Recorder::default();
    for h in handles {
        let r = h.join().expect("raw thread");
        all.latencies.extend(r.latencies);
        all.errors += r.errors;
        all.first_error = all.first_error.or(r.first_error);
    }
    let elapsed = start.elapsed();
    let mut s = summarise("raw_db_claim", "max (closed loop, no HTTP)", None, all, elapsed);
    if next.load(Ordering::Relaxed) >= tickets.len() && elapsed < duration {
        s.note = Some(format!("work items ran out after {:.1} s", elapsed.as_secs_f64()));
    }
    s
}

// ---------------------------------------------------------------------------------------------
// SSE memory: a second server process on the same database, so its RSS is the server's alone

async fn serve_only(db_url: &str, args: &Args) -> anyhow::Result<()> {
    let app = Application::build(settings_for(db_url, args)?).await?;
    println!("PORT {}", app.port());
    use std::io::Write;
    std::io::stdout().flush()?;
    app.run_until_stopped().await?;
    Ok(())
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn open_sse(port: u16, token: &str) -> Result<tokio::net::TcpStream, String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
    let req = format!(
        "GET /api/v1/pool/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Accept: text/event-stream\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut chunk))
            .await
            .map_err(|_| "no answer in 30 s".to_owned())?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("closed: {}", String::from_utf8_lossy(&buf)));
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if !text.starts_with("HTTP/1.1 200") && text.contains("\r\n\r\n") {
            return Err(text.lines().next().unwrap_or_default().to_owned());
        }
        if text.contains(": connected") {
            return Ok(s);
        }
    }
}

async fn sse_memory(db_url: &str, args: &Args, tokens: &[String]) -> anyhow::Result<Value> {
    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new(exe)
        .arg("--serve")
        .arg(db_url)
        .args(["--pool-size", &args.pool_size.to_string()])
        .args(["--engine", &args.engine])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let stdout = child.stdout.take().context("child stdout")?;
    let port = tokio::task::spawn_blocking(move || -> anyhow::Result<u16> {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            if let Some(p) = line?.trim().strip_prefix("PORT ") {
                return Ok(p.parse()?);
            }
        }
        bail!("the SSE server exited before printing its port")
    })
    .await?;
    let port = match port {
        Ok(p) => p,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kb(pid).unwrap_or(0);
    let started = Instant::now();
    let results: Vec<Result<tokio::net::TcpStream, String>> = futures_util::stream::iter(0..args.sse)
        .map(|i| {
            let token = tokens[i % tokens.len()].clone();
            async move { open_sse(port, &token).await }
        })
        .buffer_unordered(200)
        .collect()
        .await;
    let open_secs = started.elapsed().as_secs_f64();
    let mut streams = Vec::new();
    let mut failures = 0;
    let mut first_error = None;
    for r in results {
        match r {
            Ok(s) => streams.push(s),
            Err(e) => {
                failures += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kb(pid).unwrap_or(0);
    let held = streams.len();
    drop(streams);
    let _ = child.kill();
    let _ = child.wait();
    Ok(json!({
        "connections_requested": args.sse, "connections_open": held, "failures": failures,
        "first_error": first_error, "open_seconds": open_secs,
        "server_rss_before_mb": before as f64 / 1024.0, "server_rss_with_connections_mb": after as f64 / 1024.0,
        "per_connection_kb": if held > 0 { after.saturating_sub(before) as f64 / held as f64 } else { f64::NAN },
    }))
}

// ---------------------------------------------------------------------------------------------
// the run

struct Fixture {
    http: Http,
    pool: Pool,
    site: String,
    desk_id: String,
    desk_token: String,
    /// Logged-in technicians: (id, token).
    techs: Vec<(String, String)>,
    usernames: Vec<String>,
    supply: Mutex<Vec<String>>,
    /// The largest pull answer seen, in bytes.
    pull_bytes: AtomicUsize,
}

/// A pull's answer, with its tickets only counted.
#[derive(serde::Deserialize)]
struct PullCount {
    tickets: Vec<serde::de::IgnoredAny>,
}

impl Fixture {
    /// `n` open tickets: from the ones made at setup, then freshly inserted ones.
    async fn take(&self, n: usize) -> anyhow::Result<Vec<String>> {
        let mut got: Vec<String> = {
            let mut s = self.supply.lock().unwrap();
            let k = s.len().min(n);
            let at = s.len() - k;
            s.split_off(at)
        };
        if got.len() < n {
            let (pool, site, desk, more) = (self.pool.clone(), self.site.clone(), self.desk_id.clone(), n - got.len());
            let fresh = tokio::task::spawn_blocking(move || bulk_tickets(&pool, &site, &desk, more)).await??;
            got.extend(fresh);
        }
        Ok(got)
    }

    /// `n` tickets claimed by the logged-in technicians in turn (and checked in when `arrive`).
    async fn held(&self, n: usize, arrive: bool) -> anyhow::Result<Arc<Vec<String>>> {
        let tickets = self.take(n).await?;
        let techs: Vec<String> = self.techs.iter().map(|t| t.0.clone()).collect();
        let (pool, site, list) = (self.pool.clone(), self.site.clone(), tickets.clone());
        tokio::task::spawn_blocking(move || hand_out(&pool, &site, &list, &techs, arrive)).await??;
        Ok(Arc::new(tickets))
    }

    /// On PostgreSQL, `ANALYZE` before a pass: what autovacuum would have done by then on a
    /// server that runs it (see `docs/performance.md`: without fresh statistics, plans made while
    /// the tables were small stay cached on the server's connections).
    async fn settle(&self) -> anyhow::Result<()> {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut conn = pool.get()?;
            if let DbConn::Postgres(c) = &mut *conn {
                diesel::connection::SimpleConnection::batch_execute(c, "ANALYZE")?;
            }
            Ok(())
        })
        .await?
    }

    fn token(&self, i: usize) -> String {
        self.techs[i % self.techs.len()].1.clone()
    }
}

fn sync_ops(ticket: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|k| {
            let args = if k % 2 == 0 {
                json!({ "id": uuid::Uuid::new_v4(), "name": "角阀", "spec": "DN15", "quantity": "1", "unit": "个",
                        "unit_price_cents": 1500, "supplied_by": "company" })
            } else {
                json!({ "id": uuid::Uuid::new_v4(), "note": format!("第{k}步：已处理") })
            };
            let name = if k % 2 == 0 { "add_material" } else { "add_note" };
            json!({ "op_id": k + 1, "name": name, "ticket_id": ticket, "args": args,
                    "device_time": chrono::Utc::now().to_rfc3339() })
        })
        .collect()
}

async fn push_batch(http: &Http, token: &str, ticket: &str, n: usize) -> Result<(), String> {
    let body = json!({ "client_id": uuid::Uuid::new_v4(), "schema_version": 1, "ops": sync_ops(ticket, n) });
    let v = http.post_ok("/api/v1/sync/push", Some(token), &body).await?;
    let results = v["results"].as_array().ok_or("push: no results")?;
    if results.len() != n || results.iter().any(|r| r["status"] != "applied") {
        let bad = results.iter().find(|r| r["status"] != "applied");
        return Err(format!("push: {} results, first not applied: {bad:?}", results.len()));
    }
    Ok(())
}

/// A max pass, then an open-loop pass at `--rate` or half the maximum.
async fn two_passes<F, Fut>(
    args: &Args,
    fx: &Fixture,
    name: &str,
    max_items: usize,
    make: F,
    out: &mut Vec<Summary>,
) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(Request, usize)>>,
{
    let d = Duration::from_secs(args.duration);
    let (req, items) = make(max_items).await?;
    fx.settle().await?;
    let max = closed_loop(name, args.concurrency, d, items, req).await;
    report_line(&max);
    let rate = args.rate.unwrap_or((max.rps / 2.0).max(1.0));
    out.push(max);
    let need = (rate * args.duration as f64).ceil() as usize + 1;
    let (req, items) = make(need).await?;
    fx.settle().await?;
    let open = open_loop(name, rate, args.concurrency, d, items, req).await;
    report_line(&open);
    out.push(open);
    Ok(())
}

fn report_line(s: &Summary) {
    eprintln!(
        "  {:<14} {:<28} {:>9.1} req/s  p50 {:>7.2}  p99 {:>8.2} ms  errors {}",
        s.scenario, s.mode, s.rps, s.p50, s.p99, s.errors
    );
}

async fn setup(
    args: &Args,
    db_url: &str,
) -> anyhow::Result<(Fixture, Value, tokio::task::JoinHandle<()>, repairdesk::startup::StopHandle)> {
    let t0 = Instant::now();
    let app = Application::build(settings_for(db_url, args)?).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let stop = app.handle();
    let server = tokio::spawn(async move {
        let _ = app.run_until_stopped().await;
    });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency.max(HOT_RACERS) * 2)
        // below the server's keep-alive (5 s): a connection idle through a pass's setup is not
        // reused just as the server closes it (that fails the request before it is sent)
        .pool_idle_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?;
    let http = Http { client, base };
    let e = |s: String| anyhow::anyhow!(s);
    let admin = http.login("admin", ADMIN_PASSWORD).await.map_err(e)?;
    let site = http
        .post_ok(
            "/api/v1/sites",
            Some(&admin),
            &json!({ "code": "BN", "name": "基准小区", "timezone": "Asia/Shanghai" }),
        )
        .await
        .map_err(e)?["id"]
        .as_str()
        .context("site id")?
        .to_owned();
    let desk = http
        .post_ok(
            "/api/v1/users",
            Some(&admin),
            &json!({ "username": "desk1", "password": PASSWORD, "display_name": "调度", "role": "dispatcher",
                     "site_ids": [site], "trades": [] }),
        )
        .await
        .map_err(e)?;
    let desk_id = desk["id"].as_str().context("desk id")?.to_owned();
    let desk_token = http.login("desk1", PASSWORD).await.map_err(e)?;

    // the bench's own pool, the size of the server's: fixtures and the raw pass
    let pool = {
        let url = repairdesk::db::DatabaseUrl::parse(db_url).map_err(anyhow::Error::msg)?;
        let size = args.pool_size;
        tokio::task::spawn_blocking(move || db::connect(&url, size)).await??
    };
    let t_users = Instant::now();
    let all_techs = {
        let (pool, site, n) = (pool.clone(), site.clone(), args.technicians);
        tokio::task::spawn_blocking(move || insert_technicians(&pool, &site, n)).await??
    };
    let users_secs = t_users.elapsed().as_secs_f64();

    let t_login = Instant::now();
    let want = args.logged_in.clamp(HOT_RACERS, all_techs.len());
    let logins: Vec<Result<(String, String), String>> = futures_util::stream::iter(all_techs[..want].to_vec())
        .map(|(id, name)| {
            let http = http.clone();
            async move { http.login(&name, PASSWORD).await.map(|t| (id, t)) }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let techs = logins.into_iter().collect::<Result<Vec<_>, _>>().map_err(e)?;
    let login_secs = t_login.elapsed().as_secs_f64();

    // the realistic pool: tickets made by the desk through the API
    let t_tickets = Instant::now();
    let made: Vec<Result<String, String>> = futures_util::stream::iter(0..args.tickets)
        .map(|i| {
            let (http, desk, site) = (http.clone(), desk_token.clone(), site.clone());
            async move {
                let body = json!({
                    "site_id": site, "area": "public", "location": format!("{}栋电梯厅", i % 40 + 1),
                    "category": TRADE, "urgency": if i % 20 == 0 { "emergency" } else { "normal" },
                    "paid": false, "description": "公共区域水管漏水", "reporter_name": "物业巡查",
                    "resident_supplies_parts": false, "channel": "patrol"
                });
                let v = http.post_ok("/api/v1/tickets", Some(&desk), &body).await?;
                Ok(v["id"].as_str().unwrap_or_default().to_owned())
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let made = made.into_iter().collect::<Result<Vec<_>, _>>().map_err(e)?;
    let tickets_secs = t_tickets.elapsed().as_secs_f64();

    let info = json!({
        "technicians": all_techs.len(),
        "technicians_inserted_directly": true,
        "technicians_insert_seconds": users_secs,
        "technicians_logged_in": techs.len(),
        "technician_logins_seconds": login_secs,
        "tickets_created_over_http": made.len(),
        "ticket_creation_seconds": tickets_secs,
        "ticket_creation_rps": made.len() as f64 / tickets_secs.max(1e-9),
        "setup_seconds": t0.elapsed().as_secs_f64(),
    });
    eprintln!("setup: {info}");
    let usernames = all_techs.into_iter().map(|(_, n)| n).collect();
    let fixture = Fixture {
        http,
        pool,
        site,
        desk_id,
        desk_token,
        techs,
        usernames,
        supply: Mutex::new(made),
        pull_bytes: AtomicUsize::new(0),
    };
    Ok((fixture, info, server, stop))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let only: Vec<&str> = args.only.split(',').map(str::trim).collect();
    let wants = |s: &str| only.contains(&s);
    let bench_db = BenchDb::create(&args)?;
    let db_url = bench_db.url();
    eprintln!("engine {} database {}", args.engine, db_url);
    let (fx, setup_info, server, stop) = setup(&args, &db_url).await?;
    let fx = Arc::new(fx);
    let d = Duration::from_secs(args.duration);
    let mut rows: Vec<Summary> = Vec::new();
    let mut extra = serde_json::Map::new();
    if let Some(off) = db::autovacuum_off(&mut *fx.pool.get()?)? {
        extra.insert("postgres_autovacuum_off".into(), json!(off));
        extra.insert("analyze_before_each_pass".into(), json!(true));
    }

    // (a) claims on distinct tickets
    if wants("claim") {
        let f = fx.clone();
        two_passes(
            &args,
            &fx,
            "claim",
            1500 * args.duration as usize,
            |n| {
                let f = f.clone();
                async move {
                    let tickets = Arc::new(f.take(n).await?);
                    let items = tickets.len();
                    let ff = f.clone();
                    let req: Request = Arc::new(move |i| {
                        let (f, t) = (ff.clone(), tickets[i].clone());
                        async move {
                            f.http
                                .post_ok(&format!("/api/v1/tickets/{t}/claim"), Some(&f.token(i)), &json!({}))
                                .await
                                .map(|_| ())
                        }
                        .boxed()
                    });
                    Ok((req, items))
                }
            },
            &mut rows,
        )
        .await?;
    }

    // the database's ceiling: the claim's statements without HTTP, same pool size and concurrency,
    // right after the HTTP claims, on the database as they left it
    if wants("raw") {
        let tickets = Arc::new(fx.take(4000 * args.duration as usize).await?);
        let techs: Arc<Vec<Caller>> = Arc::new(fx.techs.iter().map(|t| caller_of(&t.1)).collect::<Result<_, _>>()?);
        let (pool, threads) = (fx.pool.clone(), args.concurrency);
        let s = tokio::task::spawn_blocking(move || raw_pass(&pool, tickets, techs, threads, d)).await?;
        report_line(&s);
        let http_max = rows.iter().find(|r| r.scenario == "claim" && r.mode.starts_with("max")).map(|r| r.rps);
        if let Some(http) = http_max {
            extra.insert("claim_http_over_raw".into(), json!(http / s.rps));
        }
        extra.insert("raw_db_claim_rps".into(), json!(s.rps));
        rows.push(s);
    }

    // (b) a hot ticket raced by 64 technicians, round after round
    if wants("hot") {
        fx.settle().await?;
        let rounds_cap = 400;
        let tickets = fx.take(rounds_cap).await?;
        let (mut winners, mut losers) = (Recorder::default(), Recorder::default());
        let (mut rounds, mut bad_rounds) = (0usize, 0usize);
        let start = Instant::now();
        for (r, t) in tickets.iter().enumerate() {
            if start.elapsed() >= d {
                break;
            }
            let t0 = Instant::now();
            let racers = (0..HOT_RACERS).map(|k| {
                let (http, token) = (fx.http.clone(), fx.token(r * 7 + k));
                let path = format!("/api/v1/tickets/{t}/claim");
                tokio::spawn(async move {
                    let res = http.post(&path, Some(&token), &json!({})).await;
                    (t0.elapsed(), res)
                })
            });
            let answers = futures_util::future::join_all(racers).await;
            let mut won = 0;
            for a in answers {
                let (latency, res) = a.expect("racer");
                match res {
                    Ok((200, _)) => {
                        won += 1;
                        winners.add(latency, Ok(()));
                    }
                    Ok((409, v)) if v["code"] == "already_claimed" => losers.add(latency, Ok(())),
                    Ok((s, v)) => losers.add(latency, Err(format!("{s} {}", v["code"]))),
                    Err(e) => losers.add(latency, Err(e)),
                }
            }
            rounds += 1;
            if won != 1 {
                bad_rounds += 1;
            }
        }
        let elapsed = start.elapsed();
        let mut w = summarise("hot_winner", "64 racers per ticket", None, winners, elapsed);
        let mut l = summarise("hot_loser", "64 racers per ticket", None, losers, elapsed);
        let rps = (w.ok + l.ok) as f64 / elapsed.as_secs_f64();
        let note = format!("{rounds} rounds, {bad_rounds} without exactly one winner; {rps:.0} claims/s in all");
        w.note = Some(note.clone());
        l.note = Some(note);
        report_line(&w);
        report_line(&l);
        extra.insert("hot_rounds".into(), json!(rounds));
        extra.insert("hot_rounds_without_one_winner".into(), json!(bad_rounds));
        rows.push(w);
        rows.push(l);
        // the same two answers without a queue: a claim that wins, then one that loses, one at a time
        let (mut won_alone, mut lost_alone) = (Recorder::default(), Recorder::default());
        let alone_start = Instant::now();
        for (i, t) in fx.take(HOT_ALONE).await?.iter().enumerate() {
            let path = format!("/api/v1/tickets/{t}/claim");
            for (k, rec) in [(0, &mut won_alone), (1, &mut lost_alone)] {
                let t0 = Instant::now();
                let res = fx.http.post(&path, Some(&fx.token(2 * i + k)), &json!({})).await;
                let expected = if k == 0 { 200 } else { 409 };
                rec.add(
                    t0.elapsed(),
                    match res {
                        Ok((status, _)) if status == expected => Ok(()),
                        Ok((status, v)) => Err(format!("{status} {}", v["code"])),
                        Err(e) => Err(e),
                    },
                );
            }
        }
        for (name, rec) in [("hot_winner_alone", won_alone), ("hot_loser_alone", lost_alone)] {
            let s = summarise(name, "one claim at a time", None, rec, alone_start.elapsed());
            report_line(&s);
            rows.push(s);
        }
    }

    // (c) arrive, add a material, complete: one job is three requests in a row
    if wants("flow") {
        let f = fx.clone();
        two_passes(
            &args,
            &fx,
            "flow(3 req)",
            400 * args.duration as usize,
            |n| {
                let f = f.clone();
                async move {
                    let tickets = f.held(n, false).await?;
                    let items = tickets.len();
                    let ff = f.clone();
                    let req: Request = Arc::new(move |i| {
                        let (f, t, token) = (ff.clone(), tickets[i].clone(), ff.token(i));
                        async move {
                            let h = &f.http;
                            h.post_ok(&format!("/api/v1/tickets/{t}/arrive"), Some(&token), &json!({ "lat": 30.5, "lng": 114.3 }))
                                .await?;
                            let line = json!({ "id": uuid::Uuid::new_v4(), "name": "角阀", "spec": "DN15", "quantity": "2",
                                               "unit": "个", "unit_price_cents": 1500, "supplied_by": "company" });
                            h.post_ok(&format!("/api/v1/tickets/{t}/materials"), Some(&token), &line).await?;
                            h.post_ok(&format!("/api/v1/tickets/{t}/complete"), Some(&token), &json!({ "result": "更换角阀" }))
                                .await
                                .map(|_| ())
                        }
                        .boxed()
                    });
                    Ok((req, items))
                }
            },
            &mut rows,
        )
        .await?;
    }

    // (d) sync push of 50-operation batches, each from a new client
    if wants("push") {
        let f = fx.clone();
        two_passes(
            &args,
            &fx,
            "push(50 ops)",
            150 * args.duration as usize,
            |n| {
                let f = f.clone();
                async move {
                    let tickets = f.held(n, true).await?;
                    let items = tickets.len();
                    let ff = f.clone();
                    let req: Request = Arc::new(move |i| {
                        let (f, t, token) = (ff.clone(), tickets[i].clone(), ff.token(i));
                        async move { push_batch(&f.http, &token, &t, 50).await }.boxed()
                    });
                    Ok((req, items))
                }
            },
            &mut rows,
        )
        .await?;
    }

    // (e) the desk pulls a 200-ticket view
    if wants("pull") {
        let f = fx.clone();
        let client_id = uuid::Uuid::new_v4().to_string();
        two_passes(
            &args,
            &fx,
            "pull(200)",
            usize::MAX,
            |_| {
                let (f, client_id) = (f.clone(), client_id.clone());
                async move {
                    let req: Request = Arc::new(move |_| {
                        let (f, client_id) = (f.clone(), client_id.clone());
                        async move {
                            let body = json!({ "client_id": client_id, "cursor": null, "limit": 200 });
                            let (status, bytes) =
                                f.http.post_raw("/api/v1/sync/pull", Some(&f.desk_token), &body).await?;
                            // counted without building the answer's tree: the load generator shares the cores
                            let n = serde_json::from_slice::<PullCount>(&bytes).map_or(0, |p| p.tickets.len());
                            if status != 200 || n != 200 {
                                return Err(format!("pull: {status}, {n} tickets"));
                            }
                            f.pull_bytes.fetch_max(bytes.len(), Ordering::Relaxed);
                            Ok(())
                        }
                        .boxed()
                    });
                    Ok((req, usize::MAX))
                }
            },
            &mut rows,
        )
        .await?;
        extra.insert("pull_answer_bytes_max".into(), json!(fx.pull_bytes.load(Ordering::Relaxed)));
    }

    // (f) login
    if wants("login") {
        let f = fx.clone();
        two_passes(
            &args,
            &fx,
            "login",
            usize::MAX,
            |_| {
                let f = f.clone();
                async move {
                    let req: Request = Arc::new(move |i| {
                        let f = f.clone();
                        async move {
                            let name = f.usernames[i % f.usernames.len()].clone();
                            f.http.login(&name, PASSWORD).await.map(|_| ())
                        }
                        .boxed()
                    });
                    Ok((req, usize::MAX))
                }
            },
            &mut rows,
        )
        .await?;
    }

    // one push of 500 operations (a day's offline queue), timed, five times
    if wants("push500") {
        fx.settle().await?;
        let tickets = fx.held(5, true).await?;
        let mut times = Vec::new();
        for (i, t) in tickets.iter().enumerate() {
            let token = fx.token(i);
            let t0 = Instant::now();
            push_batch(&fx.http, &token, t, 500).await.map_err(anyhow::Error::msg)?;
            times.push(ms(t0.elapsed()));
        }
        eprintln!("  push(500 ops) one at a time: {times:.1?} ms");
        extra.insert("push_500_ops_ms".into(), json!(times));
    }

    stop.stop(true).await;
    let _ = server.await;

    if wants("sse") && args.sse > 0 {
        let tokens: Vec<String> = fx.techs.iter().map(|t| t.1.clone()).collect();
        match sse_memory(&db_url, &args, &tokens).await {
            Ok(v) => {
                eprintln!("  sse: {v}");
                extra.insert("sse".into(), v);
            }
            Err(e) => {
                eprintln!("  sse: failed: {e:#}");
                extra.insert("sse".into(), json!({ "error": format!("{e:#}") }));
            }
        }
    }

    print_table(&args, &rows, &extra);
    if let Some(path) = &args.out {
        let doc = json!({
            "engine": args.engine,
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "rate_arg": args.rate,
            "pool_size": args.pool_size,
            "workers": args.workers.unwrap_or_else(nproc),
            "machine": machine(),
            "git_commit": git_commit(),
            "setup": setup_info,
            "results": rows.iter().map(Summary::to_json).collect::<Vec<_>>(),
            "extra": extra,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
        eprintln!("wrote {}", path.display());
    }
    drop(fx);
    if args.keep_db {
        eprintln!("--keep-db: {db_url} stays");
        std::mem::forget(bench_db);
    }
    Ok(())
}

fn print_table(args: &Args, rows: &[Summary], extra: &serde_json::Map<String, Value>) {
    println!(
        "\nengine={} concurrency={} duration={}s pool={} workers={}",
        args.engine,
        args.concurrency,
        args.duration,
        args.pool_size,
        args.workers.unwrap_or_else(nproc)
    );
    println!(
        "{:<14} {:<27} {:>8} {:>7} {:>9} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6}",
        "scenario", "mode", "rate", "ok", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "late"
    );
    for r in rows {
        let rate = r.target_rate.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into());
        println!(
            "{:<14} {:<27} {:>8} {:>7} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>6} {:>6}",
            r.scenario, r.mode, rate, r.ok, r.rps, r.p50, r.p95, r.p99, r.max, r.errors, r.late_no_slot
        );
        if let Some(note) = &r.note {
            println!("    note: {note}");
        }
        if let Some(e) = &r.first_error {
            println!("    first error: {e}");
        }
    }
    for (k, v) in extra {
        println!("{k}: {v}");
    }
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
        s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|m| m.trim().to_owned())
    });
    json!({ "nproc": nproc(), "cpu_model": cpu, "os": std::env::consts::OS })
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().ok()?;
    let head = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(url) = args.serve.clone() {
        return serve_only(&url, &args).await;
    }
    run(args).await
}
