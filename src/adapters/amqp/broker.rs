//! `AmqpBroker`: the connection manager. Publishers share its channels
//! (many publishes in flight per channel, never a channel per message);
//! when the connection breaks, publishes fail fast as transient and a single
//! background task reconnects with backoff. Mandatory publishes report what
//! the broker returned as unroutable; those that must fail on a return (dead
//! letters) run one at a time on a channel of their own, because lapin
//! hands a return to whichever pending confirm the next ack resolves.
//!
//! `AMQP_URL` may list the nodes of a cluster, comma-separated: connecting
//! walks the list from the node that last worked, and after a lost
//! connection the node that failed is tried last, so a dead node is left
//! for a live one (DESIGN §10 "Clustered servers").

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::StreamExt;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ErrorKind,
    message::BasicReturnMessage,
    options::{BasicPublishOptions, ConfirmSelectOptions},
    protocol::AMQPErrorKind,
    types::{AMQPValue, FieldTable},
};

use super::topology::{QueueType, declare_topology};
use crate::{
    adapters::bus::message::{HeaderValue, MessageProperties},
    ports::PublishError,
};

#[derive(Debug, Clone)]
pub struct AmqpConfig {
    /// Confirm-mode channels shared by all publishes.
    pub channels: usize,
    /// A publish without the broker's confirm after this long is an error.
    pub confirm_timeout: Duration,
    /// Bound on one connection attempt.
    pub connect_timeout: Duration,
    /// Backoff between reconnection attempts: doubles up to the max.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Declare the topology on every (re)connect; tools that only look
    /// (`events status`, `cleanup-legacy`) turn it off.
    pub declare_topology: bool,
    /// The type of the queues declared (`AMQP_QUEUE_TYPE`).
    pub queue_type: QueueType,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        Self {
            channels: 4,
            confirm_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(2),
            declare_topology: true,
            queue_type: QueueType::Classic,
        }
    }
}

struct Session {
    generation: u64,
    /// Index in `Inner::urls` of the node this session is connected to.
    node: usize,
    connection: Connection,
    channels: Vec<Channel>,
    next: AtomicUsize,
    /// The channel of `publish_routed`, opened on first use; one publish at
    /// a time (the lock is held until its confirm), so a return can only
    /// belong to that publish. Dropped after a failure or a timeout: a late
    /// return must not be taken for the next publish's.
    routed: tokio::sync::Mutex<Option<Channel>>,
    /// Publishes timed out in a row: a node that stopped answering without
    /// closing the socket is left after a few, not after the heartbeat.
    timeouts: AtomicU32,
}

/// A message the broker returned as unroutable (`basic.return`), described
/// from the returned message itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Returned {
    pub exchange: String,
    pub routing_key: String,
    pub message_id: String,
    pub reply_code: u16,
    pub reply_text: String,
}

impl Returned {
    fn of(message: &BasicReturnMessage) -> Self {
        Self {
            exchange: message.delivery.exchange.to_string(),
            routing_key: message.delivery.routing_key.to_string(),
            message_id: message
                .delivery
                .properties
                .message_id()
                .as_ref()
                .map(|id| id.to_string())
                .unwrap_or_default(),
            reply_code: message.reply_code,
            reply_text: message.reply_text.to_string(),
        }
    }
}

impl Session {
    fn channel(&self) -> &Channel {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.channels.len();
        &self.channels[i]
    }
}

struct Inner {
    /// The nodes of `AMQP_URL`, in the order given.
    urls: Vec<String>,
    /// The node to try first: the last one that worked, or the one after
    /// a node whose connection was lost.
    cursor: AtomicUsize,
    config: AmqpConfig,
    session: RwLock<Option<Arc<Session>>>,
    generation: AtomicU64,
    reconnecting: AtomicBool,
    closed: AtomicBool,
    /// Why the last connection attempt failed (tools print it).
    last_error: std::sync::Mutex<Option<String>>,
}

#[derive(Clone)]
pub struct AmqpBroker {
    inner: Arc<Inner>,
}

fn amqp_code(error: &lapin::Error) -> Option<u16> {
    match error.kind() {
        ErrorKind::ProtocolError(e) => Some(e.get_id()),
        _ => None,
    }
}

