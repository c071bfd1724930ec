//! Sends nothing: writes each message to the log, for development (`REPAIRDESK_PUSH_LOG`).

use super::{OutgoingPush, PushProvider, SendFuture};

pub struct LogProvider;

impl PushProvider for LogProvider {
    fn name(&self) -> &'static str {
        "log"
    }

    fn send<'a>(&'a self, message: &'a OutgoingPush) -> SendFuture<'a> {
        Box::pin(async move {
            tracing::info!(
                id = %message.id,
                kind = message.data.get("kind").map(String::as_str).unwrap_or_default(),
                collapse_key = %message.collapse_key,
                priority = %message.priority,
                title = %message.title,
                body = %message.body,
                "push logged, not sent"
            );
            Ok(())
        })
    }
}
