//! `DATABASE_STATEMENT_TIMEOUT_SECS` on real PostgreSQL (decision 65): a
//! statement stuck behind a lock is cancelled by the server itself (the
//! client sets no timeout of its own: an answer at all is the server's
//! cancellation), so the caller gets a retryable error after about the
//! bound; migrations are not bounded.

use std::time::{Duration, Instant};

use chrono::Utc;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use secrecy::SecretString;
use smap_identity::{
    adapters::postgres::{self, PgIdentityStore},
    app::wiring::Adapters,
    ports::{IdentityStore, StoreError},
};

use crate::{
    helpers::{PASSWORD, Remote},
    servers::{fresh_database, real_settings, run_app},
};

const BOUND: Duration = Duration::from_secs(1);

/// A connection holding `LOCK TABLE <table> IN ACCESS EXCLUSIVE MODE` in an
/// open transaction: what a migration rewriting the table, or a stuck
/// session, does to every statement on it.
async fn lock(url: &str, table: &str) -> AsyncPgConnection {
    let mut holder = AsyncPgConnection::establish(url).await.unwrap();
    diesel::sql_query("BEGIN")
        .execute(&mut holder)
        .await
        .unwrap();
    diesel::sql_query(format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        .execute(&mut holder)
        .await
        .unwrap();
    holder
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relays_statements_behind_a_held_lock_fail_after_the_bound() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let pool = postgres::pool_with_timeout(&url, 2, Some(BOUND)).unwrap();
    postgres::migrate(&pool).await.unwrap();
    let store = PgIdentityStore::new(pool);
    let mut holder = lock(&url, "outbox").await;

    let started = Instant::now();
    let claim = store
        .claim_outbox(Utc::now(), 100, chrono::Duration::seconds(30))
        .await;
    let claim_took = started.elapsed();
    let backlog = store.outbox_backlog().await;
    let purge = store.purge_outbox(Utc::now(), 10).await;
    let all_took = started.elapsed();
    diesel::sql_query("ROLLBACK")
        .execute(&mut holder)
        .await
        .unwrap();
    let after = store
        .claim_outbox(Utc::now(), 100, chrono::Duration::seconds(30))
        .await;

    assert!(
        matches!(claim, Err(StoreError::Unavailable(_))),
        "a cancelled statement is the database being unavailable: {claim:?}"
    );
    assert!(
        matches!(backlog, Err(StoreError::Unavailable(_))),
        "{backlog:?}"
    );
    assert!(
        matches!(purge, Err(StoreError::Unavailable(_))),
        "{purge:?}"
    );
    assert!(
        claim_took >= BOUND && claim_took < BOUND * 4,
        "the claim waited {claim_took:?}, the bound is {BOUND:?}"
    );
    assert!(all_took < BOUND * 8, "three statements took {all_took:?}");
    assert_eq!(after.map(|rows| rows.len()).ok(), Some(0), "usable again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_behind_a_held_lock_answers_503_within_the_bound_and_then_201() {
    let Some(mut settings) = real_settings() else {
        return;
    };
    let Some(url) = fresh_database().await else {
        return;
    };
    settings.database_url = Some(SecretString::from(url.clone()));
    settings.database_statement_timeout = Some(BOUND);
    let adapters = Adapters::from_settings(&settings).await.unwrap();
    let (base, ..) = run_app(&settings, adapters);
    let api = Remote::new(&base);
    let mut holder = lock(&url, "users").await;

    let started = Instant::now();
    let (status, body) = api.register("locked@example.com", PASSWORD).await;
    let took = started.elapsed();
    diesel::sql_query("ROLLBACK")
        .execute(&mut holder)
        .await
        .unwrap();
    let (retry, retry_body) = api.register("locked@example.com", PASSWORD).await;

    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error_code"], 50300, "the SMAP error envelope: {body}");
    assert!(
        body["message"].as_str().unwrap_or("").contains("database"),
        "{body}"
    );
    assert!(took < BOUND * 5, "answered after {took:?}");
    assert_eq!(retry, 201, "{retry_body}");
}
