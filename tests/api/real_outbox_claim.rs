//! The relay's claim on real PostgreSQL is a prepared statement with a
//! generic plan (decision 68): planned on every pass it cost the database
//! more time than the claim itself.

use chrono::Utc;
use diesel::{QueryableByName, sql_types as sql};
use diesel_async::RunQueryDsl;
use smap_identity::{
    adapters::postgres::{self, PgIdentityStore},
    ports::IdentityStore,
};

use crate::servers::fresh_database;

#[derive(QueryableByName, Debug)]
struct Prepared {
    #[diesel(sql_type = sql::BigInt)]
    generic_plans: i64,
    #[diesel(sql_type = sql::BigInt)]
    custom_plans: i64,
}

#[tokio::test]
async fn the_claim_is_prepared_once_per_connection_and_runs_on_a_generic_plan() {
    // Arrange: one connection, so every claim and the check share it.
    let Some(url) = fresh_database().await else {
        return;
    };
    let pool = postgres::pool(&url, 1).unwrap();
    postgres::migrate(&pool).await.unwrap();
    let store = PgIdentityStore::new(pool.clone());
    {
        let mut conn = pool.get().await.unwrap();
        diesel::sql_query(
            "INSERT INTO outbox (event_id, aggregate, routing_key, body) \
             SELECT 'e' || g, 'user:' || g, 'identity.user.registered', '{}' \
             FROM generate_series(1, 3) g",
        )
        .execute(&mut conn)
        .await
        .unwrap();
    }

    // Act: a first claim takes the three rows, six more find them leased.
    let lease = chrono::Duration::seconds(30);
    let first = store.claim_outbox(Utc::now(), 100, lease).await.unwrap();
    for _ in 0..6 {
        assert!(
            store
                .claim_outbox(Utc::now(), 100, lease)
                .await
                .unwrap()
                .is_empty()
        );
    }

    // Assert
    let events: Vec<&str> = first.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(events, ["e1", "e2", "e3"]);
    assert_eq!(first[0].aggregate, "user:1");
    assert_eq!(first[0].routing_key, "identity.user.registered");
    let mut conn = pool.get().await.unwrap();
    let prepared: Vec<Prepared> = diesel::sql_query(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements \
         WHERE statement LIKE 'UPDATE outbox SET locked_until%'",
    )
    .load(&mut conn)
    .await
    .unwrap();
    assert_eq!(prepared.len(), 1, "one prepared claim: {prepared:?}");
    assert_eq!(
        prepared[0].generic_plans + prepared[0].custom_plans,
        7,
        "every claim ran the same prepared statement: {prepared:?}"
    );
    assert!(
        prepared[0].generic_plans >= 1,
        "PostgreSQL stopped planning it after five runs: {prepared:?}"
    );
}
