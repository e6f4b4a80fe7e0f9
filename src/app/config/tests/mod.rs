//! `Settings::from_lookup` on a map: the defaults, a malformed value of any
//! section naming its variable, and what production requires. The cases of
//! one section sit in the sibling files.

mod published;
mod secrets;
mod servers;
mod telemetry;

use std::collections::HashMap;

use secrecy::ExposeSecret;

use super::{auth::url_password, *};
use crate::adapters::{amqp::split_urls, argon2::HashBound, mail::SmtpTls};

fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::from_lookup(|var| map.get(var).cloned())
}

#[test]
fn event_delivery_defaults_to_the_outbox_and_refuses_other_values() {
    assert_eq!(settings(&[]).unwrap().event_delivery, EventDelivery::Outbox);
    assert_eq!(
        settings(&[("EVENT_DELIVERY", "direct")])
            .unwrap()
            .event_delivery,
        EventDelivery::Direct
    );
    let error = settings(&[("EVENT_DELIVERY", "sometimes")]).unwrap_err();
    assert_eq!(error.var, "EVENT_DELIVERY");
}

#[test]
fn nothing_set_means_in_memory_development_defaults() {
    let s = settings(&[]).unwrap();
    assert_eq!(s.app_env, AppEnv::Development);
    assert_eq!(
        (s.http_host.to_string().as_str(), s.http_port),
        ("127.0.0.1", 8080)
    );
    assert!(
        s.database_url.is_none() && s.amqp_url.is_none() && s.redis.is_none() && s.smtp.is_none()
    );
    assert!(
        s.migrate_on_start,
        "migrations run at start unless told not to"
    );
    #[cfg(feature = "legacy-fanout")]
    assert!(s.enable_dual_publish && s.consume_legacy_queue);
    assert_eq!(s.log_format, LogFormat::Text);
    assert!(s.uses_dev_secrets());
}

#[test]
fn migrate_on_start_is_a_flag() {
    assert!(
        !settings(&[("MIGRATE_ON_START", "false")])
            .unwrap()
            .migrate_on_start
    );
    assert!(
        settings(&[("MIGRATE_ON_START", "TRUE")])
            .unwrap()
            .migrate_on_start
    );
    let error = settings(&[("MIGRATE_ON_START", "later")]).unwrap_err();
    assert_eq!(error.var, "MIGRATE_ON_START");
}

#[test]
fn the_statement_timeout_is_ten_seconds_unless_set_and_zero_lifts_it() {
    let timeout = |v: &str| settings(&[("DATABASE_STATEMENT_TIMEOUT_SECS", v)]);
    assert_eq!(
        settings(&[]).unwrap().database_statement_timeout,
        Some(std::time::Duration::from_secs(10))
    );
    assert_eq!(
        timeout("3").unwrap().database_statement_timeout,
        Some(std::time::Duration::from_secs(3))
    );
    assert_eq!(timeout("0").unwrap().database_statement_timeout, None);
    for bad in ["-1", "1.5", "ten", "3601"] {
        let error = timeout(bad).unwrap_err();
        assert_eq!(error.var, "DATABASE_STATEMENT_TIMEOUT_SECS", "{bad}");
    }
}

#[test]
fn password_hashing_is_bounded_by_the_cores_and_a_short_wait_unless_set() {
    let s = settings(&[]).unwrap();
    assert_eq!(
        s.password_hash_concurrency,
        HashBound::default_concurrency()
    );
    assert_eq!(
        s.password_hash_max_wait,
        std::time::Duration::from_millis(2_000)
    );
    let s = settings(&[
        ("PASSWORD_HASH_CONCURRENCY", "8"),
        ("PASSWORD_HASH_MAX_WAIT_MS", "0"),
    ])
    .unwrap();
    assert_eq!(
        (s.password_hash_concurrency, s.password_hash_max_wait),
        (8, std::time::Duration::ZERO)
    );
}

#[test]
fn empty_values_count_as_unset() {
    let s = settings(&[("AMQP_URL", ""), ("REDIS_HOST", "  ")]).unwrap();
    assert!(s.amqp_url.is_none() && s.redis.is_none());
}

