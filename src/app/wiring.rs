//! Wiring: which adapter serves which port, decided from `Settings`. An unset
//! `AMQP_URL`, `REDIS_HOST`, `DATABASE_URL` or `SMTP_HOST` selects the
//! in-memory (or log) adapter.

use std::sync::Arc;

use secrecy::ExposeSecret;

use crate::{
    adapters::{
        amqp::{AmqpBroker, AmqpConfig, AmqpEventPublisher, AmqpHealth},
        argon2::{Argon2Hasher, HashBound},
        mail::{LogMailer, SmtpMailer},
        memory::{
            InMemoryBroker, InMemoryDedup, InMemoryEventBus, InMemoryHealth, InMemoryIdentityStore,
            InMemoryProgressStore,
        },
        postgres::{self, PgHealth, PgIdentityStore},
        redis::{RedisClients, RedisDedup, RedisHealth},
        system::{RandomIds, RandomOtps, SystemClock},
    },
    app::config::Settings,
    ports::{
        Clock, DedupStore, EventPublisher, HealthIndicator, IdGenerator, IdentityStore, Mailer,
        OtpSource, PasswordHasher, PlanCatalog, ProgressStore, StorePlanCatalog,
    },
};

/// Connections to close on shutdown.
#[derive(Clone, Default)]
pub struct Resources {
    pub amqp: Option<AmqpBroker>,
    pub redis: Option<RedisClients>,
}

impl Resources {
    /// Closes every connection, each bounded in time.
    pub async fn shutdown(&self) {
        if let Some(amqp) = &self.amqp {
            amqp.close().await;
        }
        if let Some(redis) = &self.redis {
            redis.shutdown().await;
        }
    }
}

/// Every port's adapter, plus a description of each for the start-up line.
pub struct Adapters {
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    pub publisher: Arc<dyn EventPublisher>,
    pub progress: Arc<dyn ProgressStore>,
    pub plans: Arc<dyn PlanCatalog>,
    pub identity: Arc<dyn IdentityStore>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub otps: Arc<dyn OtpSource>,
    pub mailer: Arc<dyn Mailer>,
    pub dedup: Arc<dyn DedupStore>,
    pub health: Vec<Arc<dyn HealthIndicator>>,
    /// `(port, adapter)` pairs, in wiring order.
    pub described: Vec<(&'static str, String)>,
    /// The in-process broker, when the event bus is in memory (tests read it).
    pub memory_broker: Option<Arc<InMemoryBroker>>,
    /// The PostgreSQL store and its URL, for the outbox relay's LISTEN
    /// connection.
    pub outbox_listen: Option<(Arc<PgIdentityStore>, String)>,
    pub resources: Resources,
}

struct Bus {
    publisher: Arc<dyn EventPublisher>,
    health: Arc<dyn HealthIndicator>,
    described: String,
    memory: Option<Arc<InMemoryBroker>>,
    amqp: Option<AmqpBroker>,
}

struct Progress {
    store: Arc<dyn ProgressStore>,
    health: Arc<dyn HealthIndicator>,
    described: String,
    redis: Option<RedisClients>,
}

impl Adapters {
    /// Chooses adapters from the settings, connecting to the servers named.
    pub async fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let bus = match &settings.amqp_url {
            Some(url) => amqp_bus(
                settings,
                AmqpBroker::connect(
                    url.expose_secret(),
                    AmqpConfig {
                        queue_type: settings.amqp_queue_type,
                        ..AmqpConfig::default()
                    },
                )
                .await,
            ),
            None => memory_bus(settings),
        };
        let progress = match &settings.redis {
            Some(redis) => {
                let clients = RedisClients::connect(redis).await?;
                Progress {
                    store: Arc::new(clients.progress_store(redis)),
                    health: Arc::new(RedisHealth::new(clients.state.clone(), redis.state_db)),
                    described: format!("redis ({}, db {})", redis.address(), redis.state_db),
                    redis: Some(clients),
                }
            }
            None => memory_progress(clock.clone()),
        };
        let cache = progress.redis.as_ref().map(|r| r.cache.clone());
        let mut adapters = Self::assemble(settings, clock, Arc::new(RandomIds), bus, progress);
        adapters.use_configured_mailer(settings)?;
        if let Some(cache) = cache {
            adapters.dedup = Arc::new(RedisDedup::new(cache));
            adapters.describe("dedup", "redis (db 0)".to_owned());
        }
        if let Some(url) = &settings.database_url {
            let pool = postgres::pool_with_timeout(
                url.expose_secret(),
                16,
                settings.database_statement_timeout,
            )?;
            if settings.migrate_on_start {
                let applied = migrate_with_retries(&pool).await?;
                tracing::info!(applied = ?applied, "database migrations up to date");
            } else {
                // The migration Job applies them; `/ready` answers 503 until
                // the schema is current (PgHealth).
                tracing::info!(
                    "MIGRATE_ON_START=false: leaving migrations to `smap-identity migrate`"
                );
            }
            let store = Arc::new(PgIdentityStore::new(pool.clone()));
            adapters.outbox_listen = Some((store.clone(), url.expose_secret().to_owned()));
            adapters.use_identity_store(store, "postgres");
            adapters.health.retain(|h| h.component() != "database");
            adapters.health.push(Arc::new(PgHealth::new(pool)));
        }
        Ok(adapters)
    }

