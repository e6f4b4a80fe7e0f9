//! The e-mail side: mailers (SMTP via lettre, the log), and the message
//! handler every consumer uses to turn a queue message into one e-mail or a
//! dead letter.

mod handler;
mod log_mailer;
mod smtp;
pub mod templates;

pub use handler::{EmailHandler, Handled, MessageFormat};
pub use log_mailer::LogMailer;
pub use smtp::{SmtpConfig, SmtpMailer, SmtpTls};

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::{
    adapters::bus::message::{HeaderValue, MessageProperties, PERSISTENT},
    domain::timestamp::Timestamp,
};

/// How long a consumer waits before handling again a message whose event
/// another delivery holds (`Handled::Busy`): at most half a second, since
/// the holder usually finishes within milliseconds (the other copy of a
/// dual-published event) or releases its lease; at most until that lease
/// ends (a holder that crashed); never a tight loop.
pub fn busy_wait(lease_left: Duration) -> Duration {
    lease_left.clamp(Duration::from_millis(50), Duration::from_millis(500))
}

/// What the consumer knows about a message it dead-letters.
pub struct DeadLetter<'a> {
    pub original_exchange: &'a str,
    pub original_routing_key: &'a str,
    /// The id the handler worked under (the event id, or the hash of a
    /// legacy body), when it got that far.
    pub event_id: Option<&'a str>,
    pub reason: &'a str,
    /// SMTP tries made (0 when the message was refused before sending).
    pub attempts: u32,
    pub failed_at: DateTime<Utc>,
}

impl DeadLetter<'_> {
    /// The properties of the dead letter (DESIGN §4): the original's, made
    /// persistent — a dead letter must survive a broker restart even when the
    /// message it reports was transient — with a `message_id` and a
    /// `timestamp` always present (kept from the original, else the
    /// handler's id or a new one, and the time of failure), and the error
    /// context in headers; `x-retry-count` is an integer (retries after the
    /// first try).
    pub fn properties(&self, original: &MessageProperties) -> MessageProperties {
        let message_id = Some(original.message_id.as_str())
            .filter(|id| !id.is_empty())
            .or(self.event_id.filter(|id| !id.is_empty()))
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        let timestamp = match original.timestamp {
            0 => u64::try_from(self.failed_at.timestamp()).unwrap_or(0),
            kept => kept,
        };
        let mut headers = original.headers.clone();
        let text = |s: &str| HeaderValue::Text(s.to_owned());
        headers.insert("x-error".to_owned(), text(self.reason));
        headers.insert(
            "x-retry-count".to_owned(),
            HeaderValue::Int(i64::from(self.attempts.saturating_sub(1))),
        );
        headers.insert(
            "x-original-exchange".to_owned(),
            text(self.original_exchange),
        );
        headers.insert(
            "x-original-routing-key".to_owned(),
            text(self.original_routing_key),
        );
        headers.insert(
            "x-failed-at".to_owned(),
            HeaderValue::Text(Timestamp::new(self.failed_at).to_string()),
        );
        headers.insert("message_id".to_owned(), text(&message_id));
        MessageProperties {
            delivery_mode: PERSISTENT,
            message_id,
            timestamp,
            headers,
            ..original.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn original(message_id: &str, timestamp: u64) -> MessageProperties {
        MessageProperties {
            content_type: "application/json".into(),
            delivery_mode: 1,
            message_id: message_id.into(),
            kind: String::new(),
            app_id: String::new(),
            timestamp,
            headers: [("traceparent".to_owned(), HeaderValue::from("00-a-b-01"))].into(),
        }
    }

    fn letter(event_id: Option<&str>, attempts: u32) -> DeadLetter<'_> {
        DeadLetter {
            original_exchange: "smap.events",
            original_routing_key: "email.verification.requested",
            event_id,
            reason: "boom",
            attempts,
            failed_at: Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap(),
        }
    }

    #[test]
    fn a_dead_letter_is_persistent_with_an_integer_retry_count_and_the_originals_ids() {
        let p = letter(Some("evt_x"), 4).properties(&original("evt_1", 42));
        assert_eq!(p.delivery_mode, PERSISTENT);
        assert_eq!((p.message_id.as_str(), p.timestamp), ("evt_1", 42));
        assert_eq!(p.headers["x-retry-count"], 3);
        assert_eq!(p.headers["message_id"], "evt_1");
        assert_eq!(p.headers["x-failed-at"], "2026-11-27T10:00:00.000Z");
        assert_eq!(p.headers["traceparent"], "00-a-b-01");
    }

    #[test]
    fn missing_ids_and_times_are_set() {
        let handled = letter(Some("legacy-00ff"), 0).properties(&original("", 0));
        assert_eq!(handled.message_id, "legacy-00ff");
        assert_eq!(handled.headers["x-retry-count"], 0);
        let failed_at = u64::try_from(letter(None, 0).failed_at.timestamp()).unwrap();
        assert_eq!(handled.timestamp, failed_at);

        let unknown = letter(None, 0).properties(&original("", 0));
        assert!(uuid::Uuid::parse_str(&unknown.message_id).is_ok());
        assert_eq!(unknown.headers["message_id"], unknown.message_id.as_str());
    }
}
