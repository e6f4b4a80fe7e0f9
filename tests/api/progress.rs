//! The progress API on its happy paths, and the exactly-once finish line
//! seen from outside.

use std::collections::HashSet;

use serde_json::json;
use smap_identity::domain::events::{EventData, EventEnvelope};

use crate::helpers::{json, spawn_app};

#[tokio::test]
async fn a_project_goes_from_init_to_done_and_publishes_one_job_completed() {
    // Arrange
    let app = spawn_app().await;
    let (status, body) = json(app.init_project("proj-1").await).await;
    assert_eq!(status, 201);
    assert_eq!(
        body["data"],
        json!({"status": "INITIALIZING", "total": 0, "done": 0, "errors": 0, "percent": 0.0})
    );
    let (status, body) = json(
        app.set_total("proj-1", json!({"total": 3, "status": "PROCESSING"}))
            .await,
    )
    .await;
    assert_eq!(
        (status, body["data"]["completed"].clone()),
        (200, json!(false))
    );

    // Act
    let (_, first) = json(app.mark_item("proj-1", json!({"is_error": false})).await).await;
    let (_, second) = json(app.mark_item("proj-1", json!({"is_error": true})).await).await;
    let (_, (mid_status, mid)) = ((), json(app.get_progress_internal("proj-1").await).await);
    let (_, last) = json(app.mark_item("proj-1", json!({"is_error": false})).await).await;

    // Assert
    assert_eq!(
        first["data"],
        json!({"status": "PROCESSING", "done": 1, "total": 3, "errors": 0, "duplicate": false})
    );
    assert_eq!(second["data"]["errors"], 1);
    assert_eq!(mid_status, 200);
    assert_eq!(mid["data"]["percent"], 66.67);
    assert_eq!(last["data"]["status"], "COMPLETED");
    let (_, done) = json(app.get_progress_internal("proj-1").await).await;
    assert_eq!(
        done["data"],
        json!({"status": "DONE", "total": 3, "done": 3, "errors": 1, "percent": 100.0})
    );

    let events = app.take_job_events();
    assert_eq!(events.len(), 1);
    let delivery = &events[0];
    let envelope = EventEnvelope::from_json(&delivery.body).expect("a valid envelope");
    assert_eq!(delivery.routing_key, "job.completed");
    assert_eq!(
        delivery.properties.message_id,
        envelope.event_id.to_string()
    );
    assert_eq!(delivery.properties.kind, "job.completed");
    assert_eq!(delivery.properties.app_id, "identity");
    assert_eq!(delivery.properties.content_type, "application/json");
    assert_eq!(delivery.properties.delivery_mode, 2);
    let EventData::JobCompleted(payload) = envelope.data else {
        panic!("not a job.completed payload")
    };
    assert_eq!(
        (
            payload.project_id.as_str(),
            payload.total,
            payload.done,
            payload.errors
        ),
        ("proj-1", 3, 3, 1)
    );
}

#[tokio::test]
async fn two_hundred_concurrent_item_reports_complete_the_project_exactly_once() {
    let app = spawn_app().await;
    app.init_project("race").await;
    app.set_total("race", json!({"total": 200, "status": "PROCESSING"}))
        .await;

    let requests = (0..200).map(|n| {
        let client = app.client.clone();
        let url = app.url("/internal/projects/race/progress/items");
        let key = app.internal_key.clone();
        async move {
            let response = client
                .post(url)
                .header("X-Internal-Key", key)
                .json(&json!({"is_error": false, "item_id": format!("item-{n}")}))
                .send()
                .await
                .unwrap();
            json(response).await
        }
    });
    let results = futures_util::future::join_all(requests).await;

    assert!(results.iter().all(|(status, _)| *status == 200));
    let completed = results
        .iter()
        .filter(|(_, b)| b["data"]["status"] == "COMPLETED")
        .count();
    assert_eq!(completed, 1);
    let dones: HashSet<u64> = results
        .iter()
        .map(|(_, b)| b["data"]["done"].as_u64().unwrap())
        .collect();
    assert_eq!(dones.len(), 200, "every call saw its own increment");
    assert_eq!(app.take_job_events().len(), 1);
}

#[tokio::test]
async fn a_redelivered_item_is_counted_once_and_flagged_duplicate() {
    let app = spawn_app().await;
    app.init_project("dup").await;
    app.set_total("dup", json!({"total": 5, "status": "PROCESSING"}))
        .await;

    let (_, first) = json(
        app.mark_item("dup", json!({"is_error": false, "item_id": "post-9"}))
            .await,
    )
    .await;
    let (_, again) = json(
        app.mark_item("dup", json!({"is_error": false, "item_id": "post-9"}))
            .await,
    )
    .await;

    assert_eq!(first["data"]["duplicate"], false);
    assert_eq!(again["data"]["duplicate"], true);
    assert_eq!(again["data"]["done"], 1);
}

