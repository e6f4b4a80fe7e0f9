//! Production refuses every published secret, in every secret variable,
//! naming the variable and never printing the value.

use super::*;

/// Production with secrets of its own and every secret variable set.
const PRODUCTION: [(&str, &str); 9] = [
    ("APP_ENV", "production"),
    ("JWT_SECRET", "9f2c4e6a8b0d1f3e5a7c9e1b3d5f7a9c"),
    ("INTERNAL_KEY", "4b8d2f6a0c4e8a2c6e0b"),
    ("REDIS_HOST", "redis"),
    ("REDIS_PASSWORD", "7e1a5c9e3b7d1f5a"),
    ("SMTP_HOST", "mail"),
    ("SMTP_PASSWORD", "3c7e1b5d9f3a7c1e"),
    ("DATABASE_URL", "postgres://smap:5d9f3a7c1e5b@db/smap"),
    ("AMQP_URL", "amqp://smap:1e5b9d3f7a1c@mq/%2f"),
];

fn production_with(var: &str, value: &str) -> Result<Settings, ConfigError> {
    let mut vars = PRODUCTION.to_vec();
    vars.retain(|(k, _)| *k != var);
    vars.push((var, value));
    settings(&vars)
}

#[test]
fn production_refuses_every_published_secret_naming_the_variable() {
    // The control: the same settings with values of their own start.
    assert!(settings(&PRODUCTION).is_ok());
    let mut refused = 0;
    for secret in PUBLISHED_SECRETS {
        let cases = [
            ("JWT_SECRET", secret.to_owned()),
            ("INTERNAL_KEY", secret.to_owned()),
            ("REDIS_PASSWORD", secret.to_owned()),
            ("SMTP_PASSWORD", format!(" {secret} ")),
            ("DATABASE_URL", format!("postgres://smap:{secret}@db/smap")),
            ("AMQP_URL", format!("amqp://smap:{secret}@mq:5672/%2f")),
            // The second node of a cluster list too.
            (
                "AMQP_URL",
                format!(
                    "amqp://smap:0f3a9c7e5b1d@mq-0:5672/%2f,amqp://smap:{secret}@mq-1:5672/%2f"
                ),
            ),
        ];
        for (var, value) in cases {
            let err = production_with(var, &value).unwrap_err();
            assert_eq!(err.var, var, "{var}={value}: {err}");
            // Short values may fail the length rule first; the error
            // never repeats the value.
            assert!(!err.to_string().contains(secret), "{err}");
            refused += 1;
        }
        // Development keeps accepting them: `cargo run` and the tests.
        let dev = [("INTERNAL_KEY", secret), ("REDIS_HOST", "r")];
        assert!(settings(&dev).is_ok(), "{secret}");
    }
    assert_eq!(refused, PUBLISHED_SECRETS.len() * 7);
    let compose =
        production_with("JWT_SECRET", "compose-only-jwt-secret-change-me-0123456789").unwrap_err();
    assert!(compose.problem.contains("published"), "{compose}");
}

#[test]
fn url_passwords_are_read_from_the_userinfo() {
    assert_eq!(
        url_password("amqp://guest:guest@mq:5672/%2f"),
        Some("guest")
    );
    assert_eq!(url_password("postgres://u:p@ss@db/x?a=b@c"), Some("p@ss"));
    assert_eq!(url_password("postgres://postgres@127.0.0.1:5442/x"), None);
    assert_eq!(url_password("postgres://db:5432/x"), None);
}

#[test]
fn production_refuses_a_published_sentinel_password() {
    let mut vars: Vec<(&str, &str)> = PRODUCTION
        .iter()
        .copied()
        .filter(|(k, _)| *k != "REDIS_HOST")
        .collect();
    vars.extend([SENTINELS, ("REDIS_SENTINEL_MASTER", "smap")]);
    vars.push(("REDIS_SENTINEL_PASSWORD", "2d6f0b4e8c2a"));
    assert!(settings(&vars).is_ok());
    for secret in PUBLISHED_SECRETS {
        vars.pop();
        vars.push(("REDIS_SENTINEL_PASSWORD", secret));
        let err = settings(&vars).unwrap_err();
        assert_eq!(err.var, "REDIS_SENTINEL_PASSWORD", "{err}");
        assert!(!err.to_string().contains(secret), "{err}");
    }
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let s = settings(&[("JWT_SECRET", "super-secret-value-0123456789abcdef")]).unwrap();
    assert!(!format!("{s:?}").contains("super-secret"));
}
