//! Billing: plans, subscriptions and the moves between their statuses
//! (trial, upgrade, cancellation, failed payment, expiry). The use cases live
//! one per file on `BillingService`, which holds the ports they share; each
//! has its own error enum naming only the cases it can meet (decision 63).

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

pub use cancel::CancelError;
pub use manage_plans::{
    CreatePlanError, DeletePlanError, GetPlanError, PlanChanges, PlanDraft, UpdatePlanError,
};
pub use payment_failed::PaymentFailedError;
pub use plan::{BillingCycle, Plan};
pub use plan_code::{FREE_PLAN, PlanCode, PlanCodeError};
pub use service::{Actor, BillingService, MySubscriptionError, SweepReport};
pub use subscription::{Subscription, SubscriptionPatch};
pub use subscription_status::{SubscriptionStatus, SubscriptionStatusError, TRIAL_DAYS};
pub use upgrade::UpgradeError;
