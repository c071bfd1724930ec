//! (h) The desk's board (issue 17): `GET /` with the console's session cookie, the bench site's
//! live tickets in columns (`--tickets 500`: a board of 500 open tickets), one request at a time
//! (the server time of one board, the target: under 200 ms) and at `--concurrency`; and the
//! board's read alone on the database (`commands::board::board`: no HTTP, no HTML), its floor.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use repairdesk::commands;
use repairdesk::domain::ticket::Clock;
use repairdesk::views::Viewer;
use serde_json::json;

use crate::http::chain;
use crate::measure::{closed_loop, report_line, summarise, Recorder, Request};
use crate::scenarios::Results;
use crate::setup::Fixture;
use crate::{Args, PASSWORD};

/// Logs the desk into the console through its login form; answers the session cookie.
async fn console_cookie(fx: &Fixture) -> anyhow::Result<String> {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let page = client.get(format!("{}/console/login", fx.http.base)).send().await?;
    let cookie_of = |res: &reqwest::Response, name: &str| {
        res.headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .and_then(|v| v.split(';').next())
            .map(str::to_owned)
    };
    let login_cookie = cookie_of(&page, "rd_login_csrf").ok_or_else(|| anyhow::anyhow!("no login cookie"))?;
    let csrf = login_cookie.split_once('=').map(|(_, v)| v.to_owned()).unwrap_or_default();
    let res = client
        .post(format!("{}/console/login", fx.http.base))
        .header("cookie", &login_cookie)
        .form(&[("username", "desk1"), ("password", PASSWORD), ("csrf", csrf.as_str())])
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("console login: {}", chain(&e)))?;
    cookie_of(&res, "rd_console").ok_or_else(|| anyhow::anyhow!("console login answered {}", res.status()))
}

pub async fn board(args: &Args, fx: &Arc<Fixture>, out: &mut Results) -> anyhow::Result<()> {
    let cookie = Arc::new(console_cookie(fx).await?);
    let d = Duration::from_secs(args.duration);
    let f = fx.clone();
    let req: Request = Arc::new(move |_| {
        let (f, cookie) = (f.clone(), cookie.clone());
        async move {
            let res = f
                .http
                .client
                .get(format!("{}/", f.http.base))
                .header("cookie", cookie.as_str())
                .send()
                .await
                .map_err(|e| chain(&e))?;
            let status = res.status().as_u16();
            let body = res.bytes().await.map_err(|e| chain(&e))?;
            if status != 200 {
                return Err(format!("board: {status}"));
            }
            if body.len() < 1000 {
                return Err("board: a page without tickets".into());
            }
            Ok(())
        }
        .boxed()
    });
    fx.settle().await?;
    let cards = {
        let (pool, desk) = (fx.pool.clone(), fx.desk.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
            let mut conn = pool.get()?;
            let viewer = Viewer::load(&mut conn, desk).map_err(|e| anyhow::anyhow!("{e}"))?;
            let b = commands::board::board(&mut conn, &viewer, &Clock::default(), None, repairdesk::db::now())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(b.columns.iter().map(|(_, c)| c.len()).sum())
        })
        .await??
    };
    eprintln!("  board: {cards} tickets on the board");
    out.extra.insert("board_tickets".into(), json!(cards));
    let one = closed_loop("board_one_at_a_time", 1, d, usize::MAX, req.clone()).await;
    report_line(&one);
    out.rows.push(one);
    fx.settle().await?;
    let many = closed_loop("board", args.concurrency, d, usize::MAX, req).await;
    report_line(&many);
    out.rows.push(many);

    // the floor: the board's read alone, one at a time on one connection
    let (pool, desk) = (fx.pool.clone(), fx.desk.clone());
    let read = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let mut rec = Recorder::default();
        let mut conn = pool.get().expect("a connection");
        let viewer = Viewer::load(&mut conn, desk).expect("the desk");
        while start.elapsed() < d {
            let t0 = Instant::now();
            let r = commands::board::board(&mut conn, &viewer, &Clock::default(), None, repairdesk::db::now())
                .map(|_| ())
                .map_err(|e| e.to_string());
            rec.add(t0.elapsed(), r);
        }
        summarise("db_board", "one at a time (the board's read alone)", None, rec, start.elapsed())
    })
    .await?;
    report_line(&read);
    out.rows.push(read);
    Ok(())
}
