//! `PgIdentityStore`: the identity store on PostgreSQL. Uniqueness and the
//! one-live-subscription rule are enforced by the database (indexes), and
//! the registration hook runs inside the insert's transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    result::{DatabaseErrorKind, Error as DieselError},
};
use diesel_async::{AsyncConnection, RunQueryDsl, pooled_connection::deadpool::Object};
use uuid::Uuid;

use super::{
    PgPool,
    models::{PlanRow, SubscriptionRow, UserRow},
    schema::{plans, subscriptions, users},
};
use crate::{
    domain::{
        account::{Plan, Subscription, User},
        email::Email,
        plan::PlanCode,
    },
    ports::{IdentityStore, PublishError, StoreError, TxHook},
};

const LIVE: [&str; 3] = ["trialing", "active", "past_due"];

pub struct PgIdentityStore {
    pool: PgPool,
}

/// What a transaction body can fail with.
enum TxError {
    Db(DieselError),
    Hook(PublishError),
}

impl From<DieselError> for TxError {
    fn from(e: DieselError) -> Self {
        TxError::Db(e)
    }
}

fn db_error(error: DieselError) -> StoreError {
    match &error {
        DieselError::NotFound => StoreError::NotFound,
        DieselError::DatabaseError(kind, info) => match (kind, info.constraint_name()) {
            (DatabaseErrorKind::UniqueViolation, Some("users_email_key")) => StoreError::EmailTaken,
            (DatabaseErrorKind::UniqueViolation, Some("plans_code_key")) => {
                StoreError::PlanCodeTaken
            }
            (DatabaseErrorKind::UniqueViolation, Some("subscriptions_one_live_per_user")) => {
                StoreError::LiveSubscriptionExists
            }
            (DatabaseErrorKind::ForeignKeyViolation, Some("subscriptions_plan_code_fkey")) => {
                StoreError::PlanInUse
            }
            (DatabaseErrorKind::ClosedConnection, _) => StoreError::Unavailable(error.into()),
            _ => StoreError::Unexpected(error.into()),
        },
        DieselError::BrokenTransactionManager => StoreError::Unavailable(error.into()),
        _ => StoreError::Unexpected(error.into()),
    }
}

impl PgIdentityStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    async fn conn(&self) -> Result<Object<diesel_async::AsyncPgConnection>, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(anyhow::anyhow!("no database connection: {e}")))
    }

    fn one<R, T>(row: Option<R>) -> Result<Option<T>, StoreError>
    where
        T: TryFrom<R, Error = StoreError>,
    {
        row.map(T::try_from).transpose()
    }

    /// An update or delete of one row by id: none touched means no such row.
    fn found(rows: usize) -> Result<(), StoreError> {
        if rows == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    fn many<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
    where
        T: TryFrom<R, Error = StoreError>,
    {
        rows.into_iter().map(T::try_from).collect()
    }
}

