//! Rows as Diesel reads and writes them, and their conversion to the
//! domain's types (a row that breaks a domain rule is an `Unexpected` error).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::schema::{plans, sessions, subscriptions, users};
use crate::{
    domain::{
        account::{AccountStatus, FullName, OtpChallenge, PasswordHash, Role, Session, User},
        billing::{BillingCycle, Plan, PlanCode, Subscription, SubscriptionPatch},
        email_address::Email,
        otp::OtpCode,
    },
    ports::StoreError,
};

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Unexpected(anyhow::anyhow!("stored {what} `{value}` is not valid"))
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub full_name: Option<String>,
    pub locale: String,
    pub role: String,
    pub status: String,
    pub otp_code: Option<String>,
    pub otp_expires_at: Option<DateTime<Utc>>,
    pub otp_sent_at: Option<DateTime<Utc>>,
    pub otp_attempts: i32,
    pub failed_logins: i32,
    pub login_blocked_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&User> for UserRow {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            email: u.email.to_string(),
            password_hash: u.password_hash.0.clone(),
            full_name: u.full_name.as_ref().map(|n| n.as_str().to_owned()),
            locale: u.locale.as_str().to_owned(),
            role: u.role.as_str().to_owned(),
            status: u.status.as_str().to_owned(),
            otp_code: u.otp.as_ref().map(|o| o.code.as_str().to_owned()),
            otp_expires_at: u.otp.as_ref().map(|o| o.expires_at),
            otp_sent_at: u.otp.as_ref().map(|o| o.sent_at),
            otp_attempts: u
                .otp
                .as_ref()
                .map_or(0, |o| i32::try_from(o.attempts).unwrap_or(i32::MAX)),
            failed_logins: i32::try_from(u.failed_logins).unwrap_or(i32::MAX),
            login_blocked_until: u.login_blocked_until,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(r: UserRow) -> Result<Self, StoreError> {
        let otp = match (r.otp_code, r.otp_expires_at, r.otp_sent_at) {
            (Some(code), Some(expires_at), Some(sent_at)) => Some(OtpChallenge {
                code: OtpCode::parse(&code).map_err(|_| corrupt("OTP", "******"))?,
                expires_at,
                sent_at,
                attempts: u32::try_from(r.otp_attempts).unwrap_or(0),
            }),
            _ => None,
        };
        Ok(User {
            id: r.id,
            email: Email::parse(&r.email).map_err(|_| corrupt("e-mail", &r.id.to_string()))?,
            password_hash: PasswordHash(r.password_hash),
            full_name: r
                .full_name
                .as_deref()
                .map(FullName::parse)
                .transpose()
                .map_err(|_| corrupt("name", &r.id.to_string()))?,
            locale: r.locale.parse().map_err(|_| corrupt("locale", &r.locale))?,
            role: Role::parse(&r.role).ok_or_else(|| corrupt("role", &r.role))?,
            status: AccountStatus::parse(&r.status).ok_or_else(|| corrupt("status", &r.status))?,
            otp,
            failed_logins: u32::try_from(r.failed_logins).unwrap_or(0),
            login_blocked_until: r.login_blocked_until,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = plans, check_for_backend(diesel::pg::Pg), treat_none_as_null = true)]
pub struct PlanRow {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub description: Option<String>,
    pub price_minor: i64,
    pub currency: String,
    pub billing_cycle: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Plan> for PlanRow {
    fn from(p: &Plan) -> Self {
        Self {
            id: p.id,
            code: p.code.to_string(),
            name: p.name.clone(),
            description: p.description.clone(),
            price_minor: p.price_minor,
            currency: p.currency.clone(),
            billing_cycle: p.billing_cycle.as_str().to_owned(),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

impl TryFrom<PlanRow> for Plan {
    type Error = StoreError;

    fn try_from(r: PlanRow) -> Result<Self, StoreError> {
        Ok(Plan {
            id: r.id,
            code: PlanCode::parse(&r.code).map_err(|_| corrupt("plan code", &r.code))?,
            name: r.name,
            description: r.description,
            price_minor: r.price_minor,
            currency: r.currency,
            billing_cycle: BillingCycle::parse(&r.billing_cycle)
                .ok_or_else(|| corrupt("billing cycle", &r.billing_cycle))?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = subscriptions, check_for_backend(diesel::pg::Pg))]
pub struct SubscriptionRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub plan_code: String,
    pub status: String,
    pub trial_start: Option<DateTime<Utc>>,
    pub trial_end: Option<DateTime<Utc>>,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub cancellation_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Subscription> for SubscriptionRow {
    fn from(s: &Subscription) -> Self {
        Self {
            id: s.id,
            user_id: s.user_id,
            plan_code: s.plan_code.to_string(),
            status: s.status.as_str().to_owned(),
            trial_start: s.trial_start,
            trial_end: s.trial_end,
            period_start: s.period_start,
            period_end: s.period_end,
            cancelled_at: s.cancelled_at,
            cancellation_reason: s.cancellation_reason.clone(),
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

impl TryFrom<SubscriptionRow> for Subscription {
    type Error = StoreError;

    fn try_from(r: SubscriptionRow) -> Result<Self, StoreError> {
        Ok(Subscription {
            id: r.id,
            user_id: r.user_id,
            plan_code: PlanCode::parse(&r.plan_code)
                .map_err(|_| corrupt("plan code", &r.plan_code))?,
            status: r
                .status
                .parse()
                .map_err(|_| corrupt("subscription status", &r.status))?,
            trial_start: r.trial_start,
            trial_end: r.trial_end,
            period_start: r.period_start,
            period_end: r.period_end,
            cancelled_at: r.cancelled_at,
            cancellation_reason: r.cancellation_reason,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// A transition's fields; `None` leaves the column as stored.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = subscriptions, check_for_backend(diesel::pg::Pg))]
pub struct SubscriptionChange {
    pub status: String,
    pub plan_code: Option<String>,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub cancellation_reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl From<&SubscriptionPatch> for SubscriptionChange {
    fn from(p: &SubscriptionPatch) -> Self {
        Self {
            status: p.status.as_str().to_owned(),
            plan_code: p.plan_code.as_ref().map(ToString::to_string),
            period_start: p.period_start,
            period_end: p.period_end,
            cancelled_at: p.cancelled_at,
            cancellation_reason: p.cancellation_reason.clone(),
            updated_at: p.updated_at,
        }
    }
}

/// A profile edit's fields; `None` leaves the column as stored.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct ProfileChange {
    pub full_name: Option<String>,
    pub locale: Option<String>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
pub struct SessionRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl From<&Session> for SessionRow {
    fn from(s: &Session) -> Self {
        Self {
            id: s.id,
            user_id: s.user_id,
            created_at: s.created_at,
            expires_at: s.expires_at,
        }
    }
}

/// An outbox row a relay claimed.
#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = super::schema::outbox, check_for_backend(diesel::pg::Pg))]
pub struct OutboxRow {
    pub id: i64,
    pub event_id: String,
    pub aggregate: String,
    pub routing_key: String,
    pub body: String,
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
    pub created_at: DateTime<Utc>,
    pub attempts: i32,
}
