//! Plans and subscriptions on PostgreSQL: activation with a first
//! subscription, the plan catalogue, subscription transitions and the sweep
//! of due subscriptions.

use chrono::{DateTime, Utc};
use diesel::{pg::Pg, prelude::*, result::Error as DieselError};
use diesel_async::{AsyncConnection, RunQueryDsl};
use uuid::Uuid;

use crate::adapters::postgres::{
    models::{PlanRow, SubscriptionChange, SubscriptionRow, UserRow},
    schema::{plans, subscriptions, users},
};
use crate::{
    domain::{
        account::User,
        billing::{Plan, PlanCode, Subscription, SubscriptionPatch},
    },
    ports::{IdentityStore, OutboxEvent, StoreError, SweepRule, SweptSubscription},
};

use super::{
    LIVE, PgIdentityStore,
    support::{Enqueued, TxError, db_error, enqueue, tx_error},
};

pub(super) async fn activate_with_subscription(
    store: &PgIdentityStore,
    user: Uuid,
    code: &str,
    subscription: &Subscription,
    now: DateTime<Utc>,
    events: &[OutboxEvent],
) -> Result<User, StoreError> {
    let mut conn = store.conn().await?;
    let sub_row = SubscriptionRow::from(subscription);
    let code = code.to_owned();
    let link = store.link.clone();
    let (row, enqueued) = conn
        .transaction::<_, DieselError, _>(async move |conn| {
            let row = diesel::update(
                users::table
                    .find(user)
                    .filter(users::status.eq("unverified"))
                    .filter(users::otp_code.eq(code)),
            )
            .set((
                users::status.eq("active"),
                users::otp_code.eq(None::<String>),
                users::otp_expires_at.eq(None::<DateTime<Utc>>),
                users::otp_sent_at.eq(None::<DateTime<Utc>>),
                users::otp_attempts.eq(0),
                users::updated_at.eq(now),
            ))
            .returning(UserRow::as_returning())
            .get_result(conn)
            .await
            .optional()?;
            let mut enqueued = Enqueued::default();
            if row.is_some() {
                diesel::insert_into(subscriptions::table)
                    .values(&sub_row)
                    .execute(conn)
                    .await?;
                enqueued = enqueue(conn, events, &link).await?;
            }
            Ok((row, enqueued))
        })
        .await
        .map_err(db_error)?;
    drop(conn);
    store.committed(enqueued).await;
    let user = User::try_from(row.ok_or(StoreError::Conflict)?)?;
    Ok(user)
}

pub(super) async fn plans(store: &PgIdentityStore) -> Result<Vec<Plan>, StoreError> {
    let mut conn = store.conn().await?;
    let rows = plans::table
        .order((plans::price_minor, plans::code))
        .select(PlanRow::as_select())
        .load(&mut conn)
        .await
        .map_err(db_error)?;
    PgIdentityStore::many(rows)
}

pub(super) async fn plan_by_id(
    store: &PgIdentityStore,
    id: Uuid,
) -> Result<Option<Plan>, StoreError> {
    first_plan(store, plans::table.find(id).into_boxed()).await
}

pub(super) async fn plan_by_code(
    store: &PgIdentityStore,
    code: &PlanCode,
) -> Result<Option<Plan>, StoreError> {
    let query = plans::table.filter(plans::code.eq(code.as_str()));
    first_plan(store, query.into_boxed()).await
}

/// The first plan `query` finds; `None` when it finds none.
async fn first_plan(
    store: &PgIdentityStore,
    query: plans::BoxedQuery<'_, Pg>,
) -> Result<Option<Plan>, StoreError> {
    let mut conn = store.conn().await?;
    let row = query
        .select(PlanRow::as_select())
        .first(&mut conn)
        .await
        .optional()
        .map_err(db_error)?;
    PgIdentityStore::one(row)
}

