//! The HTTP API (actix-web): routes, the SMAP envelope, extractors, and the
//! server itself. Handlers parse input, call one use case, and shape its
//! answer; they never talk to a broker or a database.

pub mod accounts;
pub mod error_responses;
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

use std::{net::TcpListener, sync::OnceLock};

use actix_web::{
    App, HttpRequest, HttpResponse, HttpServer,
    body::MessageBody,
    dev::{ResourceDef, Server, ServiceRequest, ServiceResponse},
    http::ConnectionType,
    middleware::{Next, from_fn},
    web,
};

use self::{extract::MAX_BODY_BYTES, response::ApiError, state::AppState};

/// How long in-flight requests may run on after SIGTERM/SIGINT.
pub const SHUTDOWN_TIMEOUT_SECS: u64 = 10;

/// How long a stop waits for the HTTP server as a whole: its workers' own
/// drain bound and a margin. A worker that never answers the stop (seen
/// once in the test suite, in a `consume` process, cause not found) must
/// not keep a stopping process alive; its thread ends with the process.
pub const SERVER_STOP_BOUND: std::time::Duration =
    std::time::Duration::from_secs(SHUTDOWN_TIMEOUT_SECS + 5);

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

/// Every documented path template with the methods it answers, read from
/// the OpenAPI document so the two cannot disagree.
fn documented_routes() -> &'static [(ResourceDef, Vec<&'static str>)] {
    static ROUTES: OnceLock<Vec<(ResourceDef, Vec<&'static str>)>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        let doc = <openapi::ApiDoc as utoipa::OpenApi>::openapi();
        doc.paths
            .paths
            .iter()
            .map(|(path, item)| {
                let methods = [
                    ("GET", item.get.is_some()),
                    ("PUT", item.put.is_some()),
                    ("POST", item.post.is_some()),
                    ("DELETE", item.delete.is_some()),
                    ("PATCH", item.patch.is_some()),
                ]
                .into_iter()
                .filter_map(|(method, present)| present.then_some(method))
                .collect();
                (ResourceDef::new(path.as_str()), methods)
            })
            .collect()
    })
}

/// 405 with `Allow` for a known path and another method; 404 otherwise.
async fn no_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let allowed: Vec<&str> = documented_routes()
        .iter()
        .filter(|(def, _)| def.is_match(req.path()))
        .flat_map(|(_, methods)| methods.iter().copied())
        .collect();
    if allowed.is_empty() {
        return Err(ApiError::not_found(format!(
            "no route for {} {}",
            req.method(),
            req.path()
        )));
    }
    let allow = allowed.join(", ");
    let error = ApiError::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        response::codes::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {}; use {allow}",
            req.method(),
            req.path()
        ),
    );
    let mut response = actix_web::ResponseError::error_response(&error);
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allow) {
        response
            .headers_mut()
            .insert(actix_web::http::header::ALLOW, value);
    }
    Ok(response)
}

/// Binds the routes to `listener`; the returned server stops gracefully on
/// SIGINT/SIGTERM or through its handle.
/// Browsers may call from `origins` only, with credentials (the auth
/// cookie); internal routes' key header is not offered cross-origin.
fn cors(origins: &[String]) -> actix_cors::Cors {
    origins
        .iter()
        .fold(actix_cors::Cors::default(), |cors, origin| {
            cors.allowed_origin(origin)
        })
        .allowed_methods(["GET", "POST", "PUT", "DELETE"])
        .allowed_headers([
            actix_web::http::header::CONTENT_TYPE,
            actix_web::http::header::AUTHORIZATION,
            actix_web::http::header::ACCEPT,
            // Registration's language (DESIGN §6); without it a browser's
            // preflight fails and the UI cannot send it.
            actix_web::http::header::HeaderName::from_static(accounts::LANG_HEADER),
        ])
        .supports_credentials()
        // Another origin gets no CORS headers (the browser then withholds
        // the answer) rather than a non-envelope 400.
        .block_on_origin_mismatch(false)
        .max_age(3600)
}

/// Cancelled once shutdown begins (a child of the process's shutdown token,
/// `app::startup`): from then on every answer closes its connection, so
/// keep-alive clients cannot hold the server open.
#[derive(Clone, Default)]
pub struct Draining(pub tokio_util::sync::CancellationToken);

async fn close_when_draining(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let draining = req
        .app_data::<web::Data<Draining>>()
        .is_some_and(|d| d.0.is_cancelled());
    let mut response = next.call(req).await?;
    if draining {
        response
            .response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(response)
}

/// The system routes alone — `/live`, `/ready`, `/health`,
/// `/health/{component}`, `/metrics` — for `smap-identity consume`, which
/// serves no API but must be probed and scraped like the API (its e-mail
/// metrics exist only in its own process). Signals are the caller's.
pub fn ops_server(listener: TcpListener, checks: state::HealthChecks) -> std::io::Result<Server> {
    let checks = web::Data::new(checks);
    let _ = metrics::prometheus();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(checks.clone())
            .service(health::health)
            .service(health::component_health)
            .service(health::live)
            .service(health::ready)
            .service(metrics::metrics_route)
            .default_service(web::to(ops_no_route))
    })
    .workers(1)
    .listen(listener)?
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
    .disable_signals()
    .run();
    Ok(server)
}

async fn ops_no_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "no route for {} {}: a consume process serves /live, /ready, /health and /metrics only",
        req.method(),
        req.path()
    )))
}

/// Binds the routes to `listener`. Signals are the caller's to handle
/// (`Application::run_until_stopped`): it marks `draining`, then stops the
/// server through its handle, gracefully.
pub fn server(
    listener: TcpListener,
    state: AppState,
    cors_origins: Vec<String>,
    draining: Draining,
) -> std::io::Result<Server> {
    let checks = web::Data::new(state.health.clone());
    let state = web::Data::new(state);
    let draining = web::Data::new(draining);
    // Install the recorder before the first request records anything.
    let _ = metrics::prometheus();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(close_when_draining))
            .wrap(cors(&cors_origins))
            .wrap(from_fn(metrics::track))
            .app_data(state.clone())
            .app_data(checks.clone())
            .app_data(draining.clone())
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
    .disable_signals()
    .run();
    Ok(server)
}
