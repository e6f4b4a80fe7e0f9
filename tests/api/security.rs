//! Security checks at the HTTP edge: forged and stale tokens, cookie flags
//! in production, internal-key handling, CORS, undocumented methods, and
//! what the service never shows (passwords, hashes, personal data in
//! subscription events).

use base64::Engine;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use smap_identity::app::{
    auth::{AUDIENCE, ISSUER, Role, Session, TokenService},
    config::AppEnv,
};

use crate::helpers::{
    SUBSCRIPTIONS_QUEUE, json as json_of, production_base, spawn_app, spawn_app_with_settings,
};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWT with these claims, signed HS256 with `secret` (or unsigned).
fn token(header: &str, claims: &Value, secret: Option<&[u8]>) -> String {
    use hmac::Mac;
    let head = format!(
        "{}.{}",
        b64(header.as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    match secret {
        None => format!("{head}."),
        Some(key) => {
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
            mac.update(head.as_bytes());
            format!("{head}.{}", b64(&mac.finalize().into_bytes()))
        }
    }
}

async fn me_status(app: &crate::helpers::TestApp, token: &str) -> (u16, Value) {
    json_of(
        app.client
            .get(format!("{}/users/me", app.address))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn forged_unsigned_expired_and_foreign_tokens_get_401() {
    let app = spawn_app().await;
    let real = app.signed_up("victim@example.com").await;
    let (status, me) = me_status(&app, &real).await;
    assert_eq!(status, 200);
    let sub = me["data"]["id"].as_str().unwrap().to_owned();
    let now = chrono::Utc::now().timestamp();
    let secret = smap_identity::app::config::Settings::for_tests().jwt_secret;
    // The real session: forged tokens name it, so only the forgery is wrong.
    let jti = TokenService::new(secret.expose_secret().as_bytes())
        .verify(&real)
        .unwrap()
        .jti;
    let claims = |aud: &str, exp: i64| json!({"sub": sub, "jti": jti, "role": "admin", "iss": ISSUER, "aud": aud, "iat": now, "exp": exp});
    let hs256 = r#"{"alg":"HS256","typ":"JWT"}"#;
    let right_key = secret.expose_secret().as_bytes();
    // The control: these claims with the right key are accepted.
    let (status, _) = me_status(
        &app,
        &token(hs256, &claims(AUDIENCE, now + 600), Some(right_key)),
    )
    .await;
    assert_eq!(status, 200, "the forging helper makes valid tokens");

    let cases = [
        (
            "wrong signature",
            token(
                hs256,
                &claims(AUDIENCE, now + 600),
                Some(b"another-secret-another-secret-0123"),
            ),
        ),
        (
            "alg none",
            token(
                r#"{"alg":"none","typ":"JWT"}"#,
                &claims(AUDIENCE, now + 600),
                None,
            ),
        ),
        (
            "expired",
            token(hs256, &claims(AUDIENCE, now - 3600), Some(right_key)),
        ),
        (
            "wrong audience",
            token(
                hs256,
                &claims("another-service", now + 600),
                Some(right_key),
            ),
        ),
        ("garbage", "not.a.jwt".to_owned()),
        (
            "a session that does not exist",
            token(
                hs256,
                &json!({"sub": sub, "jti": uuid::Uuid::new_v4(), "role": "user", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}),
                Some(right_key),
            ),
        ),
        (
            "no session named",
            token(
                hs256,
                &json!({"sub": sub, "role": "user", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}),
                Some(right_key),
            ),
        ),
        (
            "another user's session",
            token(
                hs256,
                &json!({"sub": uuid::Uuid::new_v4(), "jti": jti, "role": "user", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}),
                Some(right_key),
            ),
        ),
    ];
    for (case, forged) in cases {
        let (status, body) = me_status(&app, &forged).await;
        assert_eq!(status, 401, "{case}: {body}");
        assert_eq!(body["error_code"], 40100, "{case}: the SMAP envelope");
        // The same token as the cookie is refused too.
        let cookie = app
            .client
            .get(format!("{}/users/me", app.address))
            .header("Cookie", format!("smap_auth_token={forged}"))
            .send()
            .await
            .unwrap();
        assert_eq!(cookie.status().as_u16(), 401, "{case} as a cookie");
    }
    // A token for a user who is not an admin cannot reach admin routes even
    // when it claims the role: the store decides.
    let session = Session {
        id: jti,
        user_id: sub.parse().unwrap(),
        created_at: chrono::Utc::now(),
        expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
    };
    let self_made = TokenService::new(right_key)
        .issue(&session, Role::Admin)
        .unwrap();
    let users = app
        .client
        .get(format!("{}/users", app.address))
        .bearer_auth(&self_made)
        .send()
        .await
        .unwrap();
    assert_eq!(users.status().as_u16(), 403);
}

#[tokio::test]
async fn in_production_the_auth_cookie_is_secure_http_only_and_same_site() {
    let app = spawn_app_with_settings(|s| s.app_env = AppEnv::Production).await;
    app.signed_up("cookie@example.com").await;
    let login = app
        .post_json(
            "/authentication/login",
            &json!({"email": "cookie@example.com", "password": "correct horse battery"}),
        )
        .await;
    let cookie = login
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    for flag in [
        "smap_auth_token=",
        "HttpOnly",
        "SameSite=Lax",
        "Secure",
        "Path=/",
    ] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
}

#[tokio::test]
async fn internal_routes_want_the_key_401_without_403_wrong_and_no_timing_shortcut() {
    let app = spawn_app().await;
    let url = format!("{}/internal/projects/sec-1/progress", app.address);
    let missing = app.client.post(&url).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 401);
    for wrong in [
        "",
        "x",
        "test-internal-ke",
        "test-internal-keyy",
        "TEST-INTERNAL-KEY",
    ] {
        let response = app
            .client
            .post(&url)
            .header("X-Internal-Key", wrong)
            .send()
            .await
            .unwrap();
        let expected = if wrong.is_empty() {
            [401, 403]
        } else {
            [403, 403]
        };
        assert!(
            expected.contains(&response.status().as_u16()),
            "`{wrong}`: {}",
            response.status()
        );
    }
    // A user's token is no internal key.
    let token = app.signed_up("not-internal@example.com").await;
    let as_user = app
        .client
        .post(&url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(as_user.status().as_u16(), 401);
}

#[tokio::test]
async fn cors_answers_only_configured_origins() {
    let app = spawn_app_with_settings(|s| {
        s.app_env = AppEnv::Production;
        s.cors_allowed_origins = vec!["https://app.smap.dev".into()];
    })
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/authentication/login", app.address),
            )
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "content-type")
            .send()
    };
    let allowed = preflight("https://app.smap.dev").await.unwrap();
    let headers = allowed.headers();
    assert_eq!(
        headers["access-control-allow-origin"], "https://app.smap.dev",
        "{headers:?}"
    );
    assert_eq!(headers["access-control-allow-credentials"], "true");
    let other = preflight("https://evil.example").await.unwrap();
    assert!(
        other.headers().get("access-control-allow-origin").is_none(),
        "{:?}",
        other.headers()
    );
    // A simple request from elsewhere is answered, without CORS headers:
    // the browser withholds it.
    let get = app
        .client
        .get(format!("{}/plans", app.address))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status().as_u16(), 200);
    assert!(get.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn undocumented_methods_get_405_with_allow_and_unknown_paths_404() {
    let app = spawn_app().await;
    let trace = app
        .client
        .request(
            reqwest::Method::PATCH,
            format!("{}/authentication/login", app.address),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(trace.status().as_u16(), 405);
    assert_eq!(trace.headers()["allow"], "POST");
    let (_, body) = json_of(trace).await;
    assert_eq!(body["error_code"], 40500);
    let plans = app
        .client
        .delete(format!("{}/plans", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(plans.status().as_u16(), 405);
    assert_eq!(plans.headers()["allow"], "GET, POST");
    let nowhere = app
        .client
        .get(format!("{}/nowhere", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(nowhere.status().as_u16(), 404);
}

#[tokio::test]
async fn passwords_and_hashes_never_come_back_and_subscription_events_carry_no_personal_data() {
    let app = spawn_app().await;
    let password = "correct horse battery";
    let registered = app
        .post_json(
            "/authentication/register",
            &json!({"email": "private@example.com", "password": password, "full_name": "Private Person"}),
        )
        .await
        .text()
        .await
        .unwrap();
    let token = {
        let otp = app.otp_for("private@example.com").await;
        app.post_json(
            "/authentication/verify-otp",
            &json!({"email": "private@example.com", "otp": otp}),
        )
        .await;
        let (_, login) = json_of(
            app.post_json(
                "/authentication/login",
                &json!({"email": "private@example.com", "password": password}),
            )
            .await,
        )
        .await;
        login["data"]["token"].as_str().unwrap().to_owned()
    };
    let me = app
        .client
        .get(format!("{}/users/me", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for answer in [&registered, &me] {
        assert!(!answer.contains(password), "{answer}");
        assert!(!answer.contains("argon2"), "no hash: {answer}");
        assert!(!answer.to_lowercase().contains("password"), "{answer}");
    }
    let event = app
        .broker
        .try_take(SUBSCRIPTIONS_QUEUE)
        .unwrap()
        .expect("subscription.created");
    let body = String::from_utf8_lossy(&event.body);
    for personal in ["private@example.com", "Private Person", "@"] {
        assert!(!body.contains(personal), "{personal} in {body}");
    }
}

/// Secrets of this run's own, unlike anything in the repository.
fn fresh_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_start_up_refuses_every_published_secret_naming_the_variable() {
    use smap_identity::app::config::PUBLISHED_SECRETS;
    let (jwt, key, password) = (fresh_secret(), fresh_secret(), fresh_secret());
    let database_url = format!("postgres://smap:{password}@127.0.0.1:1/smap");
    let amqp_url = format!("amqp://smap:{password}@127.0.0.1:1/%2f");
    // Every secret variable set; the URLs point nowhere, as start-up must
    // stop at the configuration, before connecting.
    let mut base = production_base(&jwt, &key);
    base.extend([
        ("REDIS_PASSWORD", password.as_str()),
        ("SMTP_PASSWORD", password.as_str()),
        ("DATABASE_URL", database_url.as_str()),
        ("AMQP_URL", amqp_url.as_str()),
    ]);
    let mut refused = 0;
    for secret in PUBLISHED_SECRETS {
        let cases = [
            ("JWT_SECRET", secret.to_owned()),
            ("INTERNAL_KEY", secret.to_owned()),
            ("REDIS_PASSWORD", secret.to_owned()),
            ("SMTP_PASSWORD", secret.to_owned()),
            (
                "DATABASE_URL",
                format!("postgres://smap:{secret}@127.0.0.1:1/smap"),
            ),
            ("AMQP_URL", format!("amqp://guest:{secret}@127.0.0.1:1/%2f")),
        ];
        for (var, value) in cases {
            let mut env: Vec<(&str, &str)> =
                base.iter().copied().filter(|(k, _)| *k != var).collect();
            env.push((var, &value));
            let (code, output) = crate::process::exit_of(&env).await;
            assert_eq!(code, Some(2), "{var}={value}: {output}");
            assert!(
                output.contains(&format!("invalid configuration: {var} ")),
                "{var}={value}: {output}"
            );
            refused += 1;
        }
    }
    eprintln!("published secrets refused at start-up: {refused} (variable x value)");
    assert_eq!(refused, PUBLISHED_SECRETS.len() * 6);
    // The control: the same variables with this run's own values are a
    // valid production configuration (the process itself would go on to
    // connect to port 1).
    let settings = smap_identity::app::config::Settings::from_lookup(|var| {
        base.iter()
            .find(|(k, _)| *k == var)
            .map(|(_, v)| (*v).to_owned())
    });
    assert_eq!(settings.map(|s| s.app_env), Ok(AppEnv::Production));
}

#[tokio::test]
async fn cors_preflight_allows_the_lang_header_from_an_allowed_origin() {
    let app = spawn_app_with_settings(|s| {
        s.app_env = AppEnv::Production;
        s.cors_allowed_origins = vec!["https://app.smap.dev".into()];
    })
    .await;
    let preflight = |headers: &'static str| {
        app.client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/authentication/register", app.address),
            )
            .header("Origin", "https://app.smap.dev")
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", headers)
            .send()
    };
    let allowed = preflight("content-type,lang").await.unwrap();
    assert_eq!(allowed.status().as_u16(), 200, "{:?}", allowed.headers());
    let headers = allowed.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.smap.dev"
    );
    let allow_headers = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for header in ["lang", "content-type"] {
        assert!(
            allow_headers.split(',').any(|h| h.trim() == header),
            "{header} not in {allow_headers}"
        );
    }
    // The control: a header the API does not take is refused, so the
    // check above is not vacuous.
    let other = preflight("content-type,x-made-up").await.unwrap();
    assert!(
        other.status().is_client_error()
            || other.headers().get("access-control-allow-origin").is_none(),
        "{:?}",
        other.headers()
    );
}

/// Production with every secret but no server: the process stops at once,
/// naming the first missing server variable, instead of running on
/// in-memory adapters that lose data and send no e-mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_refuses_to_start_on_in_memory_adapters() {
    let (jwt, key) = (fresh_secret(), fresh_secret());
    let mut env = production_base(&jwt, &key);
    env.push(("AMQP_URL", "amqp://127.0.0.1:1/%2f"));

    let (code, output) = crate::process::exit_of(&env).await;

    assert_eq!(code, Some(2), "{output}");
    assert!(
        output.contains("invalid configuration: DATABASE_URL is required with APP_ENV=production"),
        "{output}"
    );
}
