use serde_json::json;

use crate::helpers::{json, spawn_app};

#[tokio::test]
async fn health_reports_every_dependency_as_healthy_on_in_memory_adapters() {
    let app = spawn_app().await;

    let (status, body) = json(app.client.get(app.url("/health")).send().await.unwrap()).await;

    assert_eq!(status, 200);
    assert_eq!(body["error_code"], 0);
    assert_eq!(body["data"]["status"], "healthy");
    for component in ["rabbitmq", "redis", "database"] {
        assert_eq!(
            body["data"]["checks"][component]["status"], "healthy",
            "{component}"
        );
        assert_eq!(body["data"]["checks"][component]["adapter"], "memory");
    }
}

#[tokio::test]
async fn each_component_has_its_own_health_route() {
    let app = spawn_app().await;
    for component in ["redis", "rabbitmq"] {
        let (status, body) = json(
            app.client
                .get(app.url(&format!("/health/{component}")))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200);
        let checks = body["data"]["checks"].as_object().unwrap();
        assert_eq!(checks.keys().collect::<Vec<_>>(), [component]);
    }
    let (status, body) = json(
        app.client
            .get(app.url("/health/mongodb"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error_code"], 40400);
}

#[tokio::test]
async fn live_and_ready_answer_200() {
    let app = spawn_app().await;
    for path in ["/live", "/ready"] {
        let (status, body) = json(app.client.get(app.url(path)).send().await.unwrap()).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(body["data"]["status"], "healthy");
    }
}

#[tokio::test]
async fn metrics_are_exposed_in_prometheus_text() {
    let app = spawn_app().await;
    app.init_project("metrics-p").await;
    app.set_total("metrics-p", json!({"total": 1, "status": "PROCESSING"}))
        .await;
    app.mark_item("metrics-p", json!({"is_error": false})).await;

    let response = app.client.get(app.url("/metrics")).send().await.unwrap();

    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    // The series exists from start-up at 0; this project's completion
    // counted (other tests in this process may have added theirs).
    let published: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("events_published_total{routing_key=\"job.completed\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no job.completed count:\n{text}"));
    assert!(published >= 1.0, "{text}");
    assert!(text.contains("# TYPE event_publish_duration_seconds histogram"));
    assert!(text.contains("http_requests_total{method=\"POST\",route=\"/internal/projects/{id}/progress/items\",status=\"200\"}"));
}

#[tokio::test]
async fn unknown_routes_answer_404_in_the_smap_envelope() {
    let app = spawn_app().await;

    let (status, body) = json(app.client.get(app.url("/nope")).send().await.unwrap()).await;

    assert_eq!(status, 404);
    assert_eq!(body["error_code"], 40400);
    assert!(body["message"].as_str().unwrap().contains("/nope"));
}

#[tokio::test]
async fn the_server_stops_gracefully_through_its_handle() {
    let app = spawn_app().await;
    app.stop().await;
    assert!(app.client.get(app.url("/live")).send().await.is_err());
}
