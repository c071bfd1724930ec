//! Building and running the server: pool, migrations, first-start bootstrap, routes, middleware.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::{Server, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{web, App, HttpServer};
use anyhow::Context;

use crate::auth::password::{self, Hasher};
use crate::auth::tokens::{generate_secret, JwtKeys};
use crate::config::{ProviderSettings, Settings};
use crate::db::{self, users::UserRow, Pool};
use crate::error::{ApiError, ErrorCode};
use crate::jobs::{self, feed::Feed};
use crate::routes;
use crate::state::AppState;
use crate::telemetry::RequestId;
use utoipa_actix_web::AppExt;

/// How often each instance reads new changes for its streams: a phone hears of a change within this.
const FEED_POLL: Duration = Duration::from_millis(250);

pub struct Application {
    port: u16,
    server: Server,
    jobs: jobs::Jobs,
    statements: db::Statements,
    stop_jobs: tokio::sync::watch::Sender<bool>,
}

/// Whether the dispatch clock and the SMS outbox run on their timers. Off, a round of either runs
/// only when called through [`Application::jobs`]: tests run them at a `now` of their choosing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timers {
    On,
    Off,
    /// Off, and the change feed does not poll either, so the database sees only the requests (and
    /// rounds run by hand): for counting the statements of a request. Event streams hear nothing.
    Quiet,
}

/// Stops a running [`Application`] from outside (tests, signal handling).
pub type StopHandle = actix_web::dev::ServerHandle;

impl Application {
    /// Opens the database, migrates it, makes sure there is a signing key and an admin, and binds
    /// the listener (port 0 picks a free one; see [`Application::port`]).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, Timers::On).await
    }

    /// [`Application::build`], with the clock's and the outbox's timers on or off, or everything
    /// beside the requests off ([`Timers::Quiet`]).
    pub async fn build_with(settings: Settings, timers: Timers) -> anyhow::Result<Self> {
        let statements = db::Statements::default();
        let pool = open_database(&settings, statements.clone()).await?;
        let secret = match &settings.jwt_secret {
            Some(secret) => secret.expose().to_owned(),
            None => {
                let pool = pool.clone();
                tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
                    let mut conn = pool.get()?;
                    Ok(db::settings::get_or_insert(&mut conn, "jwt_secret", &generate_secret())?)
                })
                .await??
            }
        };
        let code_key = {
            let pool = pool.clone();
            tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
                let mut conn = pool.get()?;
                Ok(db::settings::get_or_insert(&mut conn, "resident_code_key", &generate_secret())?)
            })
            .await??
        };
        ensure_admin(&pool, &settings).await?;

        let listener = TcpListener::bind(&settings.addr).with_context(|| format!("binding {}", settings.addr))?;
        let port = listener.local_addr()?.port();
        let workers = settings.workers;
        let (stop_jobs, stopping) = tokio::sync::watch::channel(false);
        let feed = Feed::default();
        if timers != Timers::Quiet {
            feed.spawn_poller(pool.clone(), FEED_POLL, stopping.clone());
        }
        let provider = crate::sms::build_provider(&settings.sms).map_err(anyhow::Error::msg)?;
        if matches!(settings.sms.provider, ProviderSettings::Log) {
            tracing::warn!(
                provider = provider.name(),
                "REPAIRDESK_SMS_PROVIDER is log (the default): no SMS reaches any resident, door and quote codes \
                 are only written to this log; set REPAIRDESK_SMS_PROVIDER to webhook, aliyun or twilio in production"
            );
        } else {
            tracing::info!(provider = provider.name(), "SMS gateway");
        }
        let push_providers = crate::push::build_providers(&settings.push).map_err(anyhow::Error::msg)?;
        let accepted: Vec<&str> = push_providers.accepted().iter().map(|p| p.as_str()).collect();
        if settings.push.log {
            tracing::warn!("REPAIRDESK_PUSH_LOG is on: pushes to services not configured are only written to this log");
        }
        tracing::info!(services = ?accepted, "push services");
        let clock = settings.clock.into();
        let jobs = jobs::Jobs {
            pool: pool.clone(),
            clock,
            scan_every: Duration::from_secs(settings.scan_interval_secs),
            provider,
            delivery: (&settings.sms_delivery).into(),
            push_providers: push_providers.clone(),
            push_delivery: (&settings).into(),
        };
        if timers == Timers::On {
            jobs.spawn(stopping);
        }
        let state = web::Data::new(AppState {
            pool,
            keys: JwtKeys::new(secret.as_bytes()),
            hasher: Hasher::default(),
            feed,
            code_key: code_key.into_bytes(),
            clock,
            sms_policy: (&settings.sms_policy).into(),
            push_providers,
            faults: settings
                .fault_push_op
                .map_or_else(Default::default, |(op_id, times)| crate::db::faults::Faults::push_op(op_id, times)),
            settings,
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(routes::MAX_BODY_BYTES))
                .into_utoipa_app()
                .configure(routes::configure)
                .into_app()
                .configure(crate::console::configure)
                .default_service(web::to(no_route))
                .wrap(actix_web::middleware::from_fn(crate::idempotency::middleware))
                .wrap(ErrorHandlers::new().default_handler(problem_for_bare_errors))
                .wrap(RequestId)
        })
        .workers(workers)
        .listen(listener)?
        .shutdown_timeout(30)
        .run();
        tracing::info!(port, "listening");
        Ok(Self { port, server, jobs, statements, stop_jobs })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> StopHandle {
        self.server.handle()
    }

    /// This instance's clock and outbox, to run a round of either by hand.
    pub fn jobs(&self) -> &jobs::Jobs {
        &self.jobs
    }

    /// The statements this instance's pool has run (`db::statements`).
    pub fn statements(&self) -> &db::Statements {
        &self.statements
    }

    /// Serves until SIGTERM or SIGINT (or a [`StopHandle`]), finishes the requests in flight, then
    /// stops the background jobs.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        let _ = self.stop_jobs.send(true);
        result
    }
}

