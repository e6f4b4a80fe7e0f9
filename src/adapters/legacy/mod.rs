//! Everything the legacy fanout exchange `smtp_send_email_exc` needs while
//! migrating (phases 1-3): the old e-mail message and the composite that
//! publishes it beside each new event. The whole folder goes away with the
//! `legacy-fanout` feature (phase 4); the transports' own sinks live in
//! `amqp` and `memory`, behind the same feature.

mod dual_publish;
mod message;

pub use dual_publish::{DualPublisher, LegacySink};
pub use message::LegacyEmailMessage;
