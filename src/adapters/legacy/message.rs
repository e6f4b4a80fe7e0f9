//! The legacy e-mail message of the fanout exchange `smtp_send_email_exc`
//! (migration phases 1-3): the JSON object the existing consumers parse.

use serde::{Deserialize, Deserializer, Serialize};

use crate::{
    adapters::mail::templates::{EmailTemplates, TemplateError},
    domain::{events::EmailVerificationPayload, timestamp::Timestamp},
};

/// Field names are the old Go struct's, hence PascalCase. Lists may arrive as
/// `null` from Go producers (a nil slice) and are read as empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LegacyEmailMessage {
    pub subject: String,
    pub recipient: String,
    /// Rendered HTML.
    pub body: String,
    #[serde(default)]
    pub reply_to: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub cc_addresses: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub attachments: Vec<serde_json::Value>,
}

fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

impl LegacyEmailMessage {
    /// The legacy copy of a verification e-mail, rendered as the new
    /// consumer would render it.
    pub fn for_verification(
        payload: &EmailVerificationPayload,
        sent_at: Timestamp,
        templates: &EmailTemplates,
    ) -> Result<Self, TemplateError> {
        let email = templates.render_verification(payload, sent_at)?;
        Ok(Self {
            subject: email.subject,
            recipient: payload.recipient.to_string(),
            body: email.html,
            reply_to: String::new(),
            cc_addresses: Vec::new(),
            attachments: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_messages_written_by_the_go_producer() {
        let json = r#"{"Subject":"Hi","Recipient":"ann@example.com","Body":"<p>x</p>",
                       "ReplyTo":"","CcAddresses":null,"Attachments":null}"#;
        let msg: LegacyEmailMessage = serde_json::from_str(json).unwrap();
        assert_eq!(msg.recipient, "ann@example.com");
        assert!(msg.cc_addresses.is_empty() && msg.attachments.is_empty());
    }

    #[test]
    fn writes_the_six_legacy_keys() {
        let msg = LegacyEmailMessage {
            subject: "s".into(),
            recipient: "r@example.com".into(),
            body: "b".into(),
            reply_to: String::new(),
            cc_addresses: vec![],
            attachments: vec![],
        };
        let value = serde_json::to_value(&msg).unwrap();
        let mut keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "Attachments",
                "Body",
                "CcAddresses",
                "Recipient",
                "ReplyTo",
                "Subject"
            ]
        );
    }
}
