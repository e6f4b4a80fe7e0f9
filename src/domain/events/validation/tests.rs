//! Unit tests of `EventData::validate`: one test per rule of the payloads.

use chrono::TimeZone;
use uuid::Uuid;

use super::*;
use crate::domain::{
    billing::PlanCode,
    email_address::Email,
    events::{CancellationReason, EmailVerificationPayload, TransitionReason},
    locale::Locale,
    otp::OtpCode,
    progress::ProjectId,
};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap()
}

fn at(minutes: i64) -> Timestamp {
    Timestamp::new(now() + Duration::minutes(minutes))
}

fn verification(expires_in_minutes: i64) -> EventData {
    EventData::EmailVerificationRequested(EmailVerificationPayload {
        user_id: Uuid::new_v4(),
        recipient: Email::parse("ann@example.com").unwrap(),
        otp_code: OtpCode::parse("123456").unwrap(),
        locale: Locale::En,
        expires_at: at(expires_in_minutes),
    })
}

fn trial() -> SubscriptionCreatedPayload {
    SubscriptionCreatedPayload {
        subscription_id: Uuid::new_v4(),
        user_id: Uuid::new_v4(),
        plan_code: PlanCode::free(),
        status: SubscriptionStatus::Trialing,
        created_at: at(0),
        trial_start: Some(at(0)),
        trial_end: Some(at(14 * 24 * 60)),
        subscription_start: None,
        subscription_end: None,
    }
}

fn cancelled() -> SubscriptionCancelledPayload {
    SubscriptionCancelledPayload {
        subscription_id: Uuid::new_v4(),
        user_id: Uuid::new_v4(),
        plan_code: PlanCode::free(),
        previous_status: SubscriptionStatus::Trialing,
        new_status: SubscriptionStatus::Cancelled,
        cancelled_at: at(0),
        cancellation_reason: CancellationReason::user_requested(),
        effective_until: at(60),
        admin_user_id: None,
    }
}

fn changed() -> SubscriptionStatusChangedPayload {
    SubscriptionStatusChangedPayload {
        subscription_id: Uuid::new_v4(),
        user_id: Uuid::new_v4(),
        plan_code: PlanCode::parse("pro").unwrap(),
        previous_status: SubscriptionStatus::Trialing,
        new_status: SubscriptionStatus::Active,
        transition_reason: TransitionReason::parse(TransitionReason::UPGRADED).unwrap(),
        changed_at: at(0),
        subscription_start: Some(at(0)),
        subscription_end: Some(at(30 * 24 * 60)),
    }
}

fn job(total: u64, done: u64, errors: u64) -> EventData {
    EventData::JobCompleted(JobCompletedPayload {
        project_id: ProjectId::parse("p1").unwrap(),
        total,
        done,
        errors,
        completed_at: at(0),
    })
}

fn field(result: Check) -> Option<&'static str> {
    result.expect_err("expected a validation error").field()
}

#[test]
fn valid_events_pass() {
    assert_eq!(verification(10).validate(now()), Ok(()));
    assert_eq!(
        EventData::SubscriptionCreated(trial()).validate(now()),
        Ok(())
    );
    assert_eq!(
        EventData::SubscriptionCancelled(cancelled()).validate(now()),
        Ok(())
    );
    assert_eq!(
        EventData::SubscriptionStatusChanged(changed()).validate(now()),
        Ok(())
    );
    assert_eq!(job(3, 3, 1).validate(now()), Ok(()));
}

#[test]
fn otp_expiry_must_be_in_the_future() {
    assert_eq!(field(verification(0).validate(now())), Some("expires_at"));
    assert_eq!(field(verification(-1).validate(now())), Some("expires_at"));
}

#[test]
fn a_trial_must_last_exactly_14_days() {
    let mut p = trial();
    p.trial_end = Some(at(13 * 24 * 60));
    assert_eq!(
        EventData::SubscriptionCreated(p).validate(now()),
        Err(EventValidationError::TrialLength)
    );
}

#[test]
fn a_trial_needs_its_start_and_end() {
    let mut p = trial();
    p.trial_start = None;
    assert_eq!(
        field(EventData::SubscriptionCreated(p).validate(now())),
        Some("trial_start")
    );
    let mut p = trial();
    p.trial_end = None;
    assert_eq!(
        field(EventData::SubscriptionCreated(p).validate(now())),
        Some("trial_end")
    );
}

#[test]
fn a_paid_subscription_needs_an_ordered_period() {
    let mut p = trial();
    p.status = SubscriptionStatus::Active;
    assert_eq!(
        field(EventData::SubscriptionCreated(p.clone()).validate(now())),
        Some("subscription_start")
    );
    p.subscription_start = Some(at(10));
    p.subscription_end = Some(at(5));
    assert_eq!(
        EventData::SubscriptionCreated(p).validate(now()),
        Err(EventValidationError::Order {
            field: "subscription_end",
            earlier: "subscription_start"
        })
    );
}

#[test]
fn a_new_subscription_is_trialing_or_active() {
    let mut p = trial();
    p.status = SubscriptionStatus::PastDue;
    assert_eq!(
        field(EventData::SubscriptionCreated(p).validate(now())),
        Some("status")
    );
}

#[test]
fn a_cancellation_ends_in_cancelled_from_another_status() {
    let mut p = cancelled();
    p.new_status = SubscriptionStatus::Expired;
    assert_eq!(
        field(EventData::SubscriptionCancelled(p).validate(now())),
        Some("new_status")
    );
    let mut p = cancelled();
    p.previous_status = SubscriptionStatus::Cancelled;
    assert_eq!(
        field(EventData::SubscriptionCancelled(p).validate(now())),
        Some("previous_status")
    );
}

#[test]
fn admin_user_id_goes_with_admin_action_only() {
    let mut p = cancelled();
    p.cancellation_reason = CancellationReason::admin_action();
    assert_eq!(
        EventData::SubscriptionCancelled(p.clone()).validate(now()),
        Err(EventValidationError::Missing {
            field: "admin_user_id"
        })
    );
    p.admin_user_id = Some(Uuid::new_v4());
    assert_eq!(EventData::SubscriptionCancelled(p).validate(now()), Ok(()));
    let mut p = cancelled();
    p.admin_user_id = Some(Uuid::new_v4());
    assert_eq!(
        field(EventData::SubscriptionCancelled(p).validate(now())),
        Some("admin_user_id")
    );
}

#[test]
fn a_status_change_changes_the_status() {
    let mut p = changed();
    p.new_status = p.previous_status;
    assert_eq!(
        field(EventData::SubscriptionStatusChanged(p).validate(now())),
        Some("new_status")
    );
    let mut p = changed();
    p.subscription_end = None;
    assert_eq!(
        field(EventData::SubscriptionStatusChanged(p).validate(now())),
        Some("subscription_end")
    );
}

#[test]
fn a_completed_job_has_done_everything() {
    assert_eq!(field(job(0, 0, 0).validate(now())), Some("total"));
    assert_eq!(field(job(3, 2, 0).validate(now())), Some("done"));
    assert_eq!(field(job(3, 3, 4).validate(now())), Some("errors"));
}
