//! `InMemoryPlanCatalog`: plan codes held in process.

use std::{
    collections::HashSet,
    sync::{PoisonError, RwLock},
};

use async_trait::async_trait;

use crate::{
    domain::billing::PlanCode,
    ports::{PlanCatalog, PlanCatalogError},
};

#[derive(Default)]
pub struct InMemoryPlanCatalog {
    codes: RwLock<HashSet<PlanCode>>,
}

impl InMemoryPlanCatalog {
    /// Holds the `free` plan every trial starts on.
    pub fn with_defaults() -> Self {
        let catalog = Self::default();
        catalog.add(PlanCode::free());
        catalog
    }

    pub fn add(&self, code: PlanCode) {
        self.codes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(code);
    }
}

#[async_trait]
impl PlanCatalog for InMemoryPlanCatalog {
    async fn exists(&self, code: &PlanCode) -> Result<bool, PlanCatalogError> {
        Ok(self
            .codes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(code))
    }
}
