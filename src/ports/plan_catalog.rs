//! `PlanCatalog`: which plan codes exist (events may only name existing plans).

use async_trait::async_trait;

use crate::domain::billing::PlanCode;

/// Why the catalogue could not say whether a plan exists.
#[derive(Debug, thiserror::Error)]
pub enum PlanCatalogError {
    /// The catalogue's store could not be read; nothing is known about the
    /// plan (never to be taken for "no such plan").
    #[error("plan catalogue unavailable")]
    Unavailable(#[source] anyhow::Error),
}

/// The plan codes that exist, checked before an event names one.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait PlanCatalog: Send + Sync {
    /// Whether a plan with `code` exists now: `Ok(false)` only when the
    /// catalogue was read and has no such plan.
    ///
    /// # Errors
    ///
    /// `Unavailable` when the catalogue cannot be read.
    async fn exists(&self, code: &PlanCode) -> Result<bool, PlanCatalogError>;
}
