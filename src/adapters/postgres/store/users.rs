//! Accounts and sessions on PostgreSQL: registration (with its hook or
//! outbox events in the same transaction), look-ups, profile, password and
//! role changes, and the session rows.

use chrono::{DateTime, Utc};
use diesel::{prelude::*, result::Error as DieselError, sql_types as sql};
use diesel_async::{AsyncConnection, RunQueryDsl};
use uuid::Uuid;

use crate::adapters::postgres::{
    models::{ProfileChange, SessionRow, UserRow},
    schema::{sessions, users},
};
use crate::{
    domain::{
        account::{PasswordHash, Role, Session, User},
        email_address::Email,
    },
    ports::{OutboxEvent, ProfileChanges, StoreError, TxHook},
};

use super::{
    PgIdentityStore, lower,
    support::{TxError, db_error, enqueue},
};

pub(super) async fn insert_user_then<'a>(
    store: &PgIdentityStore,
    user: &User,
    hook: TxHook<'a>,
) -> Result<(), StoreError> {
    let mut conn = store.conn().await?;
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

pub(super) async fn insert_user_enqueue(
    store: &PgIdentityStore,
    user: &User,
    events: &[OutboxEvent],
) -> Result<(), StoreError> {
    let mut conn = store.conn().await?;
    let row = UserRow::from(user);
    let link = store.link.clone();
    let enqueued = conn
        .transaction::<_, DieselError, _>(async move |conn| {
            diesel::insert_into(users::table)
                .values(&row)
                .execute(conn)
                .await?;
            enqueue(conn, events, &link).await
        })
        .await
        .map_err(db_error)?;
    drop(conn);
    store.committed(enqueued).await;
    Ok(())
}

pub(super) async fn user_by_email(
    store: &PgIdentityStore,
    email: &Email,
) -> Result<Option<User>, StoreError> {
    let mut conn = store.conn().await?;
    let row = users::table
        .filter(lower(users::email).eq(email.as_str().to_lowercase()))
        .select(UserRow::as_select())
        .first(&mut conn)
        .await
        .optional()
        .map_err(db_error)?;
    PgIdentityStore::one(row)
}

pub(super) async fn user_by_id(
    store: &PgIdentityStore,
    id: Uuid,
) -> Result<Option<User>, StoreError> {
    let mut conn = store.conn().await?;
    let row = users::table
        .find(id)
        .select(UserRow::as_select())
        .first(&mut conn)
        .await
        .optional()
        .map_err(db_error)?;
    PgIdentityStore::one(row)
}

pub(super) async fn list_users(
    store: &PgIdentityStore,
    offset: u64,
    limit: u64,
) -> Result<(Vec<User>, u64), StoreError> {
    let mut conn = store.conn().await?;
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
    Ok((
        PgIdentityStore::many(rows)?,
        u64::try_from(total).unwrap_or(0),
    ))
}

pub(super) async fn update_profile(
    store: &PgIdentityStore,
    user: Uuid,
    changes: &ProfileChanges,
    now: DateTime<Utc>,
) -> Result<User, StoreError> {
    let mut conn = store.conn().await?;
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

pub(super) async fn change_password(
    store: &PgIdentityStore,
    user: Uuid,
    current: &PasswordHash,
    new: &PasswordHash,
    session: &Session,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut conn = store.conn().await?;
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

pub(super) async fn set_role(
    store: &PgIdentityStore,
    email: &Email,
    role: Role,
    now: DateTime<Utc>,
) -> Result<User, StoreError> {
    let mut conn = store.conn().await?;
    let row =
        diesel::update(users::table.filter(lower(users::email).eq(email.as_str().to_lowercase())))
            .set((users::role.eq(role.as_str()), users::updated_at.eq(now)))
            .returning(UserRow::as_returning())
            .get_result(&mut conn)
            .await
            .map_err(db_error)?;
    User::try_from(row)
}

pub(super) async fn insert_session(
    store: &PgIdentityStore,
    session: &Session,
    checked: &PasswordHash,
) -> Result<(), StoreError> {
    let mut conn = store.conn().await?;
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

pub(super) async fn session_user(
    store: &PgIdentityStore,
    session: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<User>, StoreError> {
    let mut conn = store.conn().await?;
    let row = sessions::table
        .inner_join(users::table)
        .filter(sessions::id.eq(session))
        .filter(sessions::expires_at.gt(now))
        .select(UserRow::as_select())
        .first(&mut conn)
        .await
        .optional()
        .map_err(db_error)?;
    PgIdentityStore::one(row)
}

pub(super) async fn delete_session(
    store: &PgIdentityStore,
    session: Uuid,
) -> Result<(), StoreError> {
    let mut conn = store.conn().await?;
    diesel::delete(sessions::table.find(session))
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub(super) async fn delete_expired_sessions(
    store: &PgIdentityStore,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    // By batches, each one short statement (decision 65): a day of logins
    // expiring at once must not run into `statement_timeout` and roll back
    // on every sweep.
    const BATCH: i64 = 5_000;
    let mut conn = store.conn().await?;
    let mut total = 0;
    loop {
        let rows = diesel::sql_query(
            "DELETE FROM sessions WHERE id IN ( \
               SELECT id FROM sessions WHERE expires_at <= $1 LIMIT $2 \
               FOR UPDATE SKIP LOCKED)",
        )
        .bind::<diesel::sql_types::Timestamptz, _>(now)
        .bind::<diesel::sql_types::BigInt, _>(BATCH)
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
        total += rows as u64;
        if (rows as i64) < BATCH {
            return Ok(total);
        }
    }
}
