//! Registration, OTP verification, login and the current user, on
//! in-memory adapters; the events they publish are read from the bus.

use chrono::Duration;
use serde_json::json;
use smap_identity::domain::{billing::SubscriptionStatus, events::EventData};

use crate::helpers::{EMAILS_QUEUE, SUBSCRIPTIONS_QUEUE, json, spawn_app};

const PASSWORD: &str = "correct horse battery";

#[tokio::test]
async fn registering_stores_an_unverified_user_and_queues_a_verification_email() {
    let app = spawn_app().await;

    let (status, body) = json(
        app.post_json(
            "/authentication/register",
            &json!({"email": "ann@example.com", "password": PASSWORD, "full_name": "Ann Lee", "locale": "vi"}),
        )
        .await,
    )
    .await;

    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["status"], "unverified");
    assert_eq!(body["data"]["locale"], "vi");
    let events = app.drain(EMAILS_QUEUE).await;
    assert_eq!(events.len(), 1);
    let EventData::EmailVerificationRequested(p) = &events[0].data else {
        panic!("wrong event")
    };
    assert_eq!(p.recipient.as_str(), "ann@example.com");
    assert_eq!(p.user_id.to_string(), body["data"]["id"].as_str().unwrap());
    assert_eq!(
        p.expires_at.as_datetime() - events[0].timestamp.as_datetime(),
        Duration::minutes(10)
    );
}

#[tokio::test]
async fn the_locale_comes_from_the_body_then_the_lang_header_then_english() {
    let app = spawn_app().await;
    let register = |n: usize, lang: Option<&'static str>, body_locale: Option<&'static str>| {
        let mut body = json!({"email": format!("lang{n}@example.com"), "password": PASSWORD});
        if let Some(locale) = body_locale {
            body["locale"] = json!(locale);
        }
        let mut request = app
            .client
            .post(app.url("/authentication/register"))
            .json(&body);
        if let Some(lang) = lang {
            request = request.header("lang", lang);
        }
        async move { json(request.send().await.unwrap()).await }
    };
    // The header is a hint: a region or a list is fine, an unsupported
    // language or garbage means English.
    for (n, (lang, expected)) in [
        (Some("vi"), "vi"),
        (Some("vi-VN"), "vi"),
        (Some("vi-VN,vi;q=0.9,en-US;q=0.8"), "vi"),
        (Some("en-US"), "en"),
        (Some("fr"), "en"),
        (Some("de-DE"), "en"),
        (Some("fr-FR, vi;q=0.5"), "vi"),
        (Some("%%garbage%%"), "en"),
        (None, "en"),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, body) = register(n, lang, None).await;
        assert_eq!(status, 201, "lang {lang:?}: {body}");
        assert_eq!(body["data"]["locale"], expected, "lang {lang:?}");
    }
    // The body's locale wins over the header, and stays strict.
    let (status, body) = register(100, Some("en-US"), Some("vi")).await;
    assert_eq!((status, body["data"]["locale"].as_str()), (201, Some("vi")));
    for bad in ["fr", "vi-VN", ""] {
        let (status, body) = register(101, Some("vi"), Some(bad)).await;
        assert_eq!(status, 400, "locale {bad:?}: {body}");
        assert_eq!(body["errors"][0]["field"], "locale", "{body}");
    }
}

#[tokio::test]
async fn verifying_the_otp_activates_the_account_and_starts_a_14_day_trial() {
    let app = spawn_app().await;
    app.register("bob@example.com", PASSWORD).await;
    let otp = app.otp_for("bob@example.com").await;

    let (status, body) = json(
        app.post_json(
            "/authentication/verify-otp",
            &json!({"email": "bob@example.com", "otp": otp}),
        )
        .await,
    )
    .await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "active");
    let events = app.drain(SUBSCRIPTIONS_QUEUE).await;
    assert_eq!(events.len(), 1);
    let EventData::SubscriptionCreated(p) = &events[0].data else {
        panic!("wrong event")
    };
    assert_eq!(p.status, SubscriptionStatus::Trialing);
    assert_eq!(p.plan_code.as_str(), "free");
    assert_eq!(
        events[0].idempotency_key,
        Some(p.subscription_id.to_string())
    );
    let trial = p.trial_end.unwrap().as_datetime() - p.trial_start.unwrap().as_datetime();
    assert_eq!(trial, Duration::days(14));
    let payload = serde_json::to_string(&events[0].data).unwrap();
    assert!(
        !payload.contains("bob@"),
        "subscription events carry no e-mail: {payload}"
    );
}

