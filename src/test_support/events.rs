//! Typical events and the event service around any publisher, as the
//! RabbitMQ tests and the transport benchmarks publish them.

use std::sync::Arc;

use chrono::{Duration, Utc};
use uuid::Uuid;

use crate::{
    adapters::{
        memory::InMemoryPlanCatalog,
        system::{RandomIds, SystemClock},
    },
    domain::{
        billing::{PlanCode, SubscriptionStatus},
        email_address::Email,
        events::{EmailVerificationPayload, EventData, EventService, SubscriptionCreatedPayload},
        locale::Locale,
        otp::OtpCode,
        timestamp::Timestamp,
    },
    ports::EventPublisher,
};

/// An `email.verification_requested` to `probe@example.com` with the OTP
/// `482913` in `locale`, expiring ten minutes from now.
///
/// # Panics
/// Never: the address and the code are valid constants.
pub fn verification(locale: Locale) -> EventData {
    EventData::EmailVerificationRequested(EmailVerificationPayload {
        user_id: Uuid::new_v4(),
        recipient: Email::parse("probe@example.com").expect("a valid address"),
        otp_code: OtpCode::parse("482913").expect("six digits"),
        locale,
        expires_at: Timestamp::new(Utc::now() + Duration::minutes(10)),
    })
}

/// A `subscription.created` for a new 14-day trial of the free plan (new
/// ids each call): the commonest event.
pub fn trial() -> EventData {
    let now = Utc::now();
    EventData::SubscriptionCreated(SubscriptionCreatedPayload {
        subscription_id: Uuid::new_v4(),
        user_id: Uuid::new_v4(),
        plan_code: PlanCode::free(),
        status: SubscriptionStatus::Trialing,
        created_at: Timestamp::new(now),
        trial_start: Some(Timestamp::new(now)),
        trial_end: Some(Timestamp::new(now + Duration::days(14))),
        subscription_start: None,
        subscription_end: None,
    })
}

/// The app's event service over `publisher`, with the system clock, random
/// ids and the default plan catalogue.
pub fn event_service(publisher: Arc<dyn EventPublisher>) -> EventService {
    EventService::new(
        publisher,
        Arc::new(SystemClock),
        Arc::new(RandomIds),
        Arc::new(InMemoryPlanCatalog::with_defaults()),
    )
}
