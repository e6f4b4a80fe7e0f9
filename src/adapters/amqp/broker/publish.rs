//! Publishing on the shared channels with publisher confirms, and what a
//! mandatory publish learns when the broker returns a message.

use super::*;

impl AmqpBroker {
    /// Publishes one message and waits for the broker's confirm. Not
    /// mandatory: an unroutable message is dropped by the broker (the legacy
    /// fanout copy, whose queue this service declares).
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        properties: &MessageProperties,
        body: &[u8],
    ) -> Result<(), PublishError> {
        let session = self.session()?;
        let confirmation = self
            .confirm(
                &session,
                session.channel(),
                exchange,
                routing_key,
                false,
                properties,
                body,
            )
            .await?;
        accepted(confirmation).map(drop)
    }

    /// Publishes one message as mandatory on the shared channels and waits
    /// for the confirm; what comes back is a message the broker returned as
    /// unroutable since the last ack on that channel. With many publishes in
    /// flight, lapin may attach one publish's return to another's confirm,
    /// so the caller describes it from `Returned`, not from what it sent.
    pub async fn publish_mandatory(
        &self,
        exchange: &str,
        routing_key: &str,
        properties: &MessageProperties,
        body: &[u8],
    ) -> Result<Option<Returned>, PublishError> {
        let session = self.session()?;
        let confirmation = self
            .confirm(
                &session,
                session.channel(),
                exchange,
                routing_key,
                true,
                properties,
                body,
            )
            .await?;
        accepted(confirmation)
    }

    /// Publishes one message as mandatory and fails when the broker returns
    /// it as unroutable: for messages that must reach a queue (dead letters).
    /// Runs one at a time on a channel of its own, so the return is this
    /// message's.
    pub async fn publish_routed(
        &self,
        exchange: &str,
        routing_key: &str,
        properties: &MessageProperties,
        body: &[u8],
    ) -> Result<(), PublishError> {
        let session = self.session()?;
        let mut slot = session.routed.lock().await;
        let channel = match slot.as_ref() {
            Some(channel) if channel.status().connected() => channel.clone(),
            _ => {
                let channel = session
                    .connection
                    .create_channel()
                    .await
                    .map_err(|e| self.failed(&session, e))?;
                channel
                    .confirm_select(ConfirmSelectOptions::default())
                    .await
                    .map_err(|e| self.failed(&session, e))?;
                *slot = Some(channel.clone());
                channel
            }
        };
        let result = self
            .confirm(
                &session,
                &channel,
                exchange,
                routing_key,
                true,
                properties,
                body,
            )
            .await
            .and_then(accepted);
        match result {
            Ok(None) => Ok(()),
            Ok(Some(returned)) => Err(PublishError::Unexpected(anyhow::anyhow!(
                "the broker returned the message as unroutable: {} {} (exchange `{}`, routing key `{}`)",
                returned.reply_code,
                returned.reply_text,
                returned.exchange,
                returned.routing_key
            ))),
            Err(e) => {
                // A confirm still pending could carry a late return.
                *slot = None;
                Err(e)
            }
        }
    }

    pub(super) fn session(&self) -> Result<Arc<Session>, PublishError> {
        self.current().ok_or_else(|| {
            PublishError::Unavailable(anyhow::anyhow!("not connected to RabbitMQ (reconnecting)"))
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn confirm(
        &self,
        session: &Session,
        channel: &Channel,
        exchange: &str,
        routing_key: &str,
        mandatory: bool,
        properties: &MessageProperties,
        body: &[u8],
    ) -> Result<Confirmation, PublishError> {
        // One bound for the whole publish, the send included: a broker that
        // stops reading (flow control while a long queue pages to disk, a
        // resource alarm's connection.blocked) holds the send itself, and
        // an unbounded send would hang a request or the outbox relay with
        // nothing logged. Seen: a relay pass stuck for over 120 s on a
        // classic queue of 250 000 messages.
        let timeout = self.inner.config.confirm_timeout;
        let publish = async {
            let confirm = channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions {
                        mandatory,
                        ..BasicPublishOptions::default()
                    },
                    body,
                    to_lapin(properties),
                )
                .await?;
            confirm.await
        };
        match tokio::time::timeout(timeout, publish).await {
            Err(_) => {
                let row = session.timeouts.fetch_add(1, Ordering::SeqCst) + 1;
                if row >= TIMEOUTS_BEFORE_RETIRE {
                    self.retire(
                        session.generation,
                        &format_args!("{row} publishes in a row without the broker's confirm"),
                    );
                }
                Err(PublishError::Timeout(timeout))
            }
            Ok(Err(e)) => Err(self.failed(session, e)),
            Ok(Ok(confirmation)) => {
                session.timeouts.store(0, Ordering::SeqCst);
                Ok(confirmation)
            }
        }
    }

    /// Classifies a lapin error; a broken channel or connection retires the
    /// session so the next publish runs on a fresh one.
    pub(super) fn failed(&self, session: &Session, error: lapin::Error) -> PublishError {
        let permanent = is_permanent(&error);
        self.retire(session.generation, &error);
        if permanent {
            PublishError::Unexpected(error.into())
        } else {
            PublishError::Unavailable(error.into())
        }
    }

    /// A fresh channel for administrative work (health checks, topology
    /// tools, tests); the caller closes or drops it.
    pub async fn admin_channel(&self) -> Result<Channel, PublishError> {
        let session = self.current().ok_or_else(|| {
            PublishError::Unavailable(anyhow::anyhow!("not connected to RabbitMQ (reconnecting)"))
        })?;
        // A connection that cannot open a channel is dead: retire it, or a
        // consumer-only process would retry on it for ever.
        session
            .connection
            .create_channel()
            .await
            .map_err(|e| match self.failed(&session, e) {
                PublishError::Unexpected(e) => PublishError::Unavailable(e),
                other => other,
            })
    }
}

/// An ack is success, with what was returned before it; a nack is an error.
pub(super) fn accepted(confirmation: Confirmation) -> Result<Option<Returned>, PublishError> {
    match confirmation {
        Confirmation::Ack(returned) => Ok(returned.as_ref().map(Returned::of)),
        Confirmation::Nack(_) => Err(PublishError::Nacked),
        Confirmation::NotRequested => Err(PublishError::Unexpected(anyhow::anyhow!(
            "publisher confirms are not enabled on the channel"
        ))),
    }
}

/// The AMQP properties of a message (DESIGN §2) in lapin's form.
pub fn to_lapin(p: &MessageProperties) -> BasicProperties {
    let mut headers = FieldTable::default();
    for (key, value) in &p.headers {
        let value = match value {
            HeaderValue::Text(text) => AMQPValue::LongString(text.as_str().into()),
            HeaderValue::Int(n) => AMQPValue::LongLongInt(*n),
        };
        headers.insert(key.as_str().into(), value);
    }
    BasicProperties::default()
        .with_content_type(p.content_type.as_str().into())
        .with_delivery_mode(p.delivery_mode)
        .with_message_id(p.message_id.as_str().into())
        .with_type(p.kind.as_str().into())
        .with_app_id(p.app_id.as_str().into())
        .with_timestamp(p.timestamp)
        .with_headers(headers)
}
