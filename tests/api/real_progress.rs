//! Progress end to end on real servers: Redis counts, RabbitMQ carries
//! `job.completed`, and the HTTP API answers for both.

use std::{sync::Arc, time::Duration};

use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::json;
use smap_identity::{
    adapters::{
        amqp::{AmqpBroker, AmqpConfig, AmqpEventPublisher},
        bus::topology::EVENTS_EXCHANGE,
        redis::{RedisClients, RedisProgressStore},
        system::{RandomIds, SystemClock},
    },
    app::wiring::Adapters,
    domain::{
        events::{EventData, EventEnvelope},
        progress::{ItemId, ItemOutcome, ProgressService, ProjectId, ProjectStatus},
    },
};
use uuid::Uuid;

use crate::{
    helpers::Remote,
    real_amqp::events,
    servers::{Probe, amqp_url, real_settings, redis},
};

fn project_of(delivery: &lapin::message::Delivery) -> Option<String> {
    match EventEnvelope::from_json(&delivery.data).ok()?.data {
        EventData::JobCompleted(p) => Some(p.project_id.to_string()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_items_on_real_redis_publish_one_job_completed_on_the_real_broker() {
    let (Some(url), Some(redis)) = (amqp_url(), redis()) else {
        return;
    };
    let clients = RedisClients::connect(&redis).await.unwrap();
    let broker = AmqpBroker::connect(&url, AmqpConfig::default()).await;
    let mut probe = Probe::bind(&url, EVENTS_EXCHANGE, "job.#").await;
    let service = Arc::new(ProgressService::new(
        Arc::new(RedisProgressStore::new(clients.state.clone())),
        Arc::new(events(Arc::new(AmqpEventPublisher::new(broker.clone())))),
        Arc::new(SystemClock),
        Arc::new(RandomIds),
    ));
    let project = ProjectId::parse(&format!("race-{}", Uuid::new_v4().simple())).unwrap();
    service.init_project(&project).await.unwrap();
    service
        .set_total(&project, 1000, ProjectStatus::Processing)
        .await
        .unwrap();

    let tasks: Vec<_> = (0..1000)
        .map(|n| {
            let service = service.clone();
            let project = project.clone();
            tokio::spawn(async move {
                let item = ItemId::parse(&format!("item-{n}")).unwrap();
                service
                    .mark_item_done(&project, n % 50 == 0, Some(&item))
                    .await
            })
        })
        .collect();
    let mut completed = 0;
    for task in tasks {
        if task.await.unwrap().unwrap().outcome == ItemOutcome::Completed {
            completed += 1;
        }
    }
    // Redelivered items change nothing.
    for n in 0..10 {
        let item = ItemId::parse(&format!("item-{n}")).unwrap();
        let again = service
            .mark_item_done(&project, false, Some(&item))
            .await
            .unwrap();
        assert!(again.duplicate);
    }

    assert_eq!(completed, 1);
    let progress = service.get_progress(&project).await.unwrap();
    assert_eq!(
        progress,
        smap_identity::domain::progress::ProgressView::Found(
            smap_identity::domain::progress::Progress {
                status: ProjectStatus::Done,
                total: 1000,
                done: 1000,
                errors: 20
            }
        )
    );
    let id = project.to_string();
    let events = probe
        .collect(Duration::from_secs(3), 2, |d| {
            project_of(d).as_deref() == Some(id.as_str())
        })
        .await;
    assert_eq!(events.len(), 1, "exactly one job.completed");
    broker.close().await;
    clients.shutdown().await;
}

#[tokio::test]
async fn the_http_api_runs_on_real_redis_and_rabbitmq_and_reports_their_health() {
    let Some(mut settings) = real_settings() else {
        return;
    };
    settings.http_port = 0;
    let adapters = Adapters::from_settings(&settings).await.unwrap();
    assert!(
        adapters.summary().contains("event_publisher=rabbitmq"),
        "{}",
        adapters.summary()
    );
    assert!(
        adapters.summary().contains("progress_store=redis"),
        "{}",
        adapters.summary()
    );
    let (base, ..) = crate::servers::run_app(&settings, adapters);
    let api = Remote::new(&base);
    let key = settings.internal_key.expose_secret().to_owned();
    let id = format!("http-{}", Uuid::new_v4().simple());
    let progress = format!("/internal/projects/{id}/progress");

    let (status, health) = api.get("/health/rabbitmq", None).await;
    assert_eq!(status, 200, "{health}");
    let exchanges = &health["data"]["checks"]["rabbitmq"]["details"]["exchanges"];
    assert_eq!(exchanges["smap.events"]["type"], "topic");
    assert_eq!(exchanges["smap.events"]["durable"], true);
    let (status, health) = api.get("/health/redis", None).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["data"]["checks"]["redis"]["details"]["state_db"], 1);

    let (post, _) = api.post_internal(&progress, &key).await;
    assert_eq!(post, 201);
    let total = Some(json!({"total": 2, "status": "PROCESSING"}));
    let (put, _) = api.internal(Method::PUT, &progress, &key, total).await;
    assert_eq!(put, 200);
    let items = format!("{progress}/items");
    let done = Some(json!({"is_error": false, "item_id": "a"}));
    let (_, item) = api.internal(Method::POST, &items, &key, done).await;
    assert_eq!(item["data"]["done"], 1);
    let read_path = format!("/projects/{id}/progress");
    let (status, read) = api.get_internal(&read_path, &key).await;
    assert_eq!(status, 200);
    assert_eq!(
        read["data"],
        json!({"status": "PROCESSING", "total": 2, "done": 1, "errors": 0, "percent": 50.0})
    );
}