fn is_channel_error(error: &lapin::Error) -> bool {
    matches!(error.kind(), ErrorKind::ProtocolError(e) if matches!(e.kind(), AMQPErrorKind::Soft(_)))
}

/// Broker refusals that another try will not cure.
fn is_permanent(error: &lapin::Error) -> bool {
    matches!(amqp_code(error), Some(403 | 404 | 405 | 406 | 530 | 540))
        || matches!(error.kind(), ErrorKind::SerialisationError(_))
}

/// The nodes of an `AMQP_URL`: comma-separated, blanks ignored.
pub fn split_urls(urls: &str) -> Vec<String> {
    urls.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Publishes timed out in a row before the session is retired.
const TIMEOUTS_BEFORE_RETIRE: u32 = 3;

/// `url` with lapin's TCP connect bounded by `timeout` (`connection_timeout`,
/// ms) unless the URL sets its own: lapin connects on a thread of its own
/// that our timeout cannot cancel, so a node that drops SYNs would hold it
/// (and its socket) for the kernel's ~2 minutes.
fn with_connect_timeout(url: &str, timeout: Duration) -> String {
    if url.contains("connection_timeout=") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}connection_timeout={}", timeout.as_millis())
}

/// `wait` ± 25 %, so processes that lost the same node do not retry in step.
fn jitter(wait: Duration) -> Duration {
    let unit = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
    crate::domain::retry::RetryPolicy::NONE
        .with_jitter_percent(25)
        .jitter(wait, unit)
}

/// A node named for logs: host and port, never the URL (it holds the
/// password).
fn node_name(url: &str) -> String {
    match url.parse::<lapin::uri::AMQPUri>() {
        Ok(uri) => format!("{}:{}", uri.authority.host, uri.authority.port),
        Err(_) => "(unparsable AMQP_URL item)".to_owned(),
    }
}

/// Why the topology could not be declared, with what to do when the cause
/// is a queue declared elsewhere with other arguments.
fn topology_error(error: lapin::Error, queue_type: QueueType) -> anyhow::Error {
    if amqp_code(&error) == Some(406) {
        anyhow::anyhow!(
            "declaring the topology with AMQP_QUEUE_TYPE={queue_type} was refused: {error}; a queue \
             exists with other arguments (another type?). A queue's type cannot change in place: \
             see docs/event-migration-guide.md, \"Classic to quorum queues\""
        )
    } else {
        anyhow::Error::from(error).context("declaring the topology")
    }
}

impl AmqpBroker {
    /// Connects to the first node of `urls` (one URL or a comma-separated
    /// list) that answers, each bounded by `connect_timeout`; when none
    /// does, the broker keeps trying in the background and publishes answer
    /// `Unavailable` until one does.
    pub async fn connect(urls: &str, config: AmqpConfig) -> Self {
        let urls = split_urls(urls);
        // Replicas start on different nodes, so they (and the quorum queue
        // leaders they declare) do not all land on the first one.
        let start = (uuid::Uuid::new_v4().as_u128() % urls.len().max(1) as u128) as usize;
        let broker = Self {
            inner: Arc::new(Inner {
                urls,
                cursor: AtomicUsize::new(start),
                config,
                session: RwLock::new(None),
                generation: AtomicU64::new(0),
                reconnecting: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                last_error: std::sync::Mutex::new(None),
            }),
        };
        match broker.open_session().await {
            Ok(node) => tracing::info!(node = %node, "connected to RabbitMQ; topology declared"),
            Err(e) => {
                tracing::warn!(error = %e, "RabbitMQ not reachable; reconnecting in the background");
                broker.spawn_reconnect();
            }
        }
        broker
    }

