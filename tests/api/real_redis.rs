//! The Redis progress store against a real Redis: the shared contract, the
//! key layout (the completion record included), TTLs, database isolation
//! and script reloading.

use fred::prelude::{
    Builder, ClientLike, Config, HashesInterface, KeysInterface, LuaInterface, Pool, ServerConfig,
    SetsInterface,
};
use smap_identity::{
    adapters::redis::{RedisClients, RedisProgressStore},
    domain::{
        events::EventId,
        progress::{
            COMPLETION_LEASE, CompletionStamp, ItemId, ItemReport, PROGRESS_TTL_SECONDS, ProjectId,
            ProjectStatus, ReportKey,
        },
        timestamp::Timestamp,
    },
    ports::ProgressStore,
};
use uuid::Uuid;

/// A caller's stamp: a fresh event id, now.
pub fn stamp() -> CompletionStamp {
    CompletionStamp {
        event_id: EventId::from_uuid(Uuid::new_v4()),
        at: Timestamp::new(chrono::Utc::now()),
        lease: COMPLETION_LEASE,
    }
}

/// A report of `item_id`, or a call of its own without one.
pub fn report(is_error: bool, item_id: Option<&str>) -> ItemReport {
    ItemReport {
        is_error,
        key: match item_id {
            Some(id) => ReportKey::Item(ItemId::parse(id).unwrap()),
            None => ReportKey::Call(Uuid::new_v4()),
        },
        stamp: stamp(),
    }
}

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

/// `ZSCORE` (the service's fred build has no sorted-set commands).
pub async fn zscore(pool: &Pool, key: &str, member: &str) -> Option<String> {
    pool.next()
        .eval(
            "return redis.call('ZSCORE', KEYS[1], ARGV[1])",
            vec![key.to_owned()],
            vec![member.to_owned()],
        )
        .await
        .unwrap()
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
    let Some(db1) = raw(1).await else { return };
    // Completion keys of its own: the suite claims whatever is due there.
    let prefix = unique("test:completions");
    let store = store.with_completion_prefix(&prefix);
    smap_identity::ports::suites::progress_store::run_all(
        std::sync::Arc::new(store),
        &unique("contract"),
    )
    .await;
    let _: i64 = db1
        .next()
        .del(vec![
            format!("{prefix}:records"),
            format!("{prefix}:pending"),
        ])
        .await
        .unwrap();
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
        .set_total(&project, 2, ProjectStatus::Processing, &stamp())
        .await
        .unwrap();
    store
        .mark_item_done(&project, &report(true, Some("i-1")))
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
        ("2", "1", "1")
    );
    assert_eq!(
        fields.len(),
        4,
        "only the four fields before DONE: {fields:?}"
    );
    let items: Vec<String> = db1.next().smembers(format!("{key}:items")).await.unwrap();
    assert_eq!(items, ["i-1"]);

    // The last report, without an item id: its call token, and the
    // completion recorded in the same step.
    let last = report(false, None);
    let ReportKey::Call(token) = last.key else {
        unreachable!()
    };
    let update = store.mark_item_done(&project, &last).await.unwrap();
    let claim = update.completion.unwrap().claimed.unwrap();
    let fields: std::collections::HashMap<String, String> = db1.next().hgetall(&key).await.unwrap();
    let event_id = last.stamp.event_id.to_string();
    assert_eq!(fields["status"], "DONE");
    assert_eq!(fields["completed_event_id"], event_id);
    assert_eq!(fields["completed_at"], last.stamp.at.to_string());
    assert_eq!(fields["completed_by"], format!("call:{token}"));
    assert_eq!(fields["completed_published"], "0");
    let calls: Vec<String> = db1.next().smembers(format!("{key}:calls")).await.unwrap();
    assert_eq!(calls, [token.to_string()]);
    let record: String = db1
        .next()
        .hget("smap:proj:completions:records", &event_id)
        .await
        .unwrap();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(
        record,
        serde_json::json!({"project_id": project.as_str(), "total": 2, "done": 2, "errors": 1,
            "completed_at": last.stamp.at.to_string()})
    );
    assert_eq!(
        zscore(&db1, "smap:proj:completions:pending", &event_id).await,
        Some(
            last.stamp
                .claim_until()
                .as_datetime()
                .timestamp_millis()
                .to_string()
        )
    );

    store.mark_published(&claim.completion).await.unwrap();
    let published: String = db1.next().hget(&key, "completed_published").await.unwrap();
    assert_eq!(published, "1");
    let left: (Option<String>, Option<String>) = (
        db1.next()
            .hget("smap:proj:completions:records", &event_id)
            .await
            .unwrap(),
        zscore(&db1, "smap:proj:completions:pending", &event_id).await,
    );
    assert_eq!(left, (None, None), "a published completion is forgotten");
    let in_db0: i64 = db0
        .next()
        .exists(vec![
            key.clone(),
            format!("{key}:items"),
            format!("{key}:calls"),
            "smap:proj:completions:records".into(),
            "smap:proj:completions:pending".into(),
        ])
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
        .set_total(&project, 9, ProjectStatus::Crawling, &stamp())
        .await
        .unwrap();
    let ttl: i64 = db1.next().ttl(&key).await.unwrap();
    assert!(ttl > 100, "set_total refreshed the TTL: {ttl}");

    let _: () = db1.next().expire(&key, 100, None).await.unwrap();
    store
        .mark_item_done(&project, &report(false, Some("x")))
        .await
        .unwrap();
    store
        .mark_item_done(&project, &report(false, None))
        .await
        .unwrap();
    let (hash_ttl, items_ttl, calls_ttl): (i64, i64, i64) = (
        db1.next().ttl(&key).await.unwrap(),
        db1.next().ttl(&items).await.unwrap(),
        db1.next().ttl(format!("{key}:calls")).await.unwrap(),
    );
    assert!(
        hash_ttl > 100,
        "mark_item_done refreshed the hash TTL: {hash_ttl}"
    );
    assert!(
        items_ttl > PROGRESS_TTL_SECONDS - 5,
        "the item set has the TTL too: {items_ttl}"
    );
    assert!(
        calls_ttl > PROGRESS_TTL_SECONDS - 5,
        "the call set has the TTL too: {calls_ttl}"
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
        .set_total(&project, 1, ProjectStatus::Processing, &stamp())
        .await
        .expect("set_total reloads its script");
    let update = store
        .mark_item_done(&project, &report(false, None))
        .await
        .expect("mark reloads its script");
    let _: () = db1.next().script_flush(false).await.unwrap();
    let claim = update.completion.unwrap().claimed.unwrap();
    store
        .mark_published(&claim.completion)
        .await
        .expect("mark_published reloads its script");

    assert_eq!(update.progress.status, ProjectStatus::Done);
    clients.shutdown().await;
}