/// Opens the pool, counting its statements into `statements`, and applies migrations.
pub async fn open_database(settings: &Settings, statements: db::Statements) -> anyhow::Result<Pool> {
    let url = settings.database_url.clone();
    let size = settings.db_pool_size;
    tokio::task::spawn_blocking(move || {
        let pool = db::connect_counting(&url, size, statements)?;
        db::migrate(&pool)?;
        match db::autovacuum_off(&mut *pool.get()?) {
            Ok(Some(true)) => tracing::warn!(
                "PostgreSQL runs with autovacuum off: nothing keeps the planner's statistics current, \
                 so run ANALYZE regularly (docs/performance.md)"
            ),
            Ok(_) => {}
            // only a warning is at stake: start anyway
            Err(e) => tracing::warn!(error = %e, "could not read PostgreSQL's autovacuum setting"),
        }
        tracing::info!(engine = url.engine(), "database ready");
        Ok(pool)
    })
    .await?
}

/// On a database without an admin, creates `admin` with `REPAIRDESK_ADMIN_PASSWORD`, or with a
/// random password printed once.
async fn ensure_admin(pool: &Pool, settings: &Settings) -> anyhow::Result<()> {
    let pool = pool.clone();
    let given = settings.admin_password.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut conn = pool.get()?;
        if db::users::admin_exists(&mut conn)? {
            return Ok(());
        }
        let (password, generated) = match given {
            Some(p) => (p.expose().to_owned(), false),
            None => (generate_secret()[..20].to_owned(), true),
        };
        password::check_rules(&password).map_err(|m| anyhow::anyhow!("REPAIRDESK_ADMIN_PASSWORD {m}"))?;
        if let Err(e) = create_user(&mut conn, "admin", &password, "Administrator", "admin") {
            // instances starting together on a new database all saw no admin; one created it
            if db::users::admin_exists(&mut conn)? {
                return Ok(());
            }
            return Err(e);
        }
        if generated {
            println!("Created user 'admin' with password: {password}\nIt is shown only this once.");
        } else {
            tracing::info!("created user 'admin' from REPAIRDESK_ADMIN_PASSWORD");
        }
        Ok(())
    })
    .await?
}

/// Creates a user with no sites (used at first start and by `repairdesk admin create`).
pub fn create_user(
    conn: &mut db::DbConn,
    username: &str,
    password: &str,
    display_name: &str,
    role: &str,
) -> anyhow::Result<()> {
    let hash = password::hash_now(password).map_err(|e| anyhow::anyhow!("{e}"))?;
    let at = db::now();
    let row = UserRow {
        id: db::new_id(),
        username: username.to_owned(),
        password_hash: hash,
        display_name: display_name.to_owned(),
        role: role.to_owned(),
        phone: None,
        active: true,
        created_at: at,
        updated_at: at,
        on_duty: true,
    };
    db::users::insert(conn, &row, &[], &[], &[])?;
    Ok(())
}

/// A request no route takes: 405 with `Allow` when the path is served with other methods
/// (each route answers only its own method), else 404.
async fn no_route(req: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    let allowed = routes::openapi::methods_for(req.path());
    if allowed.is_empty() {
        return Err(ApiError::not_found("route"));
    }
    let refusal = ApiError::new(ErrorCode::MethodNotAllowed, format!("{} is not allowed here", req.method()));
    let mut res = actix_web::ResponseError::error_response(&refusal);
    res.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_str(&allowed.join(", ")).expect("methods are ASCII"));
    Ok(res)
}

/// actix answers some errors itself (unknown method on a route, for one) with an empty body;
/// those get the same problem+json shape as ours. The console's HTML refusals stay as they are.
fn problem_for_bare_errors<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let content_type = res.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    // ours already: a problem, or a page of the console (which answers its refusals in HTML)
    if content_type.starts_with("application/problem+json") || content_type.starts_with("text/html") {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let error = match status.as_u16() {
        404 => ApiError::not_found("route"),
        405 => ApiError::new(ErrorCode::MethodNotAllowed, format!("{} is not allowed here", res.request().method())),
        413 => ApiError::new(ErrorCode::PayloadTooLarge, "the body is too large"),
        415 => ApiError::new(ErrorCode::UnsupportedMediaType, "send the body as application/json"),
        s if s >= 500 => ApiError::internal(format!("bare {status} from {}", res.request().path())),
        _ => ApiError::new(ErrorCode::MalformedJson, status.canonical_reason().unwrap_or("bad request").to_owned()),
    };
    let (req, res) = res.into_parts();
    let mut problem = actix_web::ResponseError::error_response(&error);
    *problem.status_mut() = status;
    for (name, value) in res.headers().iter().filter(|(n, _)| [header::ALLOW, header::CACHE_CONTROL].contains(n)) {
        problem.headers_mut().insert(name.clone(), value.clone());
    }
    Ok(ErrorHandlerResponse::Response(ServiceResponse::new(req, problem).map_into_right_body()))
}
