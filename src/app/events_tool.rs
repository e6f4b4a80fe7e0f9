//! `smap-identity events declare | status | cleanup-legacy`: the topology
//! tooling of the migration (DESIGN §3), on RabbitMQ only. This is the
//! command-line side (settings checks, the report printed); what talks to
//! RabbitMQ is `adapters::amqp::tooling`.

use secrecy::ExposeSecret;

use crate::{
    adapters::{
        amqp::tooling,
        bus::topology::{
            EMAIL_BINDING, EMAIL_ERRORS_QUEUE, EMAIL_QUEUE, EVENTS_EXCHANGE, LEGACY_EXCHANGE,
            LEGACY_QUEUE,
        },
    },
    app::config::Settings,
};

fn amqp_url(settings: &Settings) -> anyhow::Result<&str> {
    settings
        .amqp_url
        .as_ref()
        .map(|url| url.expose_secret())
        .ok_or_else(|| {
            anyhow::anyhow!("AMQP_URL is not set: the events commands work on RabbitMQ only")
        })
}

/// Declares the topology and says what it is.
pub async fn declare(settings: &Settings) -> anyhow::Result<String> {
    tooling::declare(amqp_url(settings)?, settings.amqp_queue_type).await?;
    let mut out = format!(
        "declared: exchange {EVENTS_EXCHANGE} (topic, durable); queues {EMAIL_QUEUE}, {EMAIL_ERRORS_QUEUE} (durable, {}); \
         binding {EMAIL_QUEUE} <- {EVENTS_EXCHANGE} [{EMAIL_BINDING}]",
        settings.amqp_queue_type
    );
    if cfg!(feature = "legacy-fanout") {
        out.push_str(&format!(
            "; legacy exchange {LEGACY_EXCHANGE} (fanout, durable), queue {LEGACY_QUEUE}, binding {LEGACY_QUEUE} <- {LEGACY_EXCHANGE}"
        ));
    }
    Ok(out)
}

/// Exchanges, queues (with type, message and consumer counts) and bindings.
pub async fn status(settings: &Settings) -> anyhow::Result<String> {
    let mut lines = tooling::status(amqp_url(settings)?, settings.amqp_queue_type).await?;
    lines.push(format!(
        "binding {EMAIL_QUEUE} <- {EVENTS_EXCHANGE} [{EMAIL_BINDING}] (declared by this service)"
    ));
    if cfg!(feature = "legacy-fanout") {
        lines.push(format!(
            "binding {LEGACY_QUEUE} <- {LEGACY_EXCHANGE} (declared by this service)"
        ));
    }
    Ok(lines.join("\n"))
}

/// Deletes the legacy exchange and queue (migration phase 4); refuses while
/// dual-publishing is on or the legacy queue still holds messages.
pub async fn cleanup_legacy(settings: &Settings) -> anyhow::Result<String> {
    #[cfg(feature = "legacy-fanout")]
    if settings.enable_dual_publish {
        anyhow::bail!(
            "refusing: ENABLE_DUAL_PUBLISH=true still sends e-mails to {LEGACY_EXCHANGE}; set it to false first"
        );
    }
    tooling::delete_legacy(amqp_url(settings)?, settings.amqp_queue_type).await?;
    Ok(format!(
        "deleted queue {LEGACY_QUEUE} and exchange {LEGACY_EXCHANGE}"
    ))
}
