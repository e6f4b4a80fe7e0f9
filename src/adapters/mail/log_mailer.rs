//! `LogMailer`: with no `SMTP_HOST`, e-mails are written to the log (the
//! text part, OTP included, so a developer can verify an account), with the
//! recipient's address masked.

use async_trait::async_trait;

use crate::{
    domain::email_address::Email,
    ports::{MailError, Mailer, OutgoingEmail},
};

#[derive(Debug, Clone, Copy, Default)]
pub struct LogMailer;

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<(), MailError> {
        let masked = Email::parse(&email.to)
            .map(|e| e.masked())
            .unwrap_or_else(|_| "***".to_owned());
        let body = email
            .text
            .clone()
            .unwrap_or_else(|| email.html.clone())
            .replace(&email.to, &masked);
        tracing::info!(event_id = %email.message_id, to = %masked, subject = %email.subject, "e-mail (log mailer; set SMTP_HOST to send):\n{body}");
        Ok(())
    }
}
