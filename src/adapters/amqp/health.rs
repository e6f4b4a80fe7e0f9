//! `AmqpHealth`: the connection is up and both exchanges exist with the
//! expected type and durability. Redeclaring an existing exchange with
//! other settings is refused by the broker (PRECONDITION_FAILED), so a
//! passive declare (exists?) followed by a normal one with our settings
//! proves type and durability without the management plugin.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use lapin::{options::ExchangeDeclareOptions, types::FieldTable};
use serde_json::{Map, Value, json};

use super::{
    AmqpBroker,
    topology::{durable_exchange, exchanges},
};
use crate::ports::{Health, HealthIndicator};

const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

pub struct AmqpHealth {
    broker: AmqpBroker,
}

impl AmqpHealth {
    pub fn new(broker: AmqpBroker) -> Self {
        Self { broker }
    }

    async fn inspect(&self) -> Result<Map<String, Value>, String> {
        let mut report = Map::new();
        for (name, kind, kind_name) in exchanges() {
            // A failed declare closes the channel, so each check gets its own.
            let channel = self
                .broker
                .admin_channel()
                .await
                .map_err(|e| e.to_string())?;
            let passive = ExchangeDeclareOptions {
                passive: true,
                ..ExchangeDeclareOptions::default()
            };
            let exists = channel
                .exchange_declare(name.into(), kind.clone(), passive, FieldTable::default())
                .await;
            let entry = match exists {
                Err(e) => json!({ "exists": false, "error": e.to_string() }),
                Ok(()) => {
                    let channel = self
                        .broker
                        .admin_channel()
                        .await
                        .map_err(|e| e.to_string())?;
                    match channel
                        .exchange_declare(
                            name.into(),
                            kind.clone(),
                            durable_exchange(),
                            FieldTable::default(),
                        )
                        .await
                    {
                        Ok(()) => {
                            let _ = channel.close(200, "health check".into()).await;
                            json!({ "exists": true, "type": kind_name, "durable": true })
                        }
                        Err(e) => json!({
                            "exists": true,
                            "error": format!("declared with another type or durability than {kind_name}/durable: {e}")
                        }),
                    }
                }
            };
            report.insert(name.to_owned(), entry);
        }
        Ok(report)
    }
}

#[async_trait]
impl HealthIndicator for AmqpHealth {
    fn component(&self) -> &'static str {
        "rabbitmq"
    }

    fn required_for_readiness(&self) -> bool {
        true
    }

    async fn check(&self) -> Health {
        let started = Instant::now();
        if !self.broker.is_connected() {
            // Why the last try failed: a refusal (a queue of another
            // type) is not cured by waiting and must be visible here.
            let error = match self.broker.last_error() {
                Some(cause) => format!("not connected (reconnecting): {cause}"),
                None => "not connected (reconnecting)".to_owned(),
            };
            return Health::down("rabbitmq", json!({ "connected": false, "error": error }));
        }
        match tokio::time::timeout(CHECK_TIMEOUT, self.inspect()).await {
            Ok(Ok(exchanges)) => {
                let all_ok = exchanges.values().all(|e| e.get("error").is_none());
                let details = json!({
                    "connected": true,
                    "node": self.broker.connected_node(),
                    "latency_ms": started.elapsed().as_secs_f64() * 1000.0,
                    "exchanges": exchanges,
                });
                if all_ok {
                    Health::up("rabbitmq", details)
                } else {
                    Health::down("rabbitmq", details)
                }
            }
            Ok(Err(e)) => Health::down("rabbitmq", json!({ "connected": false, "error": e })),
            Err(_) => Health::down(
                "rabbitmq",
                json!({ "error": format!("no answer within {CHECK_TIMEOUT:?}") }),
            ),
        }
    }
}
