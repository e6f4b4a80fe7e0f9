//! `Locale`: the languages SMAP writes e-mails in.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    #[default]
    En,
    Vi,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be `en` or `vi`")]
pub struct LocaleError;

impl Locale {
    pub fn as_str(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Vi => "vi",
        }
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
}
