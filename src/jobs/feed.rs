//! The change feed: each instance reads the changes of the ticket history its last read did not
//! hold (a [`Horizon`]) and fans them out to its open streams. Reading the shared table (not a
//! local channel) is what lets a phone connected to one instance hear of a change made through
//! another.

use std::sync::Arc;
use std::time::Duration;

use diesel::QueryResult;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

use super::Error;
use crate::db::events::{FeedRow, Horizon};
use crate::db::{self, DbConn, Pool};
use crate::domain::access::ChangeFacts;

/// One committed change of a ticket, with what subscribers route on.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub seq: i64,
    /// The transaction that made it (`db::events::Horizon`).
    #[serde(skip)]
    pub tx: i64,
    /// Where a stream that received this change resumes: the horizon of the read before the one
    /// that found it, as text. Resuming there may bring this change again, never skips one.
    #[serde(skip)]
    pub resume: Arc<str>,
    pub ticket_id: String,
    pub number: String,
    pub site_id: String,
    pub category: String,
    pub urgency: String,
    pub event_type: String,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    #[serde(skip)]
    pub data: Value,
}

impl Change {
    fn new(r: FeedRow, resume: Arc<str>) -> Self {
        Self {
            seq: r.seq,
            tx: r.tx,
            resume,
            ticket_id: r.ticket_id,
            number: r.number,
            site_id: r.site_id,
            category: r.category,
            urgency: r.urgency,
            event_type: r.event_type,
            from_status: r.from_status,
            to_status: r.to_status,
            data: serde_json::from_str(&r.data).unwrap_or(Value::Null),
        }
    }

    /// The technician who held the ticket before this change, when it changed hands.
    pub fn previous_assignee(&self) -> Option<&str> {
        self.data.get("previous_assignee_id").and_then(Value::as_str)
    }

    /// The technician this change gave the ticket to (claim, assignment), as the event recorded it:
    /// the ticket's holder now may already be someone else.
    pub fn new_assignee(&self) -> Option<&str> {
        self.data.get("technician_id").and_then(Value::as_str)
    }

    /// The facts the access rules (`domain::access`) decide on.
    pub fn facts(&self) -> ChangeFacts<'_> {
        ChangeFacts {
            site_id: &self.site_id,
            category: &self.category,
            from_status: self.from_status.as_deref(),
            to_status: self.to_status.as_deref(),
            new_assignee: self.new_assignee(),
            previous_assignee: self.previous_assignee(),
            previous_category: self.data.pointer("/changes/category/from").and_then(Value::as_str),
        }
    }
}

#[derive(Clone)]
pub struct Feed {
    tx: broadcast::Sender<Arc<Change>>,
}

impl Default for Feed {
    fn default() -> Self {
        Self { tx: broadcast::channel(4096).0 }
    }
}

impl Feed {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    /// Polls the history every `every` and publishes what is new, starting after what exists now.
    pub fn spawn_poller(&self, pool: Pool, every: Duration, mut stopping: super::Stopping) {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let mut last = loop {
                let here =
                    |conn: &mut DbConn| -> Result<Horizon, Error> { Ok(db::snapshot(conn, db::events::horizon)?) };
                match db::run_with(&pool, here).await {
                    Ok(h) => break h,
                    Err(e) => tracing::warn!(error = %e, "change feed cannot start yet"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(every * 10) => {}
                    _ = super::stopped(&mut stopping) => return,
                }
            };
            let mut ticker = super::Ticker::new(every, stopping);
            while ticker.next().await {
                let after = last.clone();
                let read = move |conn: &mut DbConn| -> Result<_, Error> {
                    Ok(db::events::feed_since(conn, &after, 1000, FEED_MAX)?)
                };
                match db::run_with(&pool, read).await {
                    Ok((rows, now, cut)) => {
                        if cut {
                            tracing::warn!(
                                max = FEED_MAX,
                                "change feed fell behind; streams tell their phones to resync"
                            );
                        }
                        let resume: Arc<str> = last.to_text().into();
                        for row in rows {
                            // no receivers is fine: nobody is listening on this instance
                            let _ = tx.send(Arc::new(Change::new(row, resume.clone())));
                        }
                        last = now;
                    }
                    Err(e) => tracing::warn!(error = %e, "change feed read failed"),
                }
            }
        });
    }
}

/// The most changes one read of the feed passes on: more than a stream's channel holds, so a
/// stream that would need the rest has lagged already and resyncs.
const FEED_MAX: usize = 20_000;

/// Changes that `after` did not hold (a reconnecting stream's `Last-Event-ID`), at most `limit`,
/// and the horizon they were read at; `None` when there are more.
pub fn since(conn: &mut DbConn, after: &Horizon, limit: usize) -> QueryResult<Option<(Vec<Change>, Horizon)>> {
    let (rows, now, cut) = db::events::feed_since(conn, after, 1000, limit)?;
    if cut {
        return Ok(None);
    }
    let resume: Arc<str> = after.to_text().into();
    Ok(Some((rows.into_iter().map(|r| Change::new(r, resume.clone())).collect(), now)))
}
