//! The Redis progress store against a real Redis: the shared contract, the
//! key layout, TTLs, database isolation and script reloading.

use fred::prelude::{
    Builder, ClientLike, Config, HashesInterface, KeysInterface, LuaInterface, Pool, ServerConfig,
    SetsInterface,
};
use smap_identity::{
    adapters::redis::{RedisClients, RedisProgressStore},
    contract,
    domain::progress::{ItemId, PROGRESS_TTL_SECONDS, ProjectId, ProjectStatus},
    ports::ProgressStore,
};
use uuid::Uuid;

use crate::servers::redis;

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", Uuid::new_v4().simple())
}

/// A plain client on `db`, to look at what the store wrote.
async fn raw(db: u8) -> Option<Pool> {
    let settings = redis()?;
    let config = Config {
        server: ServerConfig::new_centralized(settings.host, settings.port),
        database: Some(db),
        ..Config::default()
    };
    let pool = Builder::from_config(config).build_pool(1).expect("pool");
    pool.init().await.expect("raw client connects");
    Some(pool)
}

async fn store() -> Option<(RedisClients, RedisProgressStore)> {
    let clients = RedisClients::connect(&redis()?).await.expect("clients");
    let store = RedisProgressStore::new(clients.state.clone());
    Some((clients, store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_redis_store_keeps_the_progress_store_contract() {
    let Some((clients, store)) = store().await else {
        return;
    };
    contract::progress_store::run_all(std::sync::Arc::new(store), &unique("contract")).await;
    clients.shutdown().await;
}

#[tokio::test]
async fn state_lives_in_db_1_as_a_hash_and_nothing_is_written_to_db_0() {
    let Some((clients, store)) = store().await else {
        return;
    };
    let (Some(db1), Some(db0)) = (raw(1).await, raw(0).await) else {
        return;
    };
    let project = ProjectId::parse(&unique("layout")).unwrap();
    let key = format!("smap:proj:{project}");

    store.init(&project).await.unwrap();
    store
        .set_total(&project, 4, ProjectStatus::Processing)
        .await
        .unwrap();
    store
        .mark_item_done(&project, true, Some(&ItemId::parse("i-1").unwrap()))
        .await
        .unwrap();

    let fields: std::collections::HashMap<String, String> = db1.next().hgetall(&key).await.unwrap();
    assert_eq!(fields["status"], "PROCESSING");
    assert_eq!(
        (
            fields["total"].as_str(),
            fields["done"].as_str(),
            fields["errors"].as_str()
        ),
        ("4", "1", "1")
    );
    let items: Vec<String> = db1.next().smembers(format!("{key}:items")).await.unwrap();
    assert_eq!(items, ["i-1"]);
    let in_db0: i64 = db0
        .next()
        .exists(vec![key.clone(), format!("{key}:items")])
        .await
        .unwrap();
    assert_eq!(in_db0, 0);
    clients.shutdown().await;
}

#[tokio::test]
async fn every_write_sets_and_refreshes_the_ttl_of_both_keys() {
    let Some((clients, store)) = store().await else {
        return;
    };
    let Some(db1) = raw(1).await else { return };
    let project = ProjectId::parse(&unique("ttl")).unwrap();
    let key = format!("smap:proj:{project}");
    let items = format!("{key}:items");

    store.init(&project).await.unwrap();
    let ttl: i64 = db1.next().ttl(&key).await.unwrap();
    assert!(
        (PROGRESS_TTL_SECONDS - 2..=PROGRESS_TTL_SECONDS).contains(&ttl),
        "ttl {ttl}"
    );

    let _: () = db1.next().expire(&key, 100, None).await.unwrap();
    store
        .set_total(&project, 9, ProjectStatus::Crawling)
        .await
        .unwrap();
    let ttl: i64 = db1.next().ttl(&key).await.unwrap();
    assert!(ttl > 100, "set_total refreshed the TTL: {ttl}");

    let _: () = db1.next().expire(&key, 100, None).await.unwrap();
    store
        .mark_item_done(&project, false, Some(&ItemId::parse("x").unwrap()))
        .await
        .unwrap();
    let (hash_ttl, items_ttl): (i64, i64) = (
        db1.next().ttl(&key).await.unwrap(),
        db1.next().ttl(&items).await.unwrap(),
    );
    assert!(
        hash_ttl > 100,
        "mark_item_done refreshed the hash TTL: {hash_ttl}"
    );
    assert!(
        items_ttl > PROGRESS_TTL_SECONDS - 5,
        "the item set has the TTL too: {items_ttl}"
    );
    clients.shutdown().await;
}

#[tokio::test]
async fn reading_a_missing_project_creates_no_key() {
    let Some((clients, store)) = store().await else {
        return;
    };
    let Some(db1) = raw(1).await else { return };
    let project = ProjectId::parse(&unique("ghost")).unwrap();

    assert_eq!(store.get_progress(&project).await.unwrap(), None);

    let exists: i64 = db1
        .next()
        .exists(format!("smap:proj:{project}"))
        .await
        .unwrap();
    assert_eq!(exists, 0);
    clients.shutdown().await;
}

#[tokio::test]
async fn scripts_are_reloaded_after_a_script_flush() {
    let Some((clients, store)) = store().await else {
        return;
    };
    let Some(db1) = raw(1).await else { return };
    let project = ProjectId::parse(&unique("noscript")).unwrap();
    store.init(&project).await.unwrap();

    let _: () = db1.next().script_flush(false).await.unwrap();
    store
        .set_total(&project, 1, ProjectStatus::Processing)
        .await
        .expect("set_total reloads its script");
    let update = store
        .mark_item_done(&project, false, None)
        .await
        .expect("mark reloads its script");

    assert_eq!(update.progress.status, ProjectStatus::Done);
    clients.shutdown().await;
}
