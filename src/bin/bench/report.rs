//! The results: a table on stdout, and everything as JSON with `--out`.

use std::path::Path;

use serde_json::{json, Value};

use crate::measure::Summary;
use crate::scenarios::Results;
use crate::setup::nproc;
use crate::Args;

/// The max-pass throughput of `scenario`, when it ran: the mean of its max passes (one-site claims
/// run again after the 8-site passes).
fn max_rps(results: &Results, scenario: &str) -> Option<f64> {
    let passes: Vec<f64> =
        results.rows.iter().filter(|r| r.scenario == scenario && r.mode.starts_with("max")).map(|r| r.rps).collect();
    (!passes.is_empty()).then(|| passes.iter().sum::<f64>() / passes.len() as f64)
}

/// HTTP claims against the database's ceiling, and claims over 8 sites against claims in one:
/// (name, ratio, issue 13's target for it on this engine), for the passes that ran.
fn ratios(args: &Args, results: &Results) -> Vec<(&'static str, f64, f64)> {
    let minimal_target = if args.engine == "postgres" { 0.5 } else { 0.3 };
    let ratio = |name, over, under, target| {
        let (over, under) = (max_rps(results, over)?, max_rps(results, under)?);
        Some((name, over / under, target))
    };
    [
        ratio("claim_over_db_minimal_claim", "claim", "db_minimal_claim", minimal_target),
        ratio("claim_over_db_our_claim_statements", "claim", "db_our_claim_statements", f64::NAN),
        ratio("claim_8_sites_over_claim", "claim_8_sites", "claim", 1.0),
    ]
    .into_iter()
    .flatten()
    .collect()
}

pub fn print_table(args: &Args, results: &Results) {
    let (rows, extra) = (&results.rows, &results.extra);
    println!(
        "\nengine={} concurrency={} duration={}s pool={} workers={}",
        args.engine,
        args.concurrency,
        args.duration,
        args.pool_size,
        args.workers.unwrap_or_else(nproc)
    );
    println!(
        "{:<23} {:<27} {:>8} {:>7} {:>9} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6}",
        "scenario", "mode", "rate", "ok", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "late"
    );
    for r in rows {
        let rate = r.target_rate.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into());
        println!(
            "{:<23} {:<27} {:>8} {:>7} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>6} {:>6}",
            r.scenario, r.mode, rate, r.ok, r.rps, r.p50, r.p95, r.p99, r.max, r.errors, r.late_no_slot
        );
        if let Some(note) = &r.note {
            println!("    note: {note}");
        }
        if let Some(e) = &r.first_error {
            println!("    first error: {e}");
        }
    }
    for (name, ratio, target) in ratios(args, results) {
        let target = if target.is_nan() { String::new() } else { format!("  (target >= {target})") };
        println!("{name}: {ratio:.3}{target}");
    }
    for (k, v) in extra {
        println!("{k}: {v}");
    }
}

/// Every number, with the run's arguments, the machine and the commit, as JSON at `path`.
pub fn write_json(path: &Path, args: &Args, setup: Value, results: &Results) -> anyhow::Result<()> {
    let doc = json!({
        "engine": args.engine,
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "rate_arg": args.rate,
        "pool_size": args.pool_size,
        "workers": args.workers.unwrap_or_else(nproc),
        "machine": machine(),
        "git_commit": git_commit(),
        "setup": setup,
        "results": results.rows.iter().map(Summary::to_json).collect::<Vec<_>>(),
        "ratios": ratios(args, results)
            .into_iter()
            .map(|(name, ratio, target)| (name.to_owned(), json!({ "ratio": ratio, "target_at_least": target })))
            .collect::<serde_json::Map<_, _>>(),
        "extra": results.extra,
    });
    std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
    Ok(())
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
