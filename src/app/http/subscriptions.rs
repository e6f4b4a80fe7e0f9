//! Subscription routes: the user's own, cancel and upgrade, and the internal
//! payment-failure and expiry routes.

use super::error_responses::{
    BadInput, BadJsonBody, Forbidden, NotFound, RuleViolated, SubscriptionConflict, Unauthenticated,
};
use super::response::Envelope;
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
    billing::{Actor, PlanCode, Subscription, SubscriptionStatus},
    events::CancellationReason,
    timestamp::Timestamp,
};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubscriptionBody {
    pub id: Uuid,
    pub user_id: Uuid,
    pub plan_code: String,
    #[schema(value_type = String, example = "trialing")]
    pub status: SubscriptionStatus,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub trial_start: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub trial_end: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub subscription_start: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub subscription_end: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub cancelled_at: Option<Timestamp>,
    pub cancellation_reason: Option<String>,
    #[schema(value_type = String, format = DateTime, example = "2026-11-27T10:30:45.123Z")]
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
        user_id: user.user.id,
        role: user.user.role,
    }
}

#[utoipa::path(
    get,
    path = "/subscriptions/me",
    tag = "subscriptions",
    responses((status = 200, description = "Success", body = Envelope<SubscriptionBody>), Unauthenticated, NotFound),
    security(("bearer" = []), ("cookie" = [])),
    description = "The live subscription, else the latest one."
)]
#[get("/subscriptions/me")]
pub async fn my_subscription(
    user: CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let s = state.billing.my_subscription(user.user.id).await?;
    Ok(ok(SubscriptionBody::from(&s)))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct CancelRequest {
    #[serde(default)]
    pub reason: Option<String>,
}

/// Publishes `subscription.cancelled`. The body is optional.
#[utoipa::path(
    post,
    path = "/subscriptions/{id}/cancel",
    tag = "subscriptions",
    request_body(content = Option<CancelRequest>, description = "Optional JSON body", content_type = "application/json"),
    params(("id" = Uuid, Path, description = "The id (a UUID)")),
    responses((status = 200, description = "Success", body = Envelope<SubscriptionBody>), BadInput, Unauthenticated, Forbidden, NotFound, SubscriptionConflict),
    security(("bearer" = []), ("cookie" = [])),
    description = "Cancel (owner or admin). Publishes `subscription.cancelled`."
)]
#[post("/subscriptions/{id}/cancel")]
pub async fn cancel(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id = uuid_param(&id, "id")?;
    // The body is optional: nothing, or a JSON `null`, means no reason.
    let trimmed = body.trim_ascii();
    let request: CancelRequest = if trimmed.is_empty() || trimmed == b"null" {
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UpgradeRequest {
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,31}$", example = "pro")]
    pub plan_code: String,
}

/// Publishes `subscription.status_changed` (`upgraded`).
#[utoipa::path(
    post,
    path = "/subscriptions/{id}/upgrade",
    tag = "subscriptions",
    request_body = UpgradeRequest,
    params(("id" = Uuid, Path, description = "The id (a UUID)")),
    responses((status = 200, description = "Success", body = Envelope<SubscriptionBody>), BadJsonBody, Unauthenticated, Forbidden, NotFound, SubscriptionConflict, RuleViolated),
    security(("bearer" = []), ("cookie" = [])),
    description = "Upgrade a trial to a paid plan (owner). Publishes `subscription.status_changed` (`upgraded`)."
)]
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
#[utoipa::path(
    post,
    path = "/internal/subscriptions/{id}/payment-failed",
    tag = "internal",
    params(("id" = Uuid, Path, description = "The id (a UUID)")),
    responses((status = 200, description = "Success", body = Envelope<SubscriptionBody>), BadInput, Unauthenticated, Forbidden, NotFound, SubscriptionConflict),
    security(("internal_key" = [])),
    description = "A payment failed: `active` to `past_due`. Publishes `subscription.status_changed` (`payment_failed`)."
)]
#[post("/internal/subscriptions/{id}/payment-failed")]
pub async fn payment_failed(
    _caller: InternalCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let s = state.billing.payment_failed(uuid_param(&id, "id")?).await?;
    Ok(ok(SubscriptionBody::from(&s)))
}

/// What an expiry sweep did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SweepBody {
    pub trials_cancelled: u32,
    pub subscriptions_ended: u32,
}

/// Publishes `subscription.cancelled` (`trial_expired`) and
/// `subscription.status_changed` (`subscription_ended`) for what is due.
#[utoipa::path(
    post,
    path = "/internal/subscriptions/expire-due",
    tag = "internal",
    responses((status = 200, description = "Success", body = Envelope<SweepBody>), Unauthenticated, Forbidden),
    security(("internal_key" = [])),
    description = "Run the expiry sweep now. Publishes `subscription.cancelled` (`trial_expired`) and `subscription.status_changed` (`subscription_ended`)."
)]
#[post("/internal/subscriptions/expire-due")]
pub async fn expire_due(
    _caller: InternalCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let report = state.billing.expire_due().await?;
    Ok(ok(SweepBody {
        trials_cancelled: report.trials_cancelled,
        subscriptions_ended: report.subscriptions_ended,
    }))
}
