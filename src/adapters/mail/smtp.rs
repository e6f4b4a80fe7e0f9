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

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
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
        commands::{Data, Ehlo, Mail, Noop, Rcpt},
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
        let wire = Wire {
            inner: stream,
            pending: Vec::new(),
            queued: pipeline.clone(),
        };
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
        match &conn.pipeline {
            Some(queue) if ascii => {
                // On failure the connection is dropped, not parked: its
                // answers are out of step (and a QUIT could wait forever
                // on a server reading a message body).
                send_pipelined(&mut conn.smtp, queue, envelope, &raw).await?;
            }
            _ => {
                // On failure lettre has already aborted the connection
                // (QUIT and close): it is dropped, not parked.
                conn.smtp.send(envelope, &raw).await.map_err(classify)?;
            }
        }
        self.park(conn);
        Ok(())
    }
}

/// `MAIL`, every `RCPT` and `DATA` in one write, then their answers in
/// order, then the message (RFC 2920). The first refusal is the error.
async fn send_pipelined(
    conn: &mut AsyncSmtpConnection,
    queue: &Pipeline,
    envelope: &lettre::address::Envelope,
    raw: &[u8],
) -> Result<(), MailError> {
    let mut commands = Mail::new(envelope.from().cloned(), Vec::new()).to_string();
    for to in envelope.to() {
        commands.push_str(&Rcpt::new(to.clone(), Vec::new()).to_string());
    }
    queue.push(commands.as_bytes());
    // lettre writes DATA behind the queued commands and reads one answer:
    // MAIL's. Then one per RCPT, then DATA's (354).
    conn.command(Data).await.map_err(classify)?;
    for _ in envelope.to() {
        conn.read_response().await.map_err(classify)?;
    }
    conn.read_response().await.map_err(classify)?;
    conn.message(raw).await.map_err(classify)?;
    Ok(())
}

/// Commands waiting to go out ahead of lettre's next write.
#[derive(Debug, Clone, Default)]
struct Pipeline(Arc<Mutex<Vec<u8>>>);

impl Pipeline {
    fn push(&self, bytes: &[u8]) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
    }

    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The stream lettre talks through: what the `Pipeline` holds goes out in
/// the same write as lettre's next command (lettre flushes after each).
#[derive(Debug)]
struct Wire {
    inner: Box<dyn AsyncTokioStream>,
    /// Queued commands plus lettre's write, until the flush sends them.
    pending: Vec<u8>,
    queued: Pipeline,
}

impl AsyncTokioStream for Wire {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }
}

impl AsyncRead for Wire {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let queued = self.queued.take();
        self.pending.extend_from_slice(&queued);
        if self.pending.is_empty() {
            return Pin::new(&mut self.inner).poll_write(cx, buf);
        }
        self.pending.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while !this.pending.is_empty() {
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &this.pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            this.pending.drain(..n);
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
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
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    use super::*;

    /// A one-connection SMTP server that answers each command only once it
    /// has read every command the client may pipeline: a client that waits
    /// for an answer before its next command would stall it. Returns the
    /// connections accepted and the messages received.
    async fn fake_server(
        pipelining: bool,
        messages: usize,
    ) -> (u16, tokio::task::JoinHandle<(usize, usize)>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let (read, mut write) = socket.into_split();
            let mut lines = BufReader::new(read).lines();
            write.write_all(b"220 fake ESMTP\r\n").await.unwrap();
            let ehlo: &[u8] = if pipelining {
                b"250-fake\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
            } else {
                b"250-fake\r\n250 8BITMIME\r\n"
            };
            let mut received = 0;
            while let Some(line) = lines.next_line().await.unwrap() {
                let command = line.to_ascii_uppercase();
                if command.starts_with("EHLO") {
                    write.write_all(ehlo).await.unwrap();
                } else if command.starts_with("MAIL") {
                    if pipelining {
                        // RCPT and DATA must come before MAIL's answer.
                        let rcpt = lines.next_line().await.unwrap().unwrap();
                        let data = lines.next_line().await.unwrap().unwrap();
                        assert!(rcpt.starts_with("RCPT TO:"), "{rcpt}");
                        assert_eq!(data, "DATA");
                        write
                            .write_all(b"250 ok\r\n250 ok\r\n354 go\r\n")
                            .await
                            .unwrap();
                    } else {
                        write.write_all(b"250 ok\r\n").await.unwrap();
                        let rcpt = lines.next_line().await.unwrap().unwrap();
                        assert!(rcpt.starts_with("RCPT TO:"), "{rcpt}");
                        write.write_all(b"250 ok\r\n").await.unwrap();
                        assert_eq!(lines.next_line().await.unwrap().unwrap(), "DATA");
                        write.write_all(b"354 go\r\n").await.unwrap();
                    }
                    while lines.next_line().await.unwrap().unwrap() != "." {}
                    received += 1;
                    write.write_all(b"250 queued\r\n").await.unwrap();
                    if received == messages {
                        break;
                    }
                } else {
                    write.write_all(b"250 ok\r\n").await.unwrap();
                }
            }
            // Only one connection is accepted: a second one would hang.
            (1, received)
        });
        (port, server)
    }

    fn settings(port: u16) -> SmtpSettings {
        SmtpSettings {
            host: "127.0.0.1".into(),
            port,
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: "SMAP <no-reply@smap.test>".into(),
            timeout: Duration::from_secs(5),
        }
    }

    fn email(id: &str) -> OutgoingEmail {
        OutgoingEmail {
            message_id: id.into(),
            to: "someone@example.com".into(),
            subject: "Hello".into(),
            html: "<p>Hello</p>".into(),
            text: Some("Hello".into()),
            reply_to: None,
            cc: Vec::new(),
        }
    }

    async fn send_three(pipelining: bool) {
        let (port, server) = fake_server(pipelining, 3).await;
        let mailer = SmtpMailer::new(&settings(port)).unwrap();
        for id in ["evt_1", "evt_2", "evt_3"] {
            // Bounded so that a client that does not pipeline fails here
            // instead of hanging the test.
            tokio::time::timeout(Duration::from_secs(20), mailer.send(&email(id)))
                .await
                .expect("the server answers")
                .unwrap();
        }
        assert_eq!(server.await.unwrap(), (1, 3));
    }

    #[tokio::test]
    async fn a_server_offering_pipelining_gets_mail_rcpt_and_data_in_one_go_on_one_connection() {
        send_three(true).await;
    }

    #[tokio::test]
    async fn a_server_without_pipelining_gets_one_command_at_a_time_on_one_connection() {
        send_three(false).await;
    }

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
