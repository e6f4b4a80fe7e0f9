//! Credentials adapters: Argon2id password hashing (OWASP parameters, off
//! the async threads) and OTPs from the operating system's CSPRNG.

use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{
        PasswordHash as Phc, PasswordHasher as _, PasswordVerifier, SaltString, rand_core::OsRng,
    },
};
use async_trait::async_trait;
use rand::Rng;

use crate::{
    domain::{
        account::{Password, PasswordHash},
        otp::OtpCode,
    },
    ports::{HashError, OtpSource, PasswordHasher},
};

/// OWASP's Argon2id recommendation: 19 MiB, 2 iterations, 1 lane.
pub const ARGON2_MEMORY_KIB: u32 = 19_456;
pub const ARGON2_ITERATIONS: u32 = 2;
pub const ARGON2_LANES: u32 = 1;

#[derive(Clone)]
pub struct Argon2Hasher {
    params: Params,
}

impl Argon2Hasher {
    pub fn owasp() -> Self {
        Self::with(ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES)
    }

    /// Other costs (benchmarks compare them); falls back to OWASP's on
    /// parameters Argon2 rejects.
    pub fn with(memory_kib: u32, iterations: u32, lanes: u32) -> Self {
        let params = Params::new(memory_kib, iterations, lanes, None).unwrap_or_else(|_| {
            Params::new(ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES, None)
                .unwrap_or_default()
        });
        Self { params }
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        let argon2 = self.argon2();
        let password = password.expose().to_owned();
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon2
                .hash_password(password.as_bytes(), &salt)
                .map(|h| PasswordHash(h.to_string()))
                .map_err(|e| HashError(anyhow::anyhow!("{e}")))
        })
        .await
        .map_err(|e| HashError(e.into()))?
    }

    async fn verify(&self, password: &Password, hash: &PasswordHash) -> Result<bool, HashError> {
        let argon2 = self.argon2();
        let password = password.expose().to_owned();
        let hash = hash.0.clone();
        tokio::task::spawn_blocking(move || {
            let parsed =
                Phc::new(&hash).map_err(|e| HashError(anyhow::anyhow!("stored hash: {e}")))?;
            Ok(argon2.verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await
        .map_err(|e| HashError(e.into()))?
    }
}

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

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify_only_the_right_password() {
        let hasher = Argon2Hasher::owasp();
        let password = Password::parse("correct horse battery").unwrap();
        let hash = hasher.hash(&password).await.unwrap();
        assert!(
            hash.0.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            hash.0
        );
        assert!(hasher.verify(&password, &hash).await.unwrap());
        assert!(
            !hasher
                .verify(&Password::parse("wrong password").unwrap(), &hash)
                .await
                .unwrap()
        );
        let again = hasher.hash(&password).await.unwrap();
        assert_ne!(hash, again, "salted");
    }

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
