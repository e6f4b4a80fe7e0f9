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

use crate::adapters::amqp::topology::{QueueType, declare_topology};

mod connect;
mod publish;

use crate::{
    adapters::bus::message::{HeaderValue, MessageProperties},
    ports::PublishError,
};
pub use publish::to_lapin;

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
