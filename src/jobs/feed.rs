//! The change feed: each instance reads the ticket history in sequence order and fans new
//! changes out to its open streams. Reading the shared table (not a local channel) is what lets a
//! phone connected to one instance hear of a change made through another.

use std::sync::Arc;
use std::time::Duration;

use diesel::QueryResult;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

use super::Error;
use crate::db::{self, events::FeedRow, DbConn, Pool};
use crate::domain::access::ChangeFacts;

/// One committed change of a ticket, with what subscribers route on.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub seq: i64,
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

impl From<FeedRow> for Change {
    fn from(r: FeedRow) -> Self {
        Self {
            seq: r.seq,
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
}

impl Change {
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
                match db::run_with(&pool, |conn| -> Result<i64, Error> { Ok(db::events::last_seq(conn)?) }).await {
                    Ok(seq) => break seq,
                    Err(e) => tracing::warn!(error = %e, "change feed cannot start yet"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(every * 10) => {}
                    _ = super::stopped(&mut stopping) => return,
                }
            };
            let mut ticker = super::Ticker::new(every, stopping);
            while ticker.next().await {
                let read = move |conn: &mut DbConn| -> Result<Vec<FeedRow>, Error> {
                    Ok(db::events::feed_since(conn, last, 1000)?)
                };
                match db::run_with(&pool, read).await {
                    Ok(rows) => {
                        for row in rows {
                            last = row.seq;
                            // no receivers is fine: nobody is listening on this instance
                            let _ = tx.send(Arc::new(Change::from(row)));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "change feed read failed"),
                }
            }
        });
    }
}

/// Changes after `after`, for a reconnecting stream (`Last-Event-ID`).
pub fn since(conn: &mut DbConn, after: i64, limit: i64) -> QueryResult<Vec<Change>> {
    Ok(db::events::feed_since(conn, after, limit)?.into_iter().map(Change::from).collect())
}
