//! Reading payloads back: each field rule fails with its field named.

use serde_json::json;

use super::*;
use crate::domain::locale::Locale;

fn key(k: &str) -> RoutingKey {
    RoutingKey::parse(k).unwrap()
}

fn verification_json() -> serde_json::Value {
    json!({
        "user_id": "0b7e6a52-1f0c-4c1e-9a57-3f5d2f1f9c11",
        "recipient": "ann@example.com",
        "otp_code": "123456",
        "locale": "vi",
        "expires_at": "2026-11-27T10:40:45.123Z"
    })
}

fn field_of(err: EnvelopeParseError) -> String {
    match err {
        EnvelopeParseError::Malformed { field, .. } => field,
        other => panic!("expected a malformed field, got {other}"),
    }
}

#[test]
fn parses_a_verification_payload() {
    let data = EventData::from_json(
        &key(keys::EMAIL_VERIFICATION_REQUESTED),
        verification_json(),
    )
    .unwrap();
    let EventData::EmailVerificationRequested(p) = data else {
        panic!("wrong variant")
    };
    assert_eq!(p.locale, Locale::Vi);
    assert_eq!(p.otp_code.as_str(), "123456");
}

#[test]
fn each_field_rule_fails_with_the_field_named() {
    let cases = [
        ("recipient", json!("not-an-email")),
        ("otp_code", json!("12345")),
        ("otp_code", json!("abcdef")),
        ("locale", json!("fr")),
        ("user_id", json!("not-a-uuid")),
        ("expires_at", json!("tomorrow")),
    ];
    for (field, bad) in cases {
        let mut data = verification_json();
        data[field] = bad;
        let err = EventData::from_json(&key(keys::EMAIL_VERIFICATION_REQUESTED), data).unwrap_err();
        assert_eq!(field_of(err), format!("payload.data.{field}"));
    }
}

#[test]
fn a_missing_required_field_is_reported() {
    let mut data = verification_json();
    data.as_object_mut().unwrap().remove("otp_code");
    let err = EventData::from_json(&key(keys::EMAIL_VERIFICATION_REQUESTED), data).unwrap_err();
    let EnvelopeParseError::Malformed { message, .. } = err else {
        panic!()
    };
    assert!(message.contains("missing field `otp_code`"), "{message}");
}

#[test]
fn statuses_outside_the_enum_are_rejected() {
    let data = json!({
        "subscription_id": "0b7e6a52-1f0c-4c1e-9a57-3f5d2f1f9c11",
        "user_id": "0b7e6a52-1f0c-4c1e-9a57-3f5d2f1f9c12",
        "plan_code": "free",
        "status": "paused",
        "created_at": "2026-11-27T10:40:45.123Z"
    });
    let err = EventData::from_json(&key(keys::SUBSCRIPTION_CREATED), data).unwrap_err();
    assert_eq!(field_of(err), "payload.data.status");
}

#[test]
fn cancellation_reasons_are_trimmed_bounded_text() {
    assert_eq!(
        CancellationReason::parse("  too pricey ").unwrap().as_str(),
        "too pricey"
    );
    assert!(CancellationReason::parse("line one\nline two").is_ok());
    assert!(CancellationReason::parse("   ").is_err());
    assert!(CancellationReason::parse("bell\u{7}").is_err());
    assert!(CancellationReason::parse(&"x".repeat(501)).is_err());
    assert!(CancellationReason::admin_action().is_admin_action());
}

#[test]
fn transition_reasons_are_snake_case_words() {
    assert!(TransitionReason::parse(TransitionReason::PAYMENT_FAILED).is_ok());
    assert!(TransitionReason::parse("Payment Failed").is_err());
    assert!(TransitionReason::parse("").is_err());
}
