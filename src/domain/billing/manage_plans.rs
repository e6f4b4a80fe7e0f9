//! Use cases: list, read, create, update and delete plans.

use uuid::Uuid;

use super::{BillingCycle, BillingError, BillingService, Plan};
use crate::domain::billing::PlanCode;

/// A new plan, validated by the caller's parsing.
#[derive(Debug, Clone)]
pub struct PlanDraft {
    pub code: PlanCode,
    pub name: String,
    pub description: Option<String>,
    pub price_minor: i64,
    pub currency: String,
    pub billing_cycle: BillingCycle,
}

/// Fields to change; the code of a plan never changes (events name it).
#[derive(Debug, Clone, Default)]
pub struct PlanChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub price_minor: Option<i64>,
    pub currency: Option<String>,
    pub billing_cycle: Option<BillingCycle>,
}

impl BillingService {
    pub async fn plans(&self) -> Result<Vec<Plan>, BillingError> {
        Ok(self.store.plans().await?)
    }

    pub async fn plan(&self, id: Uuid) -> Result<Plan, BillingError> {
        self.store
            .plan_by_id(id)
            .await?
            .ok_or(BillingError::PlanNotFound)
    }

    #[tracing::instrument(name = "billing.create_plan", skip_all)]

    pub async fn create_plan(&self, draft: PlanDraft) -> Result<Plan, BillingError> {
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

    #[tracing::instrument(name = "billing.update_plan", skip_all)]

    pub async fn update_plan(&self, id: Uuid, changes: PlanChanges) -> Result<Plan, BillingError> {
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
            Err(crate::ports::StoreError::Conflict) => Err(BillingError::PlanChanged),
            Err(crate::ports::StoreError::NotFound) => Err(BillingError::PlanNotFound),
            other => Ok(other.map(|()| plan)?),
        }
    }

    #[tracing::instrument(name = "billing.delete_plan", skip_all)]

    pub async fn delete_plan(&self, id: Uuid) -> Result<(), BillingError> {
        match self.store.delete_plan(id).await {
            Err(crate::ports::StoreError::NotFound) => Err(BillingError::PlanNotFound),
            other => Ok(other?),
        }
    }
}
