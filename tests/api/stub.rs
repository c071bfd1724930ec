//! A gateway stand-in: an HTTP server on a free local port that records what it receives and
//! answers as told; `h2_stub` speaks only HTTP/2, as Apple's push service does.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

/// One request as the stub received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: String,
    /// `HTTP/1.1`, `HTTP/2.0`.
    pub version: String,
    /// Lowercase names.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The query's (GET) or the form body's (POST) fields, decoded.
    pub fn fields(&self) -> BTreeMap<String, String> {
        let encoded = if self.method == "GET" { self.query.as_bytes() } else { &self.body };
        let pairs: Vec<(String, String)> =
            reqwest::Url::parse(&format!("http://stub/?{}", String::from_utf8_lossy(encoded)))
                .expect("fields parse")
                .query_pairs()
                .into_owned()
                .collect();
        let fields: BTreeMap<String, String> = pairs.iter().cloned().collect();
        assert_eq!(fields.len(), pairs.len(), "a field appears twice in {pairs:?}");
        fields
    }
}

/// What the stub answers, after thinking for `delay`, with `headers` besides the content type.
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub delay: Duration,
    pub headers: Vec<(&'static str, String)>,
}

pub fn answer(status: u16, body: Value) -> Answer {
    Answer { status, body, delay: Duration::ZERO, headers: Vec::new() }
}

pub type Responder = Arc<dyn Fn(&Received) -> Answer + Send + Sync>;

pub struct Stub {
    pub address: String,
    received: Arc<Mutex<Vec<Received>>>,
    server: Server,
}

enum Server {
    Actix(actix_web::dev::ServerHandle),
    /// The accept loop of `h2_stub`.
    Task(tokio::task::AbortHandle),
}

impl Stub {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("stub log").clone()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        match &self.server {
            // sends the stop command at once; the returned future only waits for completion
            Server::Actix(handle) => drop(handle.stop(false)),
            Server::Task(task) => task.abort(),
        }
    }
}

/// A gateway on a free local port that records every request and answers with `respond`.
pub fn stub(respond: impl Fn(&Received) -> Answer + Send + Sync + 'static) -> Stub {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let address = format!("http://{}", listener.local_addr().expect("local address"));
    let received = Arc::new(Mutex::new(Vec::new()));
    let respond: Responder = Arc::new(respond);
    let log = received.clone();
    let server = HttpServer::new(move || {
        let (log, respond) = (log.clone(), respond.clone());
        App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let (log, respond) = (log.clone(), respond.clone());
            async move {
                let request = Received {
                    method: req.method().to_string(),
                    path: req.path().to_owned(),
                    query: req.query_string().to_owned(),
                    version: format!("{:?}", req.version()),
                    headers: req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
                        .collect(),
                    body: body.to_vec(),
                };
                log.lock().expect("stub log").push(request.clone());
                let answer = respond(&request);
                tokio::time::sleep(answer.delay).await;
                let status = StatusCode::from_u16(answer.status).expect("a valid status");
                let mut response = HttpResponse::build(status);
                for (name, value) in &answer.headers {
                    response.insert_header((*name, value.as_str()));
                }
                match answer.body {
                    Value::Null => response.finish(),
                    Value::String(text) => response.content_type("text/plain").body(text),
                    body => response.json(body),
                }
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .expect("listen")
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Stub { address, received, server: Server::Actix(handle) }
}

/// A gateway like `stub` that speaks only HTTP/2 without TLS (h2c, prior knowledge): a client
/// that tries HTTP/1.1 gets no answer it can read.
pub fn h2_stub(respond: impl Fn(&Received) -> Answer + Send + Sync + 'static) -> Stub {
    use http_body_util::{BodyExt, Full};
    use hyper::body::{Bytes, Incoming};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.set_nonblocking(true).expect("non-blocking");
    let address = format!("http://{}", listener.local_addr().expect("local address"));
    let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
    let received = Arc::new(Mutex::new(Vec::new()));
    let respond: Responder = Arc::new(respond);
    let log = received.clone();
    let serve = move |req: hyper::Request<Incoming>| {
        let (log, respond) = (log.clone(), respond.clone());
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await?.to_bytes();
            let request = Received {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().unwrap_or_default().to_owned(),
                version: format!("{:?}", parts.version),
                headers: parts
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
                    .collect(),
                body: body.to_vec(),
            };
            log.lock().expect("stub log").push(request.clone());
            let answer = respond(&request);
            tokio::time::sleep(answer.delay).await;
            let mut response = hyper::Response::builder().status(answer.status);
            for (name, value) in &answer.headers {
                response = response.header(*name, value.as_str());
            }
            let body = match answer.body {
                Value::Null => Bytes::new(),
                Value::String(text) => Bytes::from(text),
                body => {
                    response = response.header("content-type", "application/json");
                    Bytes::from(body.to_string())
                }
            };
            Ok::<_, hyper::Error>(response.body(Full::new(body)).expect("a valid response"))
        }
    };
    let accept = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let serve = serve.clone();
            tokio::spawn(async move {
                let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(serve));
                // a client that speaks HTTP/1.1 ends here with a protocol error
                let _ = connection.await;
            });
        }
    });
    Stub { address, received, server: Server::Task(accept.abort_handle()) }
}

/// A stub that answers every request the same way.
pub fn stub_answering(status: u16, body: Value) -> Stub {
    stub(move |_| answer(status, body.clone()))
}

/// A stub that answers only after the client has given up (the tests' timeout is 1 s).
pub fn slow_stub() -> Stub {
    stub(|_| Answer { delay: Duration::from_secs(3), ..answer(200, json!({})) })
}
