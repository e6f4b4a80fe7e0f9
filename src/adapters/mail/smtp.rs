//! `SmtpMailer`: lettre's async SMTP transport with a connection pool;
//! `SMTP_TLS` chooses plain, STARTTLS or implicit TLS.

use async_trait::async_trait;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart, header::ContentType},
    transport::smtp::{PoolConfig, authentication::Credentials},
};
use tracing::Instrument as _;

use crate::{
    app::config::{SmtpSettings, SmtpTls},
    ports::{MailError, Mailer, OutgoingEmail},
};

pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    host: String,
    port: u16,
}

impl SmtpMailer {
    pub fn new(settings: &SmtpSettings) -> anyhow::Result<Self> {
        let builder = match settings.tls {
            SmtpTls::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            }
            SmtpTls::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host)?
            }
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host)?,
        };
        let mut builder = builder
            .port(settings.port)
            .timeout(Some(settings.timeout))
            .pool_config(PoolConfig::new().max_size(16));
        if let (Some(user), Some(password)) = (&settings.username, &settings.password) {
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("SMTP_FROM `{}` is not a mailbox: {e}", settings.from))?;
        Ok(Self {
            transport: builder.build(),
            from,
            host: settings.host.clone(),
            port: settings.port,
        })
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
        let result = self
            .transport
            .send(message)
            .instrument(span.clone())
            .await
            .map(drop)
            .map_err(|e| {
                if e.is_permanent() {
                    MailError::Permanent(e.into())
                } else {
                    MailError::Transient(e.into())
                }
            });
        span.record(
            "otel.status_code",
            if result.is_ok() { "ok" } else { "error" },
        );
        result
    }
}
