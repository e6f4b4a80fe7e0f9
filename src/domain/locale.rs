//! `Locale`: the languages SMAP writes e-mails in.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// A language an e-mail can be written in; on the wire and in the database
/// its lower-case tag, `en` or `vi`, and nothing else. The JSON Schema (in
/// `events::schemas`) is written by hand so these docs stay out of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    /// English, `en`; the default when nothing (or nothing usable) is asked.
    #[default]
    En,
    /// Vietnamese, `vi`.
    Vi,
}

/// The text is not exactly `en` or `vi` (case matters, no region suffix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be `en` or `vi`")]
pub struct LocaleError;

impl Locale {
    /// The wire tag, `"en"` or `"vi"`: what [`FromStr`] reads back.
    pub fn as_str(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Vi => "vi",
        }
    }
}

impl Locale {
    /// The locale a language preference asks for, leniently: `vi-VN` is
    /// `vi`, and a list (`fr-FR, vi;q=0.9`) gives its first supported tag
    /// not ruled out by `q=0`. Anything else, garbage included, is English:
    /// a header is a hint, unlike a field the client chose to send.
    pub fn from_language_tags(tags: &str) -> Self {
        tags.split(',')
            .filter_map(|item| {
                let mut parts = item.split(';');
                let tag = parts.next()?.trim();
                let refused = parts.any(|param| {
                    param
                        .trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.trim().parse::<f32>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                if refused {
                    return None;
                }
                let primary = tag.split(['-', '_']).next()?;
                primary.to_ascii_lowercase().parse().ok()
            })
            .next()
            .unwrap_or_default()
    }
}

impl FromStr for Locale {
    type Err = LocaleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "en" => Ok(Locale::En),
            "vi" => Ok(Locale::Vi),
            _ => Err(LocaleError),
        }
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_en_and_vi_parse() {
        assert_eq!("en".parse(), Ok(Locale::En));
        assert_eq!("vi".parse(), Ok(Locale::Vi));
        for bad in ["", "EN", "fr", "en-US"] {
            assert_eq!(bad.parse::<Locale>(), Err(LocaleError), "{bad:?}");
        }
    }

    #[test]
    fn language_tags_pick_the_first_supported_language_else_english() {
        for (tags, expected) in [
            ("vi", Locale::Vi),
            ("vi-VN", Locale::Vi),
            ("VI_vn", Locale::Vi),
            (" vi-VN,vi;q=0.9,en;q=0.8", Locale::Vi),
            ("en-US", Locale::En),
            ("fr-FR, vi;q=0.9", Locale::Vi),
            ("vi;q=0, fr", Locale::En),
            ("vi;q=0.0,en-GB", Locale::En),
            ("fr", Locale::En),
            ("de-DE", Locale::En),
            ("*", Locale::En),
            ("", Locale::En),
            (";;,,--", Locale::En),
            ("vietnamese", Locale::En),
        ] {
            assert_eq!(Locale::from_language_tags(tags), expected, "{tags:?}");
        }
    }
}
