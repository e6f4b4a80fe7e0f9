//! Plan routes: anyone reads, admins manage.

use super::error_responses::{
    BadInput, BadJsonBody, Conflict, Forbidden, NotFound, RuleViolated, Unauthenticated,
};
use super::response::Envelope;
use actix_web::{HttpResponse, delete, get, http::StatusCode, post, put, web};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    accounts::{require_admin, uuid_param},
    extract::{CurrentUser, JsonBody},
    response::{ApiError, ok, respond},
    state::AppState,
};
use crate::domain::{
    billing::{BillingCycle, Plan, PlanChanges, PlanCode, PlanDraft},
    timestamp::Timestamp,
};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlanBody {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub description: Option<String>,
    /// In the currency's minor unit.
    pub price: i64,
    pub currency: String,
    #[schema(value_type = String, example = "monthly")]
    pub billing_cycle: BillingCycle,
    #[schema(value_type = String, format = DateTime, example = "2026-11-27T10:30:45.123Z")]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime, example = "2026-11-27T10:30:45.123Z")]
    pub updated_at: Timestamp,
}

impl From<&Plan> for PlanBody {
    fn from(p: &Plan) -> Self {
        Self {
            id: p.id,
            code: p.code.to_string(),
            name: p.name.clone(),
            description: p.description.clone(),
            price: p.price_minor,
            currency: p.currency.clone(),
            billing_cycle: p.billing_cycle,
            created_at: Timestamp::new(p.created_at),
            updated_at: Timestamp::new(p.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PlanRequest {
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,31}$", example = "pro")]
    pub code: Option<String>,
    #[schema(min_length = 1, max_length = 100, pattern = r"\S", example = "Pro")]
    pub name: Option<String>,
    pub description: Option<String>,
    /// In the currency's minor unit.
    #[schema(minimum = 0, example = 199000)]
    pub price: Option<i64>,
    #[schema(pattern = "^[A-Z]{3}$", example = "VND")]
    pub currency: Option<String>,
    #[schema(value_type = Option<String>, pattern = "^(monthly|yearly)$", example = "monthly")]
    pub billing_cycle: Option<BillingCycle>,
}

fn name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid_field("name", "must be 1-100 characters"));
    }
    Ok(name.to_owned())
}

fn description(raw: &str) -> Result<String, ApiError> {
    if raw.chars().count() > 1000 {
        return Err(ApiError::invalid_field(
            "description",
            "must be at most 1000 characters",
        ));
    }
    Ok(raw.trim().to_owned())
}

fn price(raw: i64) -> Result<i64, ApiError> {
    if raw < 0 {
        return Err(ApiError::invalid_field("price", "must not be negative"));
    }
    Ok(raw)
}

fn currency(raw: &str) -> Result<String, ApiError> {
    if raw.len() == 3 && raw.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::invalid_field(
            "currency",
            "must be an ISO 4217 code such as USD or VND",
        ))
    }
}

fn missing(field: &str) -> ApiError {
    ApiError::invalid_field(field, "is required")
}

#[utoipa::path(
    get,
    path = "/plans",
    tag = "plans",
    responses((status = 200, description = "Success", body = Envelope<Vec<PlanBody>>)),
    description = "All plans."
)]
#[get("/plans")]
pub async fn list_plans(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let plans = state.billing.plans().await?;
    Ok(ok(plans.iter().map(PlanBody::from).collect::<Vec<_>>()))
}

#[utoipa::path(
    get,
    path = "/plans/{id}",
    tag = "plans",
    params(("id" = Uuid, Path, description = "The id (a UUID)")),
    responses((status = 200, description = "Success", body = Envelope<PlanBody>), BadInput, NotFound),
    description = "One plan."
)]
#[get("/plans/{id}")]
pub async fn get_plan(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let plan = state.billing.plan(uuid_param(&id, "id")?).await?;
    Ok(ok(PlanBody::from(&plan)))
}

#[utoipa::path(
    post,
    path = "/plans",
    tag = "plans",
    request_body = PlanRequest,
    responses((status = 201, description = "Success", body = Envelope<PlanBody>), BadJsonBody, Unauthenticated, Forbidden, Conflict),
    security(("bearer" = []), ("cookie" = [])),
    description = "Create a plan (admins)."
)]
#[post("/plans")]
pub async fn create_plan(
    user: CurrentUser,
    state: web::Data<AppState>,
    body: JsonBody<PlanRequest>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&user)?;
    let JsonBody(b) = body;
    let draft = PlanDraft {
        code: PlanCode::parse(b.code.as_deref().ok_or_else(|| missing("code"))?)
            .map_err(|e| ApiError::invalid_field("code", e))?,
        name: name(b.name.as_deref().ok_or_else(|| missing("name"))?)?,
        description: b.description.as_deref().map(description).transpose()?,
        price_minor: price(b.price.ok_or_else(|| missing("price"))?)?,
        currency: currency(b.currency.as_deref().unwrap_or("USD"))?,
        billing_cycle: b.billing_cycle.ok_or_else(|| missing("billing_cycle"))?,
    };
    let plan = state.billing.create_plan(draft).await?;
    Ok(respond(StatusCode::CREATED, PlanBody::from(&plan)))
}

#[utoipa::path(
    put,
    path = "/plans/{id}",
    tag = "plans",
    request_body = PlanRequest,
    params(("id" = Uuid, Path, description = "The id (a UUID)")),
    responses((status = 200, description = "Success", body = Envelope<PlanBody>), BadJsonBody, Unauthenticated, Forbidden, NotFound, RuleViolated),
    security(("bearer" = []), ("cookie" = [])),
    description = "Update a plan (admins); its code never changes."
)]
#[put("/plans/{id}")]
pub async fn update_plan(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: JsonBody<PlanRequest>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&user)?;
    let JsonBody(b) = body;
    if b.code.is_some() {
        return Err(ApiError::rule_violated(
            "code",
            "a plan's code never changes: events name it",
        ));
    }
    let changes = PlanChanges {
        name: b.name.as_deref().map(name).transpose()?,
        description: b.description.as_deref().map(description).transpose()?,
        price_minor: b.price.map(price).transpose()?,
        currency: b.currency.as_deref().map(currency).transpose()?,
        billing_cycle: b.billing_cycle,
    };
    let plan = state
        .billing
        .update_plan(uuid_param(&id, "id")?, changes)
        .await?;
    Ok(ok(PlanBody::from(&plan)))
}

#[utoipa::path(
    delete,
    path = "/plans/{id}",
    tag = "plans",
    params(("id" = Uuid, Path, description = "The id (a UUID)")),
    responses((status = 200, description = "Success", body = Envelope<serde_json::Value>), BadInput, Unauthenticated, Forbidden, NotFound, Conflict),
    security(("bearer" = []), ("cookie" = [])),
    description = "Delete a plan no subscription uses (admins)."
)]
#[delete("/plans/{id}")]
pub async fn delete_plan(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&user)?;
    state.billing.delete_plan(uuid_param(&id, "id")?).await?;
    Ok(ok(serde_json::json!({ "deleted": true })))
}