#[tokio::test]
async fn login_sets_an_http_only_cookie_and_me_returns_the_user() {
    let app = spawn_app().await;
    app.signed_up("cat@example.com").await;

    let response = app
        .post_json(
            "/authentication/login",
            &json!({"email": "cat@example.com", "password": PASSWORD}),
        )
        .await;
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let (status, body) = json(response).await;
    let token = body["data"]["token"].as_str().unwrap();
    let me = app
        .client
        .get(app.url("/authentication/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let (me_status, me) = json(me).await;
    let via_cookie = app
        .client
        .get(app.url("/users/me"))
        .header("Cookie", format!("smap_auth_token={token}"))
        .send()
        .await
        .unwrap();

    assert_eq!(status, 200);
    assert!(cookie.starts_with("smap_auth_token="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "Secure only in production: {cookie}"
    );
    assert_eq!(me_status, 200);
    assert_eq!(me["data"]["email"], "cat@example.com");
    assert_eq!(via_cookie.status().as_u16(), 200);
}

#[tokio::test]
async fn logout_clears_the_cookie() {
    let app = spawn_app().await;
    let token = app.signed_up("dan@example.com").await;

    let response = app
        .client
        .post(app.url("/authentication/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 200);
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("smap_auth_token=;") && cookie.contains("Max-Age=0"),
        "{cookie}"
    );
}

#[tokio::test]
async fn an_unverified_account_cannot_log_in() {
    let app = spawn_app().await;
    app.register("eve@example.com", PASSWORD).await;

    let (status, body) = json(
        app.post_json(
            "/authentication/login",
            &json!({"email": "eve@example.com", "password": PASSWORD}),
        )
        .await,
    )
    .await;

    assert_eq!(status, 403, "{body}");
    assert!(body["message"].as_str().unwrap().contains("not verified"));
}

#[tokio::test]
async fn a_duplicate_email_is_a_conflict_whatever_its_case() {
    let app = spawn_app().await;
    app.register("fay@example.com", PASSWORD).await;

    let (status, body) = json(app.register("FAY@example.com", PASSWORD).await).await;

    assert_eq!(status, 409);
    assert_eq!(body["errors"][0]["field"], "email");
}

#[tokio::test]
async fn two_registrations_of_one_email_at_once_leave_one_user() {
    let app = spawn_app().await;

    let (a, b) = tokio::join!(
        app.register("gus@example.com", PASSWORD),
        app.register("gus@example.com", PASSWORD)
    );

    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409]);
}

#[tokio::test]
async fn a_wrong_otp_counts_and_the_sixth_attempt_is_refused() {
    let app = spawn_app().await;
    app.register("hal@example.com", PASSWORD).await;
    let otp = app.otp_for("hal@example.com").await;
    let wrong = if otp == "000000" { "111111" } else { "000000" };

    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = app
            .post_json(
                "/authentication/verify-otp",
                &json!({"email": "hal@example.com", "otp": wrong}),
            )
            .await;
        statuses.push(r.status().as_u16());
    }
    let sixth = app
        .post_json(
            "/authentication/verify-otp",
            &json!({"email": "hal@example.com", "otp": otp}),
        )
        .await;

    assert_eq!(statuses, [400, 400, 400, 400, 429]);
    assert_eq!(
        sixth.status().as_u16(),
        429,
        "even the right code is refused after 5 wrong ones"
    );
}

#[tokio::test]
async fn an_expired_otp_asks_for_a_new_one_and_send_otp_delivers_it() {
    let app = spawn_app().await;
    app.register("ida@example.com", PASSWORD).await;
    let old = app.otp_for("ida@example.com").await;
    app.clock.advance(Duration::minutes(11));

    let (status, body) = json(
        app.post_json(
            "/authentication/verify-otp",
            &json!({"email": "ida@example.com", "otp": old}),
        )
        .await,
    )
    .await;
    let resent = app
        .post_json(
            "/authentication/send-otp",
            &json!({"email": "ida@example.com", "password": PASSWORD}),
        )
        .await;
    let new = app.otp_for("ida@example.com").await;
    let verified = app
        .post_json(
            "/authentication/verify-otp",
            &json!({"email": "ida@example.com", "otp": new}),
        )
        .await;

    assert_eq!(status, 400);
    assert_eq!(body["message"], "OTP expired, please request a new one");
    assert_eq!(resent.status().as_u16(), 200);
    assert_eq!(verified.status().as_u16(), 200);
}

#[tokio::test]
async fn send_otp_has_a_cool_down_and_resends_the_unexpired_code() {
    let app = spawn_app().await;
    app.register("jo@example.com", PASSWORD).await;
    let first = app.otp_for("jo@example.com").await;
    let creds = json!({"email": "jo@example.com", "password": PASSWORD});

    let (too_soon, body) = json(app.post_json("/authentication/send-otp", &creds).await).await;
    app.clock.advance(Duration::seconds(61));
    let later = app.post_json("/authentication/send-otp", &creds).await;
    let again = app.otp_for("jo@example.com").await;

    assert_eq!(too_soon, 429);
    assert!(body["data"]["retry_after_secs"].as_i64().unwrap() > 0);
    assert_eq!(later.status().as_u16(), 200);
    assert_eq!(again, first, "the unexpired code is sent again");
}

#[tokio::test]
async fn repeated_failed_logins_are_throttled() {
    let app = spawn_app().await;
    app.signed_up("kim@example.com").await;
    let wrong = json!({"email": "kim@example.com", "password": "not the password"});

    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            app.post_json("/authentication/login", &wrong)
                .await
                .status()
                .as_u16(),
        );
    }
    let right = app
        .post_json(
            "/authentication/login",
            &json!({"email": "kim@example.com", "password": PASSWORD}),
        )
        .await;
    app.clock.advance(Duration::minutes(6));
    let after = app
        .post_json(
            "/authentication/login",
            &json!({"email": "kim@example.com", "password": PASSWORD}),
        )
        .await;

    assert_eq!(statuses, [401, 401, 401, 401, 401, 429]);
    assert_eq!(right.status().as_u16(), 429);
    assert_eq!(after.status().as_u16(), 200);
}

