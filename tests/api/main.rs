//! Black-box tests: the HTTP API, each test against its own application
//! bound to port 0, and the adapters against the real servers that
//! `scripts/test.sh` starts (each test with its own queues and keys).

mod accounts;
mod billing;
mod consumer_examples;
mod deploy;
mod email;
mod fuzz_api;
mod health;
mod helpers;
mod layout;
mod openapi;
mod ops;
mod otlp_collector;
mod password_hashing;
mod process;
mod progress;
mod progress_errors;
mod properties;
mod readme;
mod real_amqp;
mod real_concurrency;
#[cfg(feature = "legacy-fanout")]
mod real_dual_publish;
mod real_email;
mod real_email_acks;
mod real_email_lease;
#[cfg(feature = "legacy-fanout")]
mod real_events_tool;
mod real_faults;
mod real_finish_line;
mod real_migrations;
mod real_outbox;
mod real_outbox_claim;
mod real_outbox_wakeup;
mod real_postgres;
mod real_progress;
#[cfg(feature = "legacy-fanout")]
mod real_rabbit_cluster;
mod real_redis;
mod real_reliability;
mod real_replicas;
mod real_sentinel;
mod real_shutdown;
mod real_smtp;
mod real_statement_timeout;
mod schemas;
mod security;
mod servers;
mod trace_context;
mod trace_sampling;
mod traces;
