//! `Mailer`: hands a rendered e-mail to a mail server (or a log, or memory).

use async_trait::async_trait;

/// A rendered e-mail, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    /// The id of the event it comes from; becomes the `Message-ID`
    /// (`<id@smap-identity>`), so a copy sent twice is recognisable.
    pub message_id: String,
    /// The one recipient's address, as text (the SMTP adapter fails
    /// `Permanent` on one it cannot parse, as for `reply_to` and `cc`).
    pub to: String,
    /// The subject line, plain text.
    pub subject: String,
    /// The HTML body, sent as given.
    pub html: String,
    /// The plain-text alternative; `None` sends the HTML alone.
    pub text: Option<String>,
    /// Where replies go, if not to the sender.
    pub reply_to: Option<String>,
    /// Copies to these addresses; empty for none.
    pub cc: Vec<String>,
}

/// Why an e-mail was not sent, sorted by whether another try may help.
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
    /// True for `Transient`: the delivery may be retried.
    pub fn is_transient(&self) -> bool {
        matches!(self, MailError::Transient(_))
    }
}

/// Hands rendered e-mails to a mail server. No retries and no
/// de-duplication here: the caller (`crate::domain::mail_delivery`) does
/// both.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends `email`; `Ok` once the server accepted it for delivery.
    ///
    /// # Errors
    ///
    /// `Transient` when the mail server is unreachable or answers 4xx (another
    /// try may work), `Permanent` when it refuses the e-mail (5xx, a bad
    /// address: retrying cannot help).
    async fn send(&self, email: &OutgoingEmail) -> Result<(), MailError>;
}
