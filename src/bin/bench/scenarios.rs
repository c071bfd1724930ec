//! The scenarios, each one pass or two over the server set up in `setup` (docs/performance.md).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use repairdesk::auth::Caller;
use serde_json::{json, Value};

use crate::http::Http;
use crate::measure::{closed_loop, ms, open_loop, report_line, summarise, Recorder, Request, Summary};
use crate::raw::{db_pass, DbClaim};
use crate::setup::Fixture;
use crate::{Args, HOT_ALONE, HOT_RACERS, PASSWORD};

/// What the passes measured: a row each, and the numbers that are not rows.
#[derive(Default)]
pub struct Results {
    pub rows: Vec<Summary>,
    pub extra: serde_json::Map<String, Value>,
}

/// A pull's answer, with its tickets only counted.
#[derive(serde::Deserialize)]
struct PullCount {
    tickets: Vec<serde::de::IgnoredAny>,
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

/// Claims `pairs[i]`: (ticket, the access token of the technician claiming it).
fn claims(fx: &Arc<Fixture>, pairs: Vec<(String, String)>) -> (Request, usize) {
    let (f, items, pairs) = (fx.clone(), pairs.len(), Arc::new(pairs));
    let req: Request = Arc::new(move |i| {
        let (f, pairs) = (f.clone(), pairs.clone());
        async move {
            let (ticket, token) = &pairs[i];
            f.http.post_ok(&format!("/api/v1/tickets/{ticket}/claim"), Some(token), &json!({})).await.map(|_| ())
        }
        .boxed()
    });
    (req, items)
}

/// (a) Claims of distinct tickets of the one site, technicians in turn.
pub async fn claim(args: &Args, fx: &Arc<Fixture>, out: &mut Results) -> anyhow::Result<()> {
    let f = fx.clone();
    two_passes(
        args,
        fx,
        "claim",
        3000 * args.duration as usize,
        |n| {
            let f = f.clone();
            async move {
                let tickets = f.take(n).await?;
                let pairs = tickets.into_iter().enumerate().map(|(i, t)| (t, f.token(i))).collect();
                Ok(claims(&f, pairs))
            }
        },
        &mut out.rows,
    )
    .await
}

/// (a') Claims of distinct tickets in [`crate::SITES_AT_ONCE`] sites at once: claim `i` is in site
/// `i % 8`, by that site's technicians in turn (each belongs to that one site).
pub async fn claim_8_sites(args: &Args, fx: &Arc<Fixture>, out: &mut Results) -> anyhow::Result<()> {
    let world = Arc::new(fx.sites_at_once().await?);
    let f = fx.clone();
    two_passes(
        args,
        fx,
        "claim_8_sites",
        3000 * args.duration as usize,
        |n| {
            let (f, world) = (f.clone(), world.clone());
            async move {
                let per_site = n.div_ceil(world.sites.len());
                let made = f.create_in(&world.desk, &world.sites, per_site).await?;
                let pairs = (0..per_site * world.sites.len())
                    .map(|i| {
                        let (k, j) = (i % world.sites.len(), i / world.sites.len());
                        let techs = &world.tokens[k];
                        (made[k][j].clone(), techs[j % techs.len()].clone())
                    })
                    .collect();
                Ok(claims(&f, pairs))
            }
        },
        &mut out.rows,
    )
    .await?;
    // one-site claims again, on the database as the 8-site passes left it: the ratio compares the
    // 8-site pass with the mean of the one-site passes before and after it, so the growth of the
    // tables through the run favours neither
    if out.rows.iter().any(|r| r.scenario == "claim") {
        let tickets = fx.take(3000 * args.duration as usize).await?;
        let pairs = tickets.into_iter().enumerate().map(|(i, t)| (t, fx.token(i))).collect();
        let (req, items) = claims(fx, pairs);
        fx.settle().await?;
        let mut again = closed_loop("claim", args.concurrency, Duration::from_secs(args.duration), items, req).await;
        again.mode = "max (again, after 8 sites)".into();
        report_line(&again);
        out.rows.push(again);
    }
    Ok(())
}

/// A claim pass straight on the database (`raw`): the same tables, technicians, pool size and
/// concurrency as the HTTP claims, on the database as the passes before left it. The minimal
/// claim takes up to 8,000 tickets per second of `--duration`, the service's statements 4,000;
/// a pass that runs out of them early notes it, and its rate stands for the time it ran.
pub async fn db_claims(args: &Args, fx: &Arc<Fixture>, kind: DbClaim, out: &mut Results) -> anyhow::Result<()> {
    let d = Duration::from_secs(args.duration);
    let per_second = match kind {
        DbClaim::Minimal => 8000,
        DbClaim::OurStatements => 4000,
    };
    let tickets = Arc::new(fx.take(per_second * args.duration as usize).await?);
    let techs: Arc<Vec<Caller>> = Arc::new(fx.techs.iter().map(|t| t.caller.clone()).collect());
    let (pool, threads) = (fx.pool.clone(), args.concurrency);
    fx.settle().await?;
    let s = tokio::task::spawn_blocking(move || db_pass(kind, &pool, tickets, techs, threads, d)).await?;
    report_line(&s);
    out.rows.push(s);
    Ok(())
}

/// (b) A hot ticket raced by 64 technicians, round after round; then a winning and a losing claim
/// one at a time.
pub async fn hot(args: &Args, fx: &Arc<Fixture>, out: &mut Results) -> anyhow::Result<()> {
    let d = Duration::from_secs(args.duration);
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
    out.extra.insert("hot_rounds".into(), json!(rounds));
    out.extra.insert("hot_rounds_without_one_winner".into(), json!(bad_rounds));
    out.rows.push(w);
    out.rows.push(l);
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
        out.rows.push(s);
    }
    Ok(())
}

