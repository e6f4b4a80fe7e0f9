//! The billing use cases' errors as HTTP answers.

use crate::{
    app::http::response::ApiError,
    domain::billing::{
        CancelError, CreatePlanError, DeletePlanError, GetPlanError, MySubscriptionError,
        PaymentFailedError, UpdatePlanError, UpgradeError,
    },
};

/// 422 on `plan_code`: the plan to move to is unknown or not allowed.
fn bad_plan(problem: &'static str) -> ApiError {
    ApiError::rule_violated("plan_code", problem)
}

impl From<UpgradeError> for ApiError {
    fn from(error: UpgradeError) -> Self {
        let message = error.to_string();
        match error {
            UpgradeError::SubscriptionNotFound => ApiError::not_found(message),
            UpgradeError::NotOwner => ApiError::forbidden(message),
            UpgradeError::WrongStatus { .. } | UpgradeError::Conflict { .. } => {
                ApiError::conflict(message)
            }
            UpgradeError::BadPlan(problem) => bad_plan(problem),
            UpgradeError::Store(e) => e.into(),
        }
    }
}

impl From<CancelError> for ApiError {
    fn from(error: CancelError) -> Self {
        let message = error.to_string();
        match error {
            CancelError::SubscriptionNotFound => ApiError::not_found(message),
            CancelError::NotOwner => ApiError::forbidden(message),
            CancelError::WrongStatus { .. } | CancelError::Conflict { .. } => {
                ApiError::conflict(message)
            }
            CancelError::Store(e) => e.into(),
        }
    }
}

impl From<PaymentFailedError> for ApiError {
    fn from(error: PaymentFailedError) -> Self {
        let message = error.to_string();
        match error {
            PaymentFailedError::SubscriptionNotFound => ApiError::not_found(message),
            PaymentFailedError::WrongStatus { .. } | PaymentFailedError::Conflict { .. } => {
                ApiError::conflict(message)
            }
            PaymentFailedError::Store(e) => e.into(),
        }
    }
}

impl From<MySubscriptionError> for ApiError {
    fn from(error: MySubscriptionError) -> Self {
        match error {
            MySubscriptionError::SubscriptionNotFound => ApiError::not_found(error.to_string()),
            MySubscriptionError::Store(e) => e.into(),
        }
    }
}

impl From<GetPlanError> for ApiError {
    fn from(error: GetPlanError) -> Self {
        match error {
            GetPlanError::PlanNotFound => ApiError::not_found(error.to_string()),
            GetPlanError::Store(e) => e.into(),
        }
    }
}

impl From<CreatePlanError> for ApiError {
    fn from(error: CreatePlanError) -> Self {
        match error {
            CreatePlanError::PlanCodeTaken => ApiError::conflict(error.to_string()),
            CreatePlanError::Store(e) => e.into(),
        }
    }
}

impl From<UpdatePlanError> for ApiError {
    fn from(error: UpdatePlanError) -> Self {
        let message = error.to_string();
        match error {
            UpdatePlanError::PlanNotFound => ApiError::not_found(message),
            UpdatePlanError::PlanChanged => ApiError::conflict(message),
            UpdatePlanError::Store(e) => e.into(),
        }
    }
}

impl From<DeletePlanError> for ApiError {
    fn from(error: DeletePlanError) -> Self {
        let message = error.to_string();
        match error {
            DeletePlanError::PlanNotFound => ApiError::not_found(message),
            DeletePlanError::PlanInUse => ApiError::conflict(message),
            DeletePlanError::Store(e) => e.into(),
        }
    }
}
