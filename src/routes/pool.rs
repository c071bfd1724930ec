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
use crate::db::events::Horizon;
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

const RESYNC: &[u8] = b"event: resync\ndata: {}\n\n";

/// Decides the event name a change has on one stream, if any.
pub type Router = Box<dyn Fn(&Change) -> Option<&'static str>>;

fn frame(event: &str, c: &Change) -> web::Bytes {
    let data = json!({
        "seq": c.seq, "ticket_id": c.ticket_id, "number": c.number, "site_id": c.site_id,
        "category": c.category, "urgency": c.urgency, "status": c.to_status, "change": c.event_type,
    });
    web::Bytes::from(format!("id: {}\nevent: {event}\ndata: {data}\n\n", c.resume))
}

struct StreamState {
    rx: broadcast::Receiver<Arc<Change>>,
    backlog: VecDeque<Change>,
    /// Changes this horizon holds were in the backlog (or with the phone before): not sent again.
    caught_up: Option<Horizon>,
    /// The phone's `Last-Event-ID` could not be resumed from: it is told to refetch first.
    resync: bool,
    heartbeat: tokio::time::Interval,
    route: Router,
    greeted: bool,
}

/// Server-sent events for the calling technician: `pool_added`, `pool_removed`,
/// `ticket_assigned`, `ticket_lost` (reassigned or cancelled away from them) and `resync` (refetch
/// the pool: this stream fell behind). Reconnect with the last event id received as
/// `Last-Event-ID` to receive what was missed (some changes may come twice). Comments (`: ping`)
/// keep proxies from closing it.
#[utoipa::path(
    tag = "pool",
    security(("bearer" = [])),
    params(("Last-Event-ID" = Option<String>, Header, description = "the last event id received")),
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
    let last_event_id = req.headers().get("last-event-id").map(|v| v.to_str().ok().and_then(Horizon::parse));
    // subscribe before reading the backlog, so nothing falls between the two
    let rx = state.feed.subscribe();
    let viewer = db::run(&state.pool, move |conn| Viewer::load(conn, caller)).await?;
    let route = router(viewer);
    let (backlog, caught_up, resync) = match last_event_id {
        Some(Some(after)) => match db::run(&state.pool, move |conn| Ok(feed::since(conn, &after, 1000)?)).await? {
            Some((changes, now)) => (changes.into(), Some(now), false),
            None => (VecDeque::new(), None, true),
        },
        // an id this server did not write (or wrote before horizons): start over
        Some(None) => (VecDeque::new(), None, true),
        None => (VecDeque::new(), None, false),
    };
    let every = Duration::from_secs(state.settings.sse_heartbeat_secs);
    let heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let start = StreamState { rx, backlog, caught_up, resync, heartbeat, route, greeted: false };
    let stream = futures_util::stream::unfold(start, |mut s| async move {
        if !s.greeted {
            s.greeted = true;
            return Some((Ok::<_, actix_web::Error>(web::Bytes::from_static(b"retry: 2000\n: connected\n\n")), s));
        }
        if std::mem::take(&mut s.resync) {
            return Some((Ok(web::Bytes::from_static(RESYNC)), s));
        }
        while let Some(c) = s.backlog.pop_front() {
            if let Some(event) = (s.route)(&c) {
                return Some((Ok(frame(event, &c)), s));
            }
        }
        loop {
            tokio::select! {
                _ = s.heartbeat.tick() => return Some((Ok(web::Bytes::from_static(b": ping\n\n")), s)),
                msg = s.rx.recv() => match msg {
                    Ok(c) if !s.caught_up.as_ref().is_some_and(|h| h.holds(c.tx)) => {
                        if let Some(event) = (s.route)(&c) {
                            return Some((Ok(frame(event, &c)), s));
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => {
                        return Some((Ok(web::Bytes::from_static(RESYNC)), s));
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
