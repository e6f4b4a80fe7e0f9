//! Billing: plans, subscriptions and the moves between their statuses
//! (trial, upgrade, cancellation, failed payment, expiry). The use cases live
//! one per file on `BillingService`, which holds the ports they share.

mod cancel;
mod expire_due;
mod manage_plans;
mod payment_failed;
mod plan;
mod plan_code;
mod service;
mod subscription;
mod subscription_status;
mod upgrade;

pub use manage_plans::{PlanChanges, PlanDraft};
pub use plan::{BillingCycle, Plan};
pub use plan_code::{FREE_PLAN, PlanCode, PlanCodeError};
pub use service::{Actor, BillingError, BillingService, SweepReport};
pub use subscription::{Subscription, SubscriptionPatch};
pub use subscription_status::{SubscriptionStatus, SubscriptionStatusError, TRIAL_DAYS};