    /// Walks the nodes from the cursor; returns the name of the node now
    /// in use. A refusal that every node would repeat (access, a queue
    /// with other arguments) ends the walk.
    async fn open_session(&self) -> anyhow::Result<String> {
        let n = self.inner.urls.len();
        if n == 0 {
            anyhow::bail!("AMQP_URL lists no node");
        }
        let start = self.inner.cursor.load(Ordering::SeqCst) % n;
        let mut last = None;
        for k in 0..n {
            let node = (start + k) % n;
            match self.open_on(node).await {
                Ok(()) => {
                    self.inner.cursor.store(node, Ordering::SeqCst);
                    *self
                        .inner
                        .last_error
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = None;
                    return Ok(node_name(&self.inner.urls[node]));
                }
                Err(Failure::Permanent(e)) => {
                    last = Some(e);
                    break;
                }
                Err(Failure::Node(e)) => {
                    tracing::debug!(node = %node_name(&self.inner.urls[node]), error = %e, "RabbitMQ node unavailable");
                    last = Some(e);
                }
            }
        }
        let error = last.unwrap_or_else(|| anyhow::anyhow!("AMQP_URL lists no node"));
        *self
            .inner
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(format!("{error:#}"));
        Err(error)
    }

    /// Why the last connection attempt failed, if it did.
    pub fn last_error(&self) -> Option<String> {
        self.inner
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Opens a session on node `node`, bounded by `connect_timeout`.
    async fn open_on(&self, node: usize) -> Result<(), Failure> {
        let config = &self.inner.config;
        let url = with_connect_timeout(&self.inner.urls[node], config.connect_timeout);
        // Numbered before connecting so the connection is watched from its
        // first moment: an error before the session is installed would
        // otherwise go unseen and leave a dead session in place.
        let generation = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let refused: Arc<std::sync::Mutex<Option<Connection>>> = Arc::default();
        let open = async {
            let properties =
                ConnectionProperties::default().with_connection_name("smap-identity".into());
            let connection = Connection::connect(&url, properties)
                .await
                .map_err(Failure::of)?;
            self.watch(generation, &connection);
            let mut channels = Vec::with_capacity(config.channels.max(1));
            for _ in 0..config.channels.max(1) {
                let channel = connection.create_channel().await.map_err(Failure::of)?;
                channel
                    .confirm_select(ConfirmSelectOptions::default())
                    .await
                    .map_err(Failure::of)?;
                channels.push(channel);
            }
            if config.declare_topology
                && let Err(e) = declare_topology(&channels[0], config.queue_type).await
            {
                let permanent = is_permanent(&e);
                let error = topology_error(e, config.queue_type);
                // Closed outside the timeout: a slow close must not turn
                // the refusal into "connecting took too long".
                *refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(connection);
                // A classic queue whose home node is down answers 404 on
                // every node: another node will not help, but a later
                // try may (the node comes back).
                return Err(if permanent {
                    Failure::Permanent(error)
                } else {
                    Failure::Node(error)
                });
            }
            Ok((connection, channels))
        };
        let opened = tokio::time::timeout(config.connect_timeout, open).await;
        if let Some(connection) = refused.lock().unwrap_or_else(|e| e.into_inner()).take() {
            tokio::spawn(async move {
                let _ = connection.close(200, "topology refused".into()).await;
            });
        }
        let (connection, channels) = opened.map_err(|_| {
            Failure::Node(anyhow::anyhow!(
                "connecting took over {:?}",
                config.connect_timeout
            ))
        })??;
        let session = Arc::new(Session {
            generation,
            node,
            connection,
            channels,
            next: AtomicUsize::new(0),
            routed: tokio::sync::Mutex::new(None),
            timeouts: AtomicU32::new(0),
        });
        *self
            .inner
            .session
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(session.clone());
        // Closed meanwhile: nobody else would close this connection.
        if self.inner.closed.load(Ordering::SeqCst) {
            let _ = session
                .connection
                .close(200, "smap-identity shutting down".into())
                .await;
            return Err(Failure::Permanent(anyhow::anyhow!("the broker was closed")));
        }
        // Lost between connecting and installing: the watcher's retire
        // found nothing to retire then, so retire now.
        if !session.connection.status().connected() {
            self.retire(
                generation,
                &"the connection closed while it was being opened",
            );
            return Err(Failure::Node(anyhow::anyhow!(
                "the connection closed while it was being opened"
            )));
        }
        Ok(())
    }

    /// Watches the connection's events; an error retires the session.
    fn watch(&self, generation: u64, connection: &Connection) {
        let mut events = Box::pin(connection.events_listener());
        let broker = self.clone();
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                // A soft (channel-level) error, e.g. a health check's failed
                // declare, closes one channel, not the connection.
                if let lapin::Event::Error(error) = event
                    && !is_channel_error(&error)
                {
                    broker.retire(generation, &error);
                    break;
                }
            }
        });
    }

    fn current(&self) -> Option<Arc<Session>> {
        self.inner
            .session
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Drops session `generation` (if still current) and starts reconnecting.
    fn retire(&self, generation: u64, error: &dyn std::fmt::Display) {
        let mut slot = self
            .inner
            .session
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(session) = slot.as_ref().filter(|s| s.generation == generation) {
            let n = self.inner.urls.len().max(1);
            // The node that failed is tried last.
            self.inner
                .cursor
                .store((session.node + 1) % n, Ordering::SeqCst);
            tracing::warn!(
                node = %node_name(&self.inner.urls[session.node]),
                error = %error,
                "RabbitMQ connection lost; reconnecting"
            );
            *slot = None;
            drop(slot);
            self.spawn_reconnect();
        }
    }

    fn spawn_reconnect(&self) {
        // One reconnecting task at a time.
        if self.inner.closed.load(Ordering::SeqCst)
            || self.inner.reconnecting.swap(true, Ordering::SeqCst)
        {
            return;
        }
        let broker = self.clone();
        tokio::spawn(async move {
            let mut wait = broker.inner.config.reconnect_min;
            let mut attempt = 0u32;
            while !broker.inner.closed.load(Ordering::SeqCst) {
                tokio::time::sleep(wait).await;
                attempt += 1;
                match broker.open_session().await {
                    Ok(node) => {
                        tracing::info!(attempt, node = %node, "reconnected to RabbitMQ; topology declared");
                        break;
                    }
                    Err(_) if broker.inner.closed.load(Ordering::SeqCst) => break,
                    Err(e) => {
                        // The first failure and every 30th say why at WARN:
                        // a refusal no retry cures must not hide at DEBUG.
                        if attempt % 30 == 1 {
                            tracing::warn!(attempt, error = %e, "RabbitMQ reconnection failed; retrying");
                        } else {
                            tracing::debug!(attempt, error = %e, "RabbitMQ reconnection failed");
                        }
                        wait = jitter((wait * 2).min(broker.inner.config.reconnect_max));
                    }
                }
            }
            broker.inner.reconnecting.store(false, Ordering::SeqCst);
            // A session lost after it was installed but before the flag
            // came down found a reconnect "already running": start one.
            if !broker.inner.closed.load(Ordering::SeqCst) && broker.current().is_none() {
                broker.spawn_reconnect();
            }
        });
    }

    /// The node in use (`host:port`), when connected.
    pub fn connected_node(&self) -> Option<String> {
        self.current()
            .filter(|s| s.connection.status().connected())
            .map(|s| node_name(&self.inner.urls[s.node]))
    }

    pub fn is_connected(&self) -> bool {
        self.current()
            .is_some_and(|s| s.connection.status().connected())
    }

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
    /// so the caller describes it from [`Returned`], not from what it sent.
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

    fn session(&self) -> Result<Arc<Session>, PublishError> {
        self.current().ok_or_else(|| {
            PublishError::Unavailable(anyhow::anyhow!("not connected to RabbitMQ (reconnecting)"))
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn confirm(
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
    fn failed(&self, session: &Session, error: lapin::Error) -> PublishError {
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

    /// Closes the connection; no reconnection afterwards.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        let session = self
            .inner
            .session
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(session) = session {
            let close = session
                .connection
                .close(200, "smap-identity shutting down".into());
            if tokio::time::timeout(Duration::from_secs(5), close)
                .await
                .is_err()
            {
                tracing::warn!("RabbitMQ connection did not close within 5 s");
            }
        }
    }
}

/// Why opening a session on one node failed.
enum Failure {
    /// That node: try the next one.
    Node(anyhow::Error),
    /// Every node would answer the same: stop walking.
    Permanent(anyhow::Error),
}

impl Failure {
    fn of(error: lapin::Error) -> Self {
        if matches!(amqp_code(&error), Some(403 | 530)) {
            Self::Permanent(error.into())
        } else {
            Self::Node(error.into())
        }
    }
}

/// An ack is success, with what was returned before it; a nack is an error.
fn accepted(confirmation: Confirmation) -> Result<Option<Returned>, PublishError> {
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
