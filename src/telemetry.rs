//! Structured logs and request ids.

use std::future::{ready, Future, Ready};
use std::io::IsTerminal;
use std::pin::Pin;
use std::time::Instant;

use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderName, HeaderValue};
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Logs to stdout; `RUST_LOG` filters (default `info`), `json` picks JSON lines. Text lines are
/// coloured only when stdout is a terminal (and `NO_COLOR` is unset), so a log file or a log
/// collector gets no escape codes.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let colour = colour(std::io::stdout().is_terminal(), std::env::var_os("NO_COLOR").as_deref());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(colour);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

/// Whether log lines get ANSI colours: on a terminal only, unless `NO_COLOR` is set to anything
/// but the empty string (no-color.org).
fn colour(stdout_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stdout_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Gives every request an id (the caller's `X-Request-Id` when it is sane, else a new UUID),
/// runs it inside a span carrying that id, logs its outcome and returns the id as a header.
pub struct RequestId;

impl<S, B> Transform<S, ServiceRequest> for RequestId
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = RequestIdMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestIdMiddleware { service }))
    }
}

pub struct RequestIdMiddleware<S> {
    service: S,
}

fn sane(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

impl<S, B> Service<ServiceRequest> for RequestIdMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let id = req
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| sane(v))
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.path());
        let started = Instant::now();
        let fut = {
            let _entered = span.enter();
            self.service.call(req)
        };
        Box::pin(
            async move {
                let mut res = fut.await?;
                let status = res.status().as_u16();
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                if status >= 500 {
                    tracing::error!(status, ms, "request failed");
                } else {
                    tracing::info!(status, ms, "request done");
                }
                if let Ok(value) = HeaderValue::from_str(&id) {
                    res.headers_mut().insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
                }
                Ok(res)
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn log_lines_are_coloured_only_on_a_terminal() {
        assert!(colour(true, None), "a terminal gets colours");
        assert!(!colour(false, None), "a file or a pipe gets plain text");
        assert!(!colour(true, Some(OsStr::new("1"))), "NO_COLOR turns them off on a terminal too");
        assert!(colour(true, Some(OsStr::new(""))), "an empty NO_COLOR is unset");
    }

    #[test]
    fn a_line_written_without_colour_holds_no_escape_codes() {
        #[derive(Clone, Default)]
        struct Sink(std::sync::Arc<parking_lot::Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber =
            tracing_subscriber::fmt().with_ansi(colour(false, None)).with_writer(move || writer.clone()).finish();
        tracing::subscriber::with_default(subscriber, || tracing::warn!(provider = "log", "no SMS is sent"));
        let written = String::from_utf8(sink.0.lock().clone()).unwrap();
        assert!(written.contains("no SMS is sent"), "{written}");
        assert!(!written.contains('\u{1b}'), "{written:?}");
    }
}
