//! The e-mail side: mailers (SMTP via lettre, the log), and the message
//! handler every consumer uses to turn a queue message into one e-mail or a
//! dead letter.

mod handler;
mod log_mailer;
mod smtp;

pub use handler::{EmailHandler, Handled, MessageFormat};
pub use log_mailer::LogMailer;
pub use smtp::SmtpMailer;

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};

use crate::domain::timestamp::Timestamp;

/// How long a consumer waits before handling again a message whose event
/// another delivery holds (`Handled::Busy`): at most half a second, since
/// the holder usually finishes within milliseconds (the other copy of a
/// dual-published event) or releases its lease; at most until that lease
/// ends (a holder that crashed); never a tight loop.
pub fn busy_wait(lease_left: Duration) -> Duration {
    lease_left.clamp(Duration::from_millis(50), Duration::from_millis(500))
}

/// The headers a dead letter carries (DESIGN §4).
pub fn dead_letter_headers(
    original_exchange: &str,
    original_routing_key: &str,
    message_id: Option<&str>,
    reason: &str,
    attempts: u32,
    failed_at: DateTime<Utc>,
) -> BTreeMap<String, String> {
    let mut headers = BTreeMap::new();
    headers.insert("x-error".to_owned(), reason.to_owned());
    headers.insert(
        "x-retry-count".to_owned(),
        attempts.saturating_sub(1).to_string(),
    );
    headers.insert(
        "x-original-exchange".to_owned(),
        original_exchange.to_owned(),
    );
    headers.insert(
        "x-original-routing-key".to_owned(),
        original_routing_key.to_owned(),
    );
    headers.insert(
        "x-failed-at".to_owned(),
        Timestamp::new(failed_at).to_string(),
    );
    headers.insert(
        "message_id".to_owned(),
        message_id.unwrap_or_default().to_owned(),
    );
    headers
}
