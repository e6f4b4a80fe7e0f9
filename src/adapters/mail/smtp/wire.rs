//! The stream under lettre: a TCP connection with `TCP_NODELAY`, the queue
//! that lets `MAIL`, `RCPT` and `DATA` go out in one write (RFC 2920
//! pipelining, which lettre lacks), and implicit TLS handed back to lettre
//! as a plain stream. Why each exists: the `smtp` module comment.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, ready},
    time::Duration,
};

#[allow(deprecated)]
use lettre::transport::smtp::client::AsyncNetworkStream;
use lettre::transport::smtp::{
    client::{AsyncSmtpConnection, AsyncTokioStream},
    commands::{Data, Mail, Rcpt},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};

use super::classify;
use crate::ports::MailError;

/// `MAIL`, every `RCPT` and `DATA` in one write, then their answers in
/// order, then the message (RFC 2920). The first refusal is the error.
pub(super) async fn send_pipelined(
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
    let answers = async {
        conn.command(Data).await?;
        for _ in envelope.to() {
            conn.read_response().await?;
        }
        conn.read_response().await?;
        conn.message(raw).await?;
        Ok::<_, lettre::transport::smtp::Error>(())
    };
    answers.await.map_err(classify)
}

/// Commands waiting to go out ahead of lettre's next write.
#[derive(Debug, Clone, Default)]
pub(super) struct Pipeline(Arc<Mutex<Vec<u8>>>);

impl Pipeline {
    pub(super) fn push(&self, bytes: &[u8]) {
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
pub(super) struct Wire {
    inner: Box<dyn AsyncTokioStream>,
    /// Queued commands plus lettre's write, until the flush sends them.
    pending: Vec<u8>,
    queued: Pipeline,
}

impl Wire {
    /// `inner`, with what `queued` holds sent ahead of lettre's next write.
    pub(super) fn new(inner: Box<dyn AsyncTokioStream>, queued: Pipeline) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            queued,
        }
    }
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

/// A TCP connection with `TCP_NODELAY`: every SMTP write goes out at once
/// (see the module comment).
pub(super) async fn connect_tcp(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
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
pub(super) struct ImplicitTls(pub(super) AsyncNetworkStream);

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