#[tokio::test]
async fn bad_registration_input_names_the_field() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"email": "not-an-email", "password": PASSWORD}),
            "email",
        ),
        (
            json!({"email": "a@example.com", "password": "short"}),
            "password",
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "locale": "fr"}),
            "locale",
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "full_name": "  "}),
            "full_name",
        ),
        (json!({"password": PASSWORD}), "email"),
        (json!({"email": 42, "password": PASSWORD}), "email"),
    ];
    for (body, field) in cases {
        let (status, answer) = json(app.post_json("/authentication/register", &body).await).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["errors"][0]["field"], field, "{body}: {answer}");
    }
}

#[tokio::test]
async fn profile_updates_and_password_changes() {
    let app = spawn_app().await;
    let token = app.signed_up("lea@example.com").await;

    let updated = app
        .client
        .put(app.url("/users/me"))
        .bearer_auth(&token)
        .json(&json!({"full_name": "Lea N.", "locale": "vi"}))
        .send()
        .await
        .unwrap();
    let (_, updated) = json(updated).await;
    let wrong = app
        .client
        .post(app.url("/users/me/change-password"))
        .bearer_auth(&token)
        .json(&json!({"current_password": "not the password", "new_password": "a brand new one"}))
        .send()
        .await
        .unwrap();
    let changed = app
        .client
        .post(app.url("/users/me/change-password"))
        .bearer_auth(&token)
        .json(&json!({"current_password": PASSWORD, "new_password": "a brand new one"}))
        .send()
        .await
        .unwrap();
    let new_login = app
        .post_json(
            "/authentication/login",
            &json!({"email": "lea@example.com", "password": "a brand new one"}),
        )
        .await;

    assert_eq!(updated["data"]["full_name"], "Lea N.");
    assert_eq!(updated["data"]["locale"], "vi");
    assert_eq!(wrong.status().as_u16(), 400);
    assert_eq!(changed.status().as_u16(), 200);
    assert_eq!(new_login.status().as_u16(), 200);
}

