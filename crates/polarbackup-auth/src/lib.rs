//! Verifies Alibaba Cloud OpenAPI request signatures (V1 HMAC-SHA1 and ACS3 V3) — pure, no IO.
//!
//! The HTTP layer parses the request into a [`Request`], supplies the clock and
//! a [`KeyLookup`], and maps [`AuthError`] to gateway error codes. Replay
//! protection (remembering nonces) is the caller's job; [`Verified::nonce`]
//! is returned for it.

mod compare;
mod encode;
mod error;
mod keys;
mod link;
pub mod ram;
mod request;
mod time;
mod v1;
mod v3;

pub use encode::percent_encode;
pub use error::AuthError;
pub use keys::{KeyLookup, KeyMaterial, KeyRecord};
pub use link::{sign_link, verify_link};
pub use request::{borrow_headers, Request};
pub use time::MAX_CLOCK_SKEW;

/// Whether `pem` is an RSA public key the V3 verifier can use (SubjectPublicKeyInfo or PKCS#1).
pub fn is_rsa_public_key_pem(pem: &str) -> bool {
    v3::parse_public_key(pem).is_some()
}

/// Longest nonce accepted, in bytes; it bounds what a replay cache must store.
const MAX_NONCE_LEN: usize = 128;

/// Which signature scheme a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    V1HmacSha1,
    V3HmacSha256,
    V3HmacSm3,
    V3RsaSha256,
}

/// What a successfully verified request proved.
#[derive(Debug, Clone)]
pub struct Verified {
    pub access_key_id: String,
    /// `SignatureNonce` / `x-acs-signature-nonce`, for replay detection.
    pub nonce: String,
    /// `Timestamp` / `x-acs-date`.
    pub timestamp: jiff::Timestamp,
    /// `SecurityToken` / `x-acs-security-token` when present and non-empty (STS).
    pub security_token: Option<String>,
    pub scheme: Scheme,
}

/// Verifies `req` as of `now`.
///
/// An `Authorization` header starting with `ACS3-` selects V3; anything else
/// is treated as V1. Checks run in a fixed order (format, timestamp, skew, key,
/// key state, content hash, signature) so that error codes are predictable.
pub fn verify(
    req: &Request<'_>,
    now: jiff::Timestamp,
    keys: &dyn KeyLookup,
) -> Result<Verified, AuthError> {
    let authorizations = req.header_values("authorization");
    if authorizations
        .iter()
        .any(|v| v.trim_start().starts_with("ACS3-"))
    {
        let [authorization] = authorizations[..] else {
            return Err(AuthError::IncompleteSignature(
                "Authorization header is repeated".into(),
            ));
        };
        v3::verify(req, authorization, now, keys)
    } else {
        v1::verify(req, now, keys)
    }
}

#[cfg(test)]
mod testutil {
    //! Shared fixtures for the unit tests.

    use crate::{KeyLookup, KeyMaterial, KeyRecord};

    /// `testid` → `testsecret`; `inactive` is disabled; `rsa` holds a PEM.
    pub(crate) struct Keys;

    impl KeyLookup for Keys {
        fn lookup(&self, id: &str) -> Option<KeyRecord> {
            let secret = KeyMaterial::Secret("testsecret".into());
            match id {
                "testid" => Some(KeyRecord {
                    material: secret,
                    active: true,
                }),
                "inactive" => Some(KeyRecord {
                    material: secret,
                    active: false,
                }),
                "rsa" => Some(KeyRecord {
                    material: KeyMaterial::RsaPublicKeyPem("not a key".into()),
                    active: true,
                }),
                _ => None,
            }
        }
    }

    pub(crate) fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|&(k, v)| (k.into(), v.into())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{owned, Keys};

    #[test]
    fn max_clock_skew_is_fifteen_minutes() {
        assert_eq!(MAX_CLOCK_SKEW, jiff::SignedDuration::from_secs(900));
    }

    #[test]
    fn non_acs3_authorization_falls_back_to_v1() {
        let headers = owned(&[("Authorization", "Bearer x")]);
        let req = Request {
            method: "GET",
            path: "/",
            query: &[],
            form: &[],
            headers: &borrow_headers(&headers),
            body: b"",
        };
        assert_eq!(
            verify(&req, jiff::Timestamp::UNIX_EPOCH, &Keys).unwrap_err(),
            AuthError::MissingParameter("AccessKeyId")
        );
    }

    #[test]
    fn repeated_acs3_authorization_is_refused() {
        let headers = owned(&[
            ("authorization", "ACS3-HMAC-SHA256 a"),
            ("Authorization", "ACS3-HMAC-SHA256 b"),
        ]);
        let req = Request {
            method: "GET",
            path: "/",
            query: &[],
            form: &[],
            headers: &borrow_headers(&headers),
            body: b"",
        };
        assert!(matches!(
            verify(&req, jiff::Timestamp::UNIX_EPOCH, &Keys),
            Err(AuthError::IncompleteSignature(_))
        ));
    }
}
