//! Work that runs beside the requests: the dispatch clock, the SMS and push outboxes and the
//! change feed.
//!
//! The clock and the outbox each work in rounds at a given `now`. The server runs a round every
//! so often ([`Jobs::spawn`]); a test runs one when it wants, at the `now` it wants
//! ([`Jobs::scan`], [`Jobs::deliver_sms`], [`Jobs::deliver_push`]), instead of waiting for time to pass.

pub mod clock;
pub mod feed;
pub mod outbox;
pub mod push;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, Timelike};

use crate::db::{self, Pool, Trouble};
use crate::domain::ticket::Clock;
use crate::sms::SmsProvider;
use outbox::Delivery;
use push::PushDelivery;

/// What a round of a background job fails with. Nobody is answered with it: it is logged, and the
/// next round tries again.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No connection to be had (the database is down or the pool exhausted), or it dropped.
    #[error("database unavailable: {0}")]
    DatabaseUnavailable(String),
    /// A deadlock or serialization failure that the transaction's retries did not get past.
    #[error("database busy: {0}")]
    DatabaseBusy(String),
    /// A statement failed for another reason.
    #[error("query failed: {0}")]
    Query(diesel::result::Error),
    /// The thread running the round's database work failed.
    #[error("task failed: {0}")]
    Task(String),
}

impl From<diesel::result::Error> for Error {
    fn from(e: diesel::result::Error) -> Self {
        match Trouble::of(&e) {
            Trouble::Unavailable => Self::DatabaseUnavailable(e.to_string()),
            Trouble::Busy => Self::DatabaseBusy(e.to_string()),
            Trouble::Other => Self::Query(e),
        }
    }
}

impl db::WorkError for Error {
    fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        Self::DatabaseUnavailable(cause.to_string())
    }

    fn crashed(cause: &dyn std::fmt::Display) -> Self {
        Self::Task(cause.to_string())
    }

    fn is_busy(&self) -> bool {
        matches!(self, Self::DatabaseBusy(_))
    }
}

/// The dispatch clock and the SMS outbox of one instance, with what they need.
#[derive(Clone)]
pub struct Jobs {
    pub pool: Pool,
    pub clock: Clock,
    /// How often the server runs the clock.
    pub scan_every: Duration,
    pub provider: Arc<dyn SmsProvider>,
    pub delivery: Delivery,
    /// The push services, by the service a device is registered with, and the push outbox's
    /// retries and texts.
    pub push_providers: crate::push::Providers,
    pub push_delivery: PushDelivery,
}

impl Jobs {
    /// Runs the clock and the outbox on their timers until `stopping` says so.
    pub fn spawn(&self, stopping: Stopping) {
        clock::spawn(self.pool.clone(), self.clock, self.scan_every, stopping.clone());
        outbox::spawn(self.pool.clone(), self.provider.clone(), self.delivery, stopping.clone());
        push::spawn(self.pool.clone(), self.push_providers.clone(), self.push_delivery.clone(), stopping);
    }

    /// One pass of the clock at `now`; how many escalations it recorded.
    pub async fn scan(&self, now: NaiveDateTime) -> Result<usize, Error> {
        let clock = self.clock;
        db::run_with(&self.pool, move |conn| clock::scan(conn, &clock, now)).await
    }

    /// One delivery round of the outbox at `now`; how many messages it tried.
    pub async fn deliver_sms(&self, now: NaiveDateTime) -> Result<usize, Error> {
        outbox::deliver_due(&self.pool, self.provider.as_ref(), &self.delivery, now).await
    }

    /// One delivery round of the push outbox at `now`; how many messages it handed to a service.
    pub async fn deliver_push(&self, now: NaiveDateTime) -> Result<usize, Error> {
        push::deliver_due(&self.pool, &self.push_providers, &self.push_delivery, now).await
    }
}

/// Messages one instance sends at once, per outbox: a slow gateway holds each for up to the
/// timeout.
const IN_FLIGHT: usize = 8;

