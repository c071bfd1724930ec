//! The console's event stream (`GET /console/events`, the session cookie's): `change` with the
//! ticket's id whenever a ticket of the desk's sites changes, through any instance (the change
//! feed, `jobs::feed`); `tick` every half minute, for the clocks' colours and ages, which move with
//! time alone. The page re-fetches the fragment a message concerns (`assets/console.js`).

use std::time::Duration;

use actix_web::{web, HttpResponse};
use tokio::sync::broadcast::error::RecvError;

use super::session::Desk;
use super::{Page, Refusal};
use crate::db;
use crate::state::AppState;
use crate::views::Viewer;

const TICK: Duration = Duration::from_secs(30);

pub async fn stream(state: web::Data<AppState>, desk: Desk) -> Page {
    // subscribe first: a change made while the page loads is not missed
    let mut rx = state.feed.subscribe();
    let (caller, lang) = (desk.caller.clone(), desk.lang);
    let viewer =
        db::run(&state.pool, move |conn| Viewer::load(conn, caller)).await.map_err(|e| Refusal::from_api(lang, e))?;
    let heartbeat = Duration::from_secs(state.settings.sse_heartbeat_secs);
    let stream = async_stream(move |tx: tokio::sync::mpsc::Sender<web::Bytes>| async move {
        if tx.send(web::Bytes::from_static(b"retry: 2000\n: connected\n\n")).await.is_err() {
            return;
        }
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        loop {
            let frame = tokio::select! {
                _ = tick.tick() => web::Bytes::from_static(b"event: tick\ndata: {}\n\n"),
                _ = ping.tick() => web::Bytes::from_static(b": ping\n\n"),
                msg = rx.recv() => match msg {
                    Ok(c) if viewer.is_site_desk(&c.site_id) => {
                        let data = serde_json::json!({ "ticket_id": c.ticket_id, "number": c.number, "change": c.event_type });
                        web::Bytes::from(format!("event: change\ndata: {data}\n\n"))
                    }
                    Ok(_) => continue,
                    // fell behind: refresh everything
                    Err(RecvError::Lagged(_)) => web::Bytes::from_static(b"event: tick\ndata: {}\n\n"),
                    Err(RecvError::Closed) => return,
                },
            };
            if tx.send(frame).await.is_err() {
                return;
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(stream))
}

/// The frames a task sends, as a body stream; the task ends when the client goes.
fn async_stream<F, Fut>(work: F) -> impl futures_util::Stream<Item = Result<web::Bytes, actix_web::Error>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<web::Bytes>) -> Fut,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    actix_web::rt::spawn(work(tx));
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok(b), rx)) })
}
