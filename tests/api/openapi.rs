//! The OpenAPI document matches the router: every documented operation is
//! routed, and Swagger UI is served without any download.

use serde_json::Value;

use crate::helpers::{json, spawn_app};

#[tokio::test]
async fn every_documented_operation_is_routed_and_described() {
    let app = spawn_app().await;
    let (status, doc) = json(
        app.client
            .get(app.url("/api-docs/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 25, "{} paths", paths.len());

    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            assert!(
                op["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{method} {path} has no description"
            );
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} has no responses"
            );
            let concrete = path
                .replace("{id}", "00000000-0000-4000-8000-000000000000")
                .replace("{component}", "redis");
            let request = app
                .client
                .request(method.to_uppercase().parse().unwrap(), app.url(&concrete));
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let unrouted = status == 404
                && answer["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("no route"));
            assert!(!unrouted, "{method} {path} is documented but not routed");
            assert!(
                status < 500 || status == 503,
                "{method} {path} answered {status}: {text}"
            );
        }
    }
    assert!(operations >= 30, "{operations} operations");
    let events_noted = paths["/authentication/register"]["post"]["description"]
        .as_str()
        .unwrap();
    assert!(events_noted.contains("email.verification.requested"));
}

#[tokio::test]
async fn swagger_ui_is_served() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/swagger-ui/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .to_lowercase()
            .contains("swagger")
    );
}
