//! The answers the domain errors give, pinned: status, `error_code`,
//! message, field issues, `data` and `Retry-After` are part of the API.

use actix_web::{ResponseError, body::to_bytes};
use serde_json::{Value, json};

use super::super::response::{ApiError, codes};
use crate::{
    domain::{
        account::{ChangePasswordError, LoginError, RegisterError, SendOtpError, VerifyOtpError},
        billing::{SubscriptionStatus, UpgradeError},
    },
    ports::{HashError, StoreError},
};

/// Status, `Retry-After` and the JSON envelope of `error`'s answer.
async fn answer(error: impl Into<ApiError>) -> (u16, Option<String>, Value) {
    let response = error.into().error_response();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = to_bytes(response.into_body()).await.unwrap();
    (status, retry_after, serde_json::from_slice(&body).unwrap())
}

#[actix_web::test]
async fn account_errors_keep_their_answers() {
    let (status, _, body) = answer(RegisterError::EmailTaken).await;
    assert_eq!(
        (status, &body["error_code"]),
        (409, &json!(codes::CONFLICT))
    );
    assert_eq!(
        body["errors"][0],
        json!({"field": "email", "message": "already registered"})
    );

    let (status, _, body) = answer(VerifyOtpError::OtpInvalid { attempts_left: 3 }).await;
    assert_eq!(
        (status, &body["error_code"]),
        (400, &json!(codes::INVALID_FIELD))
    );
    assert_eq!(body["message"], "wrong OTP; 3 attempt(s) left");
    assert_eq!(body["errors"][0]["field"], "otp");

    let (status, _, body) = answer(VerifyOtpError::OtpLocked).await;
    assert_eq!((status, &body["data"]), (429, &Value::Null));

    let (status, _, body) = answer(SendOtpError::OtpCooldown {
        retry_after_secs: 45,
    })
    .await;
    assert_eq!(
        (status, &body["data"]),
        (429, &json!({"retry_after_secs": 45}))
    );

    let (status, _, body) = answer(ChangePasswordError::WrongPassword).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "invalid `current_password`: the current password is wrong"
    );

    let (status, _, body) = answer(LoginError::NotVerified).await;
    assert_eq!(
        (status, &body["error_code"]),
        (403, &json!(codes::FORBIDDEN))
    );
}

#[actix_web::test]
async fn port_failures_answer_503_or_500() {
    let busy = LoginError::Hash(HashError::Busy {
        retry_after_secs: 2,
    });
    let (status, retry_after, body) = answer(busy).await;
    assert_eq!((status, retry_after.as_deref()), (503, Some("2")));
    assert_eq!(body["data"], json!({"retry_after_secs": 2}));

    let down = StoreError::Unavailable(anyhow::anyhow!("connection refused"));
    let (status, _, body) = answer(RegisterError::Store(down)).await;
    assert_eq!(
        (status, &body["error_code"]),
        (503, &json!(codes::UNAVAILABLE))
    );

    let broken = StoreError::Unexpected(anyhow::anyhow!("bad row"));
    let (status, _, body) = answer(UpgradeError::Store(broken)).await;
    assert_eq!((status, &body["message"]), (500, &json!("internal error")));
}

#[actix_web::test]
async fn billing_errors_keep_their_answers() {
    let (status, _, body) = answer(UpgradeError::BadPlan("upgrades go to a paid plan")).await;
    assert_eq!(
        (status, &body["error_code"]),
        (422, &json!(codes::RULE_VIOLATED))
    );

    let conflict = UpgradeError::Conflict {
        status: SubscriptionStatus::Cancelled,
    };
    let (status, _, body) = answer(conflict).await;
    assert_eq!(status, 409);
    assert_eq!(
        body["message"],
        "the subscription was changed by a concurrent request (it is now cancelled); read it again"
    );
}
