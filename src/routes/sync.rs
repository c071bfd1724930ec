//! The offline protocol over HTTP: the push's and pull's envelopes are checked here, the work is
//! `crate::sync`'s; the desk's list of refused operations; the stream of changes.

use actix_web::{get, post};
use actix_web::{http::header, web, FromRequest, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::pool::event_stream;
use super::{parse_json_allowing_nul, Checks, JsonBody, Query};
use crate::auth::Caller;
use crate::db;
use crate::domain::user::Role;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;
use crate::sync::{
    self, PullRequest, PullResponse, PushRequest, PushResponse, MAX_OPS, MAX_PUSH_BYTES, SCHEMA_VERSIONS,
};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(push)
        .service(pull)
        .service(rejections)
        .service(stream_ticket)
        .service(stream)
        .service(rx_push_ops)
        .service(rx_pull_ops)
        .service(rx_pull_tickets);
}

/// A push's body: JSON, at most [`MAX_PUSH_BYTES`].
fn push_body<'a>(req: &HttpRequest, body: &'a [u8]) -> ApiResult<&'a [u8]> {
    let is_json =
        req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"));
    if !is_json {
        return Err(ApiError::new(ErrorCode::UnsupportedMediaType, "send the body as application/json"));
    }
    if body.len() > MAX_PUSH_BYTES {
        return Err(ApiError::new(ErrorCode::PayloadTooLarge, "a push may be at most 1 MB: send fewer operations"));
    }
    Ok(body)
}

fn client_uuid(checks: &mut Checks, raw: &str) -> String {
    let parsed = uuid::Uuid::parse_str(raw.trim()).map(|u| u.to_string()).map_err(|_| "must be a UUID".into());
    checks.take("client_id", parsed).unwrap_or_default()
}

/// Push queued operations. They are applied in order, up to 100 of one ticket to a transaction,
/// and each commits together with the client's `last_op_id`; a rejected one still advances it, so a bad
/// operation never blocks the queue. A failure of the server stops the push without advancing it:
/// the answer's `retry_from` says where to push again from (a `503` problem when nothing was
/// reached).
#[utoipa::path(
    tag = "sync",
    security(("bearer" = [])),
    request_body = PushRequest,
    responses(
        (status = 200, body = PushResponse),
        (status = 403, description = "`client_of_another_user`", body = crate::error::Problem),
        (status = 413, description = "more than 500 operations or 1 MB", body = crate::error::Problem),
        (status = 426, description = "`unsupported_schema_version`, with `supported`", body = crate::error::Problem),
        (status = 503, description = "`database_unavailable` or `database_busy` before any operation was reached: push again later", body = crate::error::Problem),
    )
)]
#[post("/sync/push")]
pub async fn push(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let mut request: PushRequest = parse_json_allowing_nul(push_body(&req, &body)?)?;
    request.ops.iter_mut().for_each(sync::screen);
    if !SCHEMA_VERSIONS.contains(&request.schema_version) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedSchemaVersion,
            format!("schema version {} is not supported; update the app", request.schema_version),
        )
        .with("supported", SCHEMA_VERSIONS.to_vec()));
    }
    if request.ops.len() > MAX_OPS {
        return Err(ApiError::new(ErrorCode::PayloadTooLarge, format!("a push may hold at most {MAX_OPS} operations")));
    }
    let mut checks = Checks::default();
    let client_id = client_uuid(&mut checks, &request.client_id);
    checks.finish()?;
    sync::own_client(&state.pool, &caller, &client_id).await?;
    let answer: PushResponse =
        sync::push::push(&state.pool, &state.commands(), &state.faults, caller, client_id, request.ops).await?;
    let mut response = HttpResponse::Ok();
    if answer.retry_from.is_some() {
        response.insert_header((header::RETRY_AFTER, "1"));
    }
    Ok(response.json(answer))
}

