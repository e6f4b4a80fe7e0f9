//! `SMTP_*`, mapped onto the adapter's `SmtpConfig`; no `SMTP_HOST` is no
//! SMTP (e-mails are logged, not sent).

use secrecy::SecretString;

use super::{ConfigError, env::Env};
use crate::adapters::mail::{SmtpConfig, SmtpTls};

/// The port follows `SMTP_TLS` unless set (25, 587, 465).
pub(super) fn smtp<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Option<SmtpConfig>, ConfigError> {
    let Some(host) = env.get("SMTP_HOST") else {
        return Ok(None);
    };
    let tls = env.parse(
        "SMTP_TLS",
        SmtpTls::StartTls,
        |s| match s {
            "none" => Some(SmtpTls::None),
            "starttls" => Some(SmtpTls::StartTls),
            "tls" => Some(SmtpTls::Tls),
            _ => None,
        },
        "none, starttls or tls",
    )?;
    let default_port = match tls {
        SmtpTls::None => 25,
        SmtpTls::StartTls => 587,
        SmtpTls::Tls => 465,
    };
    let from = env
        .get("SMTP_FROM")
        .unwrap_or_else(|| "SMAP <no-reply@smap.local>".into());
    if !from.contains('@') {
        return Err(ConfigError {
            var: "SMTP_FROM",
            problem: format!(
                "is `{from}`; expected an address such as `SMAP <no-reply@example.com>`"
            ),
        });
    }
    Ok(Some(SmtpConfig {
        host,
        port: env.port("SMTP_PORT", default_port)?,
        tls,
        username: env.get("SMTP_USERNAME"),
        password: env.get("SMTP_PASSWORD").map(SecretString::from),
        from,
        timeout: env.seconds(
            "SMTP_TIMEOUT_SECS",
            10,
            1..=300,
            "a number of seconds from 1 to 300",
        )?,
    }))
}
