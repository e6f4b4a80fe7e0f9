//! Wiring: which adapter serves which port, decided from `Settings`. An unset
//! `AMQP_URL`, `REDIS_HOST`, `DATABASE_URL` or `SMTP_HOST` selects the
//! in-memory (or log) adapter.

use std::sync::Arc;

use crate::{
    adapters::{
        clock::{RandomIds, SystemClock},
        memory::{
            InMemoryBroker, InMemoryEventBus, InMemoryHealth, InMemoryPlanCatalog,
            InMemoryProgressStore,
        },
    },
    app::config::Settings,
    ports::{Clock, EventPublisher, HealthIndicator, IdGenerator, PlanCatalog, ProgressStore},
};

/// Every port's adapter, plus a description of each for the start-up line.
pub struct Adapters {
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    pub publisher: Arc<dyn EventPublisher>,
    pub progress: Arc<dyn ProgressStore>,
    pub plans: Arc<dyn PlanCatalog>,
    pub health: Vec<Arc<dyn HealthIndicator>>,
    /// `(port, adapter)` pairs, in wiring order.
    pub described: Vec<(&'static str, String)>,
    /// The in-process broker, when the event bus is in memory (tests read it).
    pub memory_broker: Option<Arc<InMemoryBroker>>,
}

impl Adapters {
    /// Chooses adapters from the settings.
    pub async fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        // The real transports arrive with the RabbitMQ/Redis/PostgreSQL/SMTP
        // adapters; until then a configured server is reported, not used.
        for (var, set) in [
            ("AMQP_URL", settings.amqp_url.is_some()),
            ("REDIS_HOST", settings.redis.is_some()),
            ("DATABASE_URL", settings.database_url.is_some()),
            ("SMTP_HOST", settings.smtp.is_some()),
        ] {
            if set {
                tracing::warn!(
                    variable = var,
                    "this build has no adapter for {var} yet; using the in-memory adapter"
                );
            }
        }
        Ok(Self::in_memory(
            settings,
            Arc::new(SystemClock),
            Arc::new(RandomIds),
        ))
    }

    /// Every port on its in-memory adapter.
    pub fn in_memory(
        settings: &Settings,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
    ) -> Self {
        let broker = Arc::new(InMemoryBroker::with_smap_topology());
        let (publisher, publisher_desc) = memory_publisher(settings, &broker);
        Self {
            progress: Arc::new(InMemoryProgressStore::new(clock.clone())),
            clock,
            ids,
            publisher,
            plans: Arc::new(InMemoryPlanCatalog::with_defaults()),
            health: vec![
                Arc::new(InMemoryHealth::new("rabbitmq", true)),
                Arc::new(InMemoryHealth::new("redis", false)),
                Arc::new(InMemoryHealth::new("database", true)),
            ],
            described: vec![
                ("event_publisher", publisher_desc),
                ("progress_store", "memory".into()),
                ("plan_catalog", "memory".into()),
                ("database", "memory".into()),
                ("mailer", "none (e-mail consumers not in this build)".into()),
            ],
            memory_broker: Some(broker),
        }
    }

    /// One line naming every adapter wired: `event_publisher=memory, ...`.
    pub fn summary(&self) -> String {
        self.described
            .iter()
            .map(|(port, adapter)| format!("{port}={adapter}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(feature = "legacy-fanout")]
fn memory_publisher(
    settings: &Settings,
    broker: &Arc<InMemoryBroker>,
) -> (Arc<dyn EventPublisher>, String) {
    use crate::adapters::{
        dual_publish::DualPublisher, memory::InMemoryLegacySink, templates::EmailTemplates,
    };

    let bus = Arc::new(InMemoryEventBus::new(broker.clone()));
    let templates = match EmailTemplates::new() {
        Ok(t) => Arc::new(t),
        Err(e) => {
            // The templates are compiled in and tested; if they ever failed
            // to load, publish without legacy copies rather than not start.
            tracing::error!(error = %e, "e-mail templates failed to load; legacy copies disabled");
            return (bus, "memory".into());
        }
    };
    let dual = settings.enable_dual_publish;
    let publisher = DualPublisher::new(
        bus,
        Arc::new(InMemoryLegacySink::new(broker.clone())),
        dual,
        templates,
    );
    let desc = format!("memory (dual-publish {})", if dual { "on" } else { "off" });
    (Arc::new(publisher), desc)
}

#[cfg(not(feature = "legacy-fanout"))]
fn memory_publisher(
    _settings: &Settings,
    broker: &Arc<InMemoryBroker>,
) -> (Arc<dyn EventPublisher>, String) {
    (
        Arc::new(InMemoryEventBus::new(broker.clone())),
        "memory".into(),
    )
}
