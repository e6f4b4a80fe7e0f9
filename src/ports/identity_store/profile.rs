//! A profile edit as the identity store applies it.

use crate::domain::{account::FullName, locale::Locale};

/// A profile edit: each `Some` field replaces the stored value, each `None`
/// keeps it (a name, once set, cannot be cleared this way).
#[derive(Debug, Clone, Default)]
pub struct ProfileChanges {
    /// The new display name, already validated.
    pub full_name: Option<FullName>,
    /// The new language of the account's e-mails.
    pub locale: Option<Locale>,
}
