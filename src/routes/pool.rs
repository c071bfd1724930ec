//! The grab pool (抢单) a technician's phone shows, and its live stream.

use actix_web::get;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use utoipa_actix_web::service_config::ServiceConfig;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::db;
use crate::domain::access::PoolEvent;
use crate::domain::user::Role;
use crate::error::ApiResult;
use crate::jobs::feed::{self, Change};
use crate::state::AppState;
use crate::views::{TicketView, Viewer};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(pool).service(pool_stream);
}

#[derive(Serialize, ToSchema)]
pub struct PoolList {
    pub items: Vec<TicketView>,
}

/// Open tickets the calling technician may claim: their sites, their trades; emergencies first,
/// then oldest. The reporter's phone is masked until the ticket is theirs.
#[utoipa::path(
    tag = "pool",
    security(("bearer" = [])),
    responses((status = 200, body = PoolList), (status = 403, body = crate::error::Problem))
)]
#[get("/pool")]
pub async fn pool(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Technician])?;
    let items = db::run(&state.pool, move |conn| {
        let viewer = Viewer::load(conn, caller)?;
        let rows = db::tickets::pool(conn, &viewer.sites, &viewer.trades)?;
        viewer.views(conn, rows)
    })
    .await?;
    Ok(HttpResponse::Ok().json(PoolList { items }))
}

/// Decides the event name a change has on one stream, if any.
pub type Router = Box<dyn Fn(&Change) -> Option<&'static str>>;

fn frame(event: &str, c: &Change) -> web::Bytes {
    let data = json!({
        "seq": c.seq, "ticket_id": c.ticket_id, "number": c.number, "site_id": c.site_id,
        "category": c.category, "urgency": c.urgency, "status": c.to_status, "change": c.event_type,
    });
    web::Bytes::from(format!("id: {}\nevent: {event}\ndata: {data}\n\n", c.seq))
}

struct StreamState {
    rx: broadcast::Receiver<Arc<Change>>,
    backlog: VecDeque<Change>,
    last_sent: i64,
    heartbeat: tokio::time::Interval,
    route: Router,
    greeted: bool,
}

/// Server-sent events for the calling technician: `pool_added`, `pool_removed`,
/// `ticket_assigned`, `ticket_lost` (reassigned or cancelled away from them) and `resync` (refetch
/// the pool: this stream fell behind). Event ids are sequence numbers: reconnect with
/// `Last-Event-ID` to receive what was missed. Comments (`: ping`) keep proxies from closing it.
#[utoipa::path(
    tag = "pool",
    security(("bearer" = [])),
    params(("Last-Event-ID" = Option<i64>, Header, description = "the last event id received")),
    responses((status = 200, description = "text/event-stream", content_type = "text/event-stream", body = String))
)]
#[get("/pool/stream")]
pub async fn pool_stream(state: web::Data<AppState>, caller: Caller, req: HttpRequest) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Technician])?;
    event_stream(state, caller, req, |viewer| {
        Box::new(move |c| viewer.reach().pool_event(c.facts()).map(PoolEvent::as_str))
    })
    .await
}

/// A live stream of the changes `router` picks for the caller, replaying from `Last-Event-ID`.
pub async fn event_stream(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    router: impl FnOnce(Viewer) -> Router,
) -> ApiResult<HttpResponse> {
    let last_event_id =
        req.headers().get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<i64>().ok());
    // subscribe before reading the backlog, so nothing falls between the two
    let rx = state.feed.subscribe();
    let viewer = db::run(&state.pool, move |conn| Viewer::load(conn, caller)).await?;
    let route = router(viewer);
    let backlog: VecDeque<Change> = match last_event_id {
        Some(after) => db::run(&state.pool, move |conn| Ok(feed::since(conn, after, 1000)?)).await?.into(),
        None => VecDeque::new(),
    };
    let every = Duration::from_secs(state.settings.sse_heartbeat_secs);
    let heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let start = StreamState { rx, backlog, last_sent: last_event_id.unwrap_or(0), heartbeat, route, greeted: false };
    let stream = futures_util::stream::unfold(start, |mut s| async move {
        if !s.greeted {
            s.greeted = true;
            return Some((Ok::<_, actix_web::Error>(web::Bytes::from_static(b"retry: 2000\n: connected\n\n")), s));
        }
        while let Some(c) = s.backlog.pop_front() {
            s.last_sent = s.last_sent.max(c.seq);
            if let Some(event) = (s.route)(&c) {
                return Some((Ok(frame(event, &c)), s));
            }
        }
        loop {
            tokio::select! {
                _ = s.heartbeat.tick() => return Some((Ok(web::Bytes::from_static(b": ping\n\n")), s)),
                msg = s.rx.recv() => match msg {
                    Ok(c) if c.seq > s.last_sent => {
                        s.last_sent = c.seq;
                        if let Some(event) = (s.route)(&c) {
                            return Some((Ok(frame(event, &c)), s));
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => {
                        return Some((Ok(web::Bytes::from_static(b"event: resync\ndata: {}\n\n")), s));
                    }
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(stream))
}
