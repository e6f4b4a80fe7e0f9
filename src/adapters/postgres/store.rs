//! `PgIdentityStore`: the identity store on PostgreSQL. Uniqueness and the
//! one-live-subscription rule are enforced by the database (indexes), the
//! registration hook runs inside the insert's transaction, and every slot
//! and transition is one conditional statement (or one transaction), so the
//! rules hold across connections and replicas.

use std::sync::Arc;

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
    models::{
        NewOutboxRow, OutboxRow, PlanRow, ProfileChange, SessionRow, SubscriptionChange,
        SubscriptionRow, UserRow,
    },
    schema::{outbox, plans, sessions, subscriptions, users},
};
use crate::{
    domain::{
        account::{OtpChallenge, PasswordHash, Role, Session, User},
        billing::{Plan, PlanCode, Subscription, SubscriptionPatch},
        email_address::Email,
    },
    ports::{
        IdentityStore, OtpSlot, OutboxBacklog, OutboxEntry, OutboxEvent, PasswordLimit,
        PasswordSlot, ProfileChanges, PublishError, ResendEvents, ResendSlot, StoreError,
        SweepRule, SweptSubscription, TxHook, UserRef,
    },
};

// `lower(email)`: what the unique index on users compares.
diesel::define_sql_function! { fn lower(x: sql::Text) -> sql::Text; }

const LIVE: [&str; 3] = ["trialing", "active", "past_due"];

/// The `LISTEN/NOTIFY` channel a commit that wrote outbox rows notifies.
pub const OUTBOX_CHANNEL: &str = "outbox";

pub struct PgIdentityStore {
    pool: PgPool,
    wakeup: Arc<tokio::sync::Notify>,
}