/// Runs `deliver` on each due message of a round, [`IN_FLIGHT`] at a time; how many it tried
/// (those `deliver` answered `true` for). The first failure fails the round.
async fn deliver_each<F, Fut>(ids: Vec<String>, deliver: F) -> Result<usize, Error>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<bool, Error>>,
{
    use futures_util::StreamExt;
    let outcomes: Vec<Result<bool, Error>> =
        futures_util::stream::iter(ids).map(deliver).buffer_unordered(IN_FLIGHT).collect().await;
    let mut tried = 0;
    for outcome in outcomes {
        tried += usize::from(outcome?);
    }
    Ok(tried)
}

/// The wait before the next attempt after `attempts` failed ones: `base`, doubling per attempt up
/// to `max`, with a little jitter so many messages failing together don't retry in lockstep.
fn backoff(base: Duration, max: Duration, attempts: i64) -> chrono::Duration {
    let exp = (attempts.clamp(1, 20) - 1) as u32;
    let wait = base.saturating_mul(2u32.saturating_pow(exp)).min(max);
    let jitter = Duration::from_millis(rand::random::<u64>() % (wait.as_millis() as u64 / 10 + 1));
    chrono::Duration::from_std(wait + jitter).unwrap_or(chrono::Duration::seconds(60))
}

/// Tells background jobs the server has stopped.
pub type Stopping = tokio::sync::watch::Receiver<bool>;

/// Waits until `stopping` says so (or its sender is gone).
pub async fn stopped(stopping: &mut Stopping) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// The time during a round that began at `start`: `start` plus what has really passed since, at the
/// precision the database stores (as [`db::now`]). A round run at a chosen `now` stays consistent.
#[derive(Debug, Clone, Copy)]
struct RoundClock {
    start: NaiveDateTime,
    began: Instant,
}

impl RoundClock {
    fn starting(start: NaiveDateTime) -> Self {
        Self { start, began: Instant::now() }
    }

    fn now(&self) -> NaiveDateTime {
        let passed = chrono::Duration::from_std(self.began.elapsed()).unwrap_or_default();
        let at = self.start + passed;
        at.with_nanosecond(at.nanosecond() / 1_000 * 1_000).unwrap_or(at)
    }
}

/// Paces a job: each `next()` waits for the next round, or answers false once the server stopped.
/// A round that overruns delays the next instead of bunching them up.
pub struct Ticker {
    interval: tokio::time::Interval,
    stopping: Stopping,
}

impl Ticker {
    pub fn new(every: std::time::Duration, stopping: Stopping) -> Self {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self { interval, stopping }
    }

    pub async fn next(&mut self) -> bool {
        tokio::select! {
            _ = self.interval.tick() => true,
            _ = stopped(&mut self.stopping) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use diesel::result::{DatabaseErrorKind, Error as Diesel};

    use super::*;

    fn failed(kind: DatabaseErrorKind, message: &str) -> Diesel {
        Diesel::DatabaseError(kind, Box::new(message.to_owned()))
    }

    #[test]
    fn a_round_tells_a_database_away_or_busy_from_a_failed_statement() {
        let deadlock = failed(DatabaseErrorKind::Unknown, "deadlock detected");
        let serialization = failed(DatabaseErrorKind::SerializationFailure, "could not serialize access");
        for busy in [deadlock, serialization] {
            assert!(db::WorkError::is_busy(&Error::from(busy)));
        }
        for away in [
            failed(DatabaseErrorKind::ClosedConnection, "server closed the connection"),
            failed(DatabaseErrorKind::Unknown, "database is locked"),
        ] {
            assert!(matches!(Error::from(away), Error::DatabaseUnavailable(_)));
        }
        let broken = Error::from(failed(DatabaseErrorKind::Unknown, "no such column: x"));
        assert!(matches!(broken, Error::Query(_)), "{broken}");
        assert_eq!(broken.to_string(), "query failed: no such column: x");
    }
}
