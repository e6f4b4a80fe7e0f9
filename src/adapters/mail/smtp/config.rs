//! `SmtpConfig`: the SMTP server and sender of `SmtpMailer`; filled from
//! `SMTP_*` by `app::config`, so this adapter reads no environment itself.

use std::time::Duration;

use secrecy::SecretString;

/// How the connection is protected (`SMTP_TLS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text (port 25 by default): a relay on a trusted network only.
    None,
    /// Plain connect, then a required STARTTLS (port 587 by default).
    StartTls,
    /// TLS from the first byte (port 465 by default).
    Tls,
}

/// The SMTP server e-mails go through.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// `SMTP_HOST`: also the name the TLS certificate must carry.
    pub host: String,
    /// `SMTP_PORT`; its default follows `tls`.
    pub port: u16,
    pub tls: SmtpTls,
    /// `SMTP_USERNAME`; AUTH is sent only with a password too.
    pub username: Option<String>,
    /// `SMTP_PASSWORD`.
    pub password: Option<SecretString>,
    /// `SMTP_FROM`: the sender mailbox (holds an `@`).
    pub from: String,
    /// Bound on one SMTP conversation (`SMTP_TIMEOUT_SECS`, 1-300 s); with
    /// the retries it also sets the e-mail lease (DESIGN §10).
    pub timeout: Duration,
}
