//! Sends nothing: writes each message to the log, so development and demos need no gateway.

use super::{Accepted, OutgoingSms, SendFuture, SmsProvider};

pub struct LogProvider;

impl SmsProvider for LogProvider {
    fn name(&self) -> &'static str {
        "log"
    }

    fn send<'a>(&'a self, message: &'a OutgoingSms) -> SendFuture<'a> {
        Box::pin(async move {
            tracing::info!(
                id = %message.id,
                template = %message.template,
                to = %masked(&message.to),
                text = %message.text,
                "SMS logged, not sent"
            );
            Ok(Accepted { provider_message_id: Some(format!("log-{}", message.id)), status: Some("logged".into()) })
        })
    }
}

/// Only the last four digits: enough to tell residents apart in a log, not to call them.
fn masked(number: &str) -> String {
    let digits: Vec<char> = number.chars().filter(char::is_ascii_digit).collect();
    let last_four: String = digits[digits.len().saturating_sub(4)..].iter().collect();
    format!("***{last_four}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn numbers_are_masked_to_their_last_four_digits() {
        assert_eq!(masked("+8613812345678"), "***5678");
        assert_eq!(masked("+1 415 555 2671"), "***2671");
        assert_eq!(masked("12"), "***12");
    }

    #[tokio::test]
    async fn the_log_provider_accepts_every_message_under_its_own_id() {
        let message = OutgoingSms {
            id: "0191-abc".into(),
            to: "+8613812345678".into(),
            text: "您的维修师傅已到达，到场码 123456".into(),
            template: "arrival_code".into(),
            params: BTreeMap::from([("code".into(), "123456".into())]),
        };
        let accepted = LogProvider.send(&message).await.unwrap();
        assert_eq!(accepted.provider_message_id.as_deref(), Some("log-0191-abc"));
        assert_eq!(accepted.status.as_deref(), Some("logged"));
    }
}