    /// Every port on its in-memory adapter.
    pub fn in_memory(
        settings: &Settings,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
    ) -> Self {
        let progress = memory_progress(clock.clone());
        Self::assemble(settings, clock, ids, memory_bus(settings), progress)
    }

    /// The given event bus and progress store; everything else in memory.
    fn assemble(
        settings: &Settings,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        bus: Bus,
        progress: Progress,
    ) -> Self {
        let identity: Arc<dyn IdentityStore> = Arc::new(InMemoryIdentityStore::new());
        let hasher = Argon2Hasher::owasp().bounded(HashBound {
            concurrency: settings.password_hash_concurrency,
            max_wait: settings.password_hash_max_wait,
        });
        let hasher_described = hasher.describe();
        Self {
            clock,
            ids,
            publisher: bus.publisher,
            progress: progress.store,
            plans: Arc::new(StorePlanCatalog::new(identity.clone())),
            identity,
            hasher: Arc::new(hasher),
            otps: Arc::new(RandomOtps),
            mailer: Arc::new(LogMailer),
            dedup: Arc::new(InMemoryDedup::new()),
            health: vec![
                bus.health,
                progress.health,
                Arc::new(InMemoryHealth::new("database", true)),
            ],
            described: vec![
                ("event_publisher", bus.described),
                ("progress_store", progress.described),
                ("identity_store", "memory".into()),
                ("password_hasher", hasher_described),
                ("mailer", "log".into()),
                ("dedup", "memory".into()),
            ],
            memory_broker: bus.memory,
            outbox_listen: None,
            resources: Resources {
                amqp: bus.amqp,
                redis: progress.redis,
            },
        }
    }

    /// SMTP when `SMTP_HOST` is set; the log mailer otherwise.
    pub fn use_configured_mailer(&mut self, settings: &Settings) -> anyhow::Result<()> {
        if let Some(smtp) = &settings.smtp {
            self.mailer =
                Arc::new(SmtpMailer::new(smtp)?.with_pool_size(settings.email_concurrency));
            self.describe(
                "mailer",
                format!("smtp ({}:{}, {:?})", smtp.host, smtp.port, smtp.tls),
            );
        }
        Ok(())
    }

    fn describe(&mut self, port: &str, adapter: String) {
        for (p, a) in &mut self.described {
            if *p == port {
                *a = adapter.clone();
            }
        }
    }

