//! Bad input and bad credentials on the progress routes: always a 4xx in the
//! SMAP envelope naming the problem, never a 500.

use serde_json::{Value, json};

use crate::helpers::{json, spawn_app};

fn field_of(body: &Value) -> &str {
    body["errors"][0]["field"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn internal_routes_refuse_a_missing_key_with_401_and_a_wrong_key_with_403() {
    let app = spawn_app().await;
    let url = app.url("/internal/projects/p/progress");

    let (missing, body) = json(app.client.post(&url).send().await.unwrap()).await;
    let (wrong, _) = json(
        app.client
            .post(&url)
            .header("X-Internal-Key", "guess")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (almost, _) = json(
        app.client
            .post(&url)
            .header("X-Internal-Key", format!("{}x", app.internal_key))
            .send()
            .await
            .unwrap(),
    )
    .await;

    assert_eq!((missing, wrong, almost), (401, 403, 403));
    assert_eq!(body["error_code"], 40100);
    assert!(body["message"].as_str().unwrap().contains("X-Internal-Key"));
}

#[tokio::test]
async fn reading_progress_needs_a_valid_token_or_the_internal_key() {
    let app = spawn_app().await;
    app.init_project("p").await;
    let url = app.url("/projects/p/progress");

    let (anonymous, _) = json(app.client.get(&url).send().await.unwrap()).await;
    let (forged, _) = json(
        app.client
            .get(&url)
            .bearer_auth("not.a.jwt")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (wrong_key, _) = json(
        app.client
            .get(&url)
            .header("X-Internal-Key", "nope")
            .send()
            .await
            .unwrap(),
    )
    .await;

    assert_eq!((anonymous, forged, wrong_key), (401, 401, 403));
}

#[tokio::test]
async fn project_ids_outside_the_allowed_alphabet_are_rejected_by_name() {
    let app = spawn_app().await;
    let long = "x".repeat(65);
    for bad in ["bad%20id", "a.b", long.as_str(), "%C3%A9"] {
        let (status, body) = json(app.init_project(bad).await).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(field_of(&body), "project_id");
    }
}

#[tokio::test]
async fn set_total_rejects_bad_bodies_naming_the_field() {
    let app = spawn_app().await;
    app.init_project("p").await;
    let cases = [
        (json!({"total": -1, "status": "CRAWLING"}), 400, "total"),
        (json!({"total": "ten", "status": "CRAWLING"}), 400, "total"),
        (json!({"total": 1.5, "status": "CRAWLING"}), 400, "total"),
        (json!({"total": 3, "status": "SLEEPING"}), 400, "status"),
        (json!({"status": "CRAWLING"}), 400, "total"),
        (json!([1, 2]), 400, "body"),
        (json!({"total": 3, "status": "DONE"}), 422, "status"),
        (
            json!({"total": 9_007_199_254_740_992u64, "status": "CRAWLING"}),
            422,
            "total",
        ),
    ];
    for (body, expected, field) in cases {
        let (status, answer) = json(app.set_total("p", body.clone()).await).await;
        assert_eq!(status, expected, "{body}");
        assert_eq!(field_of(&answer), field, "{body}: {answer}");
        assert_ne!(answer["error_code"], 0);
    }
    let (_, missing) = json(app.set_total("p", json!({"status": "CRAWLING"})).await).await;
    assert!(
        missing["message"].as_str().unwrap().contains("total"),
        "{missing}"
    );
}

#[tokio::test]
async fn mark_item_rejects_bad_bodies_naming_the_field() {
    let app = spawn_app().await;
    app.init_project("p").await;
    let cases = [
        (json!({}), "is_error"),
        (json!(null), "body"),
        (json!({"is_error": "no"}), "is_error"),
        (json!({"is_error": false, "item_id": ""}), "item_id"),
        (json!({"is_error": false, "item_id": 7}), "item_id"),
        (
            json!({"is_error": false, "item_id": "x".repeat(300)}),
            "item_id",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = json(app.mark_item("p", body.clone()).await).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(field_of(&answer), field, "{body}: {answer}");
    }
}

#[tokio::test]
async fn malformed_json_wrong_media_type_and_oversized_bodies_get_their_own_4xx() {
    let app = spawn_app().await;
    app.init_project("p").await;
    let url = app.url("/internal/projects/p/progress");
    let send = |body: Vec<u8>, content_type: &'static str| {
        app.client
            .put(&url)
            .header("X-Internal-Key", &app.internal_key)
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };

    let (malformed, m) = json(
        send(b"{\"total\": 3,".to_vec(), "application/json")
            .await
            .unwrap(),
    )
    .await;
    let (media, _) = json(
        send(b"total=3".to_vec(), "application/x-www-form-urlencoded")
            .await
            .unwrap(),
    )
    .await;
    let big = format!(
        "{{\"total\": 1, \"status\": \"CRAWLING\", \"pad\": \"{}\"}}",
        "x".repeat(70 * 1024)
    );
    let (too_large, _) = json(send(big.into_bytes(), "application/json").await.unwrap()).await;

    assert_eq!((malformed, media, too_large), (400, 415, 413));
    assert_eq!(m["error_code"], 40000);
}

#[tokio::test]
async fn items_for_an_unknown_project_are_404_and_a_done_project_cannot_be_reopened() {
    let app = spawn_app().await;
    let (status, _) = json(app.mark_item("ghost", json!({"is_error": false})).await).await;
    assert_eq!(status, 404);

    app.init_project("p").await;
    app.set_total("p", json!({"total": 1, "status": "PROCESSING"}))
        .await;
    app.mark_item("p", json!({"is_error": false})).await;
    let (status, body) = json(
        app.set_total("p", json!({"total": 9, "status": "CRAWLING"}))
            .await,
    )
    .await;

    assert_eq!(status, 409);
    assert_eq!(body["error_code"], 40900);
}
