//! A subscription as stored, and the compare-and-set patch that moves it
//! from one status to the next.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{PlanCode, SubscriptionStatus};

/// A subscription as stored. A user holds at most one live subscription
/// (see [`Subscription::is_live`]); ended ones stay as history.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    /// Never changes; routes and events name the subscription by it.
    pub id: Uuid,
    /// The subscriber; never changes.
    pub user_id: Uuid,
    /// The plan: the free plan during the trial, the paid one after an
    /// upgrade; always names an existing plan.
    pub plan_code: PlanCode,
    /// Where it stands; moves only forward.
    pub status: SubscriptionStatus,
    /// UTC; set for subscriptions that started as a trial.
    pub trial_start: Option<DateTime<Utc>>,
    /// UTC; [`TRIAL_DAYS`](super::TRIAL_DAYS) after `trial_start`.
    pub trial_end: Option<DateTime<Utc>>,
    /// UTC; start of the paid period, set by the upgrade.
    pub period_start: Option<DateTime<Utc>>,
    /// UTC; one billing cycle after `period_start`.
    pub period_end: Option<DateTime<Utc>>,
    /// UTC; set once, when it was cancelled.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Why it was cancelled (a `CancellationReason`'s text), with
    /// `cancelled_at`.
    pub cancellation_reason: Option<String>,
    /// UTC; when the subscription was made.
    pub created_at: DateTime<Utc>,
    /// UTC; the last transition, `>= created_at`.
    pub updated_at: DateTime<Utc>,
}

impl Subscription {
    /// Trialing, active or past due: the one a user may hold at a time.
    pub fn is_live(&self) -> bool {
        matches!(
            self.status,
            SubscriptionStatus::Trialing | SubscriptionStatus::Active | SubscriptionStatus::PastDue
        )
    }
}

/// One subscription transition: the status it leaves (`from`), the one it
/// enters and the fields it sets; what it does not name stays as stored.
/// Stores apply it only while the row is still in `from` (compare-and-set):
/// every transition moves forward in the status graph, so the status is
/// the row's version.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionPatch {
    /// The status the row must still be in for the patch to apply.
    pub from: SubscriptionStatus,
    /// The status it enters.
    pub status: SubscriptionStatus,
    /// The plan it moves to (upgrade); `None` keeps the plan.
    pub plan_code: Option<PlanCode>,
    /// UTC; the new paid period's start, if it opens one.
    pub period_start: Option<DateTime<Utc>>,
    /// UTC; the new paid period's end, if it opens one.
    pub period_end: Option<DateTime<Utc>>,
    /// UTC; set by a cancellation.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Set by a cancellation, with `cancelled_at`.
    pub cancellation_reason: Option<String>,
    /// UTC; when the transition happens.
    pub updated_at: DateTime<Utc>,
}

impl SubscriptionPatch {
    /// `from` to `status` at `now`, setting nothing else.
    pub fn new(from: SubscriptionStatus, status: SubscriptionStatus, now: DateTime<Utc>) -> Self {
        Self {
            from,
            status,
            plan_code: None,
            period_start: None,
            period_end: None,
            cancelled_at: None,
            cancellation_reason: None,
            updated_at: now,
        }
    }

    /// The subscription as the patch leaves it (for in-memory stores).
    pub fn apply(&self, s: &mut Subscription) {
        s.status = self.status;
        if let Some(code) = &self.plan_code {
            s.plan_code = code.clone();
        }
        if let Some(at) = self.period_start {
            s.period_start = Some(at);
        }
        if let Some(at) = self.period_end {
            s.period_end = Some(at);
        }
        if let Some(at) = self.cancelled_at {
            s.cancelled_at = Some(at);
        }
        if let Some(reason) = &self.cancellation_reason {
            s.cancellation_reason = Some(reason.clone());
        }
        s.updated_at = self.updated_at;
    }
}
