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
    pub health: Vec<Arc<dyn HealthIndicator>>,
}

/// The health indicators the system routes check: the API's, or those of
/// a `consume` process (which has no use cases to reach).
#[derive(Clone)]
pub struct HealthChecks(pub Vec<Arc<dyn HealthIndicator>>);
