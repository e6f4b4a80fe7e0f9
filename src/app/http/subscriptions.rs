//! Subscription routes: the user's own, cancel and upgrade, and the internal
//! payment-failure and expiry routes.

use actix_web::{HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    accounts::uuid_param,
    extract::{CurrentUser, InternalCaller, JsonBody, parse_json},
    response::{ApiError, ok},
    state::AppState,
};
use crate::domain::{
    account::{Actor, Subscription},
    events::CancellationReason,
    plan::PlanCode,
    subscription::SubscriptionStatus,
    timestamp::Timestamp,
};

#[derive(Debug, Serialize)]
pub struct SubscriptionBody {
    pub id: Uuid,
    pub user_id: Uuid,
    pub plan_code: String,
    pub status: SubscriptionStatus,
    pub trial_start: Option<Timestamp>,
    pub trial_end: Option<Timestamp>,
    pub subscription_start: Option<Timestamp>,
    pub subscription_end: Option<Timestamp>,
    pub cancelled_at: Option<Timestamp>,
    pub cancellation_reason: Option<String>,
    pub created_at: Timestamp,
}

impl From<&Subscription> for SubscriptionBody {
    fn from(s: &Subscription) -> Self {
        Self {
            id: s.id,
            user_id: s.user_id,
            plan_code: s.plan_code.to_string(),
            status: s.status,
            trial_start: s.trial_start.map(Timestamp::new),
            trial_end: s.trial_end.map(Timestamp::new),
            subscription_start: s.period_start.map(Timestamp::new),
            subscription_end: s.period_end.map(Timestamp::new),
            cancelled_at: s.cancelled_at.map(Timestamp::new),
            cancellation_reason: s.cancellation_reason.clone(),
            created_at: Timestamp::new(s.created_at),
        }
    }
}

fn actor(user: &CurrentUser) -> Actor {
    Actor {
        user_id: user.0.sub,
        role: user.0.role,
    }
}

#[get("/subscriptions/me")]
pub async fn my_subscription(
    user: CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let s = state.billing.my_subscription(user.0.sub).await?;
    Ok(ok(SubscriptionBody::from(&s)))
}

#[derive(Debug, Default, Deserialize)]
pub struct CancelRequest {
    #[serde(default)]
    pub reason: Option<String>,
}

/// Publishes `subscription.cancelled`. The body is optional.
#[post("/subscriptions/{id}/cancel")]
pub async fn cancel(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id = uuid_param(&id, "id")?;
    let request: CancelRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CancelRequest::default()
    } else {
        parse_json(&body)?
    };
    let reason = request
        .reason
        .as_deref()
        .map(CancellationReason::parse)
        .transpose()
        .map_err(|e| ApiError::invalid_field("reason", e))?;
    let mut caller = actor(&user);
    // The role in a token may be stale: the store decides who is an admin.
    caller.role = state.accounts.user(caller.user_id).await?.role;
    let s = state.billing.cancel(id, caller, reason).await?;
    Ok(ok(SubscriptionBody::from(&s)))
}

#[derive(Debug, Deserialize)]
pub struct UpgradeRequest {
    pub plan_code: String,
}

/// Publishes `subscription.status_changed` (`upgraded`).
#[post("/subscriptions/{id}/upgrade")]
pub async fn upgrade(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: JsonBody<UpgradeRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = uuid_param(&id, "id")?;
    let JsonBody(body) = body;
    let code =
        PlanCode::parse(&body.plan_code).map_err(|e| ApiError::invalid_field("plan_code", e))?;
    let s = state.billing.upgrade(id, actor(&user), &code).await?;
    Ok(ok(SubscriptionBody::from(&s)))
}

/// Publishes `subscription.status_changed` (`payment_failed`).
#[post("/internal/subscriptions/{id}/payment-failed")]
pub async fn payment_failed(
    _caller: InternalCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let s = state.billing.payment_failed(uuid_param(&id, "id")?).await?;
    Ok(ok(SubscriptionBody::from(&s)))
}

/// Publishes `subscription.cancelled` (`trial_expired`) and
/// `subscription.status_changed` (`subscription_ended`) for what is due.
#[post("/internal/subscriptions/expire-due")]
pub async fn expire_due(
    _caller: InternalCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let report = state.billing.expire_due().await?;
    Ok(ok(report))
}
