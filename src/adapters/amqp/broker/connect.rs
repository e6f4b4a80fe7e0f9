//! Connecting: walking the nodes, opening a session (connection, confirm
//! channels, topology), watching it, and reconnecting after it is lost.

use super::*;

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
    pub(super) async fn open_session(&self) -> anyhow::Result<String> {
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
    pub(super) async fn open_on(&self, node: usize) -> Result<(), Failure> {
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
            let channels = confirm_channels(&connection, config.channels.max(1)).await?;
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
        self.install(generation, node, connection, channels).await
    }

    /// Installs a freshly opened session as the current one, unless the
    /// broker was closed or the connection lost meanwhile.
    async fn install(
        &self,
        generation: u64,
        node: usize,
        connection: Connection,
        channels: Vec<Channel>,
    ) -> Result<(), Failure> {
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
    pub(super) fn watch(&self, generation: u64, connection: &Connection) {
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

    pub(super) fn current(&self) -> Option<Arc<Session>> {
        self.inner
            .session
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Drops session `generation` (if still current) and starts reconnecting.
    pub(super) fn retire(&self, generation: u64, error: &dyn std::fmt::Display) {
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

    pub(super) fn spawn_reconnect(&self) {
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

/// `count` channels in confirm mode on `connection`.
async fn confirm_channels(connection: &Connection, count: usize) -> Result<Vec<Channel>, Failure> {
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count {
        let channel = connection.create_channel().await.map_err(Failure::of)?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(Failure::of)?;
        channels.push(channel);
    }
    Ok(channels)
}
