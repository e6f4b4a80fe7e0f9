//! `PlanCatalog`: which plan codes exist (events may only name existing plans).

use async_trait::async_trait;

use crate::domain::billing::PlanCode;

#[derive(Debug, thiserror::Error)]
pub enum PlanCatalogError {
    #[error("plan catalogue unavailable")]
    Unavailable(#[source] anyhow::Error),
}

#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait PlanCatalog: Send + Sync {
    /// # Errors
    ///
    /// `Unavailable` when the catalogue cannot be read.
    async fn exists(&self, code: &PlanCode) -> Result<bool, PlanCatalogError>;
}
