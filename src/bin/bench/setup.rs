//! The benchmark's world: its database, the server, the site with its desk and technicians, and
//! the tickets the passes work on.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use diesel::{Connection, PgConnection, RunQueryDsl};
use futures_util::StreamExt;
use repairdesk::auth::Caller;
use repairdesk::commands::{self, ArriveBody, Ctx};
use repairdesk::config::Settings;
use repairdesk::db::{self, users::UserRow, DbConn, Pool};
use repairdesk::domain::ticket::TicketForm;
use repairdesk::domain::user::Role;
use repairdesk::error::ApiError;
use repairdesk::startup::{Application, StopHandle};
use repairdesk::views::Viewer;
use serde_json::{json, Value};

use crate::http::Http;
use crate::{Args, ADMIN_PASSWORD, HOT_RACERS, JWT_SECRET, PASSWORD, SITES_AT_ONCE, TRADE};

pub fn settings_for(db_url: &str, args: &Args) -> anyhow::Result<Settings> {
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

pub fn nproc() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// The benchmark database; dropping it removes it.
pub enum BenchDb {
    Sqlite(PathBuf),
    Postgres { server: String, name: String },
}

impl BenchDb {
    pub fn create(args: &Args) -> anyhow::Result<Self> {
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

    pub fn url(&self) -> String {
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

/// What the commands need to know, as the bench's server has it where it matters here.
pub fn bench_ctx() -> Ctx {
    Ctx {
        code_key: Vec::new(),
        clock: Default::default(),
        max_active_tickets: 1_000_000,
        sms_policy: Default::default(),
    }
}

/// The user and session a logged-in user's access token names (its payload, unverified: the
/// bench made it).
pub fn caller_of(token: &str, role: Role) -> anyhow::Result<Caller> {
    let payload = token.split('.').nth(1).context("not a JWT")?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload)?)?;
    let field = |k: &str| claims[k].as_str().map(str::to_owned).with_context(|| format!("no {k} in the token"));
    Ok(Caller { user_id: field("sub")?, session_id: field("sid")?, role, membership: None })
}

/// Inserts `n` technicians of `site`, named `prefix` and a number, with one precomputed hash of
/// [`PASSWORD`]; returns (id, username).
fn insert_technicians(pool: &Pool, site: &str, prefix: &str, n: usize) -> anyhow::Result<Vec<(String, String)>> {
    let hash = repairdesk::auth::password::hash_now(PASSWORD).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut conn = pool.get()?;
    let at = db::now();
    let techs = db::write_transaction(&mut conn, |conn| -> Result<_, ApiError> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let row = UserRow {
                id: db::new_id(),
                username: format!("{prefix}{i:04}"),
                password_hash: hash.clone(),
                display_name: format!("技师{i}"),
                role: "technician".into(),
                phone: Some(format!("139{:08}", i)),
                active: true,
                created_at: at,
                updated_at: at,
                on_duty: true,
            };
            db::users::insert(conn, &row, &[site.to_owned()], &[TRADE.to_owned()], &[])?;
            out.push((row.id, row.username));
        }
        Ok(out)
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(techs)
}

/// The `i`-th ticket of the bench: a public-area leak in its trade, as the desk's intake form
/// sends it.
fn ticket_body(site: &str, i: usize) -> Value {
    json!({
        "site_id": site, "area": "public", "location": format!("{}栋电梯厅", i % 40 + 1),
        "category": TRADE, "urgency": if i % 20 == 0 { "emergency" } else { "normal" },
        "paid": false, "description": "公共区域水管漏水", "reporter_name": "物业巡查",
        "resident_supplies_parts": false, "channel": "patrol"
    })
}

/// Creates `n` open tickets of `site` as `desk` on the bench's pool, each as the create route
/// does: `commands::create_ticket` in a write transaction of its own, on as many threads as the
/// pool has connections. These are the work items of the passes, made before a pass so that no
/// pass waits for ticket creation.
fn create_tickets(pool: &Pool, desk: &Caller, site: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let per_thread = n.div_ceil(pool.max_size() as usize).max(1);
    let made: Vec<anyhow::Result<Vec<String>>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..n)
            .step_by(per_thread)
            .map(|from| s.spawn(move || create_some(pool, desk, site, from..(from + per_thread).min(n))))
            .collect();
        threads.into_iter().map(|t| t.join().expect("ticket creation thread")).collect()
    });
    Ok(made.into_iter().collect::<anyhow::Result<Vec<_>>>()?.concat())
}