/// Writes `events` to the outbox on `conn` (inside the caller's
/// transaction), with the current span's trace context, and notifies the
/// relays: PostgreSQL delivers the NOTIFY at commit, and drops it with a
/// rollback.
async fn enqueue(
    conn: &mut diesel_async::AsyncPgConnection,
    events: &[OutboxEvent],
) -> Result<(), DieselError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut trace = crate::adapters::bus::message::trace_text();
    let rows: Vec<NewOutboxRow> = events
        .iter()
        .map(|e| NewOutboxRow {
            event_id: e.event.event_id().to_string(),
            aggregate: e.aggregate.clone(),
            routing_key: e.event.routing_key().to_string(),
            body: String::from_utf8_lossy(e.event.body()).into_owned(),
            traceparent: trace.get("traceparent").cloned(),
            tracestate: trace.get("tracestate").cloned(),
        })
        .collect();
    trace.clear();
    diesel::insert_into(outbox::table)
        .values(&rows)
        .execute(conn)
        .await?;
    diesel::sql_query(format!("NOTIFY {OUTBOX_CHANNEL}"))
        .execute(conn)
        .await?;
    Ok(())
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
        Self {
            pool,
            wakeup: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Listens on the outbox channel on a connection of its own (a pooled
    /// one would go back to the pool) and wakes the relay on every NOTIFY,
    /// from this process or another; reconnects after a loss, until `stop`.
    pub fn spawn_listener(
        &self,
        url: String,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let wakeup = self.wakeup.clone();
        tokio::spawn(async move {
            use futures_util::StreamExt;
            loop {
                match diesel_async::AsyncPgConnection::establish(&url).await {
                    Ok(mut conn) => {
                        let listen = diesel::sql_query(format!("LISTEN {OUTBOX_CHANNEL}"))
                            .execute(&mut conn)
                            .await;
                        if let Err(error) = listen {
                            tracing::warn!(error = %error, "outbox LISTEN failed; polling only");
                        } else {
                            let mut stream = std::pin::pin!(conn.notifications_stream());
                            loop {
                                tokio::select! {
                                    () = stop.cancelled() => return,
                                    n = stream.next() => match n {
                                        Some(Ok(_)) => wakeup.notify_one(),
                                        Some(Err(error)) => {
                                            tracing::warn!(error = %error, "outbox listener lost its connection");
                                            break;
                                        }
                                        None => break,
                                    },
                                }
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(error = %error, "outbox listener cannot connect; polling only");
                    }
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                }
            }
        })
    }

    async fn conn(&self) -> Result<Object<diesel_async::AsyncPgConnection>, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(anyhow::anyhow!("no database connection: {e}")))
    }

    /// Wakes this process's relay after a commit that wrote outbox rows
    /// (other processes hear the NOTIFY).
    fn wake_if(&self, events: usize) {
        if events > 0 {
            self.wakeup.notify_one();
        }
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

    async fn insert_user_enqueue(
        &self,
        user: &User,
        events: &[OutboxEvent],
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let row = UserRow::from(user);
        conn.transaction::<(), DieselError, _>(async move |conn| {
            diesel::insert_into(users::table)
                .values(&row)
                .execute(conn)
                .await?;
            enqueue(conn, events).await
        })
        .await
        .map_err(db_error)?;
        self.wake_if(events.len());
        Ok(())
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
        outbox: ResendEvents<'_>,
    ) -> Result<ResendSlot, StoreError> {
        let mut conn = self.conn().await?;
        let fresh = fresh.clone();
        let granted = conn
            .transaction::<Option<(OtpChallenge, User, usize)>, TxError, _>(async move |conn| {
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
                .get_result(conn)
                .await
                .optional()?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let user = User::try_from(row).map_err(TxError::Store)?;
                let Some(challenge) = user.otp.clone() else {
                    return Err(TxError::Store(StoreError::Unexpected(anyhow::anyhow!(
                        "re-send slot taken without an OTP"
                    ))));
                };
                let events = outbox(&challenge, &user);
                enqueue(conn, &events).await?;
                Ok(Some((challenge, user, events.len())))
            })
            .await
            .map_err(tx_error)?;
        drop(conn);
        match granted {
            Some((challenge, user, events)) => {
                self.wake_if(events);
                Ok(ResendSlot::Granted(challenge, user))
            }
            None => Ok(ResendSlot::Refused(self.user_by_id(user).await?)),
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
        events: &[OutboxEvent],
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
                    enqueue(conn, events).await?;
                }
                Ok(row)
            })
            .await
            .map_err(db_error)?;
        let user = User::try_from(row.ok_or(StoreError::Conflict)?)?;
        self.wake_if(events.len());
        Ok(user)
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
        events: &[OutboxEvent],
    ) -> Result<Subscription, StoreError> {
        let mut conn = self.conn().await?;
        let change = SubscriptionChange::from(patch);
        let from = patch.from.as_str();
        let row = conn
            .transaction::<Option<SubscriptionRow>, DieselError, _>(async move |conn| {
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
                if row.is_some() {
                    enqueue(conn, events).await?;
                }
                Ok(row)
            })
            .await
            .map_err(db_error)?;
        drop(conn);
        match row {
            Some(row) => {
                self.wake_if(events.len());
                Subscription::try_from(row)
            }
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
                    let Some(step) = rule(&s).filter(|m| m.patch.from == s.status) else {
                        continue;
                    };
                    let row = diesel::update(subscriptions::table.find(s.id))
                        .set(&SubscriptionChange::from(&step.patch))
                        .returning(SubscriptionRow::as_returning())
                        .get_result(conn)
                        .await?;
                    enqueue(conn, &step.outbox).await?;
                    swept.push(SweptSubscription {
                        previous: s.status,
                        subscription: Subscription::try_from(row).map_err(TxError::Store)?,
                    });
                }
                Ok(swept)
            })
            .await;
        let swept = result.map_err(tx_error)?;
        // The events are rows now: wake the relay (no event, no harm).
        self.wake_if(swept.len());
        Ok(swept)
    }

    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut conn = self.conn().await?;
        // Only the oldest unpublished row of each aggregate is a candidate
        // (order per aggregate); rows another relay is claiming right now
        // are skipped, not waited for, and a claimed row carries a lease.
        let rows: Vec<OutboxRow> = diesel::sql_query(
            "UPDATE outbox SET locked_until = $2 \
             WHERE id IN ( \
               SELECT o.id FROM outbox o \
               WHERE o.published_at IS NULL \
                 AND (o.locked_until IS NULL OR o.locked_until <= $1) \
                 AND NOT EXISTS (SELECT 1 FROM outbox older \
                                 WHERE older.aggregate = o.aggregate \
                                   AND older.published_at IS NULL AND older.id < o.id) \
               ORDER BY o.id LIMIT $3 \
               FOR UPDATE SKIP LOCKED) \
             RETURNING id, event_id, aggregate, routing_key, body, traceparent, tracestate, \
                       created_at, attempts",
        )
        .bind::<sql::Timestamptz, _>(now)
        .bind::<sql::Timestamptz, _>(now + lease)
        .bind::<sql::BigInt, _>(i64::from(limit))
        .load(&mut conn)
        .await
        .map_err(db_error)?;
        let mut entries: Vec<OutboxEntry> = rows
            .into_iter()
            .map(|r| {
                let mut trace = std::collections::BTreeMap::new();
                if let Some(tp) = r.traceparent {
                    trace.insert("traceparent".to_owned(), tp);
                }
                if let Some(ts) = r.tracestate {
                    trace.insert("tracestate".to_owned(), ts);
                }
                OutboxEntry {
                    id: r.id,
                    aggregate: r.aggregate,
                    event_id: r.event_id,
                    routing_key: r.routing_key,
                    body: r.body,
                    trace,
                    attempts: u32::try_from(r.attempts).unwrap_or(0),
                    created_at: r.created_at,
                }
            })
            .collect();
        entries.sort_by_key(|e| e.id);
        Ok(entries)
    }

    async fn outbox_published(&self, ids: &[i64], now: DateTime<Utc>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        diesel::update(outbox::table.filter(outbox::id.eq_any(ids)))
            .set((
                outbox::published_at.eq(now),
                outbox::locked_until.eq(None::<DateTime<Utc>>),
            ))
            .execute(&mut conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn outbox_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        diesel::update(outbox::table.find(id))
            .set((
                outbox::attempts.eq(outbox::attempts + 1),
                outbox::last_error.eq(error),
                outbox::locked_until.eq(retry_at),
            ))
            .execute(&mut conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn outbox_backlog(&self) -> Result<OutboxBacklog, StoreError> {
        let mut conn = self.conn().await?;
        let (pending, oldest): (i64, Option<DateTime<Utc>>) = outbox::table
            .filter(outbox::published_at.is_null())
            .select((
                diesel::dsl::count_star(),
                diesel::dsl::min(outbox::created_at),
            ))
            .get_result(&mut conn)
            .await
            .map_err(db_error)?;
        Ok(OutboxBacklog {
            pending: u64::try_from(pending).unwrap_or(0),
            oldest,
        })
    }

    async fn purge_outbox(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        let n = diesel::delete(outbox::table.filter(outbox::published_at.lt(before)))
            .execute(&mut conn)
            .await
            .map_err(db_error)?;
        Ok(n as u64)
    }

    fn outbox_wakeup(&self) -> Arc<tokio::sync::Notify> {
        self.wakeup.clone()
    }
}

fn tx_error(e: TxError) -> StoreError {
    match e {
        TxError::Db(e) => db_error(e),
        TxError::Store(e) => e,
        TxError::Hook(e) => StoreError::RolledBack(e),
    }
}