/// What changed since the cursor, in commit order, as full ticket snapshots.
#[utoipa::path(
    tag = "sync",
    security(("bearer" = [])),
    request_body = PullRequest,
    responses((status = 200, body = PullResponse), (status = 403, body = crate::error::Problem), (status = 422, body = crate::error::Problem))
)]
#[post("/sync/pull")]
pub async fn pull(state: web::Data<AppState>, caller: Caller, body: JsonBody<PullRequest>) -> ApiResult<HttpResponse> {
    let request = body.0;
    let mut checks = Checks::default();
    let client_id = client_uuid(&mut checks, &request.client_id);
    let limit = request.limit.unwrap_or(100);
    if !sync::PULL_LIMIT.contains(&limit) {
        checks.fail("limit", format!("must be {} to {}", sync::PULL_LIMIT.start(), sync::PULL_LIMIT.end()));
    }
    checks.finish()?;
    sync::own_client(&state.pool, &caller, &client_id).await?;
    let response: PullResponse =
        db::run(&state.pool, move |conn| sync::pull::pull(conn, caller, &client_id, request.cursor.as_deref(), limit))
            .await?;
    Ok(HttpResponse::Ok().json(response))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Rejection {
    pub client_id: String,
    pub op_id: i64,
    pub user_id: String,
    pub ticket_id: Option<String>,
    pub name: String,
    /// Everything the phone sent with it (a completion's result and signature included).
    #[schema(value_type = Object)]
    pub args: Value,
    pub device_time: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    pub code: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RejectionList {
    pub items: Vec<Rejection>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RejectionQuery {
    pub site_id: Option<String>,
}

/// Operations phones pushed that the server refused, newest first: work done offline that the
/// desk must look at.
#[utoipa::path(
    tag = "sync",
    security(("bearer" = [])),
    params(RejectionQuery),
    responses((status = 200, body = RejectionList), (status = 403, body = crate::error::Problem))
)]
#[get("/sync/rejections")]
pub async fn rejections(
    state: web::Data<AppState>,
    caller: Caller,
    query: Query<RejectionQuery>,
) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Admin, Role::Dispatcher, Role::Supervisor])?;
    let site = query.into_inner().site_id;
    let rows = db::run(&state.pool, move |conn| {
        let sites = if caller.is_admin() {
            site.map(|s| vec![s])
        } else {
            let own = db::users::site_ids(conn, &caller.user_id)?;
            Some(own.into_iter().filter(|s| site.as_ref().is_none_or(|f| f == s)).collect())
        };
        Ok(db::sync::rejections(conn, sites.as_deref(), 500)?)
    })
    .await?;
    let items = rows
        .into_iter()
        .map(|r| Rejection {
            client_id: r.client_id,
            op_id: r.op_id,
            user_id: r.user_id,
            ticket_id: r.ticket_id,
            name: r.name,
            args: serde_json::from_str(&r.args).unwrap_or(Value::Null),
            device_time: r.device_time.map(|t| t.and_utc()),
            received_at: r.received_at.and_utc(),
            code: r.code,
            detail: r.detail,
        })
        .collect();
    Ok(HttpResponse::Ok().json(RejectionList { items }))
}

/// How long a stream ticket opens the stream.
pub const STREAM_TICKET_SECS: i64 = 60;

#[derive(Serialize, ToSchema)]
pub struct StreamTicket {
    /// Opens `GET /sync/stream?ticket=...` once.
    pub ticket: String,
    /// Seconds it stays good.
    pub expires_in: i64,
}

/// A single-use ticket that opens the caller's `GET /sync/stream?ticket=...` within a minute: for
/// a browser's `EventSource`, which cannot send an `Authorization` header. It is good once, for
/// this login only; an access token never goes into a URL.
#[utoipa::path(
    tag = "sync",
    security(("bearer" = [])),
    responses((status = 201, body = StreamTicket), (status = 401, body = crate::error::Problem))
)]
#[post("/sync/stream-ticket")]
pub async fn stream_ticket(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    // as random as a refresh token, and kept the same way: only its hash
    let ticket = crate::auth::tokens::new_refresh_token();
    let hash = crate::auth::tokens::hash_refresh_token(&ticket);
    let now = db::now();
    let expires_at = now + chrono::Duration::seconds(STREAM_TICKET_SECS);
    db::run(&state.pool, move |conn| {
        Ok(db::tokens::issue_stream_ticket(conn, &hash, &caller.session_id, &caller.user_id, expires_at, now)?)
    })
    .await?;
    Ok(HttpResponse::Created().json(StreamTicket { ticket, expires_in: STREAM_TICKET_SECS }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// From `POST /sync/stream-ticket`, for a client that cannot send `Authorization`.
    pub ticket: Option<String>,
}

/// Server-sent `changed` events whenever something the caller can see changes: the phone pulls.
/// Event ids are opaque positions; `Last-Event-ID` replays what a reconnecting phone missed.
/// Authorized by the bearer token, or by `?ticket=` from `POST /sync/stream-ticket`.
#[utoipa::path(
    tag = "sync",
    security(("bearer" = []), ()),
    params(StreamQuery),
    responses(
        (status = 200, description = "text/event-stream", content_type = "text/event-stream", body = String),
        (status = 401, description = "`missing_token`, `invalid_token` (a ticket unknown, used or expired)", body = crate::error::Problem),
    )
)]
#[get("/sync/stream")]
pub async fn stream(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: Query<StreamQuery>,
) -> ApiResult<HttpResponse> {
    let caller = match query.into_inner().ticket {
        Some(ticket) => {
            let (hash, now) = (crate::auth::tokens::hash_refresh_token(&ticket), db::now());
            let taken = db::run(&state.pool, move |conn| Ok(db::tokens::take_stream_ticket(conn, &hash, now)?)).await?;
            let (session_id, user_id) = taken.ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidToken,
                    "the stream ticket is unknown, used or expired: ask for a new one",
                )
            })?;
            super::caller::live_caller(&state, session_id, user_id).await?
        }
        None => Caller::extract(&req).await?,
    };
    event_stream(state, caller, req, |viewer| {
        Box::new(move |c| viewer.reach().hears_of(c.facts()).then_some("changed"))
    })
    .await
}

