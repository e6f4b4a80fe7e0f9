//! The application shell: configuration, wiring, HTTP API, command line.

pub mod auth;
pub mod cli;
pub mod commands;
pub mod config;
pub mod events_tool;
pub mod http;
pub mod relay;
pub mod startup;
pub mod telemetry;
pub mod wiring;