    /// Serves accounts, plans and subscriptions (and the plan catalogue
    /// events are checked against) from `store`.
    pub fn use_identity_store(&mut self, store: Arc<dyn IdentityStore>, described: &str) {
        self.plans = Arc::new(StorePlanCatalog::new(store.clone()));
        self.identity = store;
        self.describe("identity_store", described.to_owned());
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

/// Start-up may race the database's own start: retry for about 20 s.
async fn migrate_with_retries(pool: &postgres::PgPool) -> anyhow::Result<Vec<String>> {
    let mut attempt = 1;
    loop {
        match postgres::migrate(pool).await {
            Ok(applied) => return Ok(applied),
            Err(error) if attempt < 10 => {
                tracing::warn!(attempt, error = %format!("{error:#}"), "database not ready; retrying migrations");
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
            Err(error) => return Err(error.context("DATABASE_URL: migrations could not run")),
        }
    }
}

fn memory_progress(clock: Arc<dyn Clock>) -> Progress {
    Progress {
        store: Arc::new(InMemoryProgressStore::new(clock)),
        health: Arc::new(InMemoryHealth::new("redis", false)),
        described: "memory".into(),
        redis: None,
    }
}

fn memory_bus(settings: &Settings) -> Bus {
    let broker = Arc::new(InMemoryBroker::with_smap_topology());
    let primary: Arc<dyn EventPublisher> = Arc::new(InMemoryEventBus::new(broker.clone()));
    #[cfg(feature = "legacy-fanout")]
    let legacy: Arc<dyn crate::adapters::legacy::LegacySink> = Arc::new(
        crate::adapters::memory::InMemoryLegacySink::new(broker.clone()),
    );
    #[cfg(not(feature = "legacy-fanout"))]
    let legacy = ();
    let (publisher, mode) = with_legacy(settings, primary, legacy);
    Bus {
        publisher,
        health: Arc::new(InMemoryHealth::new("rabbitmq", true)),
        described: format!("memory{mode}"),
        memory: Some(broker),
        amqp: None,
    }
}

fn amqp_bus(settings: &Settings, broker: AmqpBroker) -> Bus {
    let primary: Arc<dyn EventPublisher> = Arc::new(AmqpEventPublisher::new(broker.clone()));
    #[cfg(feature = "legacy-fanout")]
    let legacy: Arc<dyn crate::adapters::legacy::LegacySink> =
        Arc::new(crate::adapters::amqp::AmqpLegacySink::new(broker.clone()));
    #[cfg(not(feature = "legacy-fanout"))]
    let legacy = ();
    let (publisher, mode) = with_legacy(settings, primary, legacy);
    Bus {
        publisher,
        health: Arc::new(AmqpHealth::new(broker.clone())),
        described: format!("rabbitmq{mode}"),
        memory: None,
        amqp: Some(broker),
    }
}

/// Wraps the primary publisher in the dual-publish composite.
#[cfg(feature = "legacy-fanout")]
fn with_legacy(
    settings: &Settings,
    primary: Arc<dyn EventPublisher>,
    legacy: Arc<dyn crate::adapters::legacy::LegacySink>,
) -> (Arc<dyn EventPublisher>, String) {
    use crate::adapters::{legacy::DualPublisher, mail::templates::EmailTemplates};

    let templates = match EmailTemplates::new() {
        Ok(t) => Arc::new(t),
        Err(e) => {
            // The templates are compiled in and tested; if they ever failed
            // to load, publish without legacy copies rather than not start.
            tracing::error!(error = %e, "e-mail templates failed to load; legacy copies disabled");
            return (primary, " (dual-publish off: templates failed)".into());
        }
    };
    let dual = settings.enable_dual_publish;
    let publisher = DualPublisher::new(primary, legacy, dual, templates);
    (
        Arc::new(publisher),
        format!(" (dual-publish {})", if dual { "on" } else { "off" }),
    )
}

#[cfg(not(feature = "legacy-fanout"))]
fn with_legacy(
    _settings: &Settings,
    primary: Arc<dyn EventPublisher>,
    _legacy: (),
) -> (Arc<dyn EventPublisher>, String) {
    (primary, String::new())
}