#[tokio::test]
async fn a_retried_last_item_answers_completed_again_and_job_completed_goes_out_once() {
    let app = spawn_app().await;
    app.init_project("retry").await;
    app.set_total("retry", json!({"total": 2, "status": "PROCESSING"}))
        .await;
    app.mark_item("retry", json!({"is_error": false, "item_id": "a"}))
        .await;

    let (_, last) = json(
        app.mark_item("retry", json!({"is_error": true, "item_id": "b"}))
            .await,
    )
    .await;
    let (status, again) = json(
        app.mark_item("retry", json!({"is_error": true, "item_id": "b"}))
            .await,
    )
    .await;
    let (_, other) = json(
        app.mark_item("retry", json!({"is_error": false, "item_id": "a"}))
            .await,
    )
    .await;

    assert_eq!(
        last["data"],
        json!({"status": "COMPLETED", "done": 2, "total": 2, "errors": 1, "duplicate": false})
    );
    assert_eq!(status, 200);
    assert_eq!(
        again["data"],
        json!({"status": "COMPLETED", "done": 2, "total": 2, "errors": 1, "duplicate": true})
    );
    assert_eq!(other["data"]["status"], "PROCESSING");
    assert_eq!(app.take_job_events().len(), 1);
}

#[tokio::test]
async fn a_retried_put_that_completed_the_project_answers_the_same_and_another_put_conflicts() {
    let app = spawn_app().await;
    app.init_project("put").await;
    app.set_total("put", json!({"total": 1, "status": "CRAWLING"}))
        .await;
    app.mark_item("put", json!({"is_error": false})).await;

    let put = json!({"total": 1, "status": "PROCESSING_WAIT"});
    let (first, _) = json(app.set_total("put", put.clone()).await).await;
    let (again, body) = json(app.set_total("put", put).await).await;
    let (other, _) = json(
        app.set_total("put", json!({"total": 1, "status": "PROCESSING"}))
            .await,
    )
    .await;

    assert_eq!((first, again, other), (200, 200, 409));
    assert_eq!(body["data"]["completed"], true);
    assert_eq!(app.take_job_events().len(), 1);
}

#[tokio::test]
async fn discovery_ending_after_the_last_item_completes_the_project_from_the_put() {
    let app = spawn_app().await;
    app.init_project("late").await;
    app.set_total("late", json!({"total": 2, "status": "CRAWLING"}))
        .await;
    for _ in 0..2 {
        let (_, body) = json(app.mark_item("late", json!({"is_error": false})).await).await;
        assert_eq!(
            body["data"]["status"], "PROCESSING",
            "completed while CRAWLING"
        );
    }
    assert!(app.take_job_events().is_empty());

    let (status, body) = json(
        app.set_total("late", json!({"total": 2, "status": "PROCESSING_WAIT"}))
            .await,
    )
    .await;

    assert_eq!(status, 200);
    assert_eq!(body["data"]["completed"], true);
    assert_eq!(body["data"]["status"], "DONE");
    assert_eq!(app.take_job_events().len(), 1);
}

#[tokio::test]
async fn a_signed_in_user_may_read_progress() {
    let app = spawn_app().await;
    app.init_project("mine").await;

    let response = app
        .client
        .get(app.url("/projects/mine/progress"))
        .bearer_auth(app.user_token().await)
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    let cookie_response = app
        .client
        .get(app.url("/projects/mine/progress"))
        .header(
            "Cookie",
            format!("smap_auth_token={}", app.user_token().await),
        )
        .send()
        .await
        .unwrap();

    assert_eq!(status, 200);
    assert_eq!(body["data"]["status"], "INITIALIZING");
    assert_eq!(cookie_response.status().as_u16(), 200);
}

#[tokio::test]
async fn an_unknown_project_reads_as_not_found_and_is_not_created() {
    let app = spawn_app().await;

    let (status, body) = json(app.get_progress_internal("ghost").await).await;
    let (again, _) = json(app.get_progress_internal("ghost").await).await;
    let (put_status, _) = json(
        app.set_total("ghost", json!({"total": 1, "status": "CRAWLING"}))
            .await,
    )
    .await;

    assert_eq!(status, 404);
    assert_eq!(body["error_code"], 40400);
    assert_eq!(
        body["data"],
        json!({"status": "NOT_FOUND", "total": 0, "done": 0, "errors": 0, "percent": 0.0})
    );
    assert_eq!(again, 404);
    assert_eq!(put_status, 404, "PUT must not create a project either");
}