#[tokio::test]
async fn user_routes_need_a_token_and_admin_routes_an_admin() {
    let app = spawn_app().await;
    let token = app.signed_up("max@example.com").await;

    let anonymous = app.client.get(app.url("/users/me")).send().await.unwrap();
    let as_user = app
        .client
        .get(app.url("/users"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    app.make_admin("max@example.com").await;
    let as_admin = app
        .client
        .get(app.url("/users?limit=10"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (_, listed) = json(as_admin).await;
    let id = listed["data"]["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let one = app
        .client
        .get(app.url(&format!("/users/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let bad_id = app
        .client
        .get(app.url("/users/not-a-uuid"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let bad_limit = app
        .client
        .get(app.url("/users?limit=0"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    // Found by schemathesis: an offset past a SQL bigint was accepted.
    let (huge_offset, huge_body) = json(
        app.client
            .get(app.url("/users?offset=9223372036854775808"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;

    assert_eq!(anonymous.status().as_u16(), 401);
    assert_eq!(as_user.status().as_u16(), 403);
    assert_eq!(listed["data"]["total"], 1);
    assert_eq!(one.status().as_u16(), 200);
    assert_eq!(bad_id.status().as_u16(), 400);
    assert_eq!(bad_limit.status().as_u16(), 400);
    assert_eq!(huge_offset, 400, "{huge_body}");
    assert_eq!(huge_body["errors"][0]["field"], "offset");
}

mod rollback {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };

    use smap_identity::app::config::EventDelivery;

    use super::*;
    use crate::helpers::{Switchable, spawn_app_configured, spawn_app_with};

    #[tokio::test]
    async fn with_direct_delivery_when_the_event_cannot_be_published_registration_is_rolled_back_with_503_and_can_be_retried()
     {
        let down = Arc::new(AtomicBool::new(true));
        let switch = down.clone();
        let app = spawn_app_configured(
            |settings| settings.event_delivery = EventDelivery::Direct,
            move |adapters| {
                adapters.publisher = Arc::new(Switchable {
                    inner: adapters.publisher.clone(),
                    down: switch,
                });
            },
        )
        .await;

        let (status, body) = json(app.register("rob@example.com", PASSWORD).await).await;
        let login = app
            .post_json(
                "/authentication/send-otp",
                &json!({"email": "rob@example.com", "password": PASSWORD}),
            )
            .await;
        down.store(false, Ordering::SeqCst);
        let (retry, _) = json(app.register("rob@example.com", PASSWORD).await).await;

        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error_code"], 50300);
        assert_eq!(login.status().as_u16(), 401, "no user remained");
        assert_eq!(retry, 201);
        assert_eq!(app.otp_for("rob@example.com").await.len(), 6);
    }

    #[tokio::test]
    async fn with_the_outbox_a_registration_while_the_bus_is_down_answers_201_and_its_email_follows()
     {
        let down = Arc::new(AtomicBool::new(true));
        let switch = down.clone();
        let app = spawn_app_with(move |adapters| {
            adapters.publisher = Arc::new(Switchable {
                inner: adapters.publisher.clone(),
                down: switch,
            });
        })
        .await;

        let (status, body) = json(app.register("ola@example.com", PASSWORD).await).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let while_down = app.drain_now(crate::helpers::EMAILS_QUEUE);
        down.store(false, Ordering::SeqCst);
        let otp = app.otp_for("ola@example.com").await;

        assert_eq!(status, 201, "{body}");
        assert!(
            while_down.is_empty(),
            "nothing reached the bus while it was down"
        );
        assert_eq!(otp.len(), 6, "the e-mail followed once the bus was back");
    }
}
