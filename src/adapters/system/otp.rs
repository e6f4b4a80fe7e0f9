//! `RandomOtps`: one-time passwords from the operating system's CSPRNG.

use rand::Rng;

use crate::{domain::otp::OtpCode, ports::OtpSource};

/// Six-digit codes, uniform over 000000-999999.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomOtps;

impl OtpSource for RandomOtps {
    fn new_otp(&self) -> OtpCode {
        OtpCode::from_number(rand::rng().random_range(0..1_000_000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otps_are_six_digits_and_vary() {
        let codes: std::collections::HashSet<String> = (0..200)
            .map(|_| RandomOtps.new_otp().as_str().to_owned())
            .collect();
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()))
        );
        assert!(codes.len() > 190);
    }
}