/// (c) Arrive, add a material, complete: one job is three requests in a row.
pub async fn flow(args: &Args, fx: &Arc<Fixture>, out: &mut Results) -> anyhow::Result<()> {
    let f = fx.clone();
    two_passes(
        args,
        fx,
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
                        h.post_ok(
                            &format!("/api/v1/tickets/{t}/arrive"),
                            Some(&token),
                            &json!({ "lat": 30.5, "lng": 114.3 }),
                        )
                        .await?;
                        let line = json!({ "id": uuid::Uuid::new_v4(), "name": "角阀", "spec": "DN15", "quantity": "2",
                                           "unit": "个", "unit_price_cents": 1500, "supplied_by": "company" });
                        h.post_ok(&format!("/api/v1/tickets/{t}/materials"), Some(&token), &line).await?;
                        h.post_ok(
                            &format!("/api/v1/tickets/{t}/complete"),
                            Some(&token),
                            &json!({ "result": "更换角阀" }),
                        )
                        .await
                        .map(|_| ())
                    }
                    .boxed()
                });
                Ok((req, items))
            }
        },
        &mut out.rows,
    )
    .await
}

/// (d) Sync pushes of 50-operation batches, each from a new client.
pub async fn push(args: &Args, fx: &Arc<Fixture>, out: &mut Results) -> anyhow::Result<()> {
    let f = fx.clone();
    two_passes(
        args,
        fx,
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
        &mut out.rows,
    )
    .await
}

/// (e) The desk pulls a 200-ticket view.
pub async fn pull(args: &Args, fx: &Arc<Fixture>, out: &mut Results) -> anyhow::Result<()> {
    let f = fx.clone();
    let client_id = uuid::Uuid::new_v4().to_string();
    two_passes(
        args,
        fx,
        "pull(200)",
        usize::MAX,
        |_| {
            let (f, client_id) = (f.clone(), client_id.clone());
            async move {
                let req: Request = Arc::new(move |_| {
                    let (f, client_id) = (f.clone(), client_id.clone());
                    async move {
                        let body = json!({ "client_id": client_id, "cursor": null, "limit": 200 });
                        let (status, bytes) = f.http.post_raw("/api/v1/sync/pull", Some(&f.desk_token), &body).await?;
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
        &mut out.rows,
    )
    .await?;
    out.extra.insert("pull_answer_bytes_max".into(), json!(fx.pull_bytes.load(Ordering::Relaxed)));
    Ok(())
}

/// (f) Technicians log in.
pub async fn login(args: &Args, fx: &Arc<Fixture>, out: &mut Results) -> anyhow::Result<()> {
    let f = fx.clone();
    two_passes(
        args,
        fx,
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
        &mut out.rows,
    )
    .await
}

/// One push of 500 operations (a day's offline queue), timed, five times.
pub async fn push500(fx: &Arc<Fixture>, out: &mut Results) -> anyhow::Result<()> {
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
    out.extra.insert("push_500_ops_ms".into(), json!(times));
    Ok(())
}
