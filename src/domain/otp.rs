//! `OtpCode`: a one-time password of exactly six ASCII digits.

use std::fmt;

use crate::domain::serde_str::serde_via_parse;

/// The text is not exactly six ASCII digits `0-9` (other Unicode digits,
/// signs and spaces are refused).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be exactly 6 digits")]
pub struct OtpError;

/// A one-time password: always exactly six ASCII digits, leading zeros
/// kept (`000042`). Travels as a JSON string; `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct OtpCode(String);

impl OtpCode {
    /// Accepts exactly six ASCII digits, untrimmed; anything else is
    /// [`OtpError`].
    pub fn parse(input: &str) -> Result<Self, OtpError> {
        if input.len() == 6 && input.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(input.to_owned()))
        } else {
            Err(OtpError)
        }
    }

    /// Builds a code from any number by keeping its last six decimal digits,
    /// so a uniform random `u32` below 1 000 000 gives a uniform code.
    pub fn from_number(n: u32) -> Self {
        Self(format!("{:06}", n % 1_000_000))
    }

    /// The six digits, as they go into the e-mail and the event.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Debug output hides the digits: an OTP is a credential.
impl fmt::Debug for OtpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OtpCode(******)")
    }
}

serde_via_parse!(OtpCode);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_six_digits_only() {
        assert!(OtpCode::parse("012345").is_ok());
        for bad in ["", "12345", "1234567", "12a456", " 12345", "١٢٣٤٥٦"] {
            assert_eq!(OtpCode::parse(bad), Err(OtpError), "{bad:?}");
        }
    }

    #[test]
    fn numbers_are_zero_padded() {
        assert_eq!(OtpCode::from_number(42).as_str(), "000042");
        assert_eq!(OtpCode::from_number(1_234_567).as_str(), "234567");
    }
}
