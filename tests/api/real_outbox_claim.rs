//! The relay's claim on real PostgreSQL after an outage's backlog builds up
//! in an outbox that was nearly empty (decision 68): the claim is planned
//! for the table as it is now, not with a plan cached while it was empty.

use std::time::{Duration, Instant};

use chrono::Utc;
use diesel_async::RunQueryDsl;
use smap_identity::{
    adapters::postgres::{self, PgIdentityStore},
    ports::IdentityStore,
};

use crate::servers::fresh_database;

const PENDING: i64 = 10_000;

#[tokio::test]
async fn a_claim_stays_fast_when_the_backlog_grows_from_empty_on_one_connection() {
    // Arrange: one connection, so every claim runs on it; six claims of an
    // empty outbox are what makes PostgreSQL cache a generic plan of a
    // prepared statement.
    let Some(url) = fresh_database().await else {
        return;
    };
    let pool = postgres::pool_with_timeout(&url, 1, Some(Duration::from_secs(2))).unwrap();
    postgres::migrate(&pool).await.unwrap();
    let store = PgIdentityStore::new(pool.clone());
    let lease = chrono::Duration::seconds(30);
    for _ in 0..6 {
        assert!(
            store
                .claim_outbox(Utc::now(), 100, lease)
                .await
                .unwrap()
                .is_empty()
        );
    }
    {
        let mut conn = pool.get().await.unwrap();
        let queued = diesel::sql_query(format!(
            "INSERT INTO outbox (event_id, aggregate, routing_key, body) \
             SELECT 'e' || g, 'user:' || g, 'identity.user.registered', '{{}}' \
             FROM generate_series(1, {PENDING}) g"
        ))
        .execute(&mut conn)
        .await
        .unwrap();
        assert_eq!(queued as i64, PENDING);
    }

    // Act
    let started = Instant::now();
    let claimed = store.claim_outbox(Utc::now(), 256, lease).await;
    let took = started.elapsed();

    // Assert: a full batch, oldest first, well inside the 2 s bound (a
    // generic plan made for the empty table took 75 s here).
    let claimed = claimed.expect("the claim is not cancelled by the 2 s statement timeout");
    assert_eq!(claimed.len(), 256);
    assert_eq!(claimed[0].event_id, "e1");
    assert_eq!(claimed[255].event_id, "e256");
    assert!(took < Duration::from_secs(1), "the claim took {took:?}");
}
