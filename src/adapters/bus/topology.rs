//! The RabbitMQ topology of DESIGN §3, by name, shared by every transport.

/// The SMAP event bus: a durable topic exchange.
pub const EVENTS_EXCHANGE: &str = "smap.events";
/// The queue of the new e-mail consumer and its binding on `smap.events`.
pub const EMAIL_QUEUE: &str = "smtp_send_email_v2";
pub const EMAIL_BINDING: &str = "email.#";
/// Dead letters of the e-mail consumers.
pub const EMAIL_ERRORS_QUEUE: &str = "email.errors";
/// Legacy fanout exchange and queue, kept while migrating (phases 1-3).
/// Named in every build: `events cleanup-legacy` deletes them in phase 4.
pub const LEGACY_EXCHANGE: &str = "smtp_send_email_exc";
pub const LEGACY_QUEUE: &str = "smtp_send_email";
/// `app_id` of every message this service publishes.
pub const APP_ID: &str = "identity";
