//! `StorePlanCatalog`: the plan catalogue events are checked against, read
//! from the identity store, so an event can only name a plan that exists.
//!
//! It holds no technology of its own: it is one port (`PlanCatalog`)
//! written over another (`IdentityStore`), so it serves every identity
//! store adapter alike and lives beside the ports it joins.

use std::sync::Arc;

use async_trait::async_trait;

use super::{IdentityStore, PlanCatalog, PlanCatalogError, StoreError};
use crate::domain::billing::PlanCode;

/// A `PlanCatalog` that asks the identity store; a store failure is
/// `Unavailable`, never a "no such plan".
pub struct StorePlanCatalog {
    store: Arc<dyn IdentityStore>,
}

impl StorePlanCatalog {
    /// A catalogue over `store`; it reads the store on every call (no cache,
    /// so a plan added or deleted counts at once).
    pub fn new(store: Arc<dyn IdentityStore>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl PlanCatalog for StorePlanCatalog {
    async fn exists(&self, code: &PlanCode) -> Result<bool, PlanCatalogError> {
        match self.store.plan_by_code(code).await {
            Ok(plan) => Ok(plan.is_some()),
            Err(StoreError::Unavailable(e) | StoreError::Unexpected(e)) => {
                Err(PlanCatalogError::Unavailable(e))
            }
            Err(other) => Err(PlanCatalogError::Unavailable(other.into())),
        }
    }
}
