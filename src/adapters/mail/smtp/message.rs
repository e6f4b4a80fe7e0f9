//! The MIME message of an `OutgoingEmail`: HTML, with a plain-text
//! alternative when there is one. An address lettre cannot parse is a
//! permanent failure: sending again would fail the same way.

use lettre::{
    Message,
    message::{Mailbox, MultiPart, header::ContentType},
};

use crate::ports::{MailError, OutgoingEmail};

/// The message `from` sends for `email`.
pub(super) fn build(from: &Mailbox, email: &OutgoingEmail) -> Result<Message, MailError> {
    let permanent = |e: &dyn std::fmt::Display| MailError::Permanent(anyhow::anyhow!("{e}"));
    let to: Mailbox = email.to.parse().map_err(|e| permanent(&e))?;
    let mut builder = Message::builder()
        .from(from.clone())
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
