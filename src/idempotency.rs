//! `Idempotency-Key`: a POST, PATCH or DELETE sent again with the same key and body gets the first
//! answer again instead of running twice (the desk and the phones retry on bad networks); the
//! same key with another body is refused. Keys belong to the calling user and live 24 hours.
//!
//! Only an answer to a request that changed something is kept (as Stripe does): a success, or a
//! refusal whose trace must stand (a counted wrong code). A request refused before it changed
//! anything (bad fields, a conflict, a rate limit) or failed on our side frees its key, so the
//! phone can correct the request and send it again with the same key. Bodies are compared as
//! JSON, whatever the order of their members; a body that is not JSON, byte for byte.

use actix_web::body::{self, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse, ResponseError};
use sha2::{Digest, Sha256};

use crate::db;
use crate::error::{ApiError, ErrorCode, LeavesTrace};
use crate::state::AppState;

pub const HEADER: &str = "idempotency-key";
/// How long a key is: 1 to 200 visible ASCII characters.
pub const KEY_LEN: std::ops::RangeInclusive<usize> = 1..=200;
/// A key as the schema states it.
pub const KEY_PATTERN: &str = "^[!-~]{1,200}$";
/// A first request older than this with no answer stored died with its process; a retry runs it
/// again (requests are bounded well below it by the 5 s database pool timeout). Ticket creation
/// also keeps its key on the ticket, so running it again finds the ticket it made.
const ABANDONED_AFTER: chrono::Duration = chrono::Duration::seconds(15);

enum Decision {
    Run,
    Replay { status: u16, content_type: Option<String>, body: String },
}

pub async fn middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let writes = matches!(*req.method(), Method::POST | Method::PATCH | Method::PUT | Method::DELETE);
    let key = req.headers().get(HEADER).map(|v| v.to_str().map(str::to_owned));
    // logins hand out secrets: never stored
    let (true, Some(key), false) = (writes, key, req.path().starts_with("/api/v1/auth/")) else {
        return next.call(req).await.map(ServiceResponse::map_into_boxed_body);
    };
    let key = match key {
        Ok(k) if KEY_LEN.contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()) => k,
        _ => {
            let e = ApiError::field("Idempotency-Key", "must be 1 to 200 visible ASCII characters");
            return Ok(req.into_response(e.error_response()));
        }
    };
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next.call(req).await.map(ServiceResponse::map_into_boxed_body);
    };
    let user_id = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .and_then(|t| state.keys.verify(t.trim()))
        .map(|c| c.sub);
    // no valid caller: the handler answers 401 and there is nothing to remember
    let Some(user_id) = user_id else {
        return next.call(req).await.map(ServiceResponse::map_into_boxed_body);
    };

    let bytes = match req.extract::<web::Bytes>().await {
        Ok(b) => b,
        Err(_) => {
            let e = ApiError::new(ErrorCode::PayloadTooLarge, "the body is too large or could not be read");
            return Ok(req.into_response(e.error_response()));
        }
    };
    let hash = hex::encode(
        Sha256::new()
            .chain_update(req.method().as_str())
            .chain_update(b"\n")
            .chain_update(req.uri().to_string())
            .chain_update(b"\n")
            .chain_update(canonical_body(&bytes))
            .finalize(),
    );
    req.set_payload(bytes_payload(bytes));

    let decision = {
        let (user_id, key) = (user_id.clone(), key.clone());
        db::run(&state.pool, move |conn| {
            let now = db::now();
            if db::idempotency::begin(conn, &user_id, &key, &hash, now)? {
                return Ok(Decision::Run);
            }
            let row = db::idempotency::find(conn, &user_id, &key)?
                .ok_or_else(|| ApiError::new(ErrorCode::IdempotencyKeyInUse, "retry this request").retry_after(1))?;
            if row.request_hash != hash {
                return Err(ApiError::new(
                    ErrorCode::IdempotencyKeyReused,
                    "this Idempotency-Key was sent before with another request; use a new key",
                ));
            }
            if let (Some(status), Some(body)) = (row.status_code, row.body) {
                return Ok(Decision::Replay { status: status as u16, content_type: row.content_type, body });
            }
            if db::idempotency::take_over(conn, &user_id, &key, now - ABANDONED_AFTER, now)? {
                return Ok(Decision::Run);
            }
            Err(ApiError::new(ErrorCode::IdempotencyKeyInUse, "the first request with this key is still running")
                .retry_after(1))
        })
        .await
    };
    match decision {
        Err(e) => Ok(req.into_response(e.error_response())),
        Ok(Decision::Replay { status, content_type, body }) => {
            let mut res = HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
            if let Some(ct) = content_type {
                res.insert_header((header::CONTENT_TYPE, ct));
            }
            res.insert_header(("idempotent-replayed", "true"));
            Ok(req.into_response(res.body(body)))
        }
        Ok(Decision::Run) => {
            let res = next.call(req).await?;
            let status = res.status();
            let (http_req, response) = res.into_parts();
            let (response, body) = response.into_parts();
            let bytes = body::to_bytes(body).await.map_err(|_| ApiError::internal("response body unreadable"))?;
            let content_type =
                response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let keep = status.is_success() || response.extensions().contains::<LeavesTrace>();
            let stored = String::from_utf8_lossy(&bytes).into_owned();
            let outcome = db::run(&state.pool, move |conn| {
                if keep {
                    db::idempotency::finish(conn, &user_id, &key, status.as_u16(), content_type, stored)?;
                } else {
                    db::idempotency::abandon(conn, &user_id, &key)?;
                }
                Ok(())
            })
            .await;
            if let Err(e) = outcome {
                tracing::warn!(error = %e, "could not store the idempotent answer");
            }
            Ok(ServiceResponse::new(http_req, response.set_body(BoxBody::new(bytes))))
        }
    }
}

fn bytes_payload(bytes: web::Bytes) -> Payload {
    let (_, mut payload) = actix_http::h1::Payload::create(true);
    payload.unread_data(bytes);
    Payload::from(payload)
}

/// The body as compared: JSON re-written with each object's members sorted by name (so their
/// order does not matter), anything else as sent.
fn canonical_body(bytes: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(value) => {
            let mut out = Vec::with_capacity(bytes.len());
            write_canonical(&value, &mut out);
            out
        }
        Err(_) => bytes.to_vec(),
    }
}

fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (name, member)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend(Value::String(name.clone()).to_string().into_bytes());
                out.push(b':');
                write_canonical(member, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => out.extend(scalar.to_string().into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::canonical_body;

    #[test]
    fn the_same_json_in_another_order_or_spacing_is_the_same_body() {
        let a = canonical_body(br#"{"b": 1, "a": {"y": [1, {"d": 2, "c": 3}], "x": "\u00e9"}}"#);
        let b = canonical_body(r#"{"a":{"x":"é","y":[1,{"c":3,"d":2}]},"b":1}"#.as_bytes());
        assert_eq!(a, b);
        assert_ne!(a, canonical_body(br#"{"a":{"x":"e","y":[1,{"c":3,"d":2}]},"b":1}"#));
        // arrays keep their order; a body that is not JSON is compared as sent
        assert_ne!(canonical_body(b"[1,2]"), canonical_body(b"[2,1]"));
        assert_eq!(canonical_body(b"not json {"), b"not json {".to_vec());
    }
}
