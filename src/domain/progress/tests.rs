//! The progress use cases end to end on in-memory adapters: the finish line
//! publishes `job.completed` exactly once.

use std::sync::Arc;

use chrono::{TimeZone, Utc};

use super::*;
use crate::{
    adapters::{
        clock::{ManualClock, RandomIds},
        memory::{
            ExchangeKind, InMemoryBroker, InMemoryEventBus, InMemoryPlanCatalog,
            InMemoryProgressStore,
        },
        topology::EVENTS_EXCHANGE,
    },
    domain::{
        events::{EventData, EventEnvelope, EventService, keys},
        retry::RetryPolicy,
    },
    ports::{EventPublisher, MockEventPublisher, PublishError},
};

const JOBS: &str = "test.jobs";

struct World {
    broker: Arc<InMemoryBroker>,
    service: Arc<ProgressService>,
}

fn world_with(publisher: Arc<dyn EventPublisher>, broker: Arc<InMemoryBroker>) -> World {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap(),
    ));
    let events = Arc::new(
        EventService::new(
            publisher,
            clock.clone(),
            Arc::new(RandomIds),
            Arc::new(InMemoryPlanCatalog::with_defaults()),
        )
        .with_retry(RetryPolicy::NONE),
    );
    let store = Arc::new(InMemoryProgressStore::new(clock.clone()));
    World {
        broker,
        service: Arc::new(ProgressService::new(store, events, clock)),
    }
}

fn world() -> World {
    let broker = Arc::new(InMemoryBroker::with_smap_topology());
    broker
        .declare_exchange(EVENTS_EXCHANGE, ExchangeKind::Topic)
        .unwrap();
    broker.declare_queue(JOBS);
    broker.bind(JOBS, EVENTS_EXCHANGE, "job.#").unwrap();
    world_with(Arc::new(InMemoryEventBus::new(broker.clone())), broker)
}

fn id(s: &str) -> ProjectId {
    ProjectId::parse(s).unwrap()
}

fn completed_events(broker: &InMemoryBroker) -> Vec<EventEnvelope> {
    let mut events = Vec::new();
    while let Some(delivery) = broker.try_take(JOBS).unwrap() {
        events.push(EventEnvelope::from_json(&delivery.body).unwrap());
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_workers_finishing_at_once_publish_one_job_completed() {
    let w = world();
    let project = id("race");
    w.service.init_project(&project).await.unwrap();
    w.service
        .set_total(&project, 1000, ProjectStatus::Processing)
        .await
        .unwrap();

    let tasks: Vec<_> = (0..1000)
        .map(|n| {
            let service = w.service.clone();
            let project = project.clone();
            tokio::spawn(async move { service.mark_item_done(&project, n % 100 == 0, None).await })
        })
        .collect();
    let mut completions = 0;
    for task in tasks {
        if task.await.unwrap().unwrap().outcome == ItemOutcome::Completed {
            completions += 1;
        }
    }

    assert_eq!(completions, 1);
    let events = completed_events(&w.broker);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].routing_key.as_str(), keys::JOB_COMPLETED);
    let EventData::JobCompleted(payload) = &events[0].data else {
        panic!("wrong payload")
    };
    assert_eq!(
        (payload.total, payload.done, payload.errors),
        (1000, 1000, 10)
    );
    assert_eq!(payload.project_id, project);
}

#[tokio::test]
async fn ending_discovery_after_the_last_item_publishes_job_completed_from_set_total() {
    let w = world();
    let project = id("late");
    w.service.init_project(&project).await.unwrap();
    w.service
        .set_total(&project, 2, ProjectStatus::Crawling)
        .await
        .unwrap();
    w.service
        .mark_item_done(&project, false, None)
        .await
        .unwrap();
    w.service
        .mark_item_done(&project, false, None)
        .await
        .unwrap();
    assert!(
        completed_events(&w.broker).is_empty(),
        "completed while CRAWLING"
    );

    let update = w
        .service
        .set_total(&project, 2, ProjectStatus::ProcessingWait)
        .await
        .unwrap();

    assert!(update.completed);
    assert_eq!(completed_events(&w.broker).len(), 1);
    assert_eq!(
        w.service.get_progress(&project).await.unwrap(),
        ProgressView::Found(Progress {
            status: ProjectStatus::Done,
            total: 2,
            done: 2,
            errors: 0
        })
    );
}

#[tokio::test]
async fn done_is_not_a_status_callers_may_set() {
    let w = world();
    let project = id("p");
    w.service.init_project(&project).await.unwrap();

    let err = w
        .service
        .set_total(&project, 1, ProjectStatus::Done)
        .await
        .unwrap_err();

    assert!(matches!(err, ProgressUseCaseError::DoneNotSettable));
}

#[tokio::test]
async fn a_missing_project_reads_as_not_found() {
    let w = world();
    assert_eq!(
        w.service.get_progress(&id("nope")).await.unwrap(),
        ProgressView::NotFound
    );
}

#[tokio::test]
async fn a_completion_that_cannot_be_published_is_reported_to_the_caller() {
    let mut publisher = MockEventPublisher::new();
    publisher
        .expect_publish()
        .times(1)
        .returning(|_| Err(PublishError::Unavailable(anyhow::anyhow!("broker down"))));
    let w = world_with(Arc::new(publisher), Arc::new(InMemoryBroker::new()));
    let project = id("p");
    w.service.init_project(&project).await.unwrap();
    w.service
        .set_total(&project, 1, ProjectStatus::Processing)
        .await
        .unwrap();

    let err = w
        .service
        .mark_item_done(&project, false, None)
        .await
        .unwrap_err();

    assert!(matches!(
        err,
        ProgressUseCaseError::CompletionNotPublished { .. }
    ));
}
