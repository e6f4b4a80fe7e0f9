//! Outages on servers of the test's own: the service answers errors while a
//! dependency is down, stays up, and recovers by itself when it returns.

use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use smap_identity::{
    adapters::{
        amqp::{AmqpBroker, AmqpConfig, AmqpEventPublisher, AmqpHealth},
        redis::{RedisClients, RedisConfig, RedisProgressStore},
    },
    app::wiring::Adapters,
    domain::{progress::ProjectId, retry::RetryPolicy},
    ports::{HealthIndicator, ProgressError, ProgressStore},
};

use crate::servers::run_app;
use crate::{
    helpers::Remote,
    real_amqp::{events, trial},
    servers::{amqp_url, free_port, redis, services},
};

fn scratch(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!(
        "smap-fault-{name}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    dir.to_string_lossy().into_owned()
}

#[tokio::test]
async fn a_redis_outage_fails_progress_calls_after_the_retries_and_recovers_when_redis_returns() {
    if redis().is_none() {
        return;
    }
    let dir = scratch("redis");
    let port = free_port();
    services(&["redis-start", &dir, &port.to_string()]);
    let settings = RedisConfig {
        host: "127.0.0.1".into(),
        port,
        password: None,
        state_db: 1,
        sentinel: None,
    };
    let clients = RedisClients::connect(&settings).await.unwrap();
    let short = RetryPolicy::exponential(4, Duration::from_millis(50));
    let store = RedisProgressStore::new(clients.state.clone()).with_retry(short);
    let project = ProjectId::parse("outage").unwrap();
    store.init(&project).await.unwrap();

    services(&["redis-stop", &dir]);
    let started = Instant::now();
    let err = store.get_progress(&project).await.unwrap_err();
    let failed_after = started.elapsed();

    assert!(matches!(err, ProgressError::Unavailable(_)), "{err:?}");
    assert!(
        failed_after >= Duration::from_millis(350),
        "retried with backoff: {failed_after:?}"
    );
    assert!(
        failed_after < Duration::from_secs(15),
        "bounded: {failed_after:?}"
    );

    services(&["redis-start", &dir, &port.to_string()]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.init(&project).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("did not recover within 10 s: {e:?}"),
        }
    }
    assert!(store.get_progress(&project).await.unwrap().is_some());
    clients.shutdown().await;
    services(&["redis-stop", &dir]);
}

#[tokio::test]
async fn with_redis_down_the_http_api_answers_503_and_stays_up() {
    if redis().is_none() {
        return;
    }
    let dir = scratch("redis-http");
    let port = free_port();
    services(&["redis-start", &dir, &port.to_string()]);
    let mut settings = smap_identity::app::config::Settings::for_tests();
    settings.start_consumers = false;
    settings.redis = Some(RedisConfig {
        host: "127.0.0.1".into(),
        port,
        password: None,
        state_db: 1,
        sentinel: None,
    });
    let (base, ..) = run_app(&settings, Adapters::from_settings(&settings).await.unwrap());
    let api = Remote::new(&base);
    let key = settings.internal_key.expose_secret().to_owned();

    services(&["redis-stop", &dir]);
    let started = Instant::now();
    let (status, body) = api.get_internal("/projects/p/progress", &key).await;
    let took = started.elapsed();
    let (health, _) = api.get("/health/redis", None).await;
    let (live, _) = api.get("/live", None).await;

    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error_code"], 50300);
    assert!(
        took < Duration::from_secs(20),
        "within the retry bound: {took:?}"
    );
    assert_eq!(health, 503);
    assert_eq!(live, 200);

    services(&["redis-start", &dir, &port.to_string()]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut recovered = false;
    while Instant::now() < deadline {
        let (status, _) = api
            .post_internal("/internal/projects/p/progress", &key)
            .await;
        if status == 201 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "progress recovers once Redis is back");
    services(&["redis-stop", &dir]);
}

#[tokio::test]
async fn after_a_rabbitmq_restart_publishing_resumes_without_restarting_the_service() {
    if amqp_url().is_none() {
        return;
    }
    let dir = scratch("rabbit");
    let (port, dist) = (free_port(), free_port());
    let start = ["rabbitmq-start", &dir, &port.to_string(), &dist.to_string()].map(String::from);
    let start: Vec<&str> = start.iter().map(String::as_str).collect();
    services(&start);
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let broker = AmqpBroker::connect(&url, AmqpConfig::default()).await;
    let events = events(std::sync::Arc::new(AmqpEventPublisher::new(broker.clone())))
        .with_retry(RetryPolicy::NONE);
    events
        .publish(trial())
        .await
        .expect("publishes before the restart");

    services(&["rabbitmq-stop", &dir, &port.to_string()]);
    let err = events
        .publish(trial())
        .await
        .expect_err("no broker, no publish");
    assert!(err.is_transient(), "an outage is transient: {err:?}");
    let health = AmqpHealth::new(broker.clone()).check().await;
    assert!(!health.healthy, "health reports the outage: {health:?}");

    services(&start);
    let back = Instant::now();
    let mut published = false;
    while back.elapsed() < Duration::from_secs(10) {
        if events.publish(trial()).await.is_ok() {
            published = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovery = back.elapsed();
    assert!(
        published,
        "publishing resumed within 10 s of the broker's return"
    );
    eprintln!("publishing resumed {recovery:?} after RabbitMQ was back");
    let health = AmqpHealth::new(broker.clone()).check().await;
    assert!(health.healthy, "health reports the recovery: {health:?}");
    broker.close().await;
    services(&["rabbitmq-stop", &dir, &port.to_string()]);
}