/// Push operation documents, as RxDB's replication sends them (`[{assumedMasterState,
/// newDocumentState}]`, at most 500 or 1 MB). Each is applied like an operation of `POST
/// /sync/push`, each client's in op id order. The answer holds the server's state of every
/// document whose pushed state differs from it (RxDB's conflicts): a new one with its `result`, a
/// duplicate with its stored one; the library writes it onto the phone. A push that a failure of
/// the server stopped, or that lacks an earlier operation of a client, is refused whole (RxDB
/// sends it again): what it applied is kept and answers as duplicates.
#[utoipa::path(
    tag = "sync",
    security(("bearer" = [])),
    request_body = Vec<sync::rx::PushRow>,
    responses(
        (status = 200, body = Vec<sync::rx::OpDocument>),
        (status = 403, description = "`client_of_another_user`", body = crate::error::Problem),
        (status = 409, description = "`ops_missing`: an earlier operation of the client was not pushed yet; `expected` names it", body = crate::error::Problem),
        (status = 413, description = "more than 500 documents or 1 MB", body = crate::error::Problem),
        (status = 422, description = "a document that is not an operation document", body = crate::error::Problem),
        (status = 503, description = "`database_unavailable` or `database_busy`: push again later", body = crate::error::Problem),
    )
)]
#[post("/sync/rx/ops/push")]
pub async fn rx_push_ops(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let rows: Vec<sync::rx::PushRow> = crate::input::parse_json_list_allowing_nul(push_body(&req, &body)?)?;
    if rows.len() > MAX_OPS {
        return Err(ApiError::new(ErrorCode::PayloadTooLarge, format!("a push may hold at most {MAX_OPS} documents")));
    }
    let answer = sync::rx::push_ops(&state.pool, &state.commands(), &state.faults, caller, rows).await?;
    Ok(HttpResponse::Ok().json(answer))
}

fn batch_size(size: i64) -> ApiResult<i64> {
    if !sync::rx::BATCH_SIZE.contains(&size) {
        let (lo, hi) = (sync::rx::BATCH_SIZE.start(), sync::rx::BATCH_SIZE.end());
        return Err(ApiError::field("batchSize", format!("must be {lo} to {hi}")));
    }
    Ok(size)
}

/// The caller's operation documents with their results, from a checkpoint on (the first pull
/// reaches 30 days back): how a phone whose push answer was lost learns the verdicts.
#[utoipa::path(
    tag = "sync",
    security(("bearer" = [])),
    request_body = sync::rx::RxPull<sync::rx::OpsCheckpoint>,
    responses((status = 200, body = sync::rx::OpsPage), (status = 422, body = crate::error::Problem))
)]
#[post("/sync/rx/ops/pull")]
pub async fn rx_pull_ops(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<sync::rx::RxPull<sync::rx::OpsCheckpoint>>,
) -> ApiResult<HttpResponse> {
    let request = body.0;
    let limit = batch_size(request.batch_size)?;
    let page =
        db::run(&state.pool, move |conn| sync::rx::pull_ops(conn, &caller, request.checkpoint, limit, db::now()))
            .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// The caller's tickets as documents, from a checkpoint on (the whole view on the first pull),
/// with `{id, _deleted: true}` for a ticket that left their view. A page shorter than `batchSize`
/// is the last. A checkpoint never expires; after a change of the caller's sites, trades or role
/// every ticket of the sites they had and have comes again, as it stands or as a tombstone.
#[utoipa::path(
    tag = "sync",
    security(("bearer" = [])),
    request_body = sync::rx::RxPull<sync::rx::TicketsCheckpoint>,
    responses((status = 200, body = sync::rx::TicketsPage), (status = 422, body = crate::error::Problem))
)]
#[post("/sync/rx/tickets/pull")]
pub async fn rx_pull_tickets(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<sync::rx::RxPull<sync::rx::TicketsCheckpoint>>,
) -> ApiResult<HttpResponse> {
    let request = body.0;
    let limit = batch_size(request.batch_size)?;
    let key = sync::rx::scope_key(&state.code_key);
    let page =
        db::run(&state.pool, move |conn| sync::rx::pull_tickets(conn, caller, &key, request.checkpoint, limit)).await?;
    Ok(HttpResponse::Ok().json(page))
}
