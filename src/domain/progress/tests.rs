//! The progress use cases end to end on in-memory adapters: the finish line
//! publishes `job.completed` exactly once.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use chrono::{TimeZone, Utc};

use super::*;
use crate::{
    adapters::{
        bus::topology::EVENTS_EXCHANGE,
        memory::ManualClock,
        memory::{
            ExchangeKind, InMemoryBroker, InMemoryEventBus, InMemoryPlanCatalog,
            InMemoryProgressStore,
        },
        system::RandomIds,
    },
    domain::{
        events::{EventData, EventEnvelope, EventId, EventService, SealedEvent, keys},
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
        service: Arc::new(ProgressService::new(
            store,
            events,
            clock,
            Arc::new(RandomIds),
        )),
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

/// The in-memory bus, unplugged on demand (a stopped broker).
struct Unpluggable {
    bus: InMemoryEventBus,
    down: AtomicBool,
}

#[async_trait::async_trait]
impl EventPublisher for Unpluggable {
    async fn publish(&self, event: &SealedEvent) -> Result<EventId, PublishError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(PublishError::Unavailable(anyhow::anyhow!("broker down")));
        }
        self.bus.publish(event).await
    }
}

fn world_with_unpluggable_bus() -> (World, Arc<Unpluggable>) {
    let w = world();
    let bus = Arc::new(Unpluggable {
        bus: InMemoryEventBus::new(w.broker.clone()),
        down: AtomicBool::new(false),
    });
    (world_with(bus.clone(), w.broker), bus)
}

async fn two_item_project(w: &World, name: &str) -> ProjectId {
    let project = id(name);
    w.service.init_project(&project).await.unwrap();
    w.service
        .set_total(&project, 2, ProjectStatus::Processing)
        .await
        .unwrap();
    w.service
        .mark_item_done(&project, false, Some(&ItemId::parse("a").unwrap()))
        .await
        .unwrap();
    project
}

#[tokio::test]
async fn with_the_broker_down_the_last_item_is_completed_and_the_relay_publishes_it_later_once() {
    let (w, bus) = world_with_unpluggable_bus();
    let project = two_item_project(&w, "down").await;
    let last = ItemId::parse("b").unwrap();

    bus.down.store(true, Ordering::SeqCst);
    let update = w
        .service
        .mark_item_done(&project, false, Some(&last))
        .await
        .expect("the completion is recorded: no error for the worker");
    assert_eq!(update.outcome, ItemOutcome::Completed);
    let event_id = update.completion.as_ref().unwrap().event_id;
    let round = w.service.relay_completions().await.unwrap();
    assert_eq!((round.published, round.failed, round.pending), (0, 1, 1));
    assert!(completed_events(&w.broker).is_empty());

    bus.down.store(false, Ordering::SeqCst);
    let round = w.service.relay_completions().await.unwrap();
    assert_eq!((round.published, round.failed, round.pending), (1, 0, 0));
    let retry = w
        .service
        .mark_item_done(&project, false, Some(&last))
        .await
        .unwrap();
    let round = w.service.relay_completions().await.unwrap();

    assert_eq!(retry.outcome, ItemOutcome::Completed);
    assert_eq!(retry.completion.unwrap().event_id, event_id);
    assert_eq!(round, RelayReport::default());
    let events = completed_events(&w.broker);
    assert_eq!(events.len(), 1, "job.completed once");
    assert_eq!(events[0].event_id, event_id, "under the recorded id");
    let EventData::JobCompleted(payload) = &events[0].data else {
        panic!("wrong payload")
    };
    assert_eq!(payload.completed_at, events[0].timestamp);
    assert_eq!((payload.total, payload.done), (2, 2));
}

#[tokio::test]
async fn a_retry_of_the_last_item_publishes_what_its_first_try_could_not() {
    let (w, bus) = world_with_unpluggable_bus();
    let project = two_item_project(&w, "retry").await;
    let last = ItemId::parse("b").unwrap();
    bus.down.store(true, Ordering::SeqCst);
    let first = w
        .service
        .mark_item_done(&project, true, Some(&last))
        .await
        .unwrap();
    bus.down.store(false, Ordering::SeqCst);

    let retry = w
        .service
        .mark_item_done(&project, true, Some(&last))
        .await
        .unwrap();
    let round = w.service.relay_completions().await.unwrap();

    assert_eq!(retry.outcome, ItemOutcome::Completed);
    assert_eq!((retry.progress.done, retry.progress.errors), (2, 1));
    assert_eq!(round, RelayReport::default(), "published twice");
    let events = completed_events(&w.broker);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_id, first.completion.unwrap().event_id);
}

#[tokio::test]
async fn a_completion_the_broker_refuses_is_answered_completed_and_stays_recorded() {
    // A permanent publish error is the operators' problem, not the
    // worker's: the completion waits, counted by `job_completions_pending`.
    let mut publisher = MockEventPublisher::new();
    publisher
        .expect_publish()
        .returning(|_| Err(PublishError::Unexpected(anyhow::anyhow!("no exchange"))));
    let w = world_with(Arc::new(publisher), Arc::new(InMemoryBroker::new()));
    let project = id("p");
    w.service.init_project(&project).await.unwrap();
    w.service
        .set_total(&project, 1, ProjectStatus::Processing)
        .await
        .unwrap();

    let update = w
        .service
        .mark_item_done(&project, false, None)
        .await
        .unwrap();
    let round = w.service.relay_completions().await.unwrap();

    assert_eq!(update.outcome, ItemOutcome::Completed);
    assert_eq!((round.failed, round.pending), (1, 1));
}
