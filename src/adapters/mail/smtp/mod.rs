//! `SmtpMailer`: lettre's SMTP protocol over connections of our own, kept in
//! a small pool; `SMTP_TLS` chooses plain, STARTTLS or implicit TLS.
//!
//! Why not lettre's `AsyncSmtpTransport`: it never sets `TCP_NODELAY`, and
//! it writes a message and its closing `\r\n.\r\n` as two writes before it
//! waits for the answer. Nagle's algorithm then holds the second write until
//! the server's delayed ACK (40 ms on Linux): ~45 ms per e-mail whatever the
//! machine (issue 15). Its pool also sends a NOOP before every reuse, one
//! more round trip per e-mail. So we open the TCP stream ourselves, set
//! `TCP_NODELAY`, and hand it to lettre (`connect_with_transport`), which
//! still speaks SMTP, STARTTLS (same rustls roots and checks as before) and
//! AUTH.
//!
//! When the server offers PIPELINING (RFC 2920) and no STARTTLS layer sits
//! above our stream, `MAIL`, `RCPT` and `DATA` go out in one write and their
//! three answers are read after it: two round trips per e-mail instead of
//! four. lettre has no pipelining, so the commands are queued in our stream
//! (`Wire`) ahead of lettre's `DATA`, and lettre reads the answers in order.

mod config;
mod message;
#[cfg(test)]
mod tests;
mod wire;

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use async_trait::async_trait;
#[allow(deprecated)]
use lettre::transport::smtp::client::AsyncNetworkStream;
use lettre::{
    Message,
    message::Mailbox,
    transport::smtp::{
        authentication::{Credentials, DEFAULT_MECHANISMS},
        client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters},
        commands::{Ehlo, Noop},
        extension::ClientId,
    },
};
use secrecy::ExposeSecret;
use tracing::Instrument as _;

pub use config::{SmtpConfig, SmtpTls};
use wire::{ImplicitTls, Pipeline, Wire, connect_tcp, send_pipelined};

use crate::ports::{MailError, Mailer, OutgoingEmail};

/// Idle connections kept by default (the default `EMAIL_CONCURRENCY`: one
/// per delivery in flight).
const DEFAULT_POOL_SIZE: usize = 16;
/// A connection idle longer than this is checked with a NOOP before it is
/// used again: a server may have closed it meanwhile, and a send that fails
/// half-way may have been accepted. Under load connections come back within
/// milliseconds and skip the round trip.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(1);
/// A connection idle longer than this is closed rather than reused (lettre's
/// pool default; servers drop idle clients after a few minutes).
const MAX_IDLE: Duration = Duration::from_secs(60);

