//! `bench`: load test of a real in-process server, and the database's own ceiling for claims.
//!
//! `cargo run --release --bin bench -- --engine sqlite|postgres --concurrency N --duration SECS
//! [--rate R] [--out FILE.json]`. See docs/performance.md for what each scenario does.
//!
//! `setup` makes the world (database, server, site, desk, technicians, tickets), `scenarios` runs
//! the passes over it with the loops of `measure`, `raw` makes claims straight on the database
//! (the least a claim can be, and the service's own statements), `sse` the
//! memory of idle streams, and `report` prints and writes the results.

mod board;
mod http;
mod measure;
mod monthly;
mod raw;
mod report;
mod scenarios;
mod search;
mod setup;
mod sse;

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use repairdesk::db;
use serde_json::json;

use crate::raw::DbClaim;
use crate::scenarios::Results;
use crate::setup::BenchDb;

pub const JWT_SECRET: &str = "bench-secret-bench-secret-bench-secret-0123";
pub const ADMIN_PASSWORD: &str = "admin-password-1";
pub const PASSWORD: &str = "password-123";
/// Tickets claimed twice, one claim at a time, after the hot-ticket race.
pub const HOT_ALONE: usize = 200;
pub const HOT_RACERS: usize = 64;
pub const TRADE: &str = "water";
/// Sites of the `claim_8_sites` scenario.
pub const SITES_AT_ONCE: usize = 8;

#[derive(Parser, Clone, Debug)]
#[command(about = "Benchmarks repairdesk over HTTP and its database directly")]
pub struct Args {
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
    /// Scenarios to run, comma-separated: claim,claim_8_sites,raw,hot,flow,push,pull,login,push500,board,search,report,sse
    /// (board: the desk console's board of the site's --tickets open tickets, e.g. --tickets 500;
    /// raw: db_minimal_claim and db_our_claim_statements, each of which can also be named alone;
    /// search writes --search-tickets tickets into the site first, and report a month of
    /// --report-tickets, so they run after the others)
    #[arg(long, default_value = "claim,claim_8_sites,raw,hot,flow,push,pull,login,push500,search,report,sse")]
    only: String,
    /// Tickets written into the bench site for the `search` scenario
    #[arg(long, default_value_t = 100_000)]
    search_tickets: usize,
    /// Tickets written into one month of the bench site for the `report` scenario
    #[arg(long, default_value_t = 20_000)]
    report_tickets: usize,
    /// Months of --report-tickets each written before and after the month reported, so its
    /// reads pass over a longer history than the month alone
    #[arg(long, default_value_t = 1)]
    report_months_around: u32,
    /// Keep the benchmark's database afterwards (its URL is printed), to look at its plans and data
    #[arg(long)]
    keep_db: bool,
    /// Internal: serve this DATABASE_URL and print the port (the SSE memory measurement's server)
    #[arg(long, hide = true)]
    serve: Option<String>,
}

async fn run(args: Args) -> anyhow::Result<()> {
    let only: Vec<&str> = args.only.split(',').map(str::trim).collect();
    let wants = |s: &str| only.contains(&s);
    let bench_db = BenchDb::create(&args)?;
    let db_url = bench_db.url();
    eprintln!("engine {} database {}", args.engine, db_url);
    let (fx, setup_info, server, stop) = setup::setup(&args, &db_url).await?;
    let fx = Arc::new(fx);
    let mut out = Results::default();
    if let Some(off) = db::autovacuum_off(&mut *fx.pool.get()?)? {
        out.extra.insert("postgres_autovacuum_off".into(), json!(off));
        out.extra.insert("analyze_before_each_pass".into(), json!(true));
    }
    if wants("claim") {
        scenarios::claim(&args, &fx, &mut out).await?;
    }
    if wants("claim_8_sites") {
        scenarios::claim_8_sites(&args, &fx, &mut out).await?;
    }
    for kind in [DbClaim::Minimal, DbClaim::OurStatements] {
        if wants("raw") || wants(kind.scenario()) {
            scenarios::db_claims(&args, &fx, kind, &mut out).await?;
        }
    }
    if wants("hot") {
        scenarios::hot(&args, &fx, &mut out).await?;
    }
    if wants("flow") {
        scenarios::flow(&args, &fx, &mut out).await?;
    }
    if wants("push") {
        scenarios::push(&args, &fx, &mut out).await?;
    }
    if wants("pull") {
        scenarios::pull(&args, &fx, &mut out).await?;
    }
    if wants("login") {
        scenarios::login(&args, &fx, &mut out).await?;
    }
    if wants("push500") {
        scenarios::push500(&fx, &mut out).await?;
    }
    if wants("board") {
        board::board(&args, &fx, &mut out).await?;
    }
    if wants("search") {
        search::search(&args, &fx, &mut out).await?;
    }
    if wants("report") {
        monthly::report(&args, &fx, &mut out).await?;
    }
    stop.stop(true).await;
    let _ = server.await;

    if wants("sse") && args.sse > 0 {
        let tokens: Vec<String> = fx.techs.iter().map(|t| t.token.clone()).collect();
        let memory = match sse::sse_memory(&db_url, &args, &tokens).await {
            Ok(v) => {
                eprintln!("  sse: {v}");
                v
            }
            Err(e) => {
                eprintln!("  sse: failed: {e:#}");
                json!({ "error": format!("{e:#}") })
            }
        };
        out.extra.insert("sse".into(), memory);
    }

    report::print_table(&args, &out);
    if let Some(path) = &args.out {
        report::write_json(path, &args, setup_info, &out)?;
        eprintln!("wrote {}", path.display());
    }
    drop(fx);
    if args.keep_db {
        eprintln!("--keep-db: {db_url} stays");
        std::mem::forget(bench_db);
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(url) = args.serve.clone() {
        return sse::serve_only(&url, &args).await;
    }
    run(args).await
}
