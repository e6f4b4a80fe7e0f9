//! The HTTP API (actix-web): routes, the SMAP envelope, extractors, and the
//! server itself. Handlers parse input, call one use case, and shape its
//! answer; they never talk to a broker or a database.

pub mod accounts;
pub mod errors;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod plans;
pub mod progress;
pub mod response;
pub mod state;
pub mod subscriptions;

use std::net::TcpListener;

use actix_web::{
    App, HttpRequest, HttpResponse, HttpServer, dev::Server, middleware::from_fn, web,
};

use self::{extract::MAX_BODY_BYTES, response::ApiError, state::AppState};

/// How long in-flight requests may run on after SIGTERM/SIGINT.
pub const SHUTDOWN_TIMEOUT_SECS: u64 = 10;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(health::health)
        .service(health::component_health)
        .service(health::live)
        .service(health::ready)
        .service(metrics::metrics_route)
        .service(progress::init_progress)
        .service(progress::set_project_total)
        .service(progress::mark_item_done)
        .service(progress::get_progress)
        .service(accounts::register)
        .service(accounts::send_otp)
        .service(accounts::verify_otp)
        .service(accounts::login)
        .service(accounts::logout)
        .service(accounts::auth_me)
        .service(accounts::users_me)
        .service(accounts::update_me)
        .service(accounts::change_password)
        .service(accounts::list_users)
        .service(accounts::get_user)
        .service(plans::list_plans)
        .service(plans::get_plan)
        .service(plans::create_plan)
        .service(plans::update_plan)
        .service(plans::delete_plan)
        .service(subscriptions::my_subscription)
        .service(subscriptions::cancel)
        .service(subscriptions::upgrade)
        .service(subscriptions::payment_failed)
        .service(subscriptions::expire_due)
        .service(utoipa_swagger_ui::SwaggerUi::new("/swagger-ui/{_:.*}").url(
            "/api-docs/openapi.json",
            <openapi::ApiDoc as utoipa::OpenApi>::openapi(),
        ));
}

async fn no_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

/// Binds the routes to `listener`; the returned server stops gracefully on
/// SIGINT/SIGTERM or through its handle.
pub fn server(listener: TcpListener, state: AppState) -> std::io::Result<Server> {
    let state = web::Data::new(state);
    // Install the recorder before the first request records anything.
    let _ = metrics::prometheus();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(metrics::track))
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|e, _| ApiError::invalid_field("query", e).into()),
            )
            .configure(routes)
            .default_service(web::to(no_route))
    })
    .listen(listener)?
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
    .run();
    Ok(server)
}
