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

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Mutex,
    task::{Context, Poll, ready},
    time::{Duration, Instant},
};

use async_trait::async_trait;
#[allow(deprecated)]
use lettre::transport::smtp::client::AsyncNetworkStream;
use lettre::{
    Message,
    message::{Mailbox, MultiPart, header::ContentType},
    transport::smtp::{
        authentication::{Credentials, DEFAULT_MECHANISMS},
        client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters},
        commands::Noop,
        extension::ClientId,
    },
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tracing::Instrument as _;

use crate::{
    app::config::{SmtpSettings, SmtpTls},
    ports::{MailError, Mailer, OutgoingEmail},
};

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

struct Idle {
    conn: AsyncSmtpConnection,
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
    pub fn new(settings: &SmtpSettings) -> anyhow::Result<Self> {
        let tls = match settings.tls {
            SmtpTls::None => None,
            tls => Some((tls, TlsParameters::new(settings.host.clone())?)),
        };
        let credentials = match (&settings.username, &settings.password) {
            (Some(user), Some(password)) => {
                Some(Credentials::new(user.clone(), password.expose().to_owned()))
            }
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
    async fn connection(&self) -> Result<AsyncSmtpConnection, MailError> {
        loop {
            // Bound to a statement: the guard must not live across an await.
            let parked = self.idle().pop();
            let Some(Idle { mut conn, since }) = parked else {
                return self.connect().await;
            };
            let idle_for = since.elapsed();
            if idle_for > MAX_IDLE {
                conn.abort().await;
                continue;
            }
            if idle_for <= CHECK_AFTER_IDLE || conn.command(Noop).await.is_ok() {
                return Ok(conn);
            }
            conn.abort().await;
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, MailError> {
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
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &self.hello)
            .await
            .map_err(classify)?;
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
        Ok(conn)
    }

    fn park(&self, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
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

    fn message(&self, email: &OutgoingEmail) -> Result<Message, MailError> {
        let permanent = |e: &dyn std::fmt::Display| MailError::Permanent(anyhow::anyhow!("{e}"));
        let to: Mailbox = email.to.parse().map_err(|e| permanent(&e))?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .message_id(Some(format!("<{}@smap-identity>", email.message_id)));
        if let Some(reply_to) = &email.reply_to {
            builder = builder.reply_to(reply_to.parse().map_err(|e| permanent(&e))?);
        }
        for cc in &email.cc {
            builder = builder.cc(cc.parse().map_err(|e| permanent(&e))?);
        }
        let message = match &email.text {
            Some(text) => builder.multipart(MultiPart::alternative_plain_html(
                text.clone(),
                email.html.clone(),
            )),
            None => builder
                .header(ContentType::TEXT_HTML)
                .body(email.html.clone()),
        };
        message.map_err(|e| permanent(&e))
    }

    async fn send_message(&self, message: &Message) -> Result<(), MailError> {
        let raw = message.formatted();
        let mut conn = self.connection().await?;
        // On failure lettre has already aborted the connection (QUIT and
        // close): it is dropped, not parked.
        conn.send(message.envelope(), &raw)
            .await
            .map_err(classify)?;
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

/// A TCP connection with `TCP_NODELAY`: every SMTP write goes out at once
/// (see the module comment).
async fn connect_tcp(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no connection to {host}:{port} within {timeout:?}"),
            )
        })??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// lettre's TLS stream, already upgraded, given back to lettre as a plain
/// stream (it reads futures-io, lettre's connection wants tokio's traits).
#[allow(deprecated)]
#[derive(Debug)]
struct ImplicitTls(AsyncNetworkStream);

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }
}

impl AsyncRead for ImplicitTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = ready!(futures_util::io::AsyncRead::poll_read(
            Pin::new(&mut self.0),
            cx,
            buf.initialize_unfilled()
        ))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ImplicitTls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        futures_util::io::AsyncWrite::poll_write(Pin::new(&mut self.0), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_util::io::AsyncWrite::poll_flush(Pin::new(&mut self.0), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_util::io::AsyncWrite::poll_close(Pin::new(&mut self.0), cx)
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
        let message = self.message(email)?;
        let result = self.send_message(&message).instrument(span.clone()).await;
        span.record(
            "otel.status_code",
            if result.is_ok() { "ok" } else { "error" },
        );
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn smtp_connections_set_tcp_nodelay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stream = connect_tcp("127.0.0.1", port, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(stream.nodelay().unwrap());
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_error_not_a_hang() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        assert!(
            connect_tcp("127.0.0.1", port, Duration::from_secs(5))
                .await
                .is_err()
        );
    }
}
