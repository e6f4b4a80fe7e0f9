//! `AMQP_*` and the legacy fanout switches: RabbitMQ (one node or a
//! cluster), or the in-memory bus when `AMQP_URL` is unset.

use secrecy::{ExposeSecret, SecretString};

use super::{ConfigError, env::Env};
use crate::adapters::amqp::{QueueType, split_urls};

/// The RabbitMQ section of `Settings`.
pub(super) struct Amqp {
    pub(super) url: Option<SecretString>,
    pub(super) queue_type: QueueType,
    #[cfg(feature = "legacy-fanout")]
    pub(super) enable_dual_publish: bool,
    #[cfg(feature = "legacy-fanout")]
    pub(super) consume_legacy_queue: bool,
}

pub(super) fn amqp<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Amqp, ConfigError> {
    let url = env.get("AMQP_URL").map(SecretString::from);
    if let Some(url) = &url {
        check_amqp_urls(url.expose_secret())?;
    }
    let queue_type = env.parse(
        "AMQP_QUEUE_TYPE",
        QueueType::Classic,
        |s| s.parse().ok(),
        "classic or quorum",
    )?;
    #[cfg(not(feature = "legacy-fanout"))]
    for var in ["ENABLE_DUAL_PUBLISH", "CONSUME_LEGACY_QUEUE"] {
        if env.get(var).is_some() {
            eprintln!("smap-identity: {var} is ignored: this build has no legacy fanout path");
        }
    }
    Ok(Amqp {
        url,
        queue_type,
        #[cfg(feature = "legacy-fanout")]
        enable_dual_publish: env.flag("ENABLE_DUAL_PUBLISH", true)?,
        #[cfg(feature = "legacy-fanout")]
        consume_legacy_queue: env.flag("CONSUME_LEGACY_QUEUE", true)?,
    })
}

/// `AMQP_URL`: one or more comma-separated `amqp://`/`amqps://` URLs, each
/// one parsable. The error names the item by position, never by value (it
/// holds a password).
fn check_amqp_urls(urls: &str) -> Result<(), ConfigError> {
    let items = split_urls(urls);
    if items.is_empty() {
        return Err(ConfigError {
            var: "AMQP_URL",
            problem: "lists no URL".into(),
        });
    }
    for (i, item) in items.iter().enumerate() {
        let position = i + 1;
        if !(item.starts_with("amqp://") || item.starts_with("amqps://")) {
            return Err(ConfigError {
                var: "AMQP_URL",
                problem: format!(
                    "item {position} must start with amqp:// or amqps:// \
                     (several nodes are separated by commas; a comma in a password is %2C)"
                ),
            });
        }
        if let Err(e) = item.parse::<lapin::uri::AMQPUri>() {
            // The parser may quote the URL, password included.
            let reason = if e.contains(item.as_str()) {
                "unparsable".to_owned()
            } else {
                e
            };
            return Err(ConfigError {
                var: "AMQP_URL",
                problem: format!("item {position} is not a valid AMQP URL: {reason}"),
            });
        }
    }
    Ok(())
}
