//! Use cases: list, read, create, update and delete plans.

use uuid::Uuid;

use super::{BillingCycle, BillingService, Plan};
use crate::{domain::billing::PlanCode, ports::StoreError};

/// A new plan, validated by the caller's parsing (the HTTP layer checks
/// the name's length, the price's sign and the currency's form).
#[derive(Debug, Clone)]
pub struct PlanDraft {
    /// The plan's stable key; no other plan may have it.
    pub code: PlanCode,
    /// Display name: trimmed, 1-100 characters.
    pub name: String,
    /// Free text for the catalogue, if any.
    pub description: Option<String>,
    /// Price per billing cycle in the currency's minor unit; not negative,
    /// `0` is free.
    pub price_minor: i64,
    /// ISO 4217 code, upper case.
    pub currency: String,
    /// How long one paid period lasts.
    pub billing_cycle: BillingCycle,
}

/// Fields to change (`None` keeps the stored value); the code of a plan
/// never changes (events name it). Units as in [`PlanDraft`].
#[derive(Debug, Clone, Default)]
pub struct PlanChanges {
    /// New display name.
    pub name: Option<String>,
    /// New description (a description cannot be removed, only replaced).
    pub description: Option<String>,
    /// New price in the currency's minor unit.
    pub price_minor: Option<i64>,
    /// New ISO 4217 code, upper case.
    pub currency: Option<String>,
    /// New billing cycle; subscriptions keep the period they were given.
    pub billing_cycle: Option<BillingCycle>,
}

/// Why a plan could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GetPlanError {
    /// No plan has the id.
    #[error("no such plan")]
    PlanNotFound,
    /// The identity store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why no plan was created.
#[derive(Debug, thiserror::Error)]
pub enum CreatePlanError {
    /// Another plan has the code.
    #[error("a plan with this code already exists")]
    PlanCodeTaken,
    /// The identity store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for CreatePlanError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::PlanCodeTaken => CreatePlanError::PlanCodeTaken,
            other => CreatePlanError::Store(other),
        }
    }
}

/// Why a plan was not changed; in every case nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum UpdatePlanError {
    /// No plan has the id (or it was deleted meanwhile).
    #[error("no such plan")]
    PlanNotFound,
    /// A concurrent edit of the plan was written first.
    #[error("the plan was changed by a concurrent request; read it again")]
    PlanChanged,
    /// The identity store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<GetPlanError> for UpdatePlanError {
    fn from(error: GetPlanError) -> Self {
        match error {
            GetPlanError::PlanNotFound => UpdatePlanError::PlanNotFound,
            GetPlanError::Store(e) => UpdatePlanError::Store(e),
        }
    }
}

/// Why a plan was not deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeletePlanError {
    /// No plan has the id.
    #[error("no such plan")]
    PlanNotFound,
    /// Subscriptions still name the plan.
    #[error("the plan is still used by subscriptions")]
    PlanInUse,
    /// The identity store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for DeletePlanError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => DeletePlanError::PlanNotFound,
            StoreError::PlanInUse => DeletePlanError::PlanInUse,
            other => DeletePlanError::Store(other),
        }
    }
}

impl BillingService {
    /// Every plan, cheapest first (then by code); empty when there is none.
    ///
    /// # Errors
    ///
    /// The store's error when it fails.
    pub async fn plans(&self) -> Result<Vec<Plan>, StoreError> {
        self.store.plans().await
    }

    /// The plan with `id`.
    ///
    /// # Errors
    ///
    /// [`GetPlanError::PlanNotFound`] when there is none,
    /// [`GetPlanError::Store`] when the store fails.
    pub async fn plan(&self, id: Uuid) -> Result<Plan, GetPlanError> {
        self.store
            .plan_by_id(id)
            .await?
            .ok_or(GetPlanError::PlanNotFound)
    }

    /// Stores a new plan from `draft` and returns it.
    ///
    /// # Errors
    ///
    /// [`CreatePlanError::PlanCodeTaken`] when the code is used,
    /// [`CreatePlanError::Store`] when the store fails.
    #[tracing::instrument(name = "billing.create_plan", skip_all)]
    pub async fn create_plan(&self, draft: PlanDraft) -> Result<Plan, CreatePlanError> {
        let now = self.clock.now();
        let plan = Plan {
            id: self.ids.new_uuid(),
            code: draft.code,
            name: draft.name,
            description: draft.description,
            price_minor: draft.price_minor,
            currency: draft.currency,
            billing_cycle: draft.billing_cycle,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_plan(&plan).await?;
        Ok(plan)
    }

    /// Applies `changes` to the plan, conditional on it being unchanged
    /// since it was read here, and returns it as written.
    ///
    /// # Errors
    ///
    /// [`UpdatePlanError::PlanNotFound`], [`UpdatePlanError::PlanChanged`]
    /// when a concurrent edit won, [`UpdatePlanError::Store`] when the
    /// store fails.
    #[tracing::instrument(name = "billing.update_plan", skip_all)]
    pub async fn update_plan(
        &self,
        id: Uuid,
        changes: PlanChanges,
    ) -> Result<Plan, UpdatePlanError> {
        let mut plan = self.plan(id).await?;
        let read_at = plan.updated_at;
        if let Some(name) = changes.name {
            plan.name = name;
        }
        if let Some(description) = changes.description {
            plan.description = Some(description);
        }
        if let Some(price) = changes.price_minor {
            plan.price_minor = price;
        }
        if let Some(currency) = changes.currency {
            plan.currency = currency;
        }
        if let Some(cycle) = changes.billing_cycle {
            plan.billing_cycle = cycle;
        }
        plan.updated_at = self.clock.now();
        match self.store.update_plan(&plan, read_at).await {
            Err(StoreError::Conflict) => Err(UpdatePlanError::PlanChanged),
            Err(StoreError::NotFound) => Err(UpdatePlanError::PlanNotFound),
            other => Ok(other.map(|()| plan)?),
        }
    }

    /// Deletes the plan; plans that subscriptions name stay.
    ///
    /// # Errors
    ///
    /// [`DeletePlanError::PlanNotFound`], [`DeletePlanError::PlanInUse`]
    /// while subscriptions name it, [`DeletePlanError::Store`] when the
    /// store fails.
    #[tracing::instrument(name = "billing.delete_plan", skip_all)]
    pub async fn delete_plan(&self, id: Uuid) -> Result<(), DeletePlanError> {
        Ok(self.store.delete_plan(id).await?)
    }
}
