//! `PgIdentityStore`: the identity store on PostgreSQL. Uniqueness and the
//! one-live-subscription rule are enforced by the database (indexes), the
//! registration hook runs inside the insert's transaction, and every slot
//! and transition is one conditional statement (or one transaction), so the
//! rules hold across connections and replicas.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use diesel::{
    prelude::*,
    result::{DatabaseErrorKind, Error as DieselError},
    sql_types as sql,
};
use diesel_async::{AsyncConnection, RunQueryDsl, pooled_connection::deadpool::Object};
use uuid::Uuid;

use super::{
    PgPool,
    models::{PlanRow, ProfileChange, SessionRow, SubscriptionChange, SubscriptionRow, UserRow},
    schema::{plans, sessions, subscriptions, users},
};
use crate::{
    domain::{
        account::{
            OtpChallenge, PasswordHash, Plan, Role, Session, Subscription, SubscriptionPatch, User,
        },
        email::Email,
        plan::PlanCode,
    },
    ports::{
        IdentityStore, OtpSlot, PasswordLimit, PasswordSlot, ProfileChanges, PublishError,
        ResendSlot, StoreError, SweepRule, SweptSubscription, TxHook, UserRef,
    },
};

// `lower(email)`: what the unique index on users compares.
diesel::define_sql_function! { fn lower(x: sql::Text) -> sql::Text; }

const LIVE: [&str; 3] = ["trialing", "active", "past_due"];

pub struct PgIdentityStore {
    pool: PgPool,
}

/// What a transaction body can fail with.
enum TxError {
    Db(DieselError),
    Hook(PublishError),
    Store(StoreError),
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

    async fn id_by_email(
        conn: &mut diesel_async::AsyncPgConnection,
        email: &Email,
    ) -> Result<Option<Uuid>, StoreError> {
        users::table
            .filter(lower(users::email).eq(email.as_str().to_lowercase()))
            .select(users::id)
            .first(conn)
            .await
            .optional()
            .map_err(db_error)
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
            Err(TxError::Store(e)) => Err(e),
        }
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let mut conn = self.conn().await?;
        let row = users::table
            .filter(lower(users::email).eq(email.as_str().to_lowercase()))
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

    async fn take_password_slot(
        &self,
        who: UserRef<'_>,
        now: DateTime<Utc>,
        limit: PasswordLimit,
    ) -> Result<PasswordSlot, StoreError> {
        let mut conn = self.conn().await?;
        let id = match who {
            UserRef::Id(id) => id,
            UserRef::Email(email) => match Self::id_by_email(&mut conn, email).await? {
                Some(id) => id,
                None => return Ok(PasswordSlot::NoUser),
            },
        };
        // One statement: the count and the lock move together, and a lock
        // whose time is over (not null here) starts a new window.
        let row: Option<UserRow> = diesel::sql_query(
            "UPDATE users SET \
               failed_logins = CASE WHEN login_blocked_until IS NOT NULL THEN 1 \
                                    ELSE failed_logins + 1 END, \
               login_blocked_until = CASE \
                 WHEN (CASE WHEN login_blocked_until IS NOT NULL THEN 1 \
                            ELSE failed_logins + 1 END) >= $2 THEN $3 \
                 ELSE NULL END \
             WHERE id = $1 AND (login_blocked_until IS NULL OR login_blocked_until <= $4) \
             RETURNING *",
        )
        .bind::<sql::Uuid, _>(id)
        .bind::<sql::Integer, _>(i32::try_from(limit.max_checks).unwrap_or(i32::MAX))
        .bind::<sql::Timestamptz, _>(now + limit.lock_for)
        .bind::<sql::Timestamptz, _>(now)
        .get_result(&mut conn)
        .await
        .optional()
        .map_err(db_error)?;
        if let Some(row) = row {
            return Ok(PasswordSlot::Granted(User::try_from(row)?));
        }
        let until: Option<Option<DateTime<Utc>>> = users::table
            .find(id)
            .select(users::login_blocked_until)
            .first(&mut conn)
            .await
            .optional()
            .map_err(db_error)?;
        Ok(match until {
            None => PasswordSlot::NoUser,
            // Unlocked between the two statements: refuse this once anyway.
            Some(until) => PasswordSlot::Locked {
                until: until.unwrap_or(now),
            },
        })
    }