/// A connection and, when it may pipeline, the queue of its `Wire`.
struct Conn {
    smtp: AsyncSmtpConnection,
    pipeline: Option<Pipeline>,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

pub struct SmtpMailer {
    host: String,
    port: u16,
    /// Bounds the TCP connect; the whole conversation is bounded by the
    /// delivery (`SMTP_TIMEOUT_SECS` too).
    timeout: Duration,
    tls: Option<(SmtpTls, TlsParameters)>,
    credentials: Option<Credentials>,
    /// The EHLO name: the host name, as lettre's transport sends.
    hello: ClientId,
    from: Mailbox,
    pool_size: usize,
    idle: Mutex<Vec<Idle>>,
}

impl SmtpMailer {
    pub fn new(settings: &SmtpConfig) -> anyhow::Result<Self> {
        let tls = match settings.tls {
            SmtpTls::None => None,
            tls => Some((tls, TlsParameters::new(settings.host.clone())?)),
        };
        let credentials = match (&settings.username, &settings.password) {
            (Some(user), Some(password)) => Some(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            )),
            _ => None,
        };
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("SMTP_FROM `{}` is not a mailbox: {e}", settings.from))?;
        Ok(Self {
            host: settings.host.clone(),
            port: settings.port,
            timeout: settings.timeout,
            tls,
            credentials,
            hello: ClientId::default(),
            from,
            pool_size: DEFAULT_POOL_SIZE,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Keeps up to `size` idle connections (one per delivery in flight, so
    /// a busy consumer never reconnects).
    #[must_use]
    pub fn with_pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // Plain pushes and pops: a poisoned lock still holds a valid list.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A pooled connection that still answers, else a new one.
    async fn connection(&self) -> Result<Conn, MailError> {
        loop {
            // Bound to a statement: the guard must not live across an await.
            let parked = self.idle().pop();
            let Some(Idle { mut conn, since }) = parked else {
                return self.connect().await;
            };
            let idle_for = since.elapsed();
            if idle_for > MAX_IDLE {
                conn.smtp.abort().await;
                continue;
            }
            if idle_for <= CHECK_AFTER_IDLE || conn.smtp.command(Noop).await.is_ok() {
                return Ok(conn);
            }
            conn.smtp.abort().await;
        }
    }

    async fn connect(&self) -> Result<Conn, MailError> {
        let tcp = connect_tcp(&self.host, self.port, self.timeout)
            .await
            .map_err(|e| {
                MailError::Transient(anyhow::anyhow!(
                    "connecting to {}:{}: {e}",
                    self.host,
                    self.port
                ))
            })?;
        let stream: Box<dyn AsyncTokioStream> = match &self.tls {
            Some((SmtpTls::Tls, parameters)) => {
                // Implicit TLS: the handshake comes before the greeting,
                // so it is done here, with lettre's TLS code, and lettre
                // then reads the greeting through it.
                #[allow(deprecated)]
                let mut tls = AsyncNetworkStream::use_existing_tokio1(Box::new(tcp));
                tls.upgrade_tls(parameters.clone())
                    .await
                    .map_err(classify)?;
                Box::new(ImplicitTls(tls))
            }
            _ => Box::new(tcp),
        };
        let pipeline = Pipeline::default();
        let wire = Wire::new(stream, pipeline.clone());
        let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(wire), &self.hello)
            .await
            .map_err(classify)?;
        // lettre keeps only the EHLO keywords it knows (not PIPELINING):
        // ask again. After STARTTLS the queue would sit under the TLS
        // layer, so such connections never pipeline.
        let pipelines = !matches!(self.tls, Some((SmtpTls::StartTls, _)))
            && conn
                .command(Ehlo::new(self.hello.clone()))
                .await
                .map_err(classify)?
                .message()
                .any(|line| line.trim().eq_ignore_ascii_case("PIPELINING"));
        if let Some((SmtpTls::StartTls, parameters)) = &self.tls {
            // Required, as lettre's `starttls_relay`: fails when the server
            // does not offer it.
            conn.starttls(parameters.clone(), &self.hello)
                .await
                .map_err(classify)?;
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials)
                .await
                .map_err(classify)?;
        }
        Ok(Conn {
            smtp: conn,
            pipeline: pipelines.then_some(pipeline),
        })
    }

    fn park(&self, conn: Conn) {
        if conn.smtp.has_broken() {
            return;
        }
        let mut idle = self.idle();
        if idle.len() < self.pool_size {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
        // Else dropped: the server sees the connection close.
    }

    async fn send_message(&self, message: &Message) -> Result<(), MailError> {
        let raw = message.formatted();
        let envelope = message.envelope();
        let mut conn = self.connection().await?;
        // Non-ASCII addresses or body need SMTPUTF8 or 8BITMIME parameters:
        // lettre's own send checks and sets them.
        let ascii = raw.is_ascii()
            && envelope
                .from()
                .into_iter()
                .chain(envelope.to())
                .all(|a| AsRef::<str>::as_ref(a).is_ascii());
        let sent = match &conn.pipeline {
            Some(queue) if ascii => send_pipelined(&mut conn.smtp, queue, envelope, &raw).await,
            _ => conn
                .smtp
                .send(envelope, &raw)
                .await
                .map(drop)
                .map_err(classify),
        };
        // On failure the connection is dropped, not parked: lettre's own
        // send has already aborted it (QUIT and close), and a pipelined
        // one's answers are out of step (a QUIT could wait forever on a
        // server reading a message body).
        sent?;
        self.park(conn);
        Ok(())
    }
}

/// A 5xx answer is permanent (sending again gets the same); anything else
/// (4xx, network, TLS) may pass on another try.
fn classify(e: lettre::transport::smtp::Error) -> MailError {
    if e.is_permanent() {
        MailError::Permanent(e.into())
    } else {
        MailError::Transient(e.into())
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<(), MailError> {
        // A client span per SMTP conversation, child of the consume span.
        let span = tracing::info_span!(
            "smtp send",
            otel.kind = "client",
            network.protocol.name = "smtp",
            server.address = %self.host,
            server.port = self.port,
            messaging.message.id = %email.message_id,
            otel.status_code = tracing::field::Empty,
        );
        let message = message::build(&self.from, email)?;
        let result = self.send_message(&message).instrument(span.clone()).await;
        span.record(
            "otel.status_code",
            if result.is_ok() { "ok" } else { "error" },
        );
        result
    }
}
