//! System routes: `/health` (every dependency), `/health/{component}`,
//! `/live` (the process answers) and `/ready` (what requests need is up).

use super::response::ErrorBody;
use actix_web::{HttpResponse, Responder, get, http::StatusCode, web};
use futures_util::future::join_all;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{
    response::{ApiError, Envelope, codes},
    state::HealthChecks,
};
use crate::ports::Health;

#[derive(Serialize)]
struct Report {
    status: &'static str,
    checks: Map<String, Value>,
}

fn report(checks: Vec<(&'static str, Health)>) -> HttpResponse {
    let healthy = checks.iter().all(|(_, h)| h.healthy);
    let checks = checks
        .into_iter()
        .map(|(name, result)| {
            let value = serde_json::json!({
                "status": if result.healthy { "healthy" } else { "unhealthy" },
                "adapter": result.adapter,
                "details": result.details,
            });
            (name.to_owned(), value)
        })
        .collect();
    let (status, code, word) = if healthy {
        (StatusCode::OK, codes::SUCCESS, "healthy")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            codes::UNAVAILABLE,
            "unhealthy",
        )
    };
    HttpResponse::build(status).json(Envelope {
        error_code: code,
        message: word.to_owned(),
        errors: None,
        data: Report {
            status: word,
            checks,
        },
    })
}

async fn run_checks(checks: &HealthChecks, only_ready: bool) -> Vec<(&'static str, Health)> {
    let indicators: Vec<_> = checks
        .all
        .iter()
        .filter(|i| !only_ready || checks.ready.contains(&i.component()))
        .collect();
    let results = join_all(indicators.iter().map(|i| i.check())).await;
    for (indicator, result) in indicators.iter().zip(&results) {
        super::metrics::record_health(indicator.component(), result.healthy);
    }
    indicators
        .iter()
        .map(|i| i.component())
        .zip(results)
        .collect()
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "system",
    responses((status = 200, description = "Success", body = Envelope<serde_json::Value>), (status = 503, description = "A dependency is unavailable; retry later", body = ErrorBody)),
    description = "Every dependency: 200 healthy or 503 unhealthy."
)]
#[get("/health")]
pub async fn health(checks: web::Data<HealthChecks>) -> impl Responder {
    report(run_checks(&checks, false).await)
}

#[utoipa::path(
    get,
    path = "/health/{component}",
    tag = "system",
    params(("component" = String, Path, description = "rabbitmq, redis or database")),
    responses((status = 200, description = "Success", body = Envelope<serde_json::Value>), (status = 404, description = "Not found", body = ErrorBody), (status = 503, description = "A dependency is unavailable; retry later", body = ErrorBody)),
    description = "One dependency (`rabbitmq`, `redis`, `database`)."
)]
#[get("/health/{component}")]
pub async fn component_health(
    checks: web::Data<HealthChecks>,
    component: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let indicator = checks
        .all
        .iter()
        .find(|i| i.component() == component.as_str())
        .ok_or_else(|| ApiError::not_found(format!("no health check named `{component}`")))?;
    Ok(report(vec![(
        indicator.component(),
        indicator.check().await,
    )]))
}

#[utoipa::path(
    get,
    path = "/live",
    tag = "system",
    responses((status = 200, description = "Success", body = Envelope<serde_json::Value>)),
    description = "The process answers."
)]
#[get("/live")]
pub async fn live() -> impl Responder {
    report(Vec::new())
}

#[utoipa::path(
    get,
    path = "/ready",
    tag = "system",
    responses((status = 200, description = "Success", body = Envelope<serde_json::Value>), (status = 503, description = "A dependency is unavailable; retry later", body = ErrorBody)),
    description = "What requests need is up."
)]
#[get("/ready")]
pub async fn ready(checks: web::Data<HealthChecks>) -> impl Responder {
    report(run_checks(&checks, true).await)
}
