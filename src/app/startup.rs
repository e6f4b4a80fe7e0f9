//! `Application`: builds the use cases on the wired adapters and binds the
//! HTTP server; `port()` tells where it listens (tests bind port 0).

use std::{net::TcpListener, sync::Arc};

use actix_web::dev::{Server, ServerHandle};

use super::{
    auth::TokenService,
    config::Settings,
    http::{self, state::AppState},
    wiring::{Adapters, Resources},
};
use crate::domain::{events::EventService, progress::ProgressService};

pub struct Application {
    port: u16,
    server: Server,
    resources: Resources,
}

impl Application {
    /// Wires adapters from the settings and binds the server.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let adapters = Adapters::from_settings(&settings).await?;
        Self::build_with(&settings, adapters)
    }

    /// Binds the server on adapters chosen by the caller (tests keep a handle
    /// on the in-memory broker this way).
    pub fn build_with(settings: &Settings, adapters: Adapters) -> anyhow::Result<Self> {
        tracing::info!(adapters = %adapters.summary(), "adapters wired");
        if settings.uses_dev_secrets() {
            tracing::warn!("JWT_SECRET or INTERNAL_KEY is unset: using development defaults");
        }
        let events = Arc::new(EventService::new(
            adapters.publisher.clone(),
            adapters.clock.clone(),
            adapters.ids.clone(),
            adapters.plans.clone(),
        ));
        let progress = Arc::new(ProgressService::new(
            adapters.progress.clone(),
            events,
            adapters.clock.clone(),
        ));
        let state = AppState {
            internal_key: settings.internal_key.clone(),
            tokens: TokenService::new(settings.jwt_secret.expose().as_bytes()),
            progress,
            health: adapters.health.clone(),
        };
        let listener = TcpListener::bind((settings.http_host, settings.http_port))?;
        let port = listener.local_addr()?.port();
        let server = http::server(listener, state)?;
        tracing::info!(host = %settings.http_host, port, "HTTP API listening");
        Ok(Self {
            port,
            server,
            resources: adapters.resources,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server from elsewhere (graceful: in-flight requests finish).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM (or the handle) stops the server, then
    /// closes the broker and Redis connections (each bounded in time).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.resources.shutdown().await;
        result
    }
}
