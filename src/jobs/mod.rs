//! Work that runs beside the requests: the dispatch clock and the change feed.

pub mod clock;
pub mod feed;
pub mod outbox;

/// Tells background jobs the server has stopped.
pub type Stopping = tokio::sync::watch::Receiver<bool>;

/// Waits until `stopping` says so (or its sender is gone).
pub async fn stopped(stopping: &mut Stopping) {
    let _ = stopping.wait_for(|stop| *stop).await;
}
