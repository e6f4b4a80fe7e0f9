//! Migrations on real PostgreSQL with several processes at once (the
//! replicas of `serve` and the Kubernetes migration Job), and `/ready`
//! refusing traffic until the schema is current (`MIGRATE_ON_START=false`).

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use secrecy::SecretString;
use smap_identity::{
    adapters::postgres::{self, MIGRATION_LOCK_KEY},
    app::wiring::Adapters,
};

use crate::{
    helpers::Remote,
    servers::{fresh_database, real_settings, run_app},
};

#[derive(diesel::QueryableByName)]
struct Name {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

/// The tables of `migrations/` that exist in the database at `url`.
async fn tables(url: &str) -> Vec<String> {
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    let mut names: Vec<String> = diesel::sql_query(
        "SELECT table_name::text AS name FROM information_schema.tables \
         WHERE table_schema = 'public' ORDER BY 1",
    )
    .load::<Name>(&mut conn)
    .await
    .unwrap()
    .into_iter()
    .map(|n| n.name)
    .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrations_of_one_fresh_database_both_succeed() {
    let Some(url) = fresh_database().await else {
        return;
    };
    // Four processes' worth of migrators, each with its own pool, started
    // together on an empty database.
    let pools: Vec<_> = (0..4).map(|_| postgres::pool(&url, 2).unwrap()).collect();
    let runs = futures_util::future::join_all(pools.iter().map(postgres::migrate)).await;
    let mut applied: Vec<Vec<String>> = Vec::new();
    for (i, run) in runs.into_iter().enumerate() {
        match run {
            Ok(versions) => applied.push(versions),
            Err(error) => panic!("migrator {i} failed: {error:#}"),
        }
    }
    // One of them applied everything; the others found nothing pending.
    let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
    let pending = postgres::pending_migrations(&mut conn).await.unwrap();
    assert!(pending.is_empty(), "still pending: {pending:?}");
    let all = {
        let fresh = fresh_database().await.unwrap();
        let mut conn = AsyncPgConnection::establish(&fresh).await.unwrap();
        postgres::pending_migrations(&mut conn).await.unwrap()
    };
    assert!(all.len() >= 3, "the embedded migrations: {all:?}");
    let doing_the_work: Vec<_> = applied.iter().filter(|a| !a.is_empty()).collect();
    assert_eq!(
        doing_the_work.len(),
        1,
        "applied by each migrator: {applied:?}"
    );
    assert_eq!(doing_the_work[0], &all, "applied: {applied:?}");
    let tables = tables(&url).await;
    for table in ["__diesel_schema_migrations", "users", "outbox"] {
        assert!(
            tables.iter().any(|t| t == table),
            "{table} missing: {tables:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_waits_for_the_advisory_lock_and_goes_on_when_it_is_released() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let mut holder = AsyncPgConnection::establish(&url).await.unwrap();
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK_KEY)
        .execute(&mut holder)
        .await
        .unwrap();
    // Bounded statements on the pool (decision 65): the wait for the lock
    // outlasts the bound, and migrate must not be cut off by it.
    let pool = postgres::pool_with_timeout(&url, 2, Some(Duration::from_secs(1))).unwrap();
    let migrating = tokio::spawn(async move { postgres::migrate(&pool).await });
    // Three times the bound: the wait outlasts it even if connecting was slow.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !migrating.is_finished(),
        "migrate ran while another process held the migration lock"
    );
    assert!(tables(&url).await.is_empty(), "nothing migrated yet");
    diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK_KEY)
        .execute(&mut holder)
        .await
        .unwrap();
    let applied = tokio::time::timeout(Duration::from_secs(30), migrating)
        .await
        .expect("migrate goes on once the lock is released")
        .unwrap()
        .unwrap();
    assert!(!applied.is_empty());
    // The lock went with the migrator's connection: it is free again.
    #[derive(diesel::QueryableByName)]
    struct Taken {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        taken: bool,
    }
    let taken = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS taken")
        .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK_KEY)
        .get_result::<Taken>(&mut holder)
        .await
        .unwrap();
    assert!(taken.taken, "the migration lock is still held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_migrate_on_start_the_api_is_not_ready_until_the_schema_is_current() {
    let Some(mut settings) = real_settings() else {
        return;
    };
    let Some(url) = fresh_database().await else {
        return;
    };
    settings.database_url = Some(SecretString::from(url.clone()));
    settings.migrate_on_start = false;
    let adapters = Adapters::from_settings(&settings).await.unwrap();
    assert!(tables(&url).await.is_empty(), "serve migrated anyway");
    let (base, handle, _) = run_app(&settings, adapters);
    let api = Remote::new(&base);

    let (status, body) = api.get("/ready", None).await;
    assert_eq!(status, 503, "{body}");
    let database = &body["data"]["checks"]["database"];
    assert_eq!(database["status"], "unhealthy", "{body}");
    assert!(
        !database["details"]["pending_migrations"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{body}"
    );
    let live = api.get_status("/live").await;
    assert_eq!(live, 200, "alive while waiting for the schema");

    // The migration Job runs.
    postgres::migrate(&postgres::pool(&url, 1).unwrap())
        .await
        .unwrap();
    let (status, body) = api.get("/ready", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["checks"]["database"]["details"]["schema"],
        "current"
    );
    handle.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_is_vacuumed_after_a_fixed_number_of_dead_rows_whatever_its_size() {
    #[derive(diesel::QueryableByName)]
    struct Options {
        #[diesel(sql_type = diesel::sql_types::Nullable<
            diesel::sql_types::Array<diesel::sql_types::Text>,
        >)]
        reloptions: Option<Vec<String>>,
    }
    let Some(url) = fresh_database().await else {
        return;
    };
    postgres::migrate(&postgres::pool(&url, 1).unwrap())
        .await
        .unwrap();

    let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
    let options =
        diesel::sql_query("SELECT reloptions FROM pg_class WHERE oid = 'outbox'::regclass")
            .get_result::<Options>(&mut conn)
            .await
            .unwrap()
            .reloptions
            .unwrap_or_default();

    // Decision 67: not 20 % of a day of events, but every 5 000 dead rows,
    // its indexes cleaned each time.
    for expected in [
        "autovacuum_vacuum_scale_factor=0",
        "autovacuum_vacuum_threshold=5000",
        "autovacuum_analyze_scale_factor=0",
        "autovacuum_analyze_threshold=5000",
        "vacuum_index_cleanup=on",
    ] {
        assert!(
            options.iter().any(|o| o == expected),
            "{expected} not in {options:?}"
        );
    }
}
