//! Unit tests of `EventService`: stamping, validation before publishing,
//! the retry of transient failures, and unique canonical event ids.

use std::collections::HashSet;

use chrono::{Duration, TimeZone, Utc};
use uuid::Uuid;

use super::*;
use crate::{
    adapters::{
        memory::InMemoryPlanCatalog,
        memory::{ManualClock, SequentialIds},
        system::RandomIds,
    },
    domain::{
        billing::PlanCode,
        billing::SubscriptionStatus,
        email_address::Email,
        events::{EmailVerificationPayload, SubscriptionCreatedPayload},
        locale::Locale,
        otp::OtpCode,
    },
    ports::MockEventPublisher,
};

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap(),
    ))
}

fn verification(clock: &ManualClock) -> EventData {
    EventData::EmailVerificationRequested(EmailVerificationPayload {
        user_id: Uuid::new_v4(),
        recipient: Email::parse("ann@example.com").unwrap(),
        otp_code: OtpCode::parse("123456").unwrap(),
        locale: Locale::En,
        expires_at: Timestamp::new(clock.now() + Duration::minutes(10)),
    })
}

fn trial(clock: &ManualClock, plan: &str) -> EventData {
    let now = Timestamp::new(clock.now());
    EventData::SubscriptionCreated(SubscriptionCreatedPayload {
        subscription_id: Uuid::new_v4(),
        user_id: Uuid::new_v4(),
        plan_code: PlanCode::parse(plan).unwrap(),
        status: SubscriptionStatus::Trialing,
        created_at: now,
        trial_start: Some(now),
        trial_end: Some(Timestamp::new(clock.now() + Duration::days(14))),
        subscription_start: None,
        subscription_end: None,
    })
}

fn service(publisher: MockEventPublisher, clock: Arc<ManualClock>) -> EventService {
    EventService::new(
        Arc::new(publisher),
        clock,
        Arc::new(SequentialIds::default()),
        Arc::new(InMemoryPlanCatalog::with_defaults()),
    )
}

#[tokio::test]
async fn publishes_an_envelope_stamped_by_the_clock_and_id_source() {
    let clock = clock();
    let mut publisher = MockEventPublisher::new();
    publisher
        .expect_publish()
        .times(1)
        .returning(|event| Ok(event.event_id()));
    let service = service(publisher, clock.clone());

    let id = service.publish(verification(&clock)).await.unwrap();

    let expected = SequentialIds::default().new_uuid();
    assert_eq!(id, EventId::from_uuid(expected));
}

#[tokio::test]
async fn invalid_events_are_never_handed_to_the_publisher() {
    let clock = clock();
    let mut publisher = MockEventPublisher::new();
    publisher.expect_publish().never();
    let service = service(publisher, clock.clone());
    let stale = verification(&clock);
    clock.advance(Duration::minutes(11));

    let err = service.publish(stale).await.unwrap_err();

    assert!(matches!(
        err,
        PublishError::Rejected(EventValidationError::NotInFuture {
            field: "expires_at"
        })
    ));
    assert!(!err.is_transient());
}

#[tokio::test]
async fn subscription_events_must_name_an_existing_plan() {
    let clock = clock();
    let mut publisher = MockEventPublisher::new();
    publisher
        .expect_publish()
        .times(1)
        .returning(|e| Ok(e.event_id()));
    let service = service(publisher, clock.clone());

    assert!(service.publish(trial(&clock, "free")).await.is_ok());
    let err = service.publish(trial(&clock, "gold")).await.unwrap_err();

    assert!(matches!(
        err,
        PublishError::Rejected(EventValidationError::UnknownPlan { ref plan_code }) if plan_code == "gold"
    ));
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_retried_three_times_with_the_same_event_id() {
    let clock = clock();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut publisher = MockEventPublisher::new();
    let log = seen.clone();
    publisher.expect_publish().times(3).returning(move |event| {
        log.lock().unwrap().push(event.event_id());
        Err(PublishError::Nacked)
    });
    let service = service(publisher, clock.clone());

    let err = service.publish(verification(&clock)).await.unwrap_err();

    assert!(matches!(err, PublishError::Nacked));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|id| *id == seen[0]));
}

#[tokio::test(start_paused = true)]
async fn permanent_failures_are_not_retried() {
    let clock = clock();
    let mut publisher = MockEventPublisher::new();
    publisher.expect_publish().times(1).returning(|_| {
        Err(PublishError::Unexpected(anyhow::anyhow!(
            "no such exchange"
        )))
    });
    let service = service(publisher, clock.clone());

    assert!(service.publish(verification(&clock)).await.is_err());
}

#[tokio::test]
async fn event_ids_are_unique_over_100_000_envelopes_and_timestamps_are_canonical() {
    let clock = clock();
    clock.advance(Duration::nanoseconds(123_456_789));
    let mut publisher = MockEventPublisher::new();
    publisher.expect_publish().never();
    let service = EventService::new(
        Arc::new(publisher),
        clock.clone(),
        Arc::new(RandomIds),
        Arc::new(InMemoryPlanCatalog::with_defaults()),
    );
    let mut ids = HashSet::new();
    for _ in 0..100_000 {
        let sealed = service.prepare(verification(&clock)).await.unwrap();
        let id = sealed.event_id();
        assert_eq!(id.uuid().get_version_num(), 4);
        ids.insert(id);
    }
    assert_eq!(ids.len(), 100_000);

    let sealed = service.prepare(verification(&clock)).await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(sealed.body()).unwrap();
    assert_eq!(json["timestamp"], "2026-11-27T10:00:00.123Z");
}
