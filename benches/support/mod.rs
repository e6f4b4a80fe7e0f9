//! What several benchmarks share: their environment, a typical event and
//! an event service around any publisher. (A directory module, so Cargo
//! does not take it for a benchmark of its own.)

// Each benchmark uses a part of this module.
#![allow(dead_code)]

use std::sync::Arc;

use chrono::{Duration, Utc};
use smap_identity::{
    adapters::{
        memory::InMemoryPlanCatalog,
        system::{RandomIds, SystemClock},
    },
    domain::{
        billing::PlanCode,
        billing::SubscriptionStatus,
        events::{EventData, EventService, SubscriptionCreatedPayload},
        timestamp::Timestamp,
    },
    ports::EventPublisher,
};
use uuid::Uuid;

/// A variable `scripts/bench.sh` sets.
pub fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} must be set: run scripts/bench.sh"))
}

/// A `subscription.created` for a new trial: the commonest event.
pub fn trial() -> EventData {
    let now = Utc::now();
    EventData::SubscriptionCreated(SubscriptionCreatedPayload {
        subscription_id: Uuid::new_v4(),
        user_id: Uuid::new_v4(),
        plan_code: PlanCode::free(),
        status: SubscriptionStatus::Trialing,
        created_at: Timestamp::new(now),
        trial_start: Some(Timestamp::new(now)),
        trial_end: Some(Timestamp::new(now + Duration::days(14))),
        subscription_start: None,
        subscription_end: None,
    })
}

/// The event service of the app, over `publisher`.
pub fn event_service(publisher: Arc<dyn EventPublisher>) -> EventService {
    EventService::new(
        publisher,
        Arc::new(SystemClock),
        Arc::new(RandomIds),
        Arc::new(InMemoryPlanCatalog::with_defaults()),
    )
}
