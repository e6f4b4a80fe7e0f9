//! Plans and subscriptions over HTTP, with the events each change publishes.

use chrono::Duration;
use serde_json::{Value, json};
use smap_identity::domain::{billing::SubscriptionStatus, events::EventData};

use crate::helpers::{SUBSCRIPTIONS_QUEUE, TestApp, json, spawn_app};

async fn admin(app: &TestApp) -> String {
    let token = app.signed_up("admin@example.com").await;
    app.make_admin("admin@example.com").await;
    app.drain(SUBSCRIPTIONS_QUEUE).await;
    token
}

async fn create_plan(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    json(
        app.client
            .post(app.url("/plans"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn pro() -> Value {
    json!({"code": "pro", "name": "Pro", "price": 1900, "currency": "USD", "billing_cycle": "monthly"})
}

async fn my_subscription(app: &TestApp, token: &str) -> Value {
    let (_, body) = json(
        app.client
            .get(app.url("/subscriptions/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    body["data"].clone()
}

#[tokio::test]
async fn admins_manage_plans_and_anyone_reads_them() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let user = app.signed_up("u@example.com").await;

    let (forbidden, _) = create_plan(&app, &user, pro()).await;
    let (created, plan) = create_plan(&app, &admin, pro()).await;
    let (again, _) = create_plan(&app, &admin, pro()).await;
    let id = plan["data"]["id"].as_str().unwrap().to_owned();
    let (_, listed) = json(app.client.get(app.url("/plans")).send().await.unwrap()).await;
    let (_, one) = json(
        app.client
            .get(app.url(&format!("/plans/{id}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let updated = app
        .client
        .put(app.url(&format!("/plans/{id}")))
        .bearer_auth(&admin)
        .json(&json!({"price": 2900}))
        .send()
        .await
        .unwrap();
    let (_, updated) = json(updated).await;
    let deleted = app
        .client
        .delete(app.url(&format!("/plans/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let gone = app
        .client
        .get(app.url(&format!("/plans/{id}")))
        .send()
        .await
        .unwrap();

    assert_eq!((forbidden, created, again), (403, 201, 409));
    let codes: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["free", "pro"]);
    assert_eq!(one["data"]["billing_cycle"], "monthly");
    assert_eq!(updated["data"]["price"], 2900);
    assert_eq!(deleted.status().as_u16(), 200);
    assert_eq!(gone.status().as_u16(), 404);
}

#[tokio::test]
async fn plan_input_is_checked_field_by_field() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let cases = [
        (
            json!({"code": "Pro!", "name": "P", "price": 1, "billing_cycle": "monthly"}),
            "code",
        ),
        (
            json!({"code": "p", "name": "", "price": 1, "billing_cycle": "monthly"}),
            "name",
        ),
        (
            json!({"code": "p", "name": "P", "price": -1, "billing_cycle": "monthly"}),
            "price",
        ),
        (
            json!({"code": "p", "name": "P", "price": 1, "currency": "usd", "billing_cycle": "monthly"}),
            "currency",
        ),
        (
            json!({"code": "p", "name": "P", "price": 1, "billing_cycle": "weekly"}),
            "billing_cycle",
        ),
        (
            json!({"code": "p", "name": "P", "price": 1}),
            "billing_cycle",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = create_plan(&app, &admin, body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["errors"][0]["field"], field, "{body}: {answer}");
    }
    let (status, _) = json(
        app.client
            .get(app.url("/plans/not-a-uuid"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_plan_in_use_cannot_be_deleted() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let (_, plans) = json(app.client.get(app.url("/plans")).send().await.unwrap()).await;
    let free = plans["data"][0]["id"].as_str().unwrap().to_owned();

    let deleted = app
        .client
        .delete(app.url(&format!("/plans/{free}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();

    assert_eq!(deleted.status().as_u16(), 409);
}

#[tokio::test]
async fn the_owner_cancels_with_a_reason_and_the_event_says_so() {
    let app = spawn_app().await;
    let token = app.signed_up("own@example.com").await;
    app.drain(SUBSCRIPTIONS_QUEUE).await;
    let sub = my_subscription(&app, &token).await;
    let id = sub["id"].as_str().unwrap();

    let response = app
        .client
        .post(app.url(&format!("/subscriptions/{id}/cancel")))
        .bearer_auth(&token)
        .json(&json!({"reason": "too expensive"}))
        .send()
        .await
        .unwrap();
    let twice = app
        .client
        .post(app.url(&format!("/subscriptions/{id}/cancel")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(twice.status().as_u16(), 409);
    let events = app.drain(SUBSCRIPTIONS_QUEUE).await;
    assert_eq!(events.len(), 1);
    let EventData::SubscriptionCancelled(p) = &events[0].data else {
        panic!("wrong event")
    };
    assert_eq!(p.cancellation_reason.as_str(), "too expensive");
    assert_eq!(p.previous_status, SubscriptionStatus::Trialing);
    assert_eq!(p.admin_user_id, None);
    assert_eq!(
        p.effective_until.to_string(),
        sub["trial_end"].as_str().unwrap()
    );
}

#[tokio::test]
async fn an_admin_cancels_anyones_subscription_as_admin_action_and_others_may_not() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let owner = app.signed_up("o@example.com").await;
    let stranger = app.signed_up("s@example.com").await;
    app.drain(SUBSCRIPTIONS_QUEUE).await;
    let id = my_subscription(&app, &owner).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cancel = |token: String| {
        let url = app.url(&format!("/subscriptions/{id}/cancel"));
        let client = app.client.clone();
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };

    let by_stranger = cancel(stranger).await;
    let by_admin = cancel(admin.clone()).await;

    assert_eq!((by_stranger, by_admin), (403, 200));
    let events = app.drain(SUBSCRIPTIONS_QUEUE).await;
    let EventData::SubscriptionCancelled(p) = &events[0].data else {
        panic!("wrong event")
    };
    assert_eq!(p.cancellation_reason.as_str(), "admin_action");
    assert!(p.admin_user_id.is_some());
}

#[tokio::test]
async fn a_trial_upgrades_to_a_paid_plan_for_one_billing_cycle() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    create_plan(&app, &admin, pro()).await;
    let token = app.signed_up("up@example.com").await;
    app.drain(SUBSCRIPTIONS_QUEUE).await;
    let id = my_subscription(&app, &token).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let upgrade = |plan: &'static str| {
        let url = app.url(&format!("/subscriptions/{id}/upgrade"));
        let request = app
            .client
            .post(url)
            .bearer_auth(&token)
            .json(&json!({"plan_code": plan}));
        async move { json(request.send().await.unwrap()).await }
    };

    let (unknown, _) = upgrade("gold").await;
    let (to_free, _) = upgrade("free").await;
    let (status, body) = upgrade("pro").await;
    let (again, _) = upgrade("pro").await;

    assert_eq!((unknown, to_free, status, again), (422, 422, 200, 409));
    assert_eq!(body["data"]["status"], "active");
    let events = app.drain(SUBSCRIPTIONS_QUEUE).await;
    assert_eq!(events.len(), 1);
    let EventData::SubscriptionStatusChanged(p) = &events[0].data else {
        panic!("wrong event")
    };
    assert_eq!(
        (p.previous_status, p.new_status),
        (SubscriptionStatus::Trialing, SubscriptionStatus::Active)
    );
    assert_eq!(p.transition_reason.as_str(), "upgraded");
    assert_eq!(p.plan_code.as_str(), "pro");
    let period =
        p.subscription_end.unwrap().as_datetime() - p.subscription_start.unwrap().as_datetime();
    assert!(
        (Duration::days(28)..=Duration::days(31)).contains(&period),
        "{period}"
    );
}

#[tokio::test]
async fn a_failed_payment_makes_an_active_subscription_past_due() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    create_plan(&app, &admin, pro()).await;
    let token = app.signed_up("pay@example.com").await;
    let id = my_subscription(&app, &token).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = app.url(&format!("/internal/subscriptions/{id}/payment-failed"));
    let too_early = app
        .client
        .post(&url)
        .header("X-Internal-Key", &app.internal_key)
        .send()
        .await
        .unwrap();
    app.client
        .post(app.url(&format!("/subscriptions/{id}/upgrade")))
        .bearer_auth(&token)
        .json(&json!({"plan_code": "pro"}))
        .send()
        .await
        .unwrap();
    app.drain(SUBSCRIPTIONS_QUEUE).await;

    let no_key = app.client.post(&url).send().await.unwrap();
    let failed = app
        .client
        .post(&url)
        .header("X-Internal-Key", &app.internal_key)
        .send()
        .await
        .unwrap();

    assert_eq!(
        too_early.status().as_u16(),
        409,
        "a trial has no payment to fail"
    );
    assert_eq!(no_key.status().as_u16(), 401);
    assert_eq!(failed.status().as_u16(), 200);
    let events = app.drain(SUBSCRIPTIONS_QUEUE).await;
    let EventData::SubscriptionStatusChanged(p) = &events[0].data else {
        panic!("wrong event")
    };
    assert_eq!(
        (p.previous_status, p.new_status),
        (SubscriptionStatus::Active, SubscriptionStatus::PastDue)
    );
    assert_eq!(p.transition_reason.as_str(), "payment_failed");
}

#[tokio::test]
async fn the_expiry_sweep_cancels_ended_trials_and_ends_paid_periods() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    create_plan(&app, &admin, pro()).await;
    let trial_user = app.signed_up("trial@example.com").await;
    let paid_user = app.signed_up("paid@example.com").await;
    let trial = my_subscription(&app, &trial_user).await;
    let paid_id = my_subscription(&app, &paid_user).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.client
        .post(app.url(&format!("/subscriptions/{paid_id}/upgrade")))
        .bearer_auth(&paid_user)
        .json(&json!({"plan_code": "pro"}))
        .send()
        .await
        .unwrap();
    app.drain(SUBSCRIPTIONS_QUEUE).await;
    let sweep = || {
        app.client
            .post(app.url("/internal/subscriptions/expire-due"))
            .header("X-Internal-Key", &app.internal_key)
            .send()
    };

    let (_, nothing) = json(sweep().await.unwrap()).await;
    app.clock.advance(Duration::days(15));
    let (_, after_trial) = json(sweep().await.unwrap()).await;
    app.clock.advance(Duration::days(20));
    let (_, after_period) = json(sweep().await.unwrap()).await;

    assert_eq!(
        nothing["data"],
        json!({"trials_cancelled": 0, "subscriptions_ended": 0})
    );
    // The admin's own trial ended too.
    assert_eq!(
        after_trial["data"],
        json!({"trials_cancelled": 2, "subscriptions_ended": 0})
    );
    assert_eq!(
        after_period["data"],
        json!({"trials_cancelled": 0, "subscriptions_ended": 1})
    );
    let events = app.drain(SUBSCRIPTIONS_QUEUE).await;
    let trial_id = trial["id"].as_str().unwrap();
    let c = events
        .iter()
        .find_map(|e| match &e.data {
            EventData::SubscriptionCancelled(c) if c.subscription_id.to_string() == trial_id => {
                Some(c)
            }
            _ => None,
        })
        .expect("the trial's cancellation");
    assert_eq!(c.cancellation_reason.as_str(), "trial_expired");
    assert_eq!(
        c.effective_until.to_string(),
        trial["trial_end"].as_str().unwrap()
    );
    let EventData::SubscriptionStatusChanged(e) = &events[2].data else {
        panic!("wrong event")
    };
    assert_eq!(e.new_status, SubscriptionStatus::Expired);
    assert_eq!(e.transition_reason.as_str(), "subscription_ended");
    // 35 days on, the first session has expired: a new one reads the result.
    let trial_user = app.log_in("trial@example.com").await;
    assert_eq!(
        my_subscription(&app, &trial_user).await["status"],
        "cancelled"
    );
}
