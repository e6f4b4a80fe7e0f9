//! E-mail templates (minijinja): the verification e-mail in `en` and `vi`,
//! as HTML (auto-escaped) and plain text, compiled into the binary.

use minijinja::{Environment, context};

use crate::domain::{events::EmailVerificationPayload, locale::Locale, timestamp::Timestamp};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    pub subject: String,
    pub html: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
#[error("e-mail template failed to render")]
pub struct TemplateError(#[from] minijinja::Error);

pub struct EmailTemplates {
    env: Environment<'static>,
}

impl EmailTemplates {
    pub fn new() -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.add_template(
            "verification.en.html",
            include_str!("../../../templates/verification.en.html"),
        )?;
        env.add_template(
            "verification.en.txt",
            include_str!("../../../templates/verification.en.txt"),
        )?;
        env.add_template(
            "verification.vi.html",
            include_str!("../../../templates/verification.vi.html"),
        )?;
        env.add_template(
            "verification.vi.txt",
            include_str!("../../../templates/verification.vi.txt"),
        )?;
        Ok(Self { env })
    }

    /// Renders the verification e-mail; the expiry is shown in whole minutes
    /// from `sent_at` (rounded up, so "10 minutes" for a fresh code).
    pub fn render_verification(
        &self,
        payload: &EmailVerificationPayload,
        sent_at: Timestamp,
    ) -> Result<RenderedEmail, TemplateError> {
        let millis = (payload.expires_at.as_datetime() - sent_at.as_datetime())
            .num_milliseconds()
            .max(0);
        let minutes = (millis + 59_999) / 60_000;
        let ctx = context! {
            recipient => payload.recipient.as_str(),
            otp_code => payload.otp_code.as_str(),
            expires_in_minutes => minutes,
            expires_at => payload.expires_at.as_datetime().format("%Y-%m-%d %H:%M").to_string(),
        };
        let locale = payload.locale.as_str();
        let html = self
            .env
            .get_template(&format!("verification.{locale}.html"))?
            .render(&ctx)?;
        let text = self
            .env
            .get_template(&format!("verification.{locale}.txt"))?
            .render(&ctx)?;
        let subject = match payload.locale {
            Locale::En => "Your SMAP verification code",
            Locale::Vi => "Mã xác thực SMAP của bạn",
        };
        Ok(RenderedEmail {
            subject: subject.to_owned(),
            html,
            text,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};
    use uuid::Uuid;

    use super::*;
    use crate::domain::{email_address::Email, otp::OtpCode};

    fn payload(locale: Locale, recipient: &str) -> (EmailVerificationPayload, Timestamp) {
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap();
        let p = EmailVerificationPayload {
            user_id: Uuid::new_v4(),
            recipient: Email::parse(recipient).unwrap(),
            otp_code: OtpCode::parse("042137").unwrap(),
            locale,
            expires_at: Timestamp::new(now + Duration::minutes(10)),
        };
        (p, Timestamp::new(now))
    }

    #[test]
    fn renders_the_otp_and_expiry_in_each_language() {
        let templates = EmailTemplates::new().unwrap();
        let (p, at) = payload(Locale::En, "ann@example.com");
        let en = templates.render_verification(&p, at).unwrap();
        assert_eq!(en.subject, "Your SMAP verification code");
        assert!(en.html.contains("042137") && en.text.contains("042137"));
        assert!(en.text.contains("expires in 10 minutes"));

        let (p, at) = payload(Locale::Vi, "ann@example.com");
        let vi = templates.render_verification(&p, at).unwrap();
        assert_eq!(vi.subject, "Mã xác thực SMAP của bạn");
        assert!(vi.text.contains("Mã hết hạn sau 10 phút"));
        assert!(vi.html.contains("lang=\"vi\""));
    }

    #[test]
    fn html_output_escapes_what_it_interpolates() {
        let templates = EmailTemplates::new().unwrap();
        let (p, at) = payload(Locale::En, "a&b'x@example.com");
        let html = templates.render_verification(&p, at).unwrap().html;
        assert!(html.contains("a&amp;b&#x27;x@example.com"), "{html}");
    }
}