#[async_trait]
impl IdentityStore for PgIdentityStore {
    async fn insert_user_then<'a>(&self, user: &User, hook: TxHook<'a>) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let row = UserRow::from(user);
        let result = conn
            .transaction::<(), TxError, _>(async move |conn| {
                diesel::insert_into(users::table)
                    .values(&row)
                    .execute(conn)
                    .await?;
                hook.await.map_err(TxError::Hook)
            })
            .await;
        match result {
            Ok(()) => Ok(()),
            Err(TxError::Db(e)) => Err(db_error(e)),
            Err(TxError::Hook(e)) => Err(StoreError::RolledBack(e)),
        }
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let mut conn = self.conn().await?;
        let lower = email.as_str().to_lowercase();
        let row = users::table
            .filter(
                diesel::dsl::sql::<diesel::sql_types::Bool>("lower(email) = ")
                    .bind::<diesel::sql_types::Text, _>(lower),
            )
            .select(UserRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(db_error)?;
        Self::one(row)
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        let mut conn = self.conn().await?;
        let row = users::table
            .find(id)
            .select(UserRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(db_error)?;
        Self::one(row)
    }

    async fn update_user(&self, user: &User) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        Self::found(
            diesel::update(users::table.find(user.id))
                .set(&UserRow::from(user))
                .execute(&mut conn)
                .await
                .map_err(db_error)?,
        )
    }

    async fn count_otp_failure(&self, user: Uuid) -> Result<u32, StoreError> {
        let mut conn = self.conn().await?;
        let attempts: i32 = diesel::update(users::table.find(user))
            .set(users::otp_attempts.eq(users::otp_attempts + 1))
            .returning(users::otp_attempts)
            .get_result(&mut conn)
            .await
            .map_err(db_error)?;
        Ok(u32::try_from(attempts).unwrap_or(0))
    }

    async fn list_users(&self, offset: u64, limit: u64) -> Result<(Vec<User>, u64), StoreError> {
        let mut conn = self.conn().await?;
        let rows = users::table
            .order((users::created_at.desc(), users::id))
            .offset(i64::try_from(offset).unwrap_or(i64::MAX))
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .select(UserRow::as_select())
            .load(&mut conn)
            .await
            .map_err(db_error)?;
        let total: i64 = users::table
            .count()
            .get_result(&mut conn)
            .await
            .map_err(db_error)?;
        Ok((Self::many(rows)?, u64::try_from(total).unwrap_or(0)))
    }

    async fn activate_with_subscription(
        &self,
        user: &User,
        subscription: &Subscription,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let user_row = UserRow::from(user);
        let sub_row = SubscriptionRow::from(subscription);
        conn.transaction::<(), DieselError, _>(async move |conn| {
            diesel::update(users::table.find(user_row.id))
                .set(&user_row)
                .execute(conn)
                .await?;
            diesel::insert_into(subscriptions::table)
                .values(&sub_row)
                .execute(conn)
                .await?;
            Ok(())
        })
        .await
        .map_err(db_error)
    }

    async fn plans(&self) -> Result<Vec<Plan>, StoreError> {
        let mut conn = self.conn().await?;
        let rows = plans::table
            .order((plans::price_minor, plans::code))
            .select(PlanRow::as_select())
            .load(&mut conn)
            .await
            .map_err(db_error)?;
        Self::many(rows)
    }

    async fn plan_by_id(&self, id: Uuid) -> Result<Option<Plan>, StoreError> {
        let mut conn = self.conn().await?;
        let row = plans::table
            .find(id)
            .select(PlanRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(db_error)?;
        Self::one(row)
    }

    async fn plan_by_code(&self, code: &PlanCode) -> Result<Option<Plan>, StoreError> {
        let mut conn = self.conn().await?;
        let row = plans::table
            .filter(plans::code.eq(code.as_str()))
            .select(PlanRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(db_error)?;
        Self::one(row)
    }

    async fn insert_plan(&self, plan: &Plan) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        diesel::insert_into(plans::table)
            .values(&PlanRow::from(plan))
            .execute(&mut conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn update_plan(&self, plan: &Plan) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        Self::found(
            diesel::update(plans::table.find(plan.id))
                .set(&PlanRow::from(plan))
                .execute(&mut conn)
                .await
                .map_err(db_error)?,
        )
    }

    async fn delete_plan(&self, id: Uuid) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        Self::found(
            diesel::delete(plans::table.find(id))
                .execute(&mut conn)
                .await
                .map_err(db_error)?,
        )
    }

    async fn subscription_by_id(&self, id: Uuid) -> Result<Option<Subscription>, StoreError> {
        let mut conn = self.conn().await?;
        let row = subscriptions::table
            .find(id)
            .select(SubscriptionRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(db_error)?;
        Self::one(row)
    }

    async fn live_subscription(&self, user: Uuid) -> Result<Option<Subscription>, StoreError> {
        let mut conn = self.conn().await?;
        let row = subscriptions::table
            .filter(subscriptions::user_id.eq(user))
            .filter(subscriptions::status.eq_any(LIVE))
            .select(SubscriptionRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(db_error)?;
        Self::one(row)
    }

    async fn latest_subscription(&self, user: Uuid) -> Result<Option<Subscription>, StoreError> {
        let mut conn = self.conn().await?;
        let row = subscriptions::table
            .filter(subscriptions::user_id.eq(user))
            .order(subscriptions::created_at.desc())
            .select(SubscriptionRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(db_error)?;
        Self::one(row)
    }

    async fn update_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        Self::found(
            diesel::update(subscriptions::table.find(subscription.id))
                .set(&SubscriptionRow::from(subscription))
                .execute(&mut conn)
                .await
                .map_err(db_error)?,
        )
    }

    async fn subscriptions_due(&self, now: DateTime<Utc>) -> Result<Vec<Subscription>, StoreError> {
        let mut conn = self.conn().await?;
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
            .select(SubscriptionRow::as_select())
            .load(&mut conn)
            .await
            .map_err(db_error)?;
        Self::many(rows)
    }
}
