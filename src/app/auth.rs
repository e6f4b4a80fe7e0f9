//! User tokens: HS256 JWTs with expiry, issuer and audience, carried in the
//! HttpOnly cookie `smap_auth_token` or an `Authorization: Bearer` header.
//! A token names its session (`jti`); the signature proves who issued it,
//! the session (checked on every request) that it was not revoked.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const AUTH_COOKIE: &str = "smap_auth_token";
pub const ISSUER: &str = "smap-identity";
pub const AUDIENCE: &str = "smap";
/// How long a login lasts.
pub const TOKEN_TTL_HOURS: i64 = crate::domain::account::SESSION_TTL_HOURS;

pub use crate::domain::account::{Role, Session};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    /// The session: logout and a password change end it.
    pub jti: Uuid,
    /// The role at login, for clients; the server reads the current role.
    pub role: Role,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token is invalid or expired")]
    Invalid(#[source] jsonwebtoken::errors::Error),
    #[error("the token could not be signed")]
    Signing(#[source] jsonwebtoken::errors::Error),
}

pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl TokenService {
    pub fn new(secret: &[u8]) -> Self {
        // Only HS256: a token claiming `none` or another algorithm is refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud", "jti"]);
        validation.leeway = 30;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// A token for `session`, expiring with it.
    pub fn issue(&self, session: &Session, role: Role) -> Result<String, TokenError> {
        let claims = Claims {
            sub: session.user_id,
            jti: session.id,
            role,
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat: session.created_at.timestamp(),
            exp: session.expires_at.timestamp(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(TokenError::Signing)
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(TokenError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn session(now: DateTime<Utc>) -> Session {
        Session::new(Uuid::new_v4(), Uuid::new_v4(), now)
    }

    #[test]
    fn issued_tokens_verify_and_name_their_session() {
        let tokens = TokenService::new(SECRET);
        let session = session(Utc::now());
        let token = tokens.issue(&session, Role::Admin).unwrap();
        let claims = tokens.verify(&token).unwrap();
        assert_eq!(
            (claims.sub, claims.jti, claims.role),
            (session.user_id, session.id, Role::Admin)
        );
        assert_eq!(claims.exp, session.expires_at.timestamp());
    }

    #[test]
    fn wrong_signature_expired_and_unsigned_tokens_are_refused() {
        let tokens = TokenService::new(SECRET);
        let other = TokenService::new(b"another-secret-another-secret-xx");
        let foreign = other.issue(&session(Utc::now()), Role::User).unwrap();
        assert!(tokens.verify(&foreign).is_err());

        let old = tokens
            .issue(&session(Utc::now() - Duration::days(2)), Role::User)
            .unwrap();
        assert!(tokens.verify(&old).is_err());

        // {"alg":"none"} with valid-looking claims and no signature.
        let claims = Claims {
            sub: Uuid::new_v4(),
            jti: Uuid::new_v4(),
            role: Role::Admin,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: Utc::now().timestamp(),
            exp: (Utc::now() + Duration::hours(1)).timestamp(),
        };
        use base64_helper::b64;
        let unsigned = format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            b64(&serde_json::to_vec(&claims).unwrap())
        );
        assert!(tokens.verify(&unsigned).is_err());
    }

    #[test]
    fn tokens_for_another_audience_are_refused() {
        let tokens = TokenService::new(SECRET);
        let claims = Claims {
            sub: Uuid::new_v4(),
            jti: Uuid::new_v4(),
            role: Role::User,
            iss: ISSUER.into(),
            aud: "someone-else".into(),
            iat: Utc::now().timestamp(),
            exp: (Utc::now() + Duration::hours(1)).timestamp(),
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(tokens.verify(&token).is_err());
    }

    /// Unpadded URL-safe base64, enough to forge a test token.
    mod base64_helper {
        pub fn b64(input: &[u8]) -> String {
            const ABC: &[u8; 64] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let mut out = String::new();
            for chunk in input.chunks(3) {
                let b = [
                    chunk[0],
                    *chunk.get(1).unwrap_or(&0),
                    *chunk.get(2).unwrap_or(&0),
                ];
                let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
                for i in 0..=chunk.len() {
                    out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
                }
            }
            out
        }
    }
}
