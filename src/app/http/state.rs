//! `AppState`: what handlers reach — use cases, health indicators and the
//! credentials callers are checked against. No adapter is reachable from here.

use std::sync::Arc;

use secrecy::SecretString;

use crate::{
    app::auth::TokenService,
    domain::{account::AccountService, billing::BillingService, progress::ProgressService},
    ports::{Clock, HealthIndicator},
};

pub struct AppState {
    pub internal_key: SecretString,
    pub tokens: TokenService,
    /// Mark the auth cookie `Secure` (production).
    pub secure_cookies: bool,
    pub clock: Arc<dyn Clock>,
    pub progress: Arc<ProgressService>,
    pub accounts: Arc<AccountService>,
    pub billing: Arc<BillingService>,
    pub health: HealthChecks,
}

/// The health indicators the system routes check: the API's, or those of
/// a `consume` process (which has no use cases to reach).
#[derive(Clone)]
pub struct HealthChecks {
    /// Every dependency of the process: `/health` reports them all.
    pub all: Vec<Arc<dyn HealthIndicator>>,
    /// The components `/ready` waits for: chosen per process where its
    /// indicators are wired (`app::startup`), not by the adapters.
    pub ready: &'static [&'static str],
}