/// The tickets `range` of [`create_tickets`], on one connection.
fn create_some(pool: &Pool, desk: &Caller, site: &str, range: std::ops::Range<usize>) -> anyhow::Result<Vec<String>> {
    let ctx = bench_ctx();
    let mut conn = pool.get()?;
    let viewer = Viewer::load(&mut conn, desk.clone()).map_err(|e| anyhow::anyhow!("the desk: {e}"))?;
    range
        .map(|i| {
            let form: TicketForm = serde_json::from_value(ticket_body(site, i))?;
            let t = db::write_transaction(&mut conn, |conn| {
                commands::create_ticket(conn, &ctx, &viewer, &form, None, db::now())
            })
            .map_err(|e| anyhow::anyhow!("creating a ticket: {e}"))?;
            Ok(t.id)
        })
        .collect()
}

/// Claims `tickets[i]` for `techs[i % techs.len()]` (setup of the flow and push passes), and
/// checks in at the door when `arrive`.
fn hand_out(pool: &Pool, tickets: &[String], techs: &[Caller], arrive: bool) -> anyhow::Result<()> {
    let mut conn = pool.get()?;
    let ctx = bench_ctx();
    for (i, t) in tickets.iter().enumerate() {
        let viewer = Viewer::load(&mut conn, techs[i % techs.len()].clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
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

/// Sites worked at once: each one's technicians (their access tokens), and a dispatcher of all.
pub struct ManySites {
    pub sites: Vec<String>,
    pub desk: Caller,
    pub tokens: Vec<Vec<String>>,
}

/// Logs each of `usernames` in over HTTP, 8 at a time; their access tokens, in order.
async fn login_all(http: &Http, usernames: impl IntoIterator<Item = String>) -> anyhow::Result<Vec<String>> {
    let tokens: Vec<Result<String, String>> = futures_util::stream::iter(usernames)
        .map(|name| {
            let http = http.clone();
            async move { http.login(&name, PASSWORD).await }
        })
        .buffered(8)
        .collect()
        .await;
    tokens.into_iter().collect::<Result<_, _>>().map_err(anyhow::Error::msg)
}

/// A logged-in technician.
pub struct Tech {
    pub caller: Caller,
    pub token: String,
}

pub struct Fixture {
    pub http: Http,
    pub pool: Pool,
    pub desk: Caller,
    pub desk_token: String,
    pub techs: Vec<Tech>,
    pub usernames: Vec<String>,
    site: String,
    supply: Mutex<Vec<String>>,
    /// The largest pull answer seen, in bytes.
    pub pull_bytes: AtomicUsize,
}

impl Fixture {
    /// `GET path` as the desk: the answer's status and body, or the transport's error.
    pub async fn desk_get(&self, path: &str) -> Result<(u16, Vec<u8>), String> {
        let url = format!("{}{path}", self.http.base);
        let res = self.http.client.get(url).bearer_auth(&self.desk_token).send().await.map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        let body = res.bytes().await.map_err(|e| e.to_string())?;
        Ok((status, body.to_vec()))
    }

    /// The bench's site.
    pub fn site(&self) -> &str {
        &self.site
    }

    /// `n` open tickets: from the ones made at setup, then freshly created ones.
    pub async fn take(&self, n: usize) -> anyhow::Result<Vec<String>> {
        let mut got: Vec<String> = {
            let mut s = self.supply.lock().unwrap();
            let k = s.len().min(n);
            let at = s.len() - k;
            s.split_off(at)
        };
        if got.len() < n {
            let more = self.create_in(&self.desk, std::slice::from_ref(&self.site), n - got.len()).await?;
            got.extend(more.into_iter().flatten());
        }
        Ok(got)
    }

    /// `n` new open tickets in each of `sites`, made by `desk` (see [`create_tickets`]).
    pub async fn create_in(&self, desk: &Caller, sites: &[String], n: usize) -> anyhow::Result<Vec<Vec<String>>> {
        let (pool, desk, sites) = (self.pool.clone(), desk.clone(), sites.to_vec());
        let t0 = Instant::now();
        let made = tokio::task::spawn_blocking(move || {
            sites.iter().map(|site| create_tickets(&pool, &desk, site, n)).collect::<anyhow::Result<Vec<_>>>()
        })
        .await??;
        let total: usize = made.iter().map(Vec::len).sum();
        eprintln!("  made {total} tickets in {:.1} s", t0.elapsed().as_secs_f64());
        Ok(made)
    }

    /// The world of `claim_8_sites`: the bench's site and [`SITES_AT_ONCE`]` - 1` more made over
    /// HTTP, a dispatcher of them all who makes their tickets, and as many technicians in each as
    /// the logged-in ones spread evenly, each belonging to that one site: the bench's site has the
    /// first of its own, the others new ones inserted and logged in as at setup.
    pub async fn sites_at_once(&self) -> anyhow::Result<ManySites> {
        let e = |s: String| anyhow::anyhow!(s);
        let per_site = (self.techs.len() / SITES_AT_ONCE).max(1);
        // logged in again: the setup's token may have expired by now
        let admin = self.http.login("admin", ADMIN_PASSWORD).await.map_err(e)?;
        let mut sites = vec![self.site.clone()];
        let mut tokens = vec![self.techs[..per_site].iter().map(|t| t.token.clone()).collect::<Vec<_>>()];
        for k in 1..SITES_AT_ONCE {
            let body = json!({ "code": format!("BN{}", k + 1), "name": format!("基准小区{}", k + 1),
                               "timezone": "Asia/Shanghai" });
            let v = self.http.post_ok("/api/v1/sites", Some(&admin), &body).await.map_err(e)?;
            let site = v["id"].as_str().context("site id")?.to_owned();
            let inserted = {
                let (pool, site, prefix) = (self.pool.clone(), site.clone(), format!("s{}tech", k + 1));
                tokio::task::spawn_blocking(move || insert_technicians(&pool, &site, &prefix, per_site)).await??
            };
            tokens.push(login_all(&self.http, inserted.into_iter().map(|(_, name)| name)).await?);
            sites.push(site);
        }
        let body = json!({ "username": "desk8", "password": PASSWORD, "display_name": "调度八", "role": "dispatcher",
                           "site_ids": sites, "trades": [] });
        self.http.post_ok("/api/v1/users", Some(&admin), &body).await.map_err(e)?;
        let desk = caller_of(&self.http.login("desk8", PASSWORD).await.map_err(e)?, Role::Dispatcher)?;
        Ok(ManySites { sites, desk, tokens })
    }

    /// `n` tickets claimed by the logged-in technicians in turn (and checked in when `arrive`).
    pub async fn held(&self, n: usize, arrive: bool) -> anyhow::Result<Arc<Vec<String>>> {
        let tickets = self.take(n).await?;
        let techs: Vec<Caller> = self.techs.iter().map(|t| t.caller.clone()).collect();
        let (pool, list) = (self.pool.clone(), tickets.clone());
        tokio::task::spawn_blocking(move || hand_out(&pool, &list, &techs, arrive)).await??;
        Ok(Arc::new(tickets))
    }

    /// On PostgreSQL, `ANALYZE` before a pass: what autovacuum would have done by then on a
    /// server that runs it (see `docs/performance.md`: without fresh statistics, plans made while
    /// the tables were small stay cached on the server's connections).
    pub async fn settle(&self) -> anyhow::Result<()> {
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

    pub fn token(&self, i: usize) -> String {
        self.techs[i % self.techs.len()].token.clone()
    }
}

/// Starts the server on the benchmark database and makes the world the passes work in; returns
/// it, what setting up took, and the server's task and handle.
pub async fn setup(
    args: &Args,
    db_url: &str,
) -> anyhow::Result<(Fixture, Value, tokio::task::JoinHandle<()>, StopHandle)> {
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
    http.post_ok(
        "/api/v1/users",
        Some(&admin),
        &json!({ "username": "desk1", "password": PASSWORD, "display_name": "调度", "role": "dispatcher",
                 "site_ids": [site], "trades": [] }),
    )
    .await
    .map_err(e)?;
    let desk_token = http.login("desk1", PASSWORD).await.map_err(e)?;
    let desk = caller_of(&desk_token, Role::Dispatcher)?;

    // the bench's own pool, the size of the server's: fixtures and the raw pass
    let pool = {
        let url = repairdesk::db::DatabaseUrl::parse(db_url).map_err(anyhow::Error::msg)?;
        let size = args.pool_size;
        tokio::task::spawn_blocking(move || db::connect(&url, size)).await??
    };
    let t_users = Instant::now();
    let all_techs = {
        let (pool, site, n) = (pool.clone(), site.clone(), args.technicians);
        tokio::task::spawn_blocking(move || insert_technicians(&pool, &site, "tech", n)).await??
    };
    let users_secs = t_users.elapsed().as_secs_f64();

    let t_login = Instant::now();
    let want = args.logged_in.clamp(HOT_RACERS, all_techs.len());
    let techs = login_all(&http, all_techs[..want].iter().map(|(_, name)| name.clone()))
        .await?
        .into_iter()
        .map(|token| Ok(Tech { caller: caller_of(&token, Role::Technician)?, token }))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let login_secs = t_login.elapsed().as_secs_f64();

    // the realistic pool: tickets made by the desk through the API
    let t_tickets = Instant::now();
    let made: Vec<Result<String, String>> = futures_util::stream::iter(0..args.tickets)
        .map(|i| {
            let (http, desk, site) = (http.clone(), desk_token.clone(), site.clone());
            async move {
                let v = http.post_ok("/api/v1/tickets", Some(&desk), &ticket_body(&site, i)).await?;
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
        desk,
        desk_token,
        techs,
        usernames,
        supply: Mutex::new(made),
        pull_bytes: AtomicUsize::new(0),
    };
    Ok((fixture, info, server, stop))
}
