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
