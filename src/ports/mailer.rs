//! `Mailer`: hands a rendered e-mail to a mail server (or a log, or memory).

use async_trait::async_trait;

/// A rendered e-mail, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    /// The event it comes from; becomes the `Message-ID`.
    pub message_id: String,
    pub to: String,
    pub subject: String,
    pub html: String,
    pub text: Option<String>,
    pub reply_to: Option<String>,
    pub cc: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The server could not be reached or answered 4xx: another try may work.
    #[error("mail server unavailable")]
    Transient(#[source] anyhow::Error),
    /// The server refused this e-mail (5xx, bad address): trying again won't help.
    #[error("e-mail refused")]
    Permanent(#[source] anyhow::Error),
}

impl MailError {
    pub fn is_transient(&self) -> bool {
        matches!(self, MailError::Transient(_))
    }
}

#[async_trait]
pub trait Mailer: Send + Sync {
    /// # Errors
    ///
    /// `Transient` when the mail server is unreachable or answers 4xx (another
    /// try may work), `Permanent` when it refuses the e-mail (5xx, a bad
    /// address: retrying cannot help).
    async fn send(&self, email: &OutgoingEmail) -> Result<(), MailError>;
}