#[test]
fn malformed_values_name_their_variable() {
    let cases = [
        ("HTTP_PORT", "eighty"),
        ("HTTP_PORT", "70000"),
        ("HTTP_HOST", "localhost:80"),
        ("APP_ENV", "staging"),
        #[cfg(feature = "legacy-fanout")]
        ("ENABLE_DUAL_PUBLISH", "maybe"),
        #[cfg(feature = "legacy-fanout")]
        ("CONSUME_LEGACY_QUEUE", "2"),
        ("DATABASE_URL", "mysql://x"),
        ("AMQP_URL", "http://rabbit"),
        ("AMQP_URL", "amqp://a:5672/%2f,rabbit-b:5672"),
        ("AMQP_URL", " , "),
        ("AMQP_QUEUE_TYPE", "mirrored"),
        ("JWT_SECRET", "short"),
        ("LOG_FORMAT", "xml"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "jaeger:4317"),
        ("CORS_ALLOWED_ORIGINS", "*"),
        ("CORS_ALLOWED_ORIGINS", "https://app.smap.dev/login"),
        ("CORS_ALLOWED_ORIGINS", "app.smap.dev"),
        ("PASSWORD_HASH_CONCURRENCY", "0"),
        ("PASSWORD_HASH_CONCURRENCY", "1025"),
        ("PASSWORD_HASH_CONCURRENCY", "two"),
        ("PASSWORD_HASH_MAX_WAIT_MS", "-1"),
        ("PASSWORD_HASH_MAX_WAIT_MS", "60001"),
        ("PASSWORD_HASH_MAX_WAIT_MS", "2s"),
    ];
    for (var, value) in cases {
        let err = settings(&[(var, value)]).unwrap_err();
        assert_eq!(err.var, var, "{var}={value}: {err}");
        assert!(err.to_string().contains(var));
    }
    let err = settings(&[("REDIS_HOST", "r"), ("REDIS_STATE_DB", "16")]).unwrap_err();
    assert_eq!(err.var, "REDIS_STATE_DB");
    let err = settings(&[("SMTP_HOST", "m"), ("SMTP_TLS", "ssl")]).unwrap_err();
    assert_eq!(err.var, "SMTP_TLS");
    let otlp = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317");
    for (var, value) in [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_RESOURCE_ATTRIBUTES", "region"),
        ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
    ] {
        assert_eq!(settings(&[otlp, (var, value)]).unwrap_err().var, var);
    }
}

#[test]
fn production_requires_real_secrets_and_logs_json() {
    assert_eq!(
        settings(&[("APP_ENV", "production")]).unwrap_err().var,
        "JWT_SECRET"
    );
    let jwt = ("JWT_SECRET", "0123456789abcdef0123456789abcdef");
    assert_eq!(
        settings(&[("APP_ENV", "production"), jwt]).unwrap_err().var,
        "INTERNAL_KEY"
    );
    let secrets = [
        ("APP_ENV", "production"),
        jwt,
        ("INTERNAL_KEY", "a-long-internal-key"),
    ];
    // Each server variable is required, named when missing.
    let servers = [
        ("DATABASE_URL", "postgres://smap@db/smap"),
        ("AMQP_URL", "amqp://mq/%2f"),
        ("REDIS_HOST", "redis"),
        ("SMTP_HOST", "mail"),
    ];
    for (i, (var, _)) in servers.iter().enumerate() {
        let mut vars = secrets.to_vec();
        vars.extend(
            servers
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, v)| *v),
        );
        let err = settings(&vars).unwrap().require_servers().unwrap_err();
        assert_eq!(err.var, *var);
        assert!(err.to_string().contains("APP_ENV=production"), "{err}");
    }
    let mut vars = secrets.to_vec();
    vars.extend(servers);
    let s = settings(&vars).unwrap();
    assert!(s.require_servers().is_ok());
    // Development keeps its in-memory adapters.
    assert!(settings(&[]).unwrap().require_servers().is_ok());
    assert_eq!(s.log_format, LogFormat::Json);
    assert!(s.cors_allowed_origins.is_empty(), "no origin unless listed");
    assert_eq!(s.http_host.to_string(), "0.0.0.0");
    assert!(!s.uses_dev_secrets());
}

const SENTINELS: (&str, &str) = (
    "REDIS_SENTINELS",
    " 10.0.0.1:26379, sentinel-b:26380 ,[::1]:26381,",
);