    async fn clear_password_failures(
        &self,
        user: Uuid,
        count_at_slot: u32,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        diesel::update(
            users::table
                .find(user)
                .filter(users::failed_logins.eq(i32::try_from(count_at_slot).unwrap_or(i32::MAX))),
        )
        .set((
            users::failed_logins.eq(0),
            users::login_blocked_until.eq(None::<DateTime<Utc>>),
        ))
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn release_password_slot(
        &self,
        user: Uuid,
        count_at_slot: u32,
        limit: PasswordLimit,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        diesel::sql_query(
            "UPDATE users SET failed_logins = failed_logins - 1, \
               login_blocked_until = CASE WHEN failed_logins >= $3 THEN NULL \
                                          ELSE login_blocked_until END \
             WHERE id = $1 AND failed_logins = $2 AND failed_logins > 0",
        )
        .bind::<sql::Uuid, _>(user)
        .bind::<sql::Integer, _>(i32::try_from(count_at_slot).unwrap_or(i32::MAX))
        .bind::<sql::Integer, _>(i32::try_from(limit.max_checks).unwrap_or(i32::MAX))
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn take_otp_slot(
        &self,
        email: &Email,
        now: DateTime<Utc>,
        max_attempts: u32,
    ) -> Result<OtpSlot, StoreError> {
        let mut conn = self.conn().await?;
        let row: Option<UserRow> = diesel::sql_query(
            "UPDATE users SET otp_attempts = otp_attempts + 1 \
             WHERE lower(email) = $1 AND status = 'unverified' AND otp_code IS NOT NULL \
               AND otp_attempts < $2 AND otp_expires_at > $3 \
             RETURNING *",
        )
        .bind::<sql::Text, _>(email.as_str().to_lowercase())
        .bind::<sql::Integer, _>(i32::try_from(max_attempts).unwrap_or(i32::MAX))
        .bind::<sql::Timestamptz, _>(now)
        .get_result(&mut conn)
        .await
        .optional()
        .map_err(db_error)?;
        match row {
            Some(row) => Ok(OtpSlot::Granted(User::try_from(row)?)),
            None => {
                // One connection per call: a pool full of callers each
                // waiting for a second one would deadlock.
                drop(conn);
                Ok(OtpSlot::Refused(self.user_by_email(email).await?))
            }
        }
    }

    async fn take_resend_slot(
        &self,
        user: Uuid,
        now: DateTime<Utc>,
        cooldown: Duration,
        max_attempts: u32,
        fresh: &OtpChallenge,
    ) -> Result<ResendSlot, StoreError> {
        let mut conn = self.conn().await?;
        // Every SET expression reads the row as it was before the update.
        let row: Option<UserRow> = diesel::sql_query(
            "UPDATE users SET \
               otp_code = CASE WHEN otp_code IS NOT NULL AND otp_expires_at > $2 \
                                    AND otp_attempts < $3 THEN otp_code ELSE $4 END, \
               otp_expires_at = CASE WHEN otp_code IS NOT NULL AND otp_expires_at > $2 \
                                    AND otp_attempts < $3 THEN otp_expires_at ELSE $5 END, \
               otp_attempts = CASE WHEN otp_code IS NOT NULL AND otp_expires_at > $2 \
                                    AND otp_attempts < $3 THEN otp_attempts ELSE 0 END, \
               otp_sent_at = $2, updated_at = $2 \
             WHERE id = $1 AND status = 'unverified' \
               AND (otp_sent_at IS NULL OR otp_sent_at <= $6) \
             RETURNING *",
        )
        .bind::<sql::Uuid, _>(user)
        .bind::<sql::Timestamptz, _>(now)
        .bind::<sql::Integer, _>(i32::try_from(max_attempts).unwrap_or(i32::MAX))
        .bind::<sql::Text, _>(fresh.code.as_str())
        .bind::<sql::Timestamptz, _>(fresh.expires_at)
        .bind::<sql::Timestamptz, _>(now - cooldown)
        .get_result(&mut conn)
        .await
        .optional()
        .map_err(db_error)?;
        let Some(row) = row else {
            drop(conn);
            return Ok(ResendSlot::Refused(self.user_by_id(user).await?));
        };
        let user = User::try_from(row)?;
        match user.otp.clone() {
            Some(challenge) => Ok(ResendSlot::Granted(challenge, user)),
            None => Err(StoreError::Unexpected(anyhow::anyhow!(
                "re-send slot taken without an OTP"
            ))),
        }
    }

    async fn release_resend_slot(
        &self,
        user: Uuid,
        taken_at: DateTime<Utc>,
        cooldown: Duration,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        diesel::update(
            users::table
                .find(user)
                .filter(users::otp_sent_at.eq(taken_at)),
        )
        .set(users::otp_sent_at.eq(taken_at - cooldown))
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
        Ok(())
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
        user: Uuid,
        code: &str,
        subscription: &Subscription,
        now: DateTime<Utc>,
    ) -> Result<User, StoreError> {
        let mut conn = self.conn().await?;
        let sub_row = SubscriptionRow::from(subscription);
        let code = code.to_owned();
        let row = conn
            .transaction::<Option<UserRow>, DieselError, _>(async move |conn| {
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
                if row.is_some() {
                    diesel::insert_into(subscriptions::table)
                        .values(&sub_row)
                        .execute(conn)
                        .await?;
                }
                Ok(row)
            })
            .await
            .map_err(db_error)?;
        User::try_from(row.ok_or(StoreError::Conflict)?)
    }

    async fn update_profile(
        &self,
        user: Uuid,
        changes: &ProfileChanges,
        now: DateTime<Utc>,
    ) -> Result<User, StoreError> {
        let mut conn = self.conn().await?;
        let change = ProfileChange {
            full_name: changes.full_name.as_ref().map(|n| n.as_str().to_owned()),
            locale: changes.locale.map(|l| l.as_str().to_owned()),
            updated_at: now,
        };
        let row = diesel::update(users::table.find(user))
            .set(&change)
            .returning(UserRow::as_returning())
            .get_result(&mut conn)
            .await
            .map_err(db_error)?;
        User::try_from(row)
    }

    async fn change_password(
        &self,
        user: Uuid,
        current: &PasswordHash,
        new: &PasswordHash,
        session: &Session,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let (current, new) = (current.0.clone(), new.0.clone());
        let session = SessionRow::from(session);
        let changed = conn
            .transaction::<bool, DieselError, _>(async move |conn| {
                let rows = diesel::update(
                    users::table
                        .find(user)
                        .filter(users::password_hash.eq(current)),
                )
                .set((
                    users::password_hash.eq(new),
                    users::failed_logins.eq(0),
                    users::login_blocked_until.eq(None::<DateTime<Utc>>),
                    users::updated_at.eq(now),
                ))
                .execute(conn)
                .await?;
                if rows == 0 {
                    return Ok(false);
                }
                diesel::delete(sessions::table.filter(sessions::user_id.eq(user)))
                    .execute(conn)
                    .await?;
                diesel::insert_into(sessions::table)
                    .values(&session)
                    .execute(conn)
                    .await?;
                Ok(true)
            })
            .await
            .map_err(db_error)?;
        if changed {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    async fn set_role(
        &self,
        email: &Email,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<User, StoreError> {
        let mut conn = self.conn().await?;
        let row = diesel::update(
            users::table.filter(lower(users::email).eq(email.as_str().to_lowercase())),
        )
        .set((users::role.eq(role.as_str()), users::updated_at.eq(now)))
        .returning(UserRow::as_returning())
        .get_result(&mut conn)
        .await
        .map_err(db_error)?;
        User::try_from(row)
    }

    async fn insert_session(
        &self,
        session: &Session,
        checked: &PasswordHash,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        // One statement: the session exists only if the hash that was
        // checked is still the account's (a password change deletes the
        // sessions in the transaction that replaces the hash).
        let rows = diesel::sql_query(
            "INSERT INTO sessions (id, user_id, created_at, expires_at) \
             SELECT $1, id, $2, $3 FROM users WHERE id = $4 AND password_hash = $5",
        )
        .bind::<sql::Uuid, _>(session.id)
        .bind::<sql::Timestamptz, _>(session.created_at)
        .bind::<sql::Timestamptz, _>(session.expires_at)
        .bind::<sql::Uuid, _>(session.user_id)
        .bind::<sql::Text, _>(checked.0.as_str())
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
        if rows == 0 {
            Err(StoreError::Conflict)
        } else {
            Ok(())
        }
    }

    async fn session_user(
        &self,
        session: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        let mut conn = self.conn().await?;
        let row = sessions::table
            .inner_join(users::table)
            .filter(sessions::id.eq(session))
            .filter(sessions::expires_at.gt(now))
            .select(UserRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(db_error)?;
        Self::one(row)
    }

    async fn delete_session(&self, session: Uuid) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        diesel::delete(sessions::table.find(session))
            .execute(&mut conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        let rows = diesel::delete(sessions::table.filter(sessions::expires_at.le(now)))
            .execute(&mut conn)
            .await
            .map_err(db_error)?;
        Ok(rows as u64)
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

    async fn update_plan(&self, plan: &Plan, read_at: DateTime<Utc>) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
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
            0 if self.plan_by_id(plan.id).await?.is_some() => Err(StoreError::Conflict),
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
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

    async fn transition_subscription(
        &self,
        id: Uuid,
        patch: &SubscriptionPatch,
    ) -> Result<Subscription, StoreError> {
        let mut conn = self.conn().await?;
        let row = diesel::update(
            subscriptions::table
                .find(id)
                .filter(subscriptions::status.eq(patch.from.as_str())),
        )
        .set(&SubscriptionChange::from(patch))
        .returning(SubscriptionRow::as_returning())
        .get_result(&mut conn)
        .await
        .optional()
        .map_err(db_error)?;
        drop(conn);
        match row {
            Some(row) => Subscription::try_from(row),
            None if self.subscription_by_id(id).await?.is_some() => Err(StoreError::Conflict),
            None => Err(StoreError::NotFound),
        }
    }

    async fn sweep_due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        rule: SweepRule<'_>,
    ) -> Result<Vec<SweptSubscription>, StoreError> {
        let mut conn = self.conn().await?;
        let result = conn
            .transaction::<Vec<SweptSubscription>, TxError, _>(async move |conn| {
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
                for row in rows {
                    let s = Subscription::try_from(row).map_err(TxError::Store)?;
                    let Some(patch) = rule(&s).filter(|p| p.from == s.status) else {
                        continue;
                    };
                    let row = diesel::update(subscriptions::table.find(s.id))
                        .set(&SubscriptionChange::from(&patch))
                        .returning(SubscriptionRow::as_returning())
                        .get_result(conn)
                        .await?;
                    swept.push(SweptSubscription {
                        previous: s.status,
                        subscription: Subscription::try_from(row).map_err(TxError::Store)?,
                    });
                }
                Ok(swept)
            })
            .await;
        result.map_err(|e| match e {
            TxError::Db(e) => db_error(e),
            TxError::Store(e) => e,
            TxError::Hook(e) => StoreError::RolledBack(e),
        })
    }
}