pub(super) async fn insert_plan(store: &PgIdentityStore, plan: &Plan) -> Result<(), StoreError> {
    let mut conn = store.conn().await?;
    diesel::insert_into(plans::table)
        .values(&PlanRow::from(plan))
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub(super) async fn update_plan(
    store: &PgIdentityStore,
    plan: &Plan,
    read_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut conn = store.conn().await?;
    let rows = diesel::update(
        plans::table
            .find(plan.id)
            .filter(plans::updated_at.eq(read_at)),
    )
    .set(&PlanRow::from(plan))
    .execute(&mut conn)
    .await
    .map_err(db_error)?;
    drop(conn);
    match rows {
        0 if store.plan_by_id(plan.id).await?.is_some() => Err(StoreError::Conflict),
        0 => Err(StoreError::NotFound),
        _ => Ok(()),
    }
}

pub(super) async fn delete_plan(store: &PgIdentityStore, id: Uuid) -> Result<(), StoreError> {
    let mut conn = store.conn().await?;
    PgIdentityStore::found(
        diesel::delete(plans::table.find(id))
            .execute(&mut conn)
            .await
            .map_err(db_error)?,
    )
}

pub(super) async fn subscription_by_id(
    store: &PgIdentityStore,
    id: Uuid,
) -> Result<Option<Subscription>, StoreError> {
    first_subscription(store, subscriptions::table.find(id).into_boxed()).await
}

pub(super) async fn live_subscription(
    store: &PgIdentityStore,
    user: Uuid,
) -> Result<Option<Subscription>, StoreError> {
    let query = subscriptions::table
        .filter(subscriptions::user_id.eq(user))
        .filter(subscriptions::status.eq_any(LIVE));
    first_subscription(store, query.into_boxed()).await
}

pub(super) async fn latest_subscription(
    store: &PgIdentityStore,
    user: Uuid,
) -> Result<Option<Subscription>, StoreError> {
    let query = subscriptions::table
        .filter(subscriptions::user_id.eq(user))
        .order(subscriptions::created_at.desc());
    first_subscription(store, query.into_boxed()).await
}

/// The first subscription `query` finds (the lookups differ only in their
/// filter and order); `None` when it finds none.
async fn first_subscription(
    store: &PgIdentityStore,
    query: subscriptions::BoxedQuery<'_, Pg>,
) -> Result<Option<Subscription>, StoreError> {
    let mut conn = store.conn().await?;
    let row = query
        .select(SubscriptionRow::as_select())
        .first(&mut conn)
        .await
        .optional()
        .map_err(db_error)?;
    PgIdentityStore::one(row)
}

pub(super) async fn transition_subscription(
    store: &PgIdentityStore,
    id: Uuid,
    patch: &SubscriptionPatch,
    events: &[OutboxEvent],
) -> Result<Subscription, StoreError> {
    let mut conn = store.conn().await?;
    let change = SubscriptionChange::from(patch);
    let from = patch.from.as_str();
    let link = store.link.clone();
    let (row, enqueued) = conn
        .transaction::<_, DieselError, _>(async move |conn| {
            let row = diesel::update(
                subscriptions::table
                    .find(id)
                    .filter(subscriptions::status.eq(from)),
            )
            .set(&change)
            .returning(SubscriptionRow::as_returning())
            .get_result(conn)
            .await
            .optional()?;
            // The loser of a race writes no event.
            let mut enqueued = Enqueued::default();
            if row.is_some() {
                enqueued = enqueue(conn, events, &link).await?;
            }
            Ok((row, enqueued))
        })
        .await
        .map_err(db_error)?;
    drop(conn);
    store.committed(enqueued).await;
    match row {
        Some(row) => Subscription::try_from(row),
        None if store.subscription_by_id(id).await?.is_some() => Err(StoreError::Conflict),
        None => Err(StoreError::NotFound),
    }
}

pub(super) async fn sweep_due(
    store: &PgIdentityStore,
    now: DateTime<Utc>,
    limit: u32,
    rule: SweepRule<'_>,
) -> Result<Vec<SweptSubscription>, StoreError> {
    let mut conn = store.conn().await?;
    let link = store.link.clone();
    let result = conn
        .transaction::<_, TxError, _>(async move |conn| {
            // Rows another sweep holds are skipped, not waited for: each
            // replica moves its own batch and none moves a row twice.
            let rows = subscriptions::table
                .filter(
                    subscriptions::status
                        .eq("trialing")
                        .and(subscriptions::trial_end.le(now))
                        .or(subscriptions::status
                            .eq_any(["active", "past_due"])
                            .and(subscriptions::period_end.le(now))),
                )
                .order(subscriptions::created_at)
                .limit(i64::from(limit))
                .for_update()
                .skip_locked()
                .select(SubscriptionRow::as_select())
                .load(conn)
                .await?;
            let mut swept = Vec::new();
            let mut enqueued = Enqueued::default();
            for row in rows {
                let s = Subscription::try_from(row).map_err(TxError::Store)?;
                let Some(step) = rule(&s).filter(|m| m.patch.from == s.status) else {
                    continue;
                };
                let row = diesel::update(subscriptions::table.find(s.id))
                    .set(&SubscriptionChange::from(&step.patch))
                    .returning(SubscriptionRow::as_returning())
                    .get_result(conn)
                    .await?;
                enqueued = enqueued.and(enqueue(conn, &step.outbox, &link).await?);
                swept.push(SweptSubscription {
                    previous: s.status,
                    subscription: Subscription::try_from(row).map_err(TxError::Store)?,
                });
            }
            Ok((swept, enqueued))
        })
        .await;
    let (swept, enqueued) = result.map_err(tx_error)?;
    drop(conn);
    store.committed(enqueued).await;
    Ok(swept)
}
