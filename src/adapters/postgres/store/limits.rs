//! The attempt limits on PostgreSQL: password, OTP and resend slots, each
//! taken or released by one conditional statement so the limits hold across
//! replicas.

use chrono::{DateTime, Duration, Utc};
use diesel::{prelude::*, sql_types as sql};
use diesel_async::{AsyncConnection, RunQueryDsl};
use uuid::Uuid;

use crate::adapters::postgres::{models::UserRow, schema::users};
use crate::{
    domain::{
        account::{OtpChallenge, User},
        email_address::Email,
    },
    ports::{
        IdentityStore, OtpSlot, PasswordLimit, PasswordSlot, ResendEvents, ResendSlot, StoreError,
        UserRef,
    },
};

use super::{
    PgIdentityStore,
    support::{TxError, db_error, enqueue, tx_error},
};

pub(super) async fn take_password_slot(
    store: &PgIdentityStore,
    who: UserRef<'_>,
    now: DateTime<Utc>,
    limit: PasswordLimit,
) -> Result<PasswordSlot, StoreError> {
    let mut conn = store.conn().await?;
    let id = match who {
        UserRef::Id(id) => id,
        UserRef::Email(email) => match PgIdentityStore::id_by_email(&mut conn, email).await? {
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

pub(super) async fn clear_password_failures(
    store: &PgIdentityStore,
    user: Uuid,
    count_at_slot: u32,
) -> Result<(), StoreError> {
    let mut conn = store.conn().await?;
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

pub(super) async fn release_password_slot(
    store: &PgIdentityStore,
    user: Uuid,
    count_at_slot: u32,
    limit: PasswordLimit,
) -> Result<(), StoreError> {
    let mut conn = store.conn().await?;
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

pub(super) async fn take_otp_slot(
    store: &PgIdentityStore,
    email: &Email,
    now: DateTime<Utc>,
    max_attempts: u32,
) -> Result<OtpSlot, StoreError> {
    let mut conn = store.conn().await?;
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
            Ok(OtpSlot::Refused(store.user_by_email(email).await?))
        }
    }
}

pub(super) async fn take_resend_slot(
    store: &PgIdentityStore,
    user: Uuid,
    now: DateTime<Utc>,
    cooldown: Duration,
    max_attempts: u32,
    fresh: &OtpChallenge,
    outbox: ResendEvents<'_>,
) -> Result<ResendSlot, StoreError> {
    let mut conn = store.conn().await?;
    let fresh = fresh.clone();
    let link = store.link.clone();
    let granted = conn
        .transaction::<_, TxError, _>(async move |conn| {
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
            let enqueued = enqueue(conn, &events, &link).await?;
            Ok(Some((challenge, user, enqueued)))
        })
        .await
        .map_err(tx_error)?;
    drop(conn);
    match granted {
        Some((challenge, user, enqueued)) => {
            store.committed(enqueued).await;
            Ok(ResendSlot::Granted(challenge, user))
        }
        None => Ok(ResendSlot::Refused(store.user_by_id(user).await?)),
    }
}

pub(super) async fn release_resend_slot(
    store: &PgIdentityStore,
    user: Uuid,
    taken_at: DateTime<Utc>,
    cooldown: Duration,
) -> Result<(), StoreError> {
    let mut conn = store.conn().await?;
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
