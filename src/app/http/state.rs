//! `AppState`: what handlers reach — use cases, health indicators and the
//! credentials callers are checked against. No adapter is reachable from here.

use std::sync::Arc;

use crate::{
    app::{auth::TokenService, config::Secret},
    domain::progress::ProgressService,
    ports::HealthIndicator,
};

pub struct AppState {
    pub internal_key: Secret,
    pub tokens: TokenService,
    pub progress: Arc<ProgressService>,
    pub health: Vec<Arc<dyn HealthIndicator>>,
}
