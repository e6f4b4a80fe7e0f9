//! The environment the process runs in (`APP_ENV`) and what its HTTP side
//! listens on and answers to (`HTTP_HOST`, `HTTP_PORT`,
//! `CORS_ALLOWED_ORIGINS`).

use std::net::IpAddr;

use super::{AppEnv, ConfigError, env::Env};

/// The web UI's development servers (Next.js, Vite).
const DEV_CORS_ORIGINS: [&str; 2] = ["http://localhost:3000", "http://localhost:5173"];

/// The HTTP section of `Settings`.
pub(super) struct Server {
    pub(super) http_host: IpAddr,
    pub(super) http_port: u16,
    pub(super) cors_allowed_origins: Vec<String>,
}

/// `APP_ENV`: development unless told otherwise; it sets the defaults of
/// every other section.
pub(super) fn app_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<AppEnv, ConfigError> {
    env.parse(
        "APP_ENV",
        AppEnv::Development,
        |s| match s {
            "development" | "dev" => Some(AppEnv::Development),
            "production" | "prod" => Some(AppEnv::Production),
            "test" => Some(AppEnv::Test),
            _ => None,
        },
        "development, production or test",
    )
}

/// Production listens on every interface and allows no browser origin
/// unless listed; development listens on loopback and allows the UI's
/// development servers.
pub(super) fn server<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    production: bool,
) -> Result<Server, ConfigError> {
    let default_host: IpAddr = if production {
        [0, 0, 0, 0].into()
    } else {
        [127, 0, 0, 1].into()
    };
    let http_host = env.parse(
        "HTTP_HOST",
        default_host,
        |s| s.parse().ok(),
        "an IP address",
    )?;
    let http_port = env.port("HTTP_PORT", 8080)?;
    let default_origins = if production {
        Vec::new()
    } else {
        DEV_CORS_ORIGINS.iter().map(|o| (*o).to_owned()).collect()
    };
    let cors_allowed_origins = env.parse(
        "CORS_ALLOWED_ORIGINS",
        default_origins,
        |s| {
            s.split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(|o| valid_origin(o).then(|| o.trim_end_matches('/').to_owned()))
                .collect()
        },
        "comma-separated origins such as https://app.smap.dev (scheme and host, no path, no *)",
    )?;
    Ok(Server {
        http_host,
        http_port,
        cors_allowed_origins,
    })
}

/// `scheme://host[:port]`, nothing else: a browser's `Origin` header.
fn valid_origin(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    let rest = rest.trim_end_matches('/');
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && !rest.contains(['/', '*', '?', '#', '@', ' '])
}
