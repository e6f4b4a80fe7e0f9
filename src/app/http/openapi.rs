//! The OpenAPI description of every route, served at
//! `/api-docs/openapi.json`, and Swagger UI at `/swagger-ui/` (vendored:
//! no download at build or run time).

use utoipa::{
    Modify, OpenApi,
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use super::{accounts, health, metrics, plans, progress, response, subscriptions};

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("smap_auth_token"))),
        );
        components.add_security_scheme(
            "internal_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Internal-Key"))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "smap-identity",
        description = "SMAP Identity Service: accounts, plans, subscriptions and project progress. Every JSON answer is the SMAP envelope `{error_code, message, data}`. Business events go to the RabbitMQ topic exchange `smap.events` (see docs/event-schemas.md)."
    ),
    paths(
        accounts::register, accounts::send_otp, accounts::verify_otp, accounts::login, accounts::logout,
        accounts::auth_me, accounts::users_me, accounts::update_me, accounts::change_password,
        accounts::list_users, accounts::get_user,
        plans::list_plans, plans::get_plan, plans::create_plan, plans::update_plan, plans::delete_plan,
        subscriptions::my_subscription, subscriptions::cancel, subscriptions::upgrade,
        subscriptions::payment_failed, subscriptions::expire_due,
        progress::init_progress, progress::set_project_total, progress::mark_item_done, progress::get_progress,
        health::health, health::component_health, health::live, health::ready, metrics::metrics_route,
    ),
    components(schemas(response::ErrorBody, response::FieldIssue)),
    modifiers(&Security)
)]
pub struct ApiDoc;
